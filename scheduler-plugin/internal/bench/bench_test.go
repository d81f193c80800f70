package bench

import (
	"math/rand/v2"
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

func pod(cpu, memory string) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
		v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(memory),
	}}}}}}
}

func controlPlanePod(tenant string) *v1.Pod {
	return TenantVMPod(tenant+"-cp", "", VM{Type: InstanceType{VCPUs: 1, GuestMemory: resource.MustParse("1Gi")}, Tenant: tenant, ControlPlane: true})
}

func allocatable(cpu, memory string) v1.ResourceList {
	return v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(memory), v1.ResourcePods: resource.MustParse("110")}
}

func repeat(n int, p *v1.Pod) []*v1.Pod {
	out := make([]*v1.Pod, n)
	for i := range out {
		out[i] = p
	}
	return out
}

func TestLowerBound(t *testing.T) {
	node := allocatable("4", "16Gi")
	tests := []struct {
		name  string
		pods  []*v1.Pod
		nodes []*v1.Node
		want  int
	}{
		{name: "no pods", nodes: Nodes(3, node), want: 0},
		{name: "CPU binds: 6 CPUs need two 4-CPU nodes", pods: []*v1.Pod{pod("3", "1Gi"), pod("3", "1Gi")}, nodes: Nodes(3, node), want: 2},
		{name: "memory binds: 33Gi needs three 16Gi nodes", pods: []*v1.Pod{pod("1", "8Gi"), pod("1", "8Gi"), pod("1", "8Gi"), pod("1", "9Gi")}, nodes: Nodes(4, node), want: 3},
		{name: "an exact fill needs no extra node", pods: []*v1.Pod{pod("2", "8Gi"), pod("2", "8Gi")}, nodes: Nodes(3, node), want: 1},
		{
			name: "large items bind: five 9Gi pods make 45Gi, three nodes' worth, but each node holds one",
			pods: repeat(5, pod("100m", "9Gi")), nodes: Nodes(5, node), want: 5,
		},
		{
			name:  "different sizes: the biggest nodes count first",
			pods:  []*v1.Pod{pod("6", "1Gi"), pod("6", "1Gi")},
			nodes: append(Nodes(2, node), Node("big", allocatable("12", "64Gi"))),
			want:  1,
		},
		{name: "too little room anywhere: one more node than there are", pods: []*v1.Pod{pod("5", "1Gi")}, nodes: Nodes(2, node), want: 3},
		{
			// 3 small (3400Mi) and 3 large (6800Mi) VMs, 30600Mi, on nodes of 10000Mi: volume
			// says 4 nodes, and large items 3 (two small or one large per node). But no node
			// holds more than 6800Mi of these sizes, so 30600/6800 = 4.5: five nodes.
			name:  "best fill: no mix of the sizes fills more than 6800Mi of a 10000Mi node",
			pods:  append(repeat(3, pod("1", "3400Mi")), repeat(3, pod("1", "6800Mi"))...),
			nodes: Nodes(6, allocatable("100", "10000Mi")), want: 5,
		},
		{
			// By CPU volume 7 VMs of 3 CPUs are 21 CPUs, 3 nodes of 8; but at most two fit a
			// node, 6 of its 8 CPUs: 4 nodes.
			name: "best fill counts what the sizes leave: 3 CPU VMs fill 6 of 8 CPUs",
			pods: repeat(7, pod("3", "1Gi")), nodes: Nodes(5, allocatable("8", "32Gi")), want: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LowerBound(tt.pods, tt.nodes); got != tt.want {
				t.Errorf("LowerBound = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestOfflineFFD(t *testing.T) {
	node := allocatable("4", "16Gi")
	tests := []struct {
		name  string
		pods  []*v1.Pod
		nodes []*v1.Node
		want  int
	}{
		{name: "no pods", nodes: Nodes(2, node), want: 0},
		{
			name: "largest first pairs a 3 with a 1 where arrival order would not",
			pods: []*v1.Pod{pod("1", "1Gi"), pod("1", "1Gi"), pod("2", "1Gi"), pod("3", "1Gi"), pod("3", "1Gi"), pod("2", "1Gi")},
			// 3+1, 3+1, 2+2: three nodes, the volume bound.
			nodes: Nodes(4, node), want: 3,
		},
		{
			name:  "control-plane VMs of one tenant take a node each",
			pods:  []*v1.Pod{controlPlanePod("a"), controlPlanePod("a"), controlPlanePod("b")},
			nodes: Nodes(3, node), want: 2,
		},
		{
			name:  "the biggest node is opened first",
			pods:  []*v1.Pod{pod("3", "1Gi"), pod("3", "1Gi")},
			nodes: append(Nodes(2, node), Node("big", allocatable("8", "32Gi"))), want: 1,
		},
		{name: "a pod that fits nowhere: one more node than there are", pods: []*v1.Pod{pod("5", "1Gi")}, nodes: Nodes(2, node), want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OfflineFFD(tt.pods, tt.nodes); got != tt.want {
				t.Errorf("OfflineFFD = %d, want %d", got, tt.want)
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
	nodeAllocatable := allocatable("16", "64Gi")

	for _, w := range []Workload{Mix(60, 1), Churn(50, 2, 20, 0.3, 1)} {
		t.Run(w.Name, func(t *testing.T) {
			packed, err := Run(ctx, nest.Profiles[0], registry, Nodes(30, nodeAllocatable), w)
			if err != nil {
				t.Fatal(err)
			}
			spread, err := Run(ctx, stock.Profiles[0], registry, Nodes(30, nodeAllocatable), w)
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

func TestTenant(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		vms := Tenant("t", SkewedWorkers, r)
		if len(vms) < 5 || len(vms) > 9 {
			t.Fatalf("a tenant of %d VMs, want 3 control-plane VMs and 2 to 6 workers", len(vms))
		}
		for i, vm := range vms {
			if cp := i < 3; vm.ControlPlane != cp || vm.Tenant != "t" {
				t.Errorf("VM %d: control plane %v of tenant %q, want %v of \"t\"", i, vm.ControlPlane, vm.Tenant, cp)
			}
			if i > 3 && vm.Type != vms[3].Type {
				t.Errorf("workers of one tenant of types %s and %s: want one MachineDeployment type", vms[3].Type.Name, vm.Type.Name)
			}
		}
	}
}

// TestRunTenantChurn drives tenant creation and deletion through the real scheduler with the
// shipped profile: every VM is placed and no node runs two control-plane VMs of one tenant.
func TestRunTenantChurn(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nest, err := schedconfig.LoadConfigMap("../../../config/scheduler/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	registry := frameworkruntime.Registry{nestpacking.Name: nestpacking.New}
	nodes := Nodes(30, allocatable("48", "192Gi"))
	res, err := Run(ctx, nest.Profiles[0], registry, nodes, TenantChurn(6, 2, 3, 1, nodes))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pending != 0 {
		t.Fatalf("%d VMs left pending", res.Pending)
	}
	tenants := map[string]bool{}
	controlPlanes := map[string]bool{}
	for _, p := range res.Placed {
		tenants[p.Labels[clusterNameLabel]] = true
		if p.Labels[roleLabel] != controlPlaneRole {
			continue
		}
		key := p.Labels[clusterNameLabel] + "@" + p.Spec.NodeName
		if controlPlanes[key] {
			t.Errorf("two control-plane VMs of %s on %s", p.Labels[clusterNameLabel], p.Spec.NodeName)
		}
		controlPlanes[key] = true
	}
	// 6 tenants; each wave deletes a quarter of them (rounded down: 1, then 2) and creates 3.
	if len(tenants) != 9 {
		t.Errorf("%d tenants alive at the end, want 9", len(tenants))
	}
	if res.NodesUsed < res.LowerBound || res.OfflineFFD < res.LowerBound {
		t.Errorf("nodes used %d, offline FFD %d: neither may be under the lower bound %d", res.NodesUsed, res.OfflineFFD, res.LowerBound)
	}
}

func on(node string, p *v1.Pod) *v1.Pod {
	p = p.DeepCopy()
	p.Spec.NodeName = node
	return p
}

func TestConsolidate(t *testing.T) {
	small := InstanceType{Name: "small", VCPUs: 1, GuestMemory: resource.MustParse("2Gi")}
	worker := func(name string) *v1.Pod { return TenantVMPod(name, "", VM{Type: small, Tenant: "a"}) }
	cp := func(name, tenant string) *v1.Pod {
		return TenantVMPod(name, "", VM{Type: small, Tenant: tenant, ControlPlane: true})
	}
	nodes := Nodes(3, allocatable("4", "16Gi"))
	tests := []struct {
		name     string
		placed   []*v1.Pod
		inFlight int
		want     Consolidation
	}{
		{
			name:     "the node with one VM is emptied onto the node with three",
			placed:   []*v1.Pod{on("node-000", worker("w1")), on("node-000", worker("w2")), on("node-000", worker("w3")), on("node-001", worker("w4"))},
			inFlight: 2,
			want:     Consolidation{NodesUsed: 1, Migrations: 1, Rounds: 1},
		},
		{
			name:     "control-plane VMs of one tenant stay on two nodes",
			placed:   []*v1.Pod{on("node-000", cp("c1", "a")), on("node-001", cp("c2", "a"))},
			inFlight: 2,
			want:     Consolidation{NodesUsed: 2},
		},
		{
			name: "more migrations than the limit in flight take several rounds",
			// One at a time: node-000's VM joins node-002 in the first round, node-001's in the second.
			placed: []*v1.Pod{
				on("node-000", worker("w1")), on("node-001", worker("w2")), on("node-002", worker("w3")), on("node-002", worker("w4")),
			},
			inFlight: 1,
			want:     Consolidation{NodesUsed: 1, Migrations: 2, Rounds: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Consolidate(tt.placed, nodes, tt.inFlight); got != tt.want {
				t.Errorf("Consolidate() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestBestFillMatchesExhaustiveSearch checks the pruned knapsack behind LowerBound against trying
// every combination, on seeded random instances: a best fill too small would make the bound
// claim more nodes than a packing needs.
func TestBestFillMatchesExhaustiveSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		shs := make([]shape, 1+r.IntN(4))
		weight := make([]float64, len(shs))
		for j := range shs {
			shs[j] = shape{request: []int64{1 + r.Int64N(8), 1 + r.Int64N(8), 1}, count: 1 + r.IntN(4)}
			weight[j] = float64(r.IntN(10))
		}
		allocatable := []int64{4 + r.Int64N(12), 4 + r.Int64N(12), 110}
		var exhaustive func(j int, free []int64) float64
		exhaustive = func(j int, free []int64) float64 {
			if j == len(shs) {
				return 0
			}
			best := 0.0
			for n := 0; n <= shs[j].count; n++ {
				left := make([]int64, len(free))
				fits := true
				for k := range free {
					left[k] = free[k] - int64(n)*shs[j].request[k]
					fits = fits && left[k] >= 0
				}
				if !fits {
					break
				}
				best = max(best, float64(n)*weight[j]+exhaustive(j+1, left))
			}
			return best
		}
		if got, want := bestFill(shs, weight, allocatable), exhaustive(0, allocatable); got != want {
			t.Fatalf("instance %d: bestFill = %v, exhaustive search %v (shapes %+v, weights %v, allocatable %v)", i, got, want, shs, weight, allocatable)
		}
	}
}

// TestDeschedule plays the descheduler over a placement made by hand: the VM of the emptiest
// underutilized node moves to the node with room; the other underutilized node's VM finds no
// destination with room and stays.
func TestDeschedule(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	nest, err := schedconfig.LoadConfigMap("../../../config/scheduler/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prof := nest.Profiles[0]
	nodes := Nodes(3, allocatable("8", "64Gi"))
	sched, bindings, stop, err := newScheduler(ctx, prof, frameworkruntime.Registry{nestpacking.Name: nestpacking.New}, nodes)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	vm := func(name string, vcpus int64, node string) *v1.Pod {
		p := TenantVMPod(name, prof.SchedulerName, VM{Type: InstanceType{Name: name, VCPUs: vcpus, GuestMemory: resource.MustParse("1Gi")}, Tenant: "t"})
		p.Spec.NodeName = node
		if err := sched.Cache.AddPod(logger, p); err != nil {
			t.Fatal(err)
		}
		bindings.nodeOf[p.Name] = node
		return p
	}
	alive := []*v1.Pod{
		vm("w1", 4, "node-000"), vm("w2", 2, "node-000"), // 75% of the CPUs: the destination
		vm("w3", 1, "node-001"), // 12.5%: emptiest, moves
		vm("w4", 2, "node-002"), // 25%: no destination has 2 CPUs left once w3 has moved
	}
	got, err := deschedule(ctx, sched, bindings, alive, nodes, 0.5, prof.SchedulerName)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Consolidation{NodesUsed: 2, Migrations: 1, Rounds: 1}); got != want {
		t.Errorf("deschedule = %+v, want %+v", got, want)
	}
	if node := bindings.node("virt-launcher-w3-m0"); node != "node-000" {
		t.Errorf("w3 migrated to %q, want node-000", node)
	}
}
