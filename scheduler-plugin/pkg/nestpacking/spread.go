package nestpacking

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// podLabels holds the label keys and values, from Args, by which the plugin recognises VMs and
// tenant control-plane VMs.
type podLabels struct {
	vmKey, vmValue        string
	clusterKey            string
	roleKey, controlPlane string
}

func newPodLabels(args *Args) podLabels {
	return podLabels{
		vmKey:        args.VMLabelKey,
		vmValue:      args.VMLabelValue,
		clusterKey:   args.ClusterNameLabelKey,
		roleKey:      args.RoleLabelKey,
		controlPlane: args.ControlPlaneRoleValue,
	}
}

// isVM tells whether pod is a VM's virt-launcher pod.
func (l podLabels) isVM(pod *v1.Pod) bool {
	return pod.Labels[l.vmKey] == l.vmValue
}

// tenant identifies the control plane of one tenant cluster. Cluster API cluster names are unique
// per namespace only, so the namespace is part of it.
type tenant struct {
	namespace, cluster string
}

func (t tenant) String() string {
	return t.namespace + "/" + t.cluster
}

// controlPlaneTenant returns the tenant whose control plane pod belongs to, and false when pod is
// not a control-plane VM.
func (l podLabels) controlPlaneTenant(pod *v1.Pod) (tenant, bool) {
	cluster := pod.Labels[l.clusterKey]
	if cluster == "" || pod.Labels[l.roleKey] != l.controlPlane {
		return tenant{}, false
	}
	return tenant{namespace: pod.Namespace, cluster: cluster}, true
}

// belongsTo tells whether pod is a control-plane VM of t.
func (l podLabels) belongsTo(pod *v1.Pod, t tenant) bool {
	got, ok := l.controlPlaneTenant(pod)
	return ok && got == t
}

// hostsVM tells whether any pod on the node is a VM.
func (l podLabels) hostsVM(nodeInfo fwk.NodeInfo) bool {
	for _, p := range nodeInfo.GetPods() {
		if l.isVM(p.GetPod()) {
			return true
		}
	}
	return false
}

// controlPlaneCounts counts, per node, the control-plane VMs of t among the pods on nodes. It is
// the whole cost of the spread rule, paid once per cycle and only by control-plane pods: a walk
// over the pods' labels, with none of the term matching that generic pod anti-affinity does for
// every pod against every pod that carries a term.
func (l podLabels) controlPlaneCounts(t tenant, nodes []fwk.NodeInfo) map[string]int {
	counts := map[string]int{}
	for _, n := range nodes {
		for _, p := range n.GetPods() {
			if l.belongsTo(p.GetPod(), t) {
				counts[n.Node().Name]++
			}
		}
	}
	return counts
}
