package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler"
)

// maxDeschedulerRounds bounds the descheduler's runs over one final placement: a VM evicted from
// one underutilized node may land on another, so a run can move VMs without settling.
const maxDeschedulerRounds = 10

// deschedule plays what stock Kubernetes offers for packing over time, the descheduler's
// HighNodeUtilization strategy with KubeVirt, over the VMs alive at the end of a run and with the
// run's own scheduler, and returns the nodes used after it and the live migrations it took.
//
// A node that runs VMs is underutilized when its CPU and its memory requests are both below
// threshold (a fraction of allocatable), as the strategy's `thresholds` count them; the others
// are its destinations. Each run of the descheduler evicts the VMs of the underutilized nodes,
// emptiest node first, each only while some destination has room for its requests (the
// strategy's own guard only asks for room left on the destinations together, which evicts more
// and would lose more often: the bench grants the descheduler the stricter guard). KubeVirt turns the
// eviction of a live-migratable VM into a migration, whose target launcher pod the scheduler
// places anywhere but on the VM's current node (KubeVirt's anti-affinity to the source pod),
// MostAllocated under the stock profile; when no node fits it, the migration fails and the VM
// stays. The descheduler then runs again, until a run moves nothing. Unlike the consolidator it
// neither empties a node whole nor picks the targets: a VM may move to another underutilized node
// and leave its own still in use.
func deschedule(ctx context.Context, sched *scheduler.Scheduler, bindings *bindingLog, alive []*v1.Pod, nodes []*v1.Node, threshold float64, schedulerName string) (Consolidation, error) {
	logger := klog.FromContext(ctx)
	alive = slices.DeleteFunc(slices.Clone(alive), func(p *v1.Pod) bool { return bindings.node(p.Name) == "" })
	allocatable := map[string]v1.ResourceList{}
	for _, n := range nodes {
		allocatable[n.Name] = n.Status.Allocatable
	}
	var out Consolidation
	for out.Rounds < maxDeschedulerRounds {
		requested := map[string][2]int64{}
		onNode := map[string][]int{}
		for i, p := range alive {
			node := bindings.node(p.Name)
			r := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
			sum := requested[node]
			sum[0] += r.Cpu().MilliValue()
			sum[1] += r.Memory().Value()
			requested[node] = sum
			onNode[node] = append(onNode[node], i)
		}
		usage := func(node string) float64 {
			a := allocatable[node]
			return max(float64(requested[node][0])/float64(a.Cpu().MilliValue()), float64(requested[node][1])/float64(a.Memory().Value()))
		}
		var sources []string
		free := map[string][2]int64{}
		for node := range onNode {
			if usage(node) < threshold {
				sources = append(sources, node)
				continue
			}
			a := allocatable[node]
			free[node] = [2]int64{a.Cpu().MilliValue() - requested[node][0], a.Memory().Value() - requested[node][1]}
		}
		slices.SortFunc(sources, func(a, b string) int {
			return cmp.Or(cmp.Compare(usage(a), usage(b)), cmp.Compare(a, b))
		})
		moved := 0
		for _, src := range sources {
			for _, i := range onNode[src] {
				r := resourcehelper.PodRequests(alive[i], resourcehelper.PodResourcesOptions{})
				if !roomOnOne(free, r.Cpu().MilliValue(), r.Memory().Value()) {
					continue
				}
				target := migrationTarget(alive[i], src, out.Migrations, schedulerName)
				sched.SchedulingQueue.Add(ctx, target)
				sched.ScheduleOne(ctx)
				if err := waitForBindings(ctx, sched, bindings, []*v1.Pod{target}); err != nil {
					return out, err
				}
				if bindings.node(target.Name) == "" {
					// No node fits: the migration fails and the VM runs on where it is.
					sched.SchedulingQueue.Delete(logger, target)
					continue
				}
				if err := deletePod(logger, sched, bindings, alive[i]); err != nil {
					return out, err
				}
				alive[i] = target
				if to, ok := free[bindings.node(target.Name)]; ok {
					free[bindings.node(target.Name)] = [2]int64{to[0] - r.Cpu().MilliValue(), to[1] - r.Memory().Value()}
				}
				out.Migrations++
				moved++
			}
		}
		if moved == 0 {
			break
		}
		out.Rounds++
	}
	used := map[string]bool{}
	for _, p := range alive {
		used[bindings.node(p.Name)] = true
	}
	out.NodesUsed = len(used)
	return out, nil
}

// roomOnOne tells whether one of the nodes has cpu (millicores) and memory (bytes) free.
func roomOnOne(free map[string][2]int64, cpu, memory int64) bool {
	for _, f := range free {
		if f[0] >= cpu && f[1] >= memory {
			return true
		}
	}
	return false
}

// migrationTarget is the target virt-launcher pod of a live migration of vm's pod off node src:
// the same VM (labels, requests, affinity) under a new name, kept off src as KubeVirt's
// anti-affinity to the source pod keeps it.
func migrationTarget(vm *v1.Pod, src string, n int, schedulerName string) *v1.Pod {
	target := vm.DeepCopy()
	target.Name = fmt.Sprintf("%s-m%d", vm.Name, n)
	target.UID = types.UID(fmt.Sprintf("%s-m%d", vm.UID, n))
	target.Spec.NodeName = ""
	target.Spec.SchedulerName = schedulerName
	if target.Spec.Affinity == nil {
		target.Spec.Affinity = &v1.Affinity{}
	}
	target.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
		NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
			Key: v1.LabelHostname, Operator: v1.NodeSelectorOpNotIn, Values: []string{src},
		}}}},
	}}
	return target
}
