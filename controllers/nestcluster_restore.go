package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// controlPlaneSpread is the distribution of a tenant's control-plane machines (not being deleted)
// over the healthy control-plane failure domains.
type controlPlaneSpread struct {
	counts map[string]int
	// healthy control-plane failure domains, sorted.
	healthy []string
}

// unbalanced reports whether the spread is worse than one machine per Infra cluster allows: the
// difference between the fullest and the emptiest healthy Infra cluster exceeds one, or one hosts
// none while another hosts two or more.
func (s controlPlaneSpread) unbalanced() bool {
	if len(s.healthy) < 2 {
		return false
	}
	hi, lo, _, _ := placement.Imbalance(s.counts, s.healthy)
	return hi-lo > 1 || (lo == 0 && hi >= 2)
}

func (s controlPlaneSpread) String() string {
	parts := make([]string, 0, len(s.healthy))
	for _, fd := range s.healthy {
		parts = append(parts, fmt.Sprintf("%s=%d", fd, s.counts[fd]))
	}
	return strings.Join(parts, " ")
}

// restoreDecision says whether to ask the control plane to roll out now.
type restoreDecision struct {
	trigger bool
	reason  string
}

// decideRestore is the pure rule: restore when the spread is unbalanced, nothing is rolling out, and
// no restore was requested since the last Infra cluster became healthy (so one recovery yields at
// most one rollout, and a rollout that could not rebalance is not retried in a loop).
func decideRestore(spread controlPlaneSpread, rollingOut bool, lastRecovery, lastRestore *metav1.Time) restoreDecision {
	switch {
	case !spread.unbalanced():
		return restoreDecision{reason: "balanced: " + spread.String()}
	case rollingOut:
		return restoreDecision{reason: "unbalanced (" + spread.String() + ") but the control plane is rolling out; waiting for it to finish"}
	case restoredSinceRecovery(lastRecovery, lastRestore):
		return restoreDecision{reason: "unbalanced (" + spread.String() + "); a restore was already requested at " + lastRestore.UTC().Format("15:04:05") + " since the last Infra cluster recovery"}
	default:
		return restoreDecision{trigger: true, reason: "unbalanced (" + spread.String() + ")"}
	}
}

func restoredSinceRecovery(lastRecovery, lastRestore *metav1.Time) bool {
	return lastRestore != nil && (lastRecovery == nil || !lastRestore.Before(lastRecovery))
}

