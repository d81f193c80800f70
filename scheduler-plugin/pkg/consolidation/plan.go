// Package consolidation plans the live migrations that empty nodes of an Infra cluster: churn
// leaves VMs scattered over partly used nodes that no scheduler can refill, and moving the VMs
// of the emptiest nodes onto fuller ones frees whole nodes to cordon or power off.
//
// PlanMigrations is the whole decision, a pure function over plain values. StateOf reduces the
// listed KubeVirt and Kubernetes objects to its input, MigrationFor renders its output, and
// Consolidator is the loop around them (cmd/nest-consolidator).
package consolidation

import (
	"cmp"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// Resources are amounts per resource in the units the scheduler counts them in: millicores of
// CPU, bytes of memory, units of everything else.
type Resources map[v1.ResourceName]int64

// Node is a node of the Infra cluster.
type Node struct {
	Name        string
	Allocatable Resources
	// Requested is what the node's pods other than VMs request (DaemonSets, agents): it stays.
	Requested Resources
	// Unschedulable nodes (cordoned, not Ready) receive no VM; their VMs may still move away. A
	// node's taints are no part of it: they keep off only the VMs that do not tolerate them (see
	// VM.AllowedNodes).
	Unschedulable bool
	// Receiving nodes are the targets of migrations in flight: they are not emptied.
	Receiving bool
	// Draining nodes are the sources of migrations in flight: they receive no VM.
	Draining bool
	// Keep is set on a node its operator keeps out of consolidation (OptOutAnnotation): it is
	// never emptied, and may still receive VMs.
	Keep bool
}

// VM is a running VM: its virt-launcher pod's node and requests, and what decides whether it
// may move.
type VM struct {
	// Name identifies the VM, as namespace/name of its VirtualMachineInstance.
	Name string
	Node string
	// Requests are its virt-launcher pod's requests, KubeVirt's memory overhead included.
	Requests Resources
	// Migratable is true when the VM's evictionStrategy is LiveMigrate (or LiveMigrateIfPossible)
	// and KubeVirt reports it LiveMigratable: consolidation never shuts a VM down.
	Migratable bool
	// ControlPlaneOf is the tenant cluster (namespace/name) whose control plane the VM is part of,
	// empty for any other VM. Two control-plane VMs of one tenant never share a node.
	ControlPlaneOf string
	// DisruptionBudgets names the PodDisruptionBudgets that select the VM's pod.
	DisruptionBudgets []string
	// AllowedNodes are the nodes the VM's own placement lets its virt-launcher pod run on: the
	// migration's target pod is scheduled with it, so a target outside it leaves the migration
	// pending until it fails. Its zero value restricts nothing.
	AllowedNodes NodeSet
	// RecentlyFailed are the nodes a consolidation migration of the VM failed to reach within the
	// back-off (see StateOf), left out of AllowedNodes; kept apart so that a round can say why.
	RecentlyFailed []string
}

// NodeSet is the set of nodes a VM may run on. Its zero value holds every node; OnlyNodes holds
// the nodes it names and no other, none at all without names. "No restriction" and "no node" are
// thus two values that an empty list of names cannot be mistaken for.
type NodeSet struct {
	restricted bool
	names      map[string]bool
}

// OnlyNodes is the set of the named nodes.
func OnlyNodes(names ...string) NodeSet {
	s := NodeSet{restricted: true, names: map[string]bool{}}
	for _, n := range names {
		s.names[n] = true
	}
	return s
}

// Has tells whether the set holds the node.
func (s NodeSet) Has(node string) bool {
	return !s.restricted || s.names[node]
}

// nodesRunningVMs are the nodes that run at least one of s's VMs.
func (s State) nodesRunningVMs() map[string]bool {
	out := map[string]bool{}
	for _, vm := range s.VMs {
		out[vm.Node] = true
	}
	return out
}

// State is the Infra cluster as the planner sees it.
type State struct {
	Nodes []Node
	VMs   []VM
	// DisruptionsAllowed is each PodDisruptionBudget's status.disruptionsAllowed; a budget a VM
	// names that is missing here allows nothing.
	DisruptionsAllowed map[string]int
	// Migrating counts the migrations still in flight, which count against MaxInFlight.
	Migrating int
}

// Options bound a plan.
type Options struct {
	// MaxInFlight is the most migrations running at once; a plan adds at most MaxInFlight minus
	// those in flight. A node is emptied by one plan or not at all, so a node with more VMs than
	// that waits.
	MaxInFlight int
}

// Migration moves one VM.
type Migration struct {
	VM, From, To string
}

// Plan is what PlanMigrations decides.
type Plan struct {
	Migrations []Migration
	// Emptied are the nodes that run no VM once the migrations are done.
	Emptied []string
}

// PlanMigrations picks nodes to empty and a target for each of their VMs. It only moves all the
// VMs of a node or none (a partial move costs migrations and frees nothing), and it keeps every
// rule a migration must respect:
//   - only Migratable VMs move;
//   - the VMs moved from the nodes of one plan disrupt no PodDisruptionBudget beyond its
//     disruptionsAllowed;
//   - a node kept out of consolidation (Keep) is not emptied;
//   - a target is one of the VM's AllowedNodes;
//   - a target runs no control-plane VM of the same tenant, counting the VMs moved there;
//   - a target is schedulable, already runs VMs, is not being emptied (by this plan or by a
//     migration in flight), and has room for the requests of what it runs plus what moves there
//     (with its other pods); a node that migrations in flight or this plan move VMs to is not
//     emptied;
//   - at most MaxInFlight migrations run at once.
//
// Nodes are tried emptiest first (fewest VMs, then least requested): they free a node for the
// fewest migrations. A VM goes, largest first, where NestPacking's best fit puts it, and a node
// that receives VMs is not emptied by the same plan.
func PlanMigrations(s State, o Options) Plan {
	c := newCluster(s)
	budget := map[string]int{}
	for name, n := range s.DisruptionsAllowed {
		budget[name] = n
	}
	room := o.MaxInFlight - s.Migrating
	receivers := map[string]bool{}
	for _, n := range s.Nodes {
		receivers[n.Name] = n.Receiving
	}
	var plan Plan
	for _, src := range c.sources() {
		vms := slices.Clone(c.vmsOn[src])
		if receivers[src] || c.nodes[src].Keep || len(vms) > room || !movable(vms, budget) {
			continue
		}
		moves, ok := c.evacuate(src, vms)
		if !ok {
			continue
		}
		for _, m := range moves {
			receivers[m.To] = true
			plan.Migrations = append(plan.Migrations, m)
		}
		for _, vm := range vms {
			for _, b := range vm.DisruptionBudgets {
				budget[b]--
			}
		}
		room -= len(vms)
		plan.Emptied = append(plan.Emptied, src)
	}
	return plan
}

// movable tells whether every VM may migrate, all together, within the budgets left.
func movable(vms []VM, budget map[string]int) bool {
	disruptions := map[string]int{}
	for _, vm := range vms {
		if !vm.Migratable {
			return false
		}
		for _, b := range vm.DisruptionBudgets {
			disruptions[b]++
		}
	}
	for b, n := range disruptions {
		if n > budget[b] {
			return false
		}
	}
	return true
}

// cluster is the planner's running picture: what each node runs and requests, updated as moves
// are committed.
type cluster struct {
	nodes         map[string]Node
	order         []string
	used          map[string]Resources
	vmsOn         map[string][]VM
	controlPlanes map[string]map[string]bool
}

func newCluster(s State) *cluster {
	c := &cluster{nodes: map[string]Node{}, used: map[string]Resources{}, vmsOn: map[string][]VM{}, controlPlanes: map[string]map[string]bool{}}
	for _, n := range s.Nodes {
		c.nodes[n.Name] = n
		c.order = append(c.order, n.Name)
		c.used[n.Name] = Resources{}
		for r, q := range n.Requested {
			c.used[n.Name][r] += q
		}
		c.controlPlanes[n.Name] = map[string]bool{}
	}
	for _, vm := range s.VMs {
		if _, ok := c.nodes[vm.Node]; ok {
			c.add(vm, vm.Node)
		}
	}
	return c
}

func (c *cluster) add(vm VM, node string) {
	for r, q := range vm.Requests {
		c.used[node][r] += q
	}
	c.vmsOn[node] = append(c.vmsOn[node], vm)
	if vm.ControlPlaneOf != "" {
		c.controlPlanes[node][vm.ControlPlaneOf] = true
	}
}

// sources are the nodes that run VMs, emptiest first.
func (c *cluster) sources() []string {
	var out []string
	for _, n := range c.order {
		if len(c.vmsOn[n]) > 0 {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(c.vmsOn[a]), len(c.vmsOn[b])), cmp.Compare(c.share(a), c.share(b)))
	})
	return out
}

