package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"
)

// Result is what one run measured.
type Result struct {
	// NodesUsed counts the nodes that run at least one VM at the end.
	NodesUsed int
	// LowerBound is LowerBound of the VMs alive at the end.
	LowerBound int
	// OfflineFFD is OfflineFFD of the VMs alive at the end: what packing them all at once reaches.
	OfflineFFD int
	// Consolidated is what consolidating the VMs alive at the end reaches, for a workload that
	// deletes VMs (churn leaves the holes consolidation closes); zero for the others.
	Consolidated Consolidation
	// Descheduled is what the descheduler's HighNodeUtilization strategy, with the run's own
	// scheduler placing the migrated VMs, reaches from the final placement, for a workload with a
	// DeschedulerThreshold; zero for the others. It is how stock Kubernetes packs over time.
	Descheduled Consolidation
	// Placed are the VMs alive at the end, each with the node it runs on.
	Placed []*v1.Pod
	// Pending counts the VMs the scheduler could not place.
	Pending int
	// SpreadViolations counts the control-plane VMs placed on a node that already runs one of
	// their tenant's: none, whichever way the profile enforces the rule.
	SpreadViolations int
	// PodsPerSecond is scheduling attempts divided by the time spent scheduling and binding them.
	PodsPerSecond float64
}

// Ratio is NodesUsed over LowerBound.
func (r Result) Ratio() float64 {
	return float64(r.NodesUsed) / float64(r.LowerBound)
}

// ConsolidationMaxInFlight is the consolidator's limit of migrations at once that Run measures
// consolidation with.
const ConsolidationMaxInFlight = 10