// reconcileRestore brings a KubeadmControlPlane back to one machine per Infra cluster after an Infra
// cluster returns, by asking KCP for one rollout: KCP places each new machine in the failure domain
// with the fewest machines and deletes from the fullest, which restores the spread. Another control
// plane (plain Machines, the OpenShift Assisted control plane) has no rollout to request: the
// condition says what the operator must do. Plain Machines need nothing after a loss and return:
// their VMs in the returning Infra cluster run again.
func (r *NestClusterReconciler) reconcileRestore(ctx context.Context, cluster *clusterv1.Cluster, nc *infrav1.NestCluster, uses []*infraUse) error {
	ref := cluster.Spec.ControlPlaneRef
	var healthy []string
	var lastRecovery *metav1.Time
	for _, u := range uses {
		if !u.usable || !ptr.Deref(u.use.ControlPlane, true) {
			continue
		}
		healthy = append(healthy, u.use.Name)
		if c := conditions.Get(u.ic, infrav1.ReadyCondition); c != nil && (lastRecovery == nil || lastRecovery.Before(&c.LastTransitionTime)) {
			lastRecovery = c.LastTransitionTime.DeepCopy()
		}
	}
	sort.Strings(healthy)
	machines := &clusterv1.MachineList{}
	if err := r.Client.List(ctx, machines, client.InNamespace(cluster.Namespace),
		client.MatchingLabels{clusterv1.ClusterNameLabel: cluster.Name}, client.HasLabels{clusterv1.MachineControlPlaneLabel}); err != nil {
		return fmt.Errorf("listing the control-plane machines of %s: %w", cluster.Name, err)
	}
	deleting := false
	var placed []string
	for _, m := range machines.Items {
		if !placement.Spread(m.Labels) {
			continue
		}
		if !m.DeletionTimestamp.IsZero() {
			deleting = true
			continue
		}
		placed = append(placed, m.Spec.FailureDomain)
	}
	// The same counting as the spread webhook's, so that the two cannot disagree.
	spread := controlPlaneSpread{counts: placement.Counts(placed, healthy), healthy: healthy}
	if !ref.IsDefined() || ref.Kind != "KubeadmControlPlane" || ref.APIGroup != controlplanev1.GroupVersion.Group {
		if len(machines.Items) == 0 {
			return nil
		}
		c := metav1.Condition{Type: infrav1.ControlPlaneBalancedCondition, Status: metav1.ConditionTrue, Reason: infrav1.BalancedReason, Message: "balanced: " + spread.String()}
		if spread.unbalanced() && !deleting {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, infrav1.OperatorRestoreNeededReason, operatorRestore(ref, spread)
		}
		conditions.Set(nc, c)
		return nil
	}
	kcp := &controlplanev1.KubeadmControlPlane{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: cluster.Namespace, Name: ref.Name}, kcp); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading KubeadmControlPlane %s: %w", ref.Name, err)
	}
	decision := decideRestore(spread, deleting || kcpRollingOut(kcp, len(machines.Items)), lastRecovery, nc.Status.LastControlPlaneRestore)
	if !decision.trigger {
		status := metav1.ConditionTrue
		reason := infrav1.BalancedReason
		if spread.unbalanced() {
			status, reason = metav1.ConditionFalse, infrav1.UnbalancedReason
			if restoredSinceRecovery(lastRecovery, nc.Status.LastControlPlaneRestore) {
				reason = infrav1.RestoreRequestedReason
			}
		}
		conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneBalancedCondition, Status: status, Reason: reason, Message: decision.reason})
		return nil
	}
	now := metav1.Now()
	before := kcp.DeepCopy()
	kcp.Spec.Rollout.After = now
	if err := r.Client.Patch(ctx, kcp, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("requesting a rollout of KubeadmControlPlane %s: %w", kcp.Name, err)
	}
	nc.Status.LastControlPlaneRestore = &now
	msg := fmt.Sprintf("control plane %s; requested a rollout of KubeadmControlPlane %s to restore one machine per Infra cluster", decision.reason, kcp.Name)
	conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneBalancedCondition, Status: metav1.ConditionFalse, Reason: infrav1.RestoreRequestedReason, Message: msg})
	r.Recorder.Event(nc, corev1.EventTypeNormal, infrav1.RestoreRequestedReason, msg)
	ctrl.LoggerFrom(ctx).Info("Requested a control-plane rollout to restore the spread", "spread", spread.String(), "KubeadmControlPlane", kcp.Name)
	return nil
}

// operatorRestore says what the operator must do to restore one machine per Infra cluster for a
// control plane the provider cannot roll out: plain control-plane Machines (installer ignition), or a
// control-plane provider without a rollout request (the OpenShift Assisted control plane).
func operatorRestore(ref clusterv1.ContractVersionedObjectReference, spread controlPlaneSpread) string {
	_, _, most, least := placement.Imbalance(spread.counts, spread.healthy)
	if !ref.IsDefined() {
		return fmt.Sprintf("control plane unbalanced (%s); its control-plane Machines have no control-plane provider to roll them out: "+
			"create a control-plane Machine with spec.failureDomain %s and, once its Node is Ready and it has joined etcd, delete one of the control-plane Machines in %s",
			spread, least[0], strings.Join(most, " or "))
	}
	return fmt.Sprintf("control plane unbalanced (%s); the provider can request a rollout of a KubeadmControlPlane only: delete one control-plane Machine in %s, "+
		"and %s %s replaces it in the Infra cluster with the fewest (%s)", spread, strings.Join(most, " or "), ref.Kind, ref.Name, strings.Join(least, " or "))
}

// kcpRollingOut: KCP is mid-change when it has more or fewer machines than desired, or some are not
// up to date.
func kcpRollingOut(kcp *controlplanev1.KubeadmControlPlane, machines int) bool {
	desired := ptr.Deref(kcp.Spec.Replicas, 1)
	return int32(machines) != desired ||
		ptr.Deref(kcp.Status.Replicas, 0) != desired ||
		ptr.Deref(kcp.Status.UpToDateReplicas, desired) != desired
}
