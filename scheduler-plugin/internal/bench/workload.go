// Package bench measures how scheduler profiles pack KubeVirt VMs: it drives the real
// kube-scheduler (queue, cache, framework, binding cycle) over fake nodes and reports the nodes
// used against the lower bound, and the scheduling throughput.
package bench

import (
	"fmt"
	"math/rand/v2"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// InstanceType is one size of KubeVirt's common instance types.
type InstanceType struct {
	Name  string
	VCPUs int64
	// GuestMemory is the memory the guest sees, without KubeVirt's overhead.
	GuestMemory resource.Quantity
	// DedicatedCPU is set for the cx1 series (dedicatedCPUPlacement), which costs more overhead.
	DedicatedCPU bool
}

// InstanceTypes are the u1 (general purpose), cx1 (compute) and m1 (memory) sizes the mix
// workload draws from.
var InstanceTypes = []InstanceType{
	{Name: "u1.medium", VCPUs: 1, GuestMemory: resource.MustParse("4Gi")},
	{Name: "u1.large", VCPUs: 2, GuestMemory: resource.MustParse("8Gi")},
	{Name: "u1.xlarge", VCPUs: 4, GuestMemory: resource.MustParse("16Gi")},
	{Name: "cx1.large", VCPUs: 2, GuestMemory: resource.MustParse("4Gi"), DedicatedCPU: true},
	{Name: "cx1.xlarge", VCPUs: 4, GuestMemory: resource.MustParse("8Gi"), DedicatedCPU: true},
	{Name: "m1.large", VCPUs: 2, GuestMemory: resource.MustParse("16Gi")},
	{Name: "m1.xlarge", VCPUs: 4, GuestMemory: resource.MustParse("32Gi")},
}

const mi = 1 << 20

// MemoryOverhead is what virt-controller adds to the compute container's memory request, after
// KubeVirt's GetMemoryOverhead (pkg/virt-controller/services/renderresources.go) on x86_64 with
// no VFIO, SEV, TPM or probes and the default additional-overhead ratio: page tables (guest
// memory / 512), the fixed processes (virt-launcher-monitor 25Mi, virt-launcher 100Mi, virtlogd
// 25Mi, virtqemud 40Mi, qemu 30Mi), 8Mi per vCPU, 8Mi for the IO thread, 16Mi of video RAM for
// the default graphics device, and 100Mi more for dedicated CPUs.
func MemoryOverhead(it InstanceType) int64 {
	overhead := it.GuestMemory.Value()/512 + (25+100+25+40+30)*mi + it.VCPUs*8*mi + 8*mi + 16*mi
	if it.DedicatedCPU {
		overhead += 100 * mi
	}
	return overhead
}

// OpenShift instance types: the sizes of nested OpenShift tenants, large next to an Infra node
// of 48 CPUs / 192Gi (one holds 2 to 6 of them). ControlPlane is what OpenShift asks for its
// control-plane machines; workers are general purpose (u1), CPU-heavy with dedicated CPUs (cx1)
// or memory-heavy (m1), as in KubeVirt's common instance types.
var (
	ControlPlane = InstanceType{Name: "u1.2xlarge", VCPUs: 8, GuestMemory: resource.MustParse("32Gi")}
	U12XLarge    = InstanceType{Name: "u1.2xlarge", VCPUs: 8, GuestMemory: resource.MustParse("32Gi")}
	U14XLarge    = InstanceType{Name: "u1.4xlarge", VCPUs: 16, GuestMemory: resource.MustParse("64Gi")}
	CX12XLarge   = InstanceType{Name: "cx1.2xlarge", VCPUs: 8, GuestMemory: resource.MustParse("16Gi"), DedicatedCPU: true}
	CX14XLarge   = InstanceType{Name: "cx1.4xlarge", VCPUs: 16, GuestMemory: resource.MustParse("32Gi"), DedicatedCPU: true}
	M12XLarge    = InstanceType{Name: "m1.2xlarge", VCPUs: 8, GuestMemory: resource.MustParse("64Gi")}
)

// VM is one VM of a workload: its instance type and, for a tenant's VM, the tenant cluster and
// whether it is one of its control-plane machines.
type VM struct {
	Type         InstanceType
	Tenant       string
	ControlPlane bool
}

// Label keys the provider stamps on tenant VMs (and so on their virt-launcher pods).
const (
	clusterNameLabel = "cluster.x-k8s.io/cluster-name"
	roleLabel        = "cluster.x-k8s.io/role"
	controlPlaneRole = "control-plane"
)

// VMPod renders the virt-launcher pod of a VM of the given type, reduced to what scheduling
// reads: the labels KubeVirt sets and the compute container's requests. CPU is requested one
// core per vCPU (cpuAllocationRatio 1, or dedicated CPUs); memory is guest memory plus overhead.
func VMPod(name, schedulerName string, it InstanceType) *v1.Pod {
	return TenantVMPod(name, schedulerName, VM{Type: it})
}

// TenantVMPod is VMPod for a tenant's VM: it carries the tenant's labels, and a control-plane VM
// carries the required anti-affinity to its tenant's other control-plane VMs that the provider
// renders (internal/kubevirt ControlPlaneAntiAffinityTerm), so that every profile keeps them on
// different nodes.
func TenantVMPod(name, schedulerName string, vm VM) *v1.Pod {
	it := vm.Type
	memory := it.GuestMemory.Value() + MemoryOverhead(it)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "virt-launcher-" + name,
			Namespace: "vms",
			UID:       types.UID("uid-" + name),
			Labels: map[string]string{
				"kubevirt.io":         "virt-launcher",
				"vm.kubevirt.io/name": name,
			},
			Annotations: map[string]string{"kubevirt.io/instancetype": it.Name},
		},
		Spec: v1.PodSpec{
			SchedulerName: schedulerName,
			Containers: []v1.Container{{
				Name: "compute",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU:    *resource.NewQuantity(it.VCPUs, resource.DecimalSI),
					v1.ResourceMemory: *resource.NewQuantity(memory, resource.BinarySI),
				}},
			}},
		},
	}
	if vm.Tenant == "" {
		return pod
	}
	pod.Labels[clusterNameLabel] = vm.Tenant
	if !vm.ControlPlane {
		pod.Labels[roleLabel] = "worker"
		return pod
	}
	pod.Labels[roleLabel] = controlPlaneRole
	pod.Spec.Affinity = ControlPlaneAntiAffinity(vm.Tenant)
	return pod
}

