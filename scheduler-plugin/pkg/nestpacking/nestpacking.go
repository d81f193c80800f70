// Package nestpacking is the NestPacking kube-scheduler plugin: it packs KubeVirt VMs onto as few
// nodes of an Infra cluster as their requests allow, and keeps the control-plane VMs of one tenant
// cluster on different nodes.
package nestpacking

import (
	"context"
	"fmt"
	"maps"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
)

// Name is the plugin's name in the registry and in scheduler profiles.
const Name = "NestPacking"

const (
	preFilterStateKey fwk.StateKey = "PreFilter" + Name
	preScoreStateKey  fwk.StateKey = "PreScore" + Name

	// errReasonControlPlaneSpread is the Filter's reason, counted per reason in the pod's
	// FailedScheduling event.
	errReasonControlPlaneSpread = "node(s) already run a control-plane VM of the same cluster"
)

var (
	_ fwk.PreFilterPlugin   = &NestPacking{}
	_ fwk.FilterPlugin      = &NestPacking{}
	_ fwk.PreScorePlugin    = &NestPacking{}
	_ fwk.ScorePlugin       = &NestPacking{}
	_ fwk.ScoreExtensions   = &NestPacking{}
	_ fwk.EnqueueExtensions = &NestPacking{}
)

// NestPacking packs VMs by multi-resource best fit and spreads tenant control planes.
//
// It does not implement fwk.SignPlugin, and so keeps opportunistic batching off in its profile.
// A batch places the next pod of the same signature on the runner-up of the previous pod's
// ranking, and NormalizeScore ranks every node far below the best one at 0: beyond the first
// node the ranking is arbitrary, and batched VMs opened small nodes (measured in cmd/nest-bench
// with batching on: 35% more nodes on mixed node sizes). Real virt-launcher pods carry a label
// unique to their VM, which InterPodAffinity signs, so batching would rarely apply to VMs anyway.
type NestPacking struct {
	resources []resourceWeight
	labels    podLabels
}

// resourceWeight is one configured resource of the score.
type resourceWeight struct {
	name   v1.ResourceName
	weight int64
}

// New builds the plugin from its profile args; it matches frameworkruntime.PluginFactory.
func New(_ context.Context, obj runtime.Object, _ fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	pl := &NestPacking{labels: newPodLabels(args)}
	for _, r := range args.Resources {
		pl.resources = append(pl.resources, resourceWeight{name: v1.ResourceName(r.Name), weight: r.Weight})
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *NestPacking) Name() string {
	return Name
}

// preFilterState is what Filter needs: the tenant of the control-plane pod being scheduled and
// how many of that tenant's control-plane VMs each node runs.
type preFilterState struct {
	tenant tenant
	counts map[string]int
}

// Clone copies the counts, which AddPod and RemovePod change on the clone.
func (s *preFilterState) Clone() fwk.StateData {
	return &preFilterState{tenant: s.tenant, counts: maps.Clone(s.counts)}
}

// PreFilter counts the tenant's control-plane VMs per node, once per cycle, and skips Filter for
// every pod that is not a control-plane VM: those pay nothing for the spread rule.
func (pl *NestPacking) PreFilter(_ context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	t, ok := pl.labels.controlPlaneTenant(pod)
	if !ok {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cycleState.Write(preFilterStateKey, &preFilterState{tenant: t, counts: pl.labels.controlPlaneCounts(t, nodes)})
	return nil, nil
}

// PreFilterExtensions keeps the counts right when preemption or nominated pods add or remove
// pods hypothetically.
func (pl *NestPacking) PreFilterExtensions() fwk.PreFilterExtensions {
	return pl
}

// AddPod counts podInfoToAdd on nodeInfo if it is a control-plane VM of the same tenant.
func (pl *NestPacking) AddPod(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, podInfoToAdd fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	return pl.updateCount(cycleState, podInfoToAdd.GetPod(), nodeInfo, 1)
}

// RemovePod uncounts podInfoToRemove on nodeInfo if it is a control-plane VM of the same tenant.
func (pl *NestPacking) RemovePod(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, podInfoToRemove fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	return pl.updateCount(cycleState, podInfoToRemove.GetPod(), nodeInfo, -1)
}

func (pl *NestPacking) updateCount(cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo, delta int) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if pl.labels.belongsTo(pod, s.tenant) {
		s.counts[nodeInfo.Node().Name] += delta
	}
	return nil
}

func getPreFilterState(cycleState fwk.CycleState) (*preFilterState, error) {
	c, err := cycleState.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycleState: %w", preFilterStateKey, err)
	}
	s, ok := c.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("invalid PreFilter state, got type %T", c)
	}
	return s, nil
}

// Filter rejects a node that already runs a control-plane VM of the pod's tenant. PreFilter has
// skipped it for every other pod.
func (pl *NestPacking) Filter(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.counts[nodeInfo.Node().Name] > 0 {
		return fwk.NewStatus(fwk.Unschedulable, errReasonControlPlaneSpread)
	}
	return nil
}

