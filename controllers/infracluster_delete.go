package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// ownKubeconfigSecret makes the InfraCluster an owner of its kubeconfig Secret, so that clusterctl
// move carries the Secret with the InfraCluster (a global object of a move hierarchy) to the target
// management cluster.
func (r *InfraClusterReconciler) ownKubeconfigSecret(ctx context.Context, ic *infrav1.InfraCluster) error {
	ref := ic.Spec.KubeconfigSecretRef
	if ref == nil || ic.UID == "" {
		return nil
	}
	// The owner references are metadata: read and patched without the Secret's data, from the
	// cache; a stale copy fails the patch's optimistic lock and the next probe tries again.
	secret, err := r.secretMetadata(ctx, client.ObjectKey{Namespace: r.ProviderNamespace, Name: ref.Name})
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	_, err = patchMetadata(ctx, r.Client, secret, func() bool {
		if slices.ContainsFunc(secret.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == ic.UID }) {
			return false
		}
		secret.OwnerReferences = append(secret.OwnerReferences, metav1.OwnerReference{
			APIVersion: infrav1.GroupVersion.String(), Kind: "InfraCluster", Name: ic.Name, UID: ic.UID,
		})
		return true
	})
	if err != nil {
		return fmt.Errorf("making InfraCluster %s the owner of its kubeconfig Secret %s: %w", ic.Name, client.ObjectKeyFromObject(secret), err)
	}
	return nil
}

// reconcileDelete lets an InfraCluster go only once nothing uses it: no NestCluster lists it and no
// NestMachine runs there (the webhook refuses such a delete; this holds when it was bypassed). Then
// everything this management cluster made there is removed, and only then the finalizer. An Infra
// cluster that stays unreachable is let go after its orphan grace period, with an event saying what
// may be left there.
func (r *InfraClusterReconciler) reconcileDelete(ctx context.Context, ic *infrav1.InfraCluster) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	interval, _ := probeTiming(ic)
	users, err := r.users(ctx, ic.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(users) > 0 {
		msg := "still used by " + strings.Join(users, ", ") + ": remove it from their spec.infraClusters (and their machines from it) first"
		log.Info("Deletion waits: the InfraCluster is in use", "users", users)
		conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.InfraClusterInUseReason, Message: msg})
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	conn, err := r.Registry.Get(ic.Name)
	if err != nil {
		if left := orphanGrace(ic) - time.Since(ic.DeletionTimestamp.Time); left > 0 {
			conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason,
				Message: fmt.Sprintf("the Infra cluster is unreachable: waiting up to %s for it, to remove what this provider made there", left.Round(time.Second))})
			return ctrl.Result{RequeueAfter: min(left, interval)}, nil
		}
		r.Recorder.Eventf(ic, corev1.EventTypeWarning, infrav1.OrphanedReason,
			"Infra cluster unreachable for %s: released; whatever this provider made there (labelled %s=%s) is left behind", orphanGrace(ic), infrav1.ManagementClusterLabel, r.Identity)
		return r.release(ctx, ic)
	}
	left, err := r.sweeper.sweepAll(ctx, conn, ic)
	if err != nil {
		return ctrl.Result{}, err
	}
	if left > 0 {
		conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason,
			Message: fmt.Sprintf("removing what this provider made in the Infra cluster: %d objects left", left)})
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return r.release(ctx, ic)
}

func (r *InfraClusterReconciler) release(ctx context.Context, ic *infrav1.InfraCluster) (ctrl.Result, error) {
	ctrl.LoggerFrom(ctx).Info("InfraCluster deleted: closing its connection")
	r.Registry.Remove(ic.Name)
	r.probes.forget(ic.Name)
	controllerutil.RemoveFinalizer(ic, infrav1.InfraClusterFinalizer)
	return ctrl.Result{}, nil
}