// ControlPlaneAntiAffinity is the affinity the provider renders on a control-plane VM of cluster
// (internal/kubevirt ControlPlaneAntiAffinityTerm): no two of the cluster's control-plane VMs on
// one node. It is the only thing that keeps them apart; NestPacking does not filter.
func ControlPlaneAntiAffinity(cluster string) *v1.Affinity {
	return &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{clusterNameLabel: cluster, roleLabel: controlPlaneRole},
				// The OpenShift installer's bootstrap VM is exempt.
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "install.openshift.io/bootstrap", Operator: metav1.LabelSelectorOpDoesNotExist}},
			},
			TopologyKey: v1.LabelHostname,
		}},
	}}
}

// Step is one phase of a workload: delete a fraction of the VMs alive and a fraction of the
// tenants alive with all their VMs (both picked by the workload's seeded generator), then create
// VMs burst after burst. A burst is what waits in the scheduling queue together: the scheduler
// places all of it before the next burst arrives.
type Step struct {
	Bursts               [][]VM
	DeleteFraction       float64
	DeleteTenantFraction float64
}

// Workload is a named sequence of steps on a set of nodes.
type Workload struct {
	Name  string
	Steps []Step
	// Nodes is the Infra cluster the workload runs on; nil lets the caller choose.
	Nodes []*v1.Node
	// Seed drives which VMs a delete step picks, so every profile sees the same workload.
	Seed uint64
	// DeschedulerThreshold, when above zero for a workload that deletes VMs, also runs the
	// descheduler's HighNodeUtilization over the final placement with this threshold (a fraction
	// of allocatable CPU and memory); see Result.Descheduled.
	DeschedulerThreshold float64
}

