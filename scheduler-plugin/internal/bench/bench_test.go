package bench

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2/ktesting"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/internal/schedconfig"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

func TestMemoryOverhead(t *testing.T) {
	tests := []struct {
		it   InstanceType
		want string
	}{
		// 8Gi/512 page tables + 220Mi processes + 2 x 8Mi vCPUs + 8Mi IO thread + 16Mi video.
		{InstanceTypes[1], "276Mi"},
		// 4Gi/512 + 220Mi + 16Mi + 8Mi + 16Mi + 100Mi for dedicated CPUs.
		{InstanceTypes[3], "368Mi"},
	}
	for _, tt := range tests {
		t.Run(tt.it.Name, func(t *testing.T) {
			if got, want := MemoryOverhead(tt.it), resource.MustParse(tt.want); got != want.Value() {
				t.Errorf("MemoryOverhead = %dMi, want %s", got>>20, tt.want)
			}
		})
	}
}

func TestLowerBound(t *testing.T) {
	node := v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("16Gi"), v1.ResourcePods: resource.MustParse("110")}
	pod := func(cpu, memory string) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(memory),
		}}}}}}
	}
	tests := []struct {
		name string
		pods []*v1.Pod
		want int
	}{
		{name: "no pods", want: 0},
		{name: "CPU binds: 6 CPUs need two 4-CPU nodes", pods: []*v1.Pod{pod("3", "1Gi"), pod("3", "1Gi")}, want: 2},
		{name: "memory binds: 33Gi needs three 16Gi nodes", pods: []*v1.Pod{pod("1", "16Gi"), pod("1", "17Gi")}, want: 3},
		{name: "an exact fill needs no extra node", pods: []*v1.Pod{pod("2", "8Gi"), pod("2", "8Gi")}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LowerBound(tt.pods, node); got != tt.want {
				t.Errorf("LowerBound = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestRunComparesProfiles drives the real scheduler through Run on a small cluster: the shipped
// nest-scheduler profile packs onto about the lower bound while the stock profile spreads.
func TestRunComparesProfiles(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nest, err := schedconfig.LoadConfigMap("../../../config/scheduler/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stock, err := schedconfig.Decode([]byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"))
	if err != nil {
		t.Fatal(err)
	}
	registry := frameworkruntime.Registry{nestpacking.Name: nestpacking.New}
	allocatable := v1.ResourceList{v1.ResourceCPU: resource.MustParse("16"), v1.ResourceMemory: resource.MustParse("64Gi"), v1.ResourcePods: resource.MustParse("110")}

	for _, w := range []Workload{Mix(60, 1), Churn(50, 2, 20, 0.3, 1)} {
		t.Run(w.Name, func(t *testing.T) {
			packed, err := Run(ctx, nest.Profiles[0], registry, Nodes(30, allocatable), w)
			if err != nil {
				t.Fatal(err)
			}
			spread, err := Run(ctx, stock.Profiles[0], registry, Nodes(30, allocatable), w)
			if err != nil {
				t.Fatal(err)
			}
			if packed.Pending+spread.Pending != 0 {
				t.Fatalf("VMs left pending: %d with nest-scheduler, %d with the stock profile", packed.Pending, spread.Pending)
			}
			if packed.NodesUsed > packed.LowerBound+1 {
				t.Errorf("nest-scheduler used %d nodes for a lower bound of %d", packed.NodesUsed, packed.LowerBound)
			}
			if spread.NodesUsed <= packed.NodesUsed {
				t.Errorf("the stock profile used %d nodes, nest-scheduler %d: LeastAllocated should spread", spread.NodesUsed, packed.NodesUsed)
			}
			if packed.PodsPerSecond <= 0 {
				t.Errorf("PodsPerSecond = %v", packed.PodsPerSecond)
			}
		})
	}
}
