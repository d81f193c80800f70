package consolidation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// node is a node of 48 CPUs and 192 units of memory.
func node(name string) Node {
	return Node{Name: name, Allocatable: Resources{v1.ResourceCPU: 48, v1.ResourceMemory: 192}}
}

func cordoned(name string) Node {
	n := node(name)
	n.Unschedulable = true
	return n
}

// vm is a live-migratable VM of 8 CPUs and the given memory on a node.
func vm(name, on string, memory int64) VM {
	return VM{Name: name, Node: on, Requests: Resources{v1.ResourceCPU: 8, v1.ResourceMemory: memory}, Migratable: true}
}

func controlPlaneVM(name, on, tenant string) VM {
	v := vm(name, on, 32)
	v.ControlPlaneOf = tenant
	return v
}

func notMigratable(v VM) VM {
	v.Migratable = false
	return v
}

func inBudget(v VM, budgets ...string) VM {
	v.DisruptionBudgets = budgets
	return v
}

// allowedOn restricts the VM to the named nodes: none, without names.
func allowedOn(v VM, nodes ...string) VM {
	v.AllowedNodes = OnlyNodes(nodes...)
	return v
}

func TestPlanMigrations(t *testing.T) {
	tests := []struct {
		name  string
		state State
		opts  Options
		want  Plan
	}{
		{
			name: "the emptiest node moves onto the fuller one",
			state: State{
				Nodes: []Node{node("a"), node("b")},
				VMs:   []VM{vm("a1", "a", 32), vm("a2", "a", 32), vm("a3", "a", 32), vm("b1", "b", 32)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "b1", From: "b", To: "a"}}, Emptied: []string{"b"}},
		},
		{
			name: "a VM goes where it fits best: the node its memory fills",
			state: State{
				Nodes: []Node{node("a"), node("b"), node("c")},
				// a has 40 CPU and 32 memory left, b 32 CPU and 96 memory: the 64-memory VM
				// fits both; b is the better fit (it leaves 24 CPU, 32 memory; a cannot take it).
				VMs: []VM{vm("a1", "a", 80), vm("a2", "a", 80), vm("b1", "b", 32), vm("b2", "b", 64), vm("c1", "c", 64)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "c1", From: "c", To: "b"}}, Emptied: []string{"c"}},
		},
		{
			name: "no partial moves: a node whose VMs do not all fit elsewhere stays",
			state: State{
				Nodes: []Node{node("a"), node("b")},
				// b's two VMs need 128 memory; a has 192-100 = 92 left.
				VMs: []VM{vm("a1", "a", 100), vm("a2", "a", 0), vm("a3", "a", 0), vm("b1", "b", 64), vm("b2", "b", 64)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{},
		},
		{
			name: "a node kept out of consolidation is not emptied, and still receives",
			state: State{
				Nodes: []Node{node("a"), func() Node { n := node("b"); n.Keep = true; return n }(), node("c")},
				VMs:   []VM{vm("a1", "a", 64), vm("a2", "a", 64), vm("a3", "a", 32), vm("b1", "b", 32), vm("c1", "c", 32), vm("c2", "c", 32)},
			},
			opts: Options{MaxInFlight: 5},
			// b, the emptiest, is kept; c is emptied, one VM onto a (32 memory left) and one onto b.
			want: Plan{Migrations: []Migration{{VM: "c1", From: "c", To: "a"}, {VM: "c2", From: "c", To: "b"}}, Emptied: []string{"c"}},
		},
		{
			name: "a VM that cannot live-migrate pins its node",
			state: State{
				Nodes: []Node{node("a"), node("b")},
				VMs:   []VM{vm("a1", "a", 32), vm("a2", "a", 32), notMigratable(vm("b1", "b", 32))},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "a1", From: "a", To: "b"}, {VM: "a2", From: "a", To: "b"}}, Emptied: []string{"a"}},
		},
		{
			name: "two control-plane VMs of one tenant never share a node",
			state: State{
				Nodes: []Node{node("a"), node("b"), node("c")},
				// a would fit b1 best, but runs the other control-plane VM of prod/x.
				VMs: []VM{controlPlaneVM("a1", "a", "prod/x"), vm("a2", "a", 32), vm("a3", "a", 80), controlPlaneVM("b1", "b", "prod/x"), vm("c1", "c", 60), vm("c2", "c", 40)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "b1", From: "b", To: "c"}}, Emptied: []string{"b"}},
		},
		{
			name: "control-plane VMs of one tenant moved by one plan go to different nodes",
			state: State{
				Nodes: []Node{node("a"), node("b"), node("c"), node("d")},
				// b1 goes to a, the best fit; then c1 may not follow it there.
				VMs: []VM{
					vm("a1", "a", 32), vm("a2", "a", 32), vm("a3", "a", 32),
					controlPlaneVM("b1", "b", "prod/x"), controlPlaneVM("c1", "c", "prod/x"), vm("d1", "d", 32), vm("d2", "d", 32),
				},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "b1", From: "b", To: "a"}, {VM: "c1", From: "c", To: "d"}}, Emptied: []string{"b", "c"}},
		},
		{
			// Without the budget, b1 would move to a (a's VMs cannot move).
			name: "a PodDisruptionBudget that allows no disruption pins its VMs",
			state: State{
				Nodes:              []Node{node("a"), node("b")},
				VMs:                []VM{notMigratable(vm("a1", "a", 32)), notMigratable(vm("a2", "a", 32)), inBudget(vm("b1", "b", 32), "tenant-pdb")},
				DisruptionsAllowed: map[string]int{"tenant-pdb": 0},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{},
		},
		{
			name: "a budget is shared by the whole plan: one disruption empties one node of two",
			state: State{
				Nodes: []Node{node("a"), node("b"), node("c")},
				VMs: []VM{
					vm("a1", "a", 32), vm("a2", "a", 32), vm("a3", "a", 32),
					inBudget(vm("b1", "b", 32), "tenant-pdb"), inBudget(vm("c1", "c", 32), "tenant-pdb"),
				},
				DisruptionsAllowed: map[string]int{"tenant-pdb": 1},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "b1", From: "b", To: "a"}}, Emptied: []string{"b"}},
		},
		{
			name: "a budget the state does not know allows nothing",
			state: State{
				Nodes: []Node{node("a"), node("b")},
				VMs:   []VM{notMigratable(vm("a1", "a", 32)), notMigratable(vm("a2", "a", 32)), inBudget(vm("b1", "b", 32), "unknown")},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{},
		},
		{
			name: "at most MaxInFlight migrations, counting those running: a node of two VMs waits",
			state: State{
				Nodes:     []Node{node("a"), node("b"), node("c")},
				VMs:       []VM{vm("a1", "a", 32), vm("a2", "a", 32), vm("a3", "a", 32), vm("b1", "b", 16), vm("b2", "b", 16), vm("c1", "c", 32)},
				Migrating: 2,
			},
			opts: Options{MaxInFlight: 3},
			want: Plan{Migrations: []Migration{{VM: "c1", From: "c", To: "a"}}, Emptied: []string{"c"}},
		},
		{
			// a, the fullest, would be b1's best fit; c takes it, and then a's VMs too.
			name: "cordoned nodes receive no VM, but are emptied",
			state: State{
				Nodes: []Node{cordoned("a"), node("b"), node("c")},
				VMs:   []VM{vm("a1", "a", 32), vm("a2", "a", 32), vm("a3", "a", 32), vm("b1", "b", 32), vm("c1", "c", 32), vm("c2", "c", 32)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{
				Migrations: []Migration{{VM: "b1", From: "b", To: "c"}, {VM: "a1", From: "a", To: "c"}, {VM: "a2", From: "a", To: "c"}, {VM: "a3", From: "a", To: "c"}},
				Emptied:    []string{"b", "a"},
			},
		},
		{
			name: "a node that received VMs is not emptied by the same plan",
			state: State{
				// a and b have one VM each: b's moves to a, then a is a receiver and stays.
				Nodes: []Node{node("a"), node("b")},
				VMs:   []VM{vm("a1", "a", 40), vm("b1", "b", 32)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "b1", From: "b", To: "a"}}, Emptied: []string{"b"}},
		},
		{
			// Without a's other pods, b1 would move to a (a's VMs cannot move).
			name: "the other pods of a node take room too",
			state: State{
				Nodes: []Node{{Name: "a", Allocatable: Resources{v1.ResourceCPU: 48, v1.ResourceMemory: 192}, Requested: Resources{v1.ResourceMemory: 150}}, node("b")},
				VMs:   []VM{notMigratable(vm("a1", "a", 10)), notMigratable(vm("a2", "a", 10)), vm("b1", "b", 32)},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{},
		},
		{
			// A migration in flight moves a VM from b to a. a, the emptiest, would otherwise be
			// emptied first, and b, the fullest, would take c's VMs.
			name: "migrations in flight: their target is not emptied, their source receives nothing",
			state: State{
				Nodes: []Node{func() Node { n := node("a"); n.Receiving = true; return n }(), func() Node { n := node("b"); n.Draining = true; return n }(), node("c")},
				VMs: []VM{
					vm("a1", "a", 32), notMigratable(vm("b1", "b", 32)), notMigratable(vm("b2", "b", 32)), notMigratable(vm("b3", "b", 32)),
					vm("c1", "c", 32), vm("c2", "c", 32),
				},
				Migrating: 1,
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "c1", From: "c", To: "a"}, {VM: "c2", From: "c", To: "a"}}, Emptied: []string{"c"}},
		},
		{
			// a, the fullest, would fit c1 best; c1's placement allows b and c only (the nodes
			// of a dedicated pool, say). a's VMs cannot move, so that a stays a target.
			name: "a VM goes only to a node its own placement allows",
			state: State{
				Nodes: []Node{node("a"), node("b"), node("c")},
				VMs: []VM{
					notMigratable(vm("a1", "a", 32)), notMigratable(vm("a2", "a", 32)), notMigratable(vm("a3", "a", 32)),
					allowedOn(vm("b1", "b", 32), "b", "c"), allowedOn(vm("b2", "b", 32), "b", "c"), allowedOn(vm("c1", "c", 32), "b", "c"),
				},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{Migrations: []Migration{{VM: "c1", From: "c", To: "b"}}, Emptied: []string{"c"}},
		},
		{
			// Without b2's placement, b1 and b2 would move to a.
			name: "all or nothing: a node one of whose VMs may run on no other node keeps all its VMs",
			state: State{
				Nodes: []Node{node("a"), node("b")},
				VMs: []VM{
					notMigratable(vm("a1", "a", 32)), notMigratable(vm("a2", "a", 32)), notMigratable(vm("a3", "a", 32)),
					vm("b1", "b", 32), allowedOn(vm("b2", "b", 32), "b"),
				},
			},
			opts: Options{MaxInFlight: 5},
			want: Plan{},
		},
		{
			name:  "nothing runs: nothing to do",
			state: State{Nodes: []Node{node("a")}},
			opts:  Options{MaxInFlight: 5},
			want:  Plan{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanMigrations(tt.state, tt.opts)
			if diff := cmp.Diff(tt.want, got, cmpEmpty); diff != "" {
				t.Errorf("PlanMigrations() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats a nil and an empty list alike.
var cmpEmpty = cmp.FilterValues(func(a, b []Migration) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestNodeSet(t *testing.T) {
	tests := []struct {
		name string
		set  NodeSet
		node string
		want bool
	}{
		{name: "the zero set restricts nothing", set: NodeSet{}, node: "a", want: true},
		{name: "OnlyNodes holds the nodes it names", set: OnlyNodes("a", "b"), node: "b", want: true},
		{name: "OnlyNodes holds no node it does not name", set: OnlyNodes("a"), node: "b", want: false},
		{name: "OnlyNodes without names holds no node", set: OnlyNodes(), node: "a", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Has(tt.node); got != tt.want {
				t.Errorf("Has(%q) = %v, want %v", tt.node, got, tt.want)
			}
		})
	}
}