// VMs is every VM the workload creates, in order.
func (w Workload) VMs() []VM {
	var out []VM
	for _, s := range w.Steps {
		for _, b := range s.Bursts {
			out = append(out, b...)
		}
	}
	return out
}

// Deletes tells whether the workload deletes VMs.
func (w Workload) Deletes() bool {
	for _, s := range w.Steps {
		if s.DeleteFraction > 0 || s.DeleteTenantFraction > 0 {
			return true
		}
	}
	return false
}

// Uniform is n identical u1.large VMs, created at once.
func Uniform(n int) Workload {
	vms := make([]VM, n)
	for i := range vms {
		vms[i] = VM{Type: InstanceTypes[1]}
	}
	return Workload{Name: "uniform", Steps: []Step{{Bursts: [][]VM{vms}}}}
}

// Mix is n VMs drawn uniformly from InstanceTypes, in a seeded random order, created at once.
func Mix(n int, seed uint64) Workload {
	return Workload{Name: "mix", Steps: []Step{{Bursts: [][]VM{draw(n, InstanceTypes, rand.New(rand.NewPCG(seed, 1)))}}}, Seed: seed}
}

// Churn creates a wave of mixed VMs, then waves times deletes a fraction of the VMs alive and
// creates new ones: the holes that deletions leave are what a packing scheduler must refill.
func Churn(initial, waves, perWave int, deleteFraction float64, seed uint64) Workload {
	r := rand.New(rand.NewPCG(seed, 2))
	steps := []Step{{Bursts: [][]VM{draw(initial, InstanceTypes, r)}}}
	for range waves {
		steps = append(steps, Step{DeleteFraction: deleteFraction}, Step{Bursts: [][]VM{draw(perWave, InstanceTypes, r)}})
	}
	return Workload{Name: "churn", Steps: steps, Seed: seed}
}

func draw(n int, from []InstanceType, r *rand.Rand) []VM {
	out := make([]VM, n)
	for i := range out {
		out[i] = VM{Type: from[r.IntN(len(from))]}
	}
	return out
}

// Worker pools the nested OpenShift workloads draw from: general purpose only, or skewed, where a
// tenant's workers may be CPU-heavy or memory-heavy.
var (
	GeneralWorkers = []InstanceType{U12XLarge, U14XLarge}
	SkewedWorkers  = []InstanceType{U12XLarge, U14XLarge, CX12XLarge, CX14XLarge, M12XLarge}
)

// Tenant is one nested OpenShift cluster as it arrives: three control-plane VMs and 2 to 6
// workers of one instance type drawn from workers (a MachineDeployment has one machine template).
func Tenant(name string, workers []InstanceType, r *rand.Rand) []VM {
	vms := []VM{{Type: ControlPlane, Tenant: name, ControlPlane: true}, {Type: ControlPlane, Tenant: name, ControlPlane: true}, {Type: ControlPlane, Tenant: name, ControlPlane: true}}
	worker := workers[r.IntN(len(workers))]
	for range 2 + r.IntN(5) {
		vms = append(vms, VM{Type: worker, Tenant: name})
	}
	return vms
}

func tenants(prefix string, n int, workers []InstanceType, r *rand.Rand) [][]VM {
	out := make([][]VM, n)
	for i := range out {
		out[i] = Tenant(fmt.Sprintf("%s-%03d", prefix, i), workers, r)
	}
	return out
}