// share is the sum over resources of the fraction of the node's allocatable requested.
func (c *cluster) share(node string) float64 {
	var s float64
	for r, q := range c.used[node] {
		if a := c.nodes[node].Allocatable[r]; a > 0 {
			s += float64(q) / float64(a)
		}
	}
	return s
}

// evacuate places vms, largest first, on the other nodes, and commits the moves if all fit.
func (c *cluster) evacuate(src string, vms []VM) ([]Migration, bool) {
	ordered := slices.Clone(vms)
	slices.SortStableFunc(ordered, func(a, b VM) int { return cmp.Compare(c.size(b, src), c.size(a, src)) })
	var moves []Migration
	undo := func() {
		for _, m := range slices.Backward(moves) {
			c.remove(m.VM, m.To)
		}
	}
	for _, vm := range ordered {
		to := c.target(vm, src)
		if to == "" {
			undo()
			return nil, false
		}
		c.add(vm, to)
		moves = append(moves, Migration{VM: vm.Name, From: src, To: to})
	}
	for _, vm := range ordered {
		c.remove(vm.Name, src)
	}
	return moves, true
}

// size is the largest share of the node's allocatable the VM requests.
func (c *cluster) size(vm VM, node string) float64 {
	var s float64
	for r, q := range vm.Requests {
		if a := c.nodes[node].Allocatable[r]; a > 0 {
			s = max(s, float64(q)/float64(a))
		}
	}
	return s
}

