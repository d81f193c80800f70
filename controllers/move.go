package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterctlv1 "sigs.k8s.io/cluster-api/cmd/clusterctl/api/v1alpha3"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// handOverRetry is how soon a hand-over that could not reach its Infra cluster is tried again.
const handOverRetry = 10 * time.Second

// movedAway reports whether clusterctl move is deleting obj from this management cluster because it
// was moved to another: clusterctl marks it with delete-for-move, deletes it and then removes its
// finalizers itself, without waiting for any controller.
func movedAway(obj client.Object) bool {
	_, ok := obj.GetAnnotations()[clusterctlv1.DeleteForMoveAnnotation]
	return ok
}

// handOvers keeps the last state of objects clusterctl move takes away, seen in their watch events:
// clusterctl removes their finalizers right after deleting them, so the object is usually gone by the
// time a reconcile runs. The reconcile hands over what the object made, from this copy. A restart
// loses the copies; then the sweeper's grace period and the target's adoption protect the objects.
type handOvers[T client.Object] struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]T
}

// capture is a predicate that passes every event and keeps a copy of objects moved away.
func (h *handOvers[T]) capture() predicate.Funcs {
	keep := func(obj client.Object) {
		o, ok := obj.(T)
		if !ok || !movedAway(o) {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.pending == nil {
			h.pending = map[types.NamespacedName]T{}
		}
		h.pending[client.ObjectKeyFromObject(o)] = o.DeepCopyObject().(T)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { keep(e.Object); return true },
		UpdateFunc:  func(e event.UpdateEvent) bool { keep(e.ObjectNew); return true },
		DeleteFunc:  func(e event.DeleteEvent) bool { keep(e.Object); return true },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

// take returns the kept copy of an object moved away, if any.
func (h *handOvers[T]) take(key types.NamespacedName) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.pending[key]
	return o, ok
}

// finish hands over what obj made with handOver, and forgets obj once that is done.
func (h *handOvers[T]) finish(ctx context.Context, obj T, handOver func(context.Context, T) (time.Duration, error)) (ctrl.Result, error) {
	retry, err := handOver(ctx, obj)
	if err != nil || retry > 0 {
		return ctrl.Result{RequeueAfter: retry}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, client.ObjectKeyFromObject(obj))
	return ctrl.Result{}, nil
}

// handOver lets go of what owner made in namespace of an Infra cluster: each object of owner that
// carries this management cluster's identity loses it and is marked handed over (ownership.HandOver),
// so that no sweeper here considers it again; the management cluster the owner moved to adopts it.
// Nothing is deleted and no spec changes.
func handOver(ctx context.Context, conn *infra.Connection, id ownership.Identity, owner ownership.Owner, namespace string, lists ...client.ObjectList) (int, error) {
	c := conn.Client()
	var errs []error
	handed := 0
	for _, l := range lists {
		opts := []client.ListOption{client.MatchingLabels{infrav1.ManagementClusterLabel: string(id)}}
		if namespace != "" {
			opts = append(opts, client.InNamespace(namespace))
		}
		if err := c.List(ctx, l, opts...); err != nil {
			errs = append(errs, fmt.Errorf("listing %T in Infra cluster %s: %w", l, conn.Name, err))
			continue
		}
		objs, err := objectsOf(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range objs {
			have, ok := ownership.OwnerOf(o)
			if !ok || !have.Same(owner) || (owner.UID != "" && have.UID != owner.UID) {
				continue
			}
			changed, err := patchMetadata(ctx, c, o, func() bool { return ownership.HandOver(o, id) })
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("handing over %s %s in Infra cluster %s: %w", kindOf(o), client.ObjectKeyFromObject(o), conn.Name, err))
				continue
			}
			if changed {
				handed++
			}
		}
	}
	return handed, errors.Join(errs...)
}

// handOverMachine hands over what a NestMachine moved away made: its VM or host and their Secrets.
// It returns how long to wait before trying again (its Infra cluster unreachable), or zero when done.
func (r *NestMachineReconciler) handOverMachine(ctx context.Context, nm *infrav1.NestMachine) (time.Duration, error) {
	remote := nm.Status.Remote
	if remote == nil {
		remote = remoteFromProviderID(nm)
	}
	if remote == nil {
		return 0, nil
	}
	conn, err := r.Registry.Get(remote.InfraCluster)
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("Waiting to hand over a moved machine's objects: its Infra cluster is unreachable", "infraCluster", remote.InfraCluster)
		return handOverRetry, nil
	}
	lists := []client.ObjectList{&corev1.SecretList{}}
	if conn.Serves(kubevirtv1.GroupVersion.Group) {
		lists = append(lists, &kubevirtv1.VirtualMachineList{})
	}
	if conn.Serves(bmov1alpha1.GroupVersion.Group) {
		lists = append(lists, &bmov1alpha1.BareMetalHostList{})
	}
	owner := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: nm.Namespace, Name: nm.Name, UID: nm.UID}
	n, err := handOver(ctx, conn, r.Identity, owner, remote.Namespace, lists...)
	if err != nil {
		return 0, err
	}
	ctrl.LoggerFrom(ctx).Info("NestMachine moved away by clusterctl move: handed over its objects", "infraCluster", remote.InfraCluster, "objects", n)
	r.Recorder.Eventf(nm, corev1.EventTypeNormal, infrav1.HandedOverReason,
		"Moved away by clusterctl move: %d objects in Infra cluster %s left running for the target management cluster", n, remote.InfraCluster)
	return 0, nil
}

// handOverCluster hands over what a NestCluster moved away made: its tenant namespaces and Services.
func (r *NestClusterReconciler) handOverCluster(ctx context.Context, nc *infrav1.NestCluster) (time.Duration, error) {
	owner := ownership.Cluster(nc)
	var retry time.Duration
	var errs []error
	for _, use := range nc.Spec.InfraClusters {
		conn, err := r.Registry.Get(use.Name)
		if err != nil {
			retry = handOverRetry
			continue
		}
		n, err := handOver(ctx, conn, r.Identity, owner, "", &corev1.NamespaceList{}, &corev1.ServiceList{})
		errs = append(errs, err)
		if n > 0 {
			ctrl.LoggerFrom(ctx).Info("NestCluster moved away by clusterctl move: handed over its objects", "infraCluster", use.Name, "objects", n)
		}
	}
	return retry, errors.Join(errs...)
}
