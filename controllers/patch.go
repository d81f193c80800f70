package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// patcher writes back what a reconcile changed on an object whose status, conditions included,
// only its own controller writes (NestMachine, NestCluster): one merge patch for metadata and spec
// when they changed, then one status merge patch when the status changed, and nothing when neither
// did.
//
// It replaces CAPI's patch helper for those objects. The helper writes conditions apart from the
// rest of the status, under optimistic locking after reading the object again, so that controllers
// sharing an object's conditions do not overwrite each other; that is a GET and a second PATCH per
// reconcile, and a conflict loop whenever the read comes from a cache that has not seen the previous
// write yet. With one owner there is nothing to merge: the reconcile's conditions are the truth, and a
// merge patch replaces the list with them.
type patcher[T client.Object] struct {
	c      client.Client
	before T
}

func newPatcher[T client.Object](c client.Client, obj T) *patcher[T] {
	return &patcher[T]{c: c, before: obj.DeepCopyObject().(T)}
}

// Patch writes obj's changes since newPatcher. obj ends with the API server's copy of what was
// written last.
func (p *patcher[T]) Patch(ctx context.Context, obj T) error {
	mainChanged, statusChanged, err := changes(p.before, obj)
	if err != nil {
		return err
	}
	if mainChanged {
		// Patch a copy: the response carries the API server's status, which would overwrite the
		// status this reconcile computed.
		written := obj.DeepCopyObject().(T)
		if err := p.patchMain(ctx, obj, written); err != nil {
			return fmt.Errorf("patching %s: %w", klog.KObj(obj), err)
		}
		if !written.GetDeletionTimestamp().IsZero() && len(written.GetFinalizers()) == 0 {
			// The last finalizer went: the object is gone, and its status with it.
			return nil
		}
	}
	if statusChanged {
		if err := p.c.Status().Patch(ctx, obj, client.MergeFrom(p.before)); err != nil {
			return fmt.Errorf("patching the status of %s: %w", klog.KObj(obj), err)
		}
	}
	return nil
}

// AddFinalizer adds finalizer to obj and writes it at once, unless obj has it already. The changes
// of with, made to metadata or spec, go into the same write: one request instead of a second one
// from Patch. When obj has the finalizer already, with changes obj only, for Patch to write.
func (p *patcher[T]) AddFinalizer(ctx context.Context, obj T, finalizer string, with ...func(T)) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		for _, change := range with {
			change(obj)
		}
		return nil
	}
	written := p.before.DeepCopyObject().(T)
	controllerutil.AddFinalizer(written, finalizer)
	for _, change := range with {
		change(written)
	}
	if err := p.patchMain(ctx, obj, written); err != nil {
		return fmt.Errorf("adding finalizer %s to %s: %w", finalizer, klog.KObj(obj), err)
	}
	for _, o := range []T{p.before, obj} {
		controllerutil.AddFinalizer(o, finalizer)
		for _, change := range with {
			change(o)
		}
	}
	return nil
}

// patchMain writes written's metadata and spec as a merge patch from p.before, and gives p.before and
// obj the resourceVersion that write made: obj's is then the latest, and a status patch after it,
// computed from p.before, carries no resourceVersion (no optimistic lock).
func (p *patcher[T]) patchMain(ctx context.Context, obj, written T) error {
	if err := p.c.Patch(ctx, written, client.MergeFrom(p.before)); err != nil {
		return err
	}
	p.before.SetResourceVersion(written.GetResourceVersion())
	obj.SetResourceVersion(written.GetResourceVersion())
	return nil
}

// changes reports whether metadata or spec, and whether status, differ between before and after,
// leaving out what the API server sets.
func changes(before, after client.Object) (main, status bool, err error) {
	b, bStatus, err := split(before)
	if err != nil {
		return false, false, err
	}
	a, aStatus, err := split(after)
	if err != nil {
		return false, false, err
	}
	return !reflect.DeepEqual(b, a), !reflect.DeepEqual(bStatus, aStatus), nil
}

// split is obj as unstructured, without its status and what the API server sets (resourceVersion,
// generation, managedFields), and its status.
func split(obj client.Object) (rest map[string]any, status any, err error) {
	rest, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, nil, err
	}
	status = rest["status"]
	delete(rest, "status")
	if meta, ok := rest["metadata"].(map[string]any); ok {
		delete(meta, "resourceVersion")
		delete(meta, "generation")
		delete(meta, "managedFields")
	}
	return rest, status, nil
}

// setPaused sets the Paused condition of obj as CAPI defines it (the Cluster's spec.paused or the
// object's cluster.x-k8s.io/paused annotation) and reports whether reconciling stops there. The
// condition is written by the reconcile's patch, with the rest of the status.
func setPaused(scheme *runtime.Scheme, cluster *clusterv1.Cluster, obj interface {
	client.Object
	conditions.Setter
}) bool {
	var reasons []string
	if ptr.Deref(cluster.Spec.Paused, false) {
		reasons = append(reasons, "Cluster spec.paused is set to true")
	}
	if annotations.HasPaused(obj) {
		kind := "Object"
		if gvk, err := apiutil.GVKForObject(obj, scheme); err == nil {
			kind = gvk.Kind
		}
		reasons = append(reasons, kind+" has the cluster.x-k8s.io/paused annotation")
	}
	c := metav1.Condition{Type: clusterv1.PausedCondition, Status: metav1.ConditionFalse, Reason: clusterv1.NotPausedReason, ObservedGeneration: obj.GetGeneration()}
	if len(reasons) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, clusterv1.PausedReason, strings.Join(reasons, ", ")
	}
	conditions.Set(obj, c)
	return len(reasons) > 0
}

// notOwnWrite passes every event but the update that only carries what the object's own controller
// writes: its status, its finalizers, and the spec fields clearOwn clears. The reconcile that wrote
// those knew them already; waking it again would be a reconcile that finds nothing to do (and, while
// the cache is behind, one that works from the copy before its own write).
func notOwnWrite[T client.Object](clearOwn func(T)) predicate.TypedPredicate[client.Object] {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(T)
		updated, okNew := e.ObjectNew.(T)
		if !okOld || !okNew {
			return true
		}
		return othersChanged(old, updated, clearOwn)
	}}
}

// othersChanged reports whether new differs from old in anything but status, finalizers,
// what the API server sets and what clearOwn clears.
func othersChanged[T client.Object](old, updated T, clearOwn func(T)) bool {
	o, n := old.DeepCopyObject().(T), updated.DeepCopyObject().(T)
	for _, obj := range []T{o, n} {
		obj.SetFinalizers(nil)
		clearOwn(obj)
	}
	main, _, err := changes(o, n)
	return err != nil || main
}

// patchMetadata writes what change does to obj (its labels and annotations) and nothing else, as
// a merge patch carrying the resourceVersion obj was read at: a conflict means someone wrote it
// since, and the next reconcile decides again. It is how objects read from an Infra cluster's
// cache are stamped, adopted or handed over: the cache holds Secrets without their data
// (internal/infra stripCached), which an Update would write away. It reports whether change
// changed anything.
func patchMetadata(ctx context.Context, c client.Client, obj client.Object, change func() bool) (bool, error) {
	before := obj.DeepCopyObject().(client.Object)
	if !change() {
		return false, nil
	}
	return true, c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
