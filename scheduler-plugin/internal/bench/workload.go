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

// VMPod renders the virt-launcher pod of a VM of the given type, reduced to what scheduling
// reads: the labels KubeVirt sets and the compute container's requests. CPU is requested one
// core per vCPU (cpuAllocationRatio 1, or dedicated CPUs); memory is guest memory plus overhead.
func VMPod(name, schedulerName string, it InstanceType) *v1.Pod {
	memory := it.GuestMemory.Value() + MemoryOverhead(it)
	return &v1.Pod{
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
}

// Step is one phase of a workload: delete a fraction of the VMs alive (picked by the workload's
// seeded generator), then create VMs of the listed types.
type Step struct {
	Create         []InstanceType
	DeleteFraction float64
}

// Workload is a named sequence of steps.
type Workload struct {
	Name  string
	Steps []Step
	// Seed drives which VMs a delete step picks, so every profile sees the same workload.
	Seed uint64
}

// Uniform is n identical u1.large VMs.
func Uniform(n int) Workload {
	vms := make([]InstanceType, n)
	for i := range vms {
		vms[i] = InstanceTypes[1]
	}
	return Workload{Name: "uniform", Steps: []Step{{Create: vms}}}
}

// Mix is n VMs drawn uniformly from InstanceTypes, in a seeded random order.
func Mix(n int, seed uint64) Workload {
	return Workload{Name: "mix", Steps: []Step{{Create: draw(n, rand.New(rand.NewPCG(seed, 1)))}}, Seed: seed}
}

// Churn creates a wave of mixed VMs, then waves times deletes a fraction of the VMs alive and
// creates new ones: the holes that deletions leave are what a packing scheduler must refill.
func Churn(initial, waves, perWave int, deleteFraction float64, seed uint64) Workload {
	r := rand.New(rand.NewPCG(seed, 2))
	steps := []Step{{Create: draw(initial, r)}}
	for range waves {
		steps = append(steps, Step{DeleteFraction: deleteFraction}, Step{Create: draw(perWave, r)})
	}
	return Workload{Name: "churn", Steps: steps, Seed: seed}
}

func draw(n int, r *rand.Rand) []InstanceType {
	out := make([]InstanceType, n)
	for i := range out {
		out[i] = InstanceTypes[r.IntN(len(InstanceTypes))]
	}
	return out
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

// LowerBound is the fewest nodes of the given allocatable that can hold pods: the maximum over
// resources of the total request divided by one node's allocatable, rounded up.
func LowerBound(pods []*v1.Pod, allocatable v1.ResourceList) int {
	bound := 0
	for name, capacity := range allocatable {
		if name == v1.ResourcePods || capacity.IsZero() {
			continue
		}
		var total resource.Quantity
		for _, p := range pods {
			for _, c := range p.Spec.Containers {
				if q, ok := c.Resources.Requests[name]; ok {
					total.Add(q)
				}
			}
		}
		need := (total.MilliValue() + capacity.MilliValue() - 1) / capacity.MilliValue()
		bound = max(bound, int(need))
	}
	return bound
}