// users names the NestClusters that list the Infra cluster and the NestMachines placed on it.
func (r *InfraClusterReconciler) users(ctx context.Context, name string) ([]string, error) {
	var users []string
	ncs := &infrav1.NestClusterList{}
	if err := r.APIReader.List(ctx, ncs); err != nil {
		return nil, fmt.Errorf("listing NestClusters: %w", err)
	}
	for _, nc := range ncs.Items {
		if listsInfra(&nc, name) {
			users = append(users, "NestCluster "+nc.Namespace+"/"+nc.Name)
		}
	}
	nms := &infrav1.NestMachineList{}
	if err := r.APIReader.List(ctx, nms); err != nil {
		return nil, fmt.Errorf("listing NestMachines: %w", err)
	}
	for _, nm := range nms.Items {
		if nm.Status.FailureDomain == name || (nm.Status.Remote != nil && nm.Status.Remote.InfraCluster == name) {
			users = append(users, "NestMachine "+nm.Namespace+"/"+nm.Name)
		}
	}
	return users, nil
}

// sweepAll removes what this management cluster made in an Infra cluster whose InfraCluster nothing
// uses any more, and reports how many of those objects are still there (being deleted). An object
// whose owner exists and uses the same Infra cluster through another InfraCluster stays.
func (sw *sweeper) sweepAll(ctx context.Context, conn *infra.Connection, ic *infrav1.InfraCluster) (int, error) {
	objs, err := sw.mine(ctx, conn)
	if err != nil {
		return 0, err
	}
	left := 0
	for _, o := range objs {
		_, isNamespace := o.(*corev1.Namespace)
		if !o.GetDeletionTimestamp().IsZero() {
			// A terminating namespace is the Infra cluster's namespace controller's to finish.
			if !isNamespace {
				left++
			}
			continue
		}
		unused, err := sw.unusedAfter(ctx, ic, o)
		if err != nil {
			return 0, err
		}
		if !unused {
			continue
		}
		removed, err := sw.remove(ctx, conn, o)
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("removing %s %s from Infra cluster %s: %w", kindOf(o), client.ObjectKeyFromObject(o), conn.Name, err)
		}
		if removed {
			ctrl.LoggerFrom(ctx).Info("Removed an object of a deleted InfraCluster", "object", kindOf(o)+" "+client.ObjectKeyFromObject(o).String())
		}
		if (removed || err == nil) && !isNamespace {
			left++
		}
		// A namespace that still holds what others made stays: it is theirs too.
	}
	return left, nil
}

// unusedAfter reports whether nothing but the deleted InfraCluster ic uses o: its owner, read live, is
// gone, or is a NestMachine of the same name that does not record it, or is a NestCluster that no
// longer lists ic (a Service only when it was ic's control-plane Service).
func (sw *sweeper) unusedAfter(ctx context.Context, ic *infrav1.InfraCluster, o client.Object) (bool, error) {
	owner, ok := ownership.OwnerOf(o)
	if !ok {
		return false, nil
	}
	if owner.Kind == ownership.KindNestMachine {
		nm := &infrav1.NestMachine{}
		exists, err := sw.exists(ctx, owner.Key(), nm, "")
		if err != nil || !exists {
			return !exists, err
		}
		return nm.UID != owner.UID && !ownership.RecordsIn(nm, ic.Name, o.GetNamespace()) && nm.Status.FailureDomain != ic.Name, nil
	}
	nc := &infrav1.NestCluster{}
	exists, err := sw.exists(ctx, owner.Key(), nc, "")
	if err != nil || !exists {
		return !exists, err
	}
	if _, isService := o.(*corev1.Service); isService {
		return nc.Spec.ControlPlaneService == nil || nc.Spec.ControlPlaneService.InfraCluster == ic.Name, nil
	}
	// The NestCluster may reach the same Infra cluster through another InfraCluster: its namespace
	// stays while any InfraCluster it lists would give it this name.
	for _, use := range nc.Spec.InfraClusters {
		other := &infrav1.InfraCluster{}
		if err := sw.live.Get(ctx, client.ObjectKey{Name: use.Name}, other); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return false, err
		}
		if ownership.TenantNamespace(other.Spec.TenantNamespacePrefix, nc.Namespace, clusterNameOf(nc)) == o.GetName() {
			return false, nil
		}
	}
	return true, nil
}