func (c *cluster) remove(name, node string) {
	i := slices.IndexFunc(c.vmsOn[node], func(vm VM) bool { return vm.Name == name })
	vm := c.vmsOn[node][i]
	c.vmsOn[node] = slices.Delete(c.vmsOn[node], i, i+1)
	for r, q := range vm.Requests {
		c.used[node][r] -= q
	}
	if vm.ControlPlaneOf != "" {
		delete(c.controlPlanes[node], vm.ControlPlaneOf)
	}
}

// target is the best-fitting node for vm other than src, or "" when none may take it.
func (c *cluster) target(vm VM, src string) string {
	best, bestQuality := "", int64(-1)
	for _, name := range c.order {
		n := c.nodes[name]
		if name == src || n.Unschedulable || n.Draining || len(c.vmsOn[name]) == 0 || !vm.AllowedNodes.Has(name) ||
			(vm.ControlPlaneOf != "" && c.controlPlanes[name][vm.ControlPlaneOf]) {
			continue
		}
		fits, q := c.fit(vm, name)
		if fits && q > bestQuality {
			best, bestQuality = name, q
		}
	}
	return best
}

// fit tells whether vm fits on node and, if so, NestPacking's packing quality of putting it there.
func (c *cluster) fit(vm VM, node string) (bool, int64) {
	n := c.nodes[node]
	var resources []nestpacking.ResourceFit
	// In a fixed order, so that the float sums, and ties, come out the same every time.
	for _, r := range slices.Sorted(maps.Keys(vm.Requests)) {
		q := vm.Requests[r]
		if c.used[node][r]+q > n.Allocatable[r] {
			return false, 0
		}
		if r == v1.ResourcePods {
			continue
		}
		resources = append(resources, nestpacking.ResourceFit{Allocatable: n.Allocatable[r], Requested: c.used[node][r], Request: q, Weight: 1})
	}
	return true, nestpacking.PackingQuality(resources)
}
