package consolidation

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

const (
	// CordonedByAnnotation marks the nodes the consolidator cordoned (value CordonedByValue). It
	// only ever uncordons a node that carries it: a node cordoned by anyone else — an operator, a
	// drain, an upgrade — is not its to give back.
	CordonedByAnnotation = "nest.cluster.x-k8s.io/cordoned-by"
	// CordonedByValue is CordonedByAnnotation's value on the nodes the consolidator cordoned.
	CordonedByValue = "nest-consolidator"
)

// CordonedByConsolidator tells whether the node is cordoned and marked as the consolidator's.
func CordonedByConsolidator(n *corev1.Node) bool {
	return n.Spec.Unschedulable && n.Annotations[CordonedByAnnotation] == CordonedByValue
}

// NodesToCordon are the nodes of emptied that nobody has cordoned: a plan's nodes are cordoned
// before their migrations are created, so that nothing new lands where VMs are leaving. A node
// already cordoned — by the consolidator in an earlier round, or by someone else — is left as it
// is, and someone else's cordon is never marked as the consolidator's.
func NodesToCordon(nodes []corev1.Node, emptied []string) []string {
	var out []string
	for i := range nodes {
		if n := &nodes[i]; slices.Contains(emptied, n.Name) && !n.Spec.Unschedulable {
			out = append(out, n.Name)
		}
	}
	return out
}

// NodesToUncordon are the nodes the consolidator cordoned: given back when VMs wait for room.
func NodesToUncordon(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if CordonedByConsolidator(&nodes[i]) {
			out = append(out, nodes[i].Name)
		}
	}
	return out
}

// CordonsToRelease are the nodes the consolidator cordoned that it failed to empty and will not
// empty now: they still run VMs, no migration in flight is taking VMs off them, and the round's
// plan (emptied) does not empty them — a migration failed, and the move waits out its back-off
// or can no longer be made. Left cordoned they would hold their free room from new VMs until VMs
// had to wait for it; they are given back, and a later plan that can empty them cordons them
// again. A node it did empty stays cordoned: that is what the cordon was for.
func CordonsToRelease(nodes []corev1.Node, s State, emptied []string) []string {
	runsVMs := s.nodesRunningVMs()
	draining := map[string]bool{}
	for _, n := range s.Nodes {
		draining[n.Name] = n.Draining
	}
	var out []string
	for i := range nodes {
		if n := &nodes[i]; CordonedByConsolidator(n) && runsVMs[n.Name] && !draining[n.Name] && !slices.Contains(emptied, n.Name) {
			out = append(out, n.Name)
		}
	}
	return out
}

// StaleCordonMarks are the nodes that carry the consolidator's mark but are schedulable: someone
// uncordoned them. The mark goes, or a later cordon by someone else would be taken for the
// consolidator's and lifted.
func StaleCordonMarks(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if n := &nodes[i]; !n.Spec.Unschedulable && n.Annotations[CordonedByAnnotation] == CordonedByValue {
			out = append(out, n.Name)
		}
	}
	return out
}

// VMsWaitingForRoom lists (namespace/name) the virt-launcher pods of o.SchedulerName that the
// scheduler could not place (PodScheduled False, reason Unschedulable): the Infra cluster wants
// capacity, which the nodes the consolidator cordoned have. The target launchers of the
// consolidator's own migrations do not count: each is pinned to the one node its plan chose, so
// no other node's room helps it, and a migration whose target no longer fits fails on its own.
func VMsWaitingForRoom(o Observed) []string {
	ours := map[string]bool{}
	for _, m := range o.Migrations {
		if _, ok := m.Labels[MigrationLabel]; ok {
			ours[string(m.UID)] = true
		}
	}
	var out []string
	for i := range o.Pods {
		p := &o.Pods[i]
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil || p.Labels[kubevirtv1.AppLabel] != "virt-launcher" ||
			(o.SchedulerName != "" && p.Spec.SchedulerName != o.SchedulerName) || ours[p.Labels[kubevirtv1.MigrationJobLabel]] {
			continue
		}
		if unschedulable(p) {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	return out
}

func unschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
		}
	}
	return false
}
