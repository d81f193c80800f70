// Package nestpacking is the NestPacking kube-scheduler plugin: it packs KubeVirt VMs onto as few
// nodes of an Infra cluster as their requests allow.
//
// It scores and filters nothing. The control-plane VMs of one tenant cluster are kept on different
// nodes by the required pod anti-affinity the provider renders on them (internal/kubevirt
// ControlPlaneAntiAffinityTerm), which InterPodAffinity enforces in nest-scheduler's profile as in
// any other scheduler's: one rule, honoured by whatever places or simulates the VMs.
package nestpacking

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
)

// Name is the plugin's name in the registry and in scheduler profiles.
const Name = "NestPacking"

const preScoreStateKey fwk.StateKey = "PreScore" + Name

var (
	_ fwk.PreScorePlugin  = &NestPacking{}
	_ fwk.ScorePlugin     = &NestPacking{}
	_ fwk.ScoreExtensions = &NestPacking{}
)

// NestPacking packs VMs by multi-resource best fit.
//
// It does not implement fwk.SignPlugin, and so keeps opportunistic batching off in its profile.
// A batch places the next pod of the same signature on the runner-up of the previous pod's
// ranking, and NormalizeScore ranks every node far below the best one at 0: beyond the first
// node the ranking is arbitrary, and batched VMs opened small nodes (measured in cmd/nest-bench
// with batching on: 35% more nodes on mixed node sizes). Real virt-launcher pods carry a label
// unique to their VM, which InterPodAffinity signs, so batching would rarely apply to VMs anyway.
type NestPacking struct {
	resources []resourceWeight
	// vmLabelKey and vmLabelValue select the pods that are VMs.
	vmLabelKey, vmLabelValue string
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
	pl := &NestPacking{vmLabelKey: args.VMLabelKey, vmLabelValue: args.VMLabelValue}
	for _, r := range args.Resources {
		pl.resources = append(pl.resources, resourceWeight{name: v1.ResourceName(r.Name), weight: r.Weight})
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *NestPacking) Name() string {
	return Name
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
	return rawScore(fits, pl.hostsVM(nodeInfo)), nil
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

// hostsVM tells whether any pod on the node is a VM.
func (pl *NestPacking) hostsVM(nodeInfo fwk.NodeInfo) bool {
	for _, p := range nodeInfo.GetPods() {
		if p.GetPod().Labels[pl.vmLabelKey] == pl.vmLabelValue {
			return true
		}
	}
	return false
}