// Run schedules w with the single profile prof on nodes and returns the outcome.
//
// It is the real scheduler built by scheduler.New: its queue, cache, snapshot, framework with
// every plugin of the profile, opportunistic batching and binding cycle. What it leaves out is
// the API server: nodes and pods go straight into the scheduler's cache and queue (what its
// informer handlers would do), and bindings land in a fake clientset. The figures are the
// scheduler's own cost, which is what differs between profiles.
func Run(ctx context.Context, prof config.KubeSchedulerProfile, registry frameworkruntime.Registry, nodes []*v1.Node, w Workload) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := klog.FromContext(ctx)
	sched, bindings, stop, err := newScheduler(ctx, prof, registry, nodes)
	if err != nil {
		return Result{}, err
	}
	defer stop()

	r := rand.New(rand.NewPCG(w.Seed, 3))
	var alive []*v1.Pod
	var attempts int
	var busy time.Duration
	for _, step := range w.Steps {
		if step.DeleteTenantFraction > 0 {
			var err error
			if alive, err = deleteTenants(logger, sched, bindings, alive, step.DeleteTenantFraction, r); err != nil {
				return Result{}, err
			}
		}
		if step.DeleteFraction > 0 {
			r.Shuffle(len(alive), func(i, j int) { alive[i], alive[j] = alive[j], alive[i] })
			n := int(float64(len(alive)) * step.DeleteFraction)
			for _, p := range alive[:n] {
				if err := deletePod(logger, sched, bindings, p); err != nil {
					return Result{}, err
				}
			}
			alive = alive[n:]
		}
		for _, burst := range step.Bursts {
			pods := make([]*v1.Pod, len(burst))
			for i, vm := range burst {
				pods[i] = TenantVMPod(fmt.Sprintf("%s-%05d", w.Name, attempts+i), prof.SchedulerName, vm)
				sched.SchedulingQueue.Add(ctx, pods[i])
			}
			start := time.Now()
			for range pods {
				sched.ScheduleOne(ctx)
			}
			attempts += len(pods)
			if err := waitForBindings(ctx, sched, bindings, pods); err != nil {
				return Result{}, err
			}
			busy += time.Since(start)
			alive = append(alive, pods...)
		}
	}

	res := Result{PodsPerSecond: float64(attempts) / busy.Seconds()}
	used := map[string]bool{}
	controlPlanes := map[string]bool{}
	var placed []*v1.Pod
	for _, p := range alive {
		if node := bindings.node(p.Name); node != "" {
			used[node] = true
			if p.Labels[roleLabel] == controlPlaneRole {
				key := p.Labels[clusterNameLabel] + "@" + node
				if controlPlanes[key] {
					res.SpreadViolations++
				}
				controlPlanes[key] = true
			}
			bound := p.DeepCopy()
			bound.Spec.NodeName = node
			placed = append(placed, bound)
		} else {
			res.Pending++
		}
	}
	res.NodesUsed = len(used)
	res.LowerBound = LowerBound(placed, nodes)
	res.OfflineFFD = OfflineFFD(placed, nodes)
	if w.Deletes() {
		res.Consolidated = Consolidate(placed, nodes, ConsolidationMaxInFlight)
	}
	res.Placed = placed
	if w.Deletes() && w.DeschedulerThreshold > 0 {
		// Last: it changes the scheduler's cache.
		if res.Descheduled, err = deschedule(ctx, sched, bindings, alive, nodes, w.DeschedulerThreshold, prof.SchedulerName); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// newScheduler is the real scheduler of one profile over nodes, with a fake clientset whose
// bindings it records; stop releases it.
func newScheduler(ctx context.Context, prof config.KubeSchedulerProfile, registry frameworkruntime.Registry, nodes []*v1.Node) (*scheduler.Scheduler, *bindingLog, func(), error) {
	client := fake.NewClientset()
	bindings := &bindingLog{nodeOf: map[string]string{}}
	client.PrependReactor("create", "pods", bindings.react)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	sched, err := scheduler.New(ctx, client, scheduler.NewInformerFactory(client, 0, nil), nil,
		profile.NewRecorderFactory(broadcaster),
		scheduler.WithProfiles(prof),
		scheduler.WithFrameworkOutOfTreeRegistry(registry),
	)
	if err != nil {
		broadcaster.Shutdown()
		return nil, nil, nil, fmt.Errorf("creating scheduler: %w", err)
	}
	for _, n := range nodes {
		sched.Cache.AddNode(klog.FromContext(ctx), n)
	}
	return sched, bindings, broadcaster.Shutdown, nil
}

// deleteTenants deletes a fraction of the tenants that have VMs alive, with all their VMs, and
// returns the VMs left.
func deleteTenants(logger klog.Logger, sched *scheduler.Scheduler, bindings *bindingLog, alive []*v1.Pod, fraction float64, r *rand.Rand) ([]*v1.Pod, error) {
	var names []string
	seen := map[string]bool{}
	for _, p := range alive {
		if t := p.Labels[clusterNameLabel]; t != "" && !seen[t] {
			seen[t] = true
			names = append(names, t)
		}
	}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	gone := map[string]bool{}
	for _, t := range names[:int(float64(len(names))*fraction)] {
		gone[t] = true
	}
	var left []*v1.Pod
	for _, p := range alive {
		if !gone[p.Labels[clusterNameLabel]] {
			left = append(left, p)
			continue
		}
		if err := deletePod(logger, sched, bindings, p); err != nil {
			return nil, err
		}
	}
	return left, nil
}

// deletePod removes a bound VM from the scheduler's cache, as its informer handler would on a
// Delete event.
func deletePod(logger klog.Logger, sched *scheduler.Scheduler, bindings *bindingLog, pod *v1.Pod) error {
	node := bindings.node(pod.Name)
	if node == "" {
		return nil
	}
	bound := pod.DeepCopy()
	bound.Spec.NodeName = node
	if err := sched.Cache.RemovePod(logger, bound); err != nil {
		return fmt.Errorf("removing %s from the scheduler cache: %w", pod.Name, err)
	}
	bindings.forget(pod.Name)
	return nil
}

// waitForBindings waits until every pod the scheduler placed is bound. ScheduleOne returns once
// a pod is assumed in the cache; its binding cycle runs on in a goroutine. A pod that failed to
// schedule is not in the cache and is not waited for.
func waitForBindings(ctx context.Context, sched *scheduler.Scheduler, bindings *bindingLog, pods []*v1.Pod) error {
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		for _, p := range pods {
			if bindings.node(p.Name) != "" {
				continue
			}
			if assumed, _ := sched.Cache.IsAssumedPod(p); assumed {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the scheduler to bind the VMs it placed: %w", err)
	}
	return nil
}

// bindingLog records the bindings the scheduler posts to the fake clientset.
type bindingLog struct {
	mu     sync.Mutex
	nodeOf map[string]string
}

func (b *bindingLog) react(action clienttesting.Action) (bool, runtime.Object, error) {
	if action.GetSubresource() != "binding" {
		return false, nil, nil
	}
	binding := action.(clienttesting.CreateAction).GetObject().(*v1.Binding)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nodeOf[binding.Name] = binding.Target.Name
	return true, binding, nil
}

func (b *bindingLog) node(pod string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nodeOf[pod]
}

func (b *bindingLog) forget(pod string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.nodeOf, pod)
}