// EventsToRegister names the events that can make a pod this plugin rejected schedulable: the
// tenant's control-plane VM leaving a node (deleted, or relabelled), or a new node.
func (pl *NestPacking) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDelete},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: pl.isSchedulableAfterPodLabelUpdate},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add}},
	}, nil
}

// isSchedulableAfterPodDelete queues pod only when the deleted pod was a control-plane VM of the
// same tenant: no other deletion frees a node for it.
func (pl *NestPacking) isSchedulableAfterPodDelete(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := schedutil.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	return pl.queueIfTenantLeft(logger, pod, deleted, nil), nil
}

// isSchedulableAfterPodLabelUpdate queues pod only when a control-plane VM of the same tenant
// stopped being one.
func (pl *NestPacking) isSchedulableAfterPodLabelUpdate(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldPod, newPod, err := schedutil.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	return pl.queueIfTenantLeft(logger, pod, oldPod, newPod), nil
}

func (pl *NestPacking) queueIfTenantLeft(logger klog.Logger, pod, before, after *v1.Pod) fwk.QueueingHint {
	t, ok := pl.labels.controlPlaneTenant(pod)
	if !ok || !pl.labels.belongsTo(before, t) || (after != nil && pl.labels.belongsTo(after, t)) {
		return fwk.QueueSkip
	}
	logger.V(5).Info("a control-plane VM of the same cluster left its node", "pod", klog.KObj(pod), "node", before.Spec.NodeName)
	return fwk.Queue
}

// podRequest is the pod's request of one resource the score packs on.
type podRequest struct {
	name    v1.ResourceName
	request int64
	weight  int64
}

// preScoreState carries the pod's requests from PreScore to Score.
type preScoreState struct {
	requests []podRequest
}

// Clone shares the state: nothing changes it after PreScore.
func (s *preScoreState) Clone() fwk.StateData {
	return s
}

// PreScore computes the pod's requests once per cycle.
func (pl *NestPacking) PreScore(_ context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	cycleState.Write(preScoreStateKey, &preScoreState{requests: pl.podRequests(pod)})
	return nil
}

// podRequests lists the configured resources and every extended resource the pod asks for, with
// the requests as the pod states them (containers, init containers, pod overhead): KubeVirt has
// already put the VM's memory overhead into the compute container's request, so no default is
// added for a missing request either.
func (pl *NestPacking) podRequests(pod *v1.Pod) []podRequest {
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	out := make([]podRequest, 0, len(pl.resources)+1)
	configured := make(map[v1.ResourceName]bool, len(pl.resources))
	for _, r := range pl.resources {
		configured[r.name] = true
		out = append(out, podRequest{name: r.name, request: RequestValue(r.name, requests), weight: r.weight})
	}
	for name := range requests {
		if !configured[name] && schedutil.IsScalarResourceName(name) && RequestValue(name, requests) > 0 {
			out = append(out, podRequest{name: name, request: RequestValue(name, requests), weight: 1})
		}
	}
	return out
}

// RequestValue reads a request in the unit NodeInfo counts it in: millicores for CPU, units for
// everything else.
func RequestValue(name v1.ResourceName, list v1.ResourceList) int64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// Score rates the node by how well the pod fills it; see PackingQuality and vmHostBonus.
func (pl *NestPacking) Score(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %q from cycleState: %w", preScoreStateKey, err))
	}
	s, ok := c.(*preScoreState)
	if !ok {
		return 0, fwk.AsStatus(fmt.Errorf("invalid PreScore state, got type %T", c))
	}
	allocatable, requested := nodeInfo.GetAllocatable(), nodeInfo.GetRequested()
	fits := make([]ResourceFit, len(s.requests))
	for i, r := range s.requests {
		fits[i] = ResourceFit{
			Allocatable: resourceAmount(allocatable, r.name),
			Requested:   resourceAmount(requested, r.name),
			Request:     r.request,
			Weight:      r.weight,
		}
	}
	return rawScore(fits, pl.labels.hostsVM(nodeInfo)), nil
}

// resourceAmount reads one resource of a NodeInfo total.
func resourceAmount(r fwk.Resource, name v1.ResourceName) int64 {
	switch name {
	case v1.ResourceCPU:
		return r.GetMilliCPU()
	case v1.ResourceMemory:
		return r.GetMemory()
	case v1.ResourceEphemeralStorage:
		return r.GetEphemeralStorage()
	default:
		return r.GetScalarResources()[name]
	}
}

// ScoreExtensions returns the plugin itself: its raw scores need NormalizeScore.
func (pl *NestPacking) ScoreExtensions() fwk.ScoreExtensions {
	return pl
}

// NormalizeScore maps the raw scores to the framework's range; see normalizeScores.
func (pl *NestPacking) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	normalizeScores(scores)
	return nil
}
