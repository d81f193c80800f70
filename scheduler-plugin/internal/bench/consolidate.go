package bench

import (
	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/consolidation"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// Consolidation is what consolidating a run's final placement reached.
type Consolidation struct {
	// NodesUsed counts the nodes that run VMs once the migrations are done.
	NodesUsed int
	// Migrations counts the live migrations it took.
	Migrations int
	// Rounds counts the plans: each waits for the migrations of the one before.
	Rounds int
}

// maxConsolidationRounds stops a consolidation that would not settle; PlanMigrations only
// empties nodes, so it settles in fewer rounds than there are nodes.
const maxConsolidationRounds = 1000

// Consolidate runs consolidation.PlanMigrations over placed (VMs bound to nodes) round after
// round, as the consolidator would with every migration succeeding, until a plan moves nothing.
// Every VM is live-migratable and no PodDisruptionBudget selects it; control-plane VMs keep the
// one-per-node rule.
func Consolidate(placed []*v1.Pod, nodes []*v1.Node, maxInFlight int) Consolidation {
	state := consolidation.State{}
	for _, n := range nodes {
		state.Nodes = append(state.Nodes, consolidation.Node{Name: n.Name, Allocatable: resources(n.Status.Allocatable)})
	}
	for _, p := range placed {
		vm := consolidation.VM{
			Name:       p.Namespace + "/" + p.Name,
			Node:       p.Spec.NodeName,
			Requests:   resources(resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})),
			Migratable: true,
		}
		vm.Requests[v1.ResourcePods] = 1
		if p.Labels[roleLabel] == controlPlaneRole {
			vm.ControlPlaneOf = p.Namespace + "/" + p.Labels[clusterNameLabel]
		}
		state.VMs = append(state.VMs, vm)
	}
	var out Consolidation
	for out.Rounds < maxConsolidationRounds {
		plan := consolidation.PlanMigrations(state, consolidation.Options{MaxInFlight: maxInFlight})
		if len(plan.Migrations) == 0 {
			break
		}
		out.Rounds++
		out.Migrations += len(plan.Migrations)
		target := map[string]string{}
		for _, m := range plan.Migrations {
			target[m.VM] = m.To
		}
		for i, vm := range state.VMs {
			if to, ok := target[vm.Name]; ok {
				state.VMs[i].Node = to
			}
		}
	}
	used := map[string]bool{}
	for _, vm := range state.VMs {
		used[vm.Node] = true
	}
	out.NodesUsed = len(used)
	return out
}

// resources reads CPU, memory and pods of list in the units the plugin counts them in.
func resources(list v1.ResourceList) consolidation.Resources {
	out := consolidation.Resources{}
	for _, name := range packedResources {
		if v := nestpacking.RequestValue(name, list); v > 0 {
			out[name] = v
		}
	}
	return out
}