// Tenants is n nested OpenShift tenants with general-purpose workers, arriving one after the
// other: each tenant's VMs wait in the queue together.
func Tenants(n int, seed uint64, nodes []*v1.Node) Workload {
	r := rand.New(rand.NewPCG(seed, 4))
	return Workload{Name: "tenants", Steps: []Step{{Bursts: tenants("t", n, GeneralWorkers, r)}}, Nodes: nodes, Seed: seed}
}

// TenantsSkewed is Tenants with shape-skewed workers: CPU-heavy cx1 and memory-heavy m1 pools
// next to general-purpose ones.
func TenantsSkewed(n int, seed uint64, nodes []*v1.Node) Workload {
	r := rand.New(rand.NewPCG(seed, 5))
	return Workload{Name: "tenants-skewed", Steps: []Step{{Bursts: tenants("t", n, SkewedWorkers, r)}}, Nodes: nodes, Seed: seed}
}

// Bulk is TenantsSkewed with tenants created groupSize at a time (a fleet rolled out by GitOps,
// or re-created after an Infra cluster came back): a burst holds several tenants' VMs.
func Bulk(n, groupSize int, seed uint64, nodes []*v1.Node) Workload {
	w := TenantsSkewed(n, seed, nodes)
	var bursts [][]VM
	for i, t := range w.Steps[0].Bursts {
		if i%groupSize == 0 {
			bursts = append(bursts, nil)
		}
		bursts[len(bursts)-1] = append(bursts[len(bursts)-1], t...)
	}
	w.Name, w.Steps[0].Bursts = "bulk", bursts
	return w
}

// Fragment sends the small workers first and the large ones later, one VM at a time, so nothing
// can reorder them: small 8-vCPU VMs of every shape, then 16-vCPU ones.
func Fragment(small, large int, seed uint64, nodes []*v1.Node) Workload {
	r := rand.New(rand.NewPCG(seed, 6))
	var bursts [][]VM
	for _, vm := range append(draw(small, []InstanceType{U12XLarge, CX12XLarge, M12XLarge}, r), draw(large, []InstanceType{U14XLarge, CX14XLarge}, r)...) {
		bursts = append(bursts, []VM{vm})
	}
	return Workload{Name: "fragment", Steps: []Step{{Bursts: bursts}}, Nodes: nodes, Seed: seed}
}

// Hetero is TenantsSkewed on an Infra cluster of mixed node sizes.
func Hetero(n int, seed uint64, nodes []*v1.Node) Workload {
	w := TenantsSkewed(n, seed, nodes)
	w.Name = "hetero"
	return w
}

// TenantChurn starts initial skewed tenants, then waves times deletes a fraction of the tenants
// (all their VMs) and a fraction of the remaining VMs (workers scaled down, machines replaced),
// and creates perWave new tenants.
func TenantChurn(initial, waves, perWave int, seed uint64, nodes []*v1.Node) Workload {
	r := rand.New(rand.NewPCG(seed, 7))
	steps := []Step{{Bursts: tenants("t0", initial, SkewedWorkers, r)}}
	for i := range waves {
		steps = append(steps,
			Step{DeleteTenantFraction: 0.25, DeleteFraction: 0.1},
			Step{Bursts: tenants(fmt.Sprintf("t%d", i+1), perWave, SkewedWorkers, r)})
	}
	return Workload{Name: "tenant-churn", Steps: steps, Nodes: nodes, Seed: seed}
}

// Node is a fake Infra cluster node: Ready, with the given allocatable.
func Node(name string, allocatable v1.ResourceList) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: v1.NodeStatus{
			Capacity:    allocatable,
			Allocatable: allocatable,
			Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
}

// Nodes returns n fake nodes named node-000... with the given allocatable.
func Nodes(n int, allocatable v1.ResourceList) []*v1.Node {
	nodes := make([]*v1.Node, n)
	for i := range nodes {
		nodes[i] = Node(fmt.Sprintf("node-%03d", i), allocatable)
	}
	return nodes
}
