package kubevirt

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// The simulator's garbage collector stands in for kube-controller-manager's, which envtest does not run,
// for the kinds around a VM:
//
//   - dependents: Secrets, DataVolumes, VirtualMachineInstances and Pods;
//   - owners: VirtualMachines, VirtualMachineInstances and DataVolumes.
//
// Like the real one, it deletes a dependent once all its owners are gone (checking a missing owner
// against the API server, not only the cache) and drops references to gone owners from dependents that
// keep a live one; it deletes dependents of an owner deleted with propagationPolicy Foreground and then
// removes the owner's foregroundDeletion finalizer; and for propagationPolicy Orphan it removes the owner
// references and then the orphan finalizer. Owner references to other kinds count as live owners.

// dependentKind is a kind the garbage collector deletes.
type dependentKind struct {
	kind      string
	newObject func() client.Object
	newList   func() client.ObjectList
}

func dependentKinds() []dependentKind {
	return []dependentKind{
		{"secret", func() client.Object { return secretMetadata() }, func() client.ObjectList {
			l := &metav1.PartialObjectMetadataList{}
			l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
			return l
		}},
		{"datavolume", func() client.Object { return &cdiv1beta1.DataVolume{} }, func() client.ObjectList { return &cdiv1beta1.DataVolumeList{} }},
		{"vmi", func() client.Object { return &kubevirtv1.VirtualMachineInstance{} }, func() client.ObjectList { return &kubevirtv1.VirtualMachineInstanceList{} }},
		{"pod", func() client.Object { return &corev1.Pod{} }, func() client.ObjectList { return &corev1.PodList{} }},
	}
}

// ownerKind is a kind whose dependents the garbage collector handles.
type ownerKind struct {
	kind      string
	gvk       schema.GroupVersionKind
	newObject func() client.Object
}

func ownerKinds() []ownerKind {
	return []ownerKind{
		{"vm", kubevirtv1.VirtualMachineGroupVersionKind, func() client.Object { return &kubevirtv1.VirtualMachine{} }},
		{"vmi", kubevirtv1.VirtualMachineInstanceGroupVersionKind, func() client.Object { return &kubevirtv1.VirtualMachineInstance{} }},
		{"datavolume", cdiv1beta1.SchemeGroupVersion.WithKind("DataVolume"), func() client.Object { return &cdiv1beta1.DataVolume{} }},
	}
}

func ownerKindOf(ref metav1.OwnerReference) (ownerKind, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ownerKind{}, false
	}
	for _, o := range ownerKinds() {
		if o.gvk.Group == gv.Group && o.gvk.Kind == ref.Kind {
			return o, true
		}
	}
	return ownerKind{}, false
}

func (s *Simulator) setupGarbageCollector(mgr manager.Manager) error {
	for _, d := range dependentKinds() {
		// A dependent's own updates matter only when they change its owners.
		b := ctrl.NewControllerManagedBy(mgr).Named("gc-"+d.kind).
			For(d.newObject(), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
				return !equality.Semantic.DeepEqual(e.ObjectOld.GetOwnerReferences(), e.ObjectNew.GetOwnerReferences())
			}}))
		for _, o := range ownerKinds() {
			b = b.Watches(o.newObject(), s.ownerToDependents(d))
		}
		if err := b.WithOptions(simkit.ControllerOptions(s.opts.Concurrency)).Complete(&gcDependent{s: s, kind: d}); err != nil {
			return err
		}
	}
	for _, o := range ownerKinds() {
		b := ctrl.NewControllerManagedBy(mgr).Named("gc-owner-"+o.kind).
			For(o.newObject(), builder.WithPredicates(predicate.NewPredicateFuncs(deletingWithGCFinalizer)))
		for _, d := range dependentKinds() {
			b = b.Watches(d.newObject(), dependentGoneToOwners(o))
		}
		if err := b.WithOptions(simkit.ControllerOptions(s.opts.Concurrency)).Complete(&gcOwner{s: s, kind: o}); err != nil {
			return err
		}
	}
	return nil
}

func deletingWithGCFinalizer(o client.Object) bool {
	return o.GetDeletionTimestamp() != nil &&
		(controllerutil.ContainsFinalizer(o, metav1.FinalizerDeleteDependents) || controllerutil.ContainsFinalizer(o, metav1.FinalizerOrphanDependents))
}

// ownerToDependents maps an owner that is gone, or deleted in the foreground, to its dependents of kind d.
func (s *Simulator) ownerToDependents(d dependentKind) handler.EventHandler {
	enqueue := func(ctx context.Context, owner client.Object, q simkit.Queue) {
		list := d.newList()
		if err := s.client.List(ctx, list, client.InNamespace(owner.GetNamespace()), client.MatchingFields{indexOwnerUID: string(owner.GetUID())}, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing dependents", "kind", d.kind)
			return
		}
		_ = metaEach(list, func(o metav1.Object) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
		})
	}
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q simkit.Queue) {
			if controllerutil.ContainsFinalizer(e.ObjectNew, metav1.FinalizerDeleteDependents) && e.ObjectNew.GetDeletionTimestamp() != nil {
				enqueue(ctx, e.ObjectNew, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q simkit.Queue) { enqueue(ctx, e.Object, q) },
	}
}

// dependentGoneToOwners maps the deletion of a dependent to its owners of kind o, which may be waiting
// for it to remove their foregroundDeletion finalizer.
func dependentGoneToOwners(o ownerKind) handler.EventHandler {
	return handler.Funcs{DeleteFunc: func(_ context.Context, e event.DeleteEvent, q simkit.Queue) {
		for _, ref := range e.Object.GetOwnerReferences() {
			if k, ok := ownerKindOf(ref); ok && k.kind == o.kind {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.GetNamespace(), Name: ref.Name}})
			}
		}
	}}
}

func metaEach(list client.ObjectList, fn func(metav1.Object)) error {
	switch l := list.(type) {
	case *metav1.PartialObjectMetadataList:
		for i := range l.Items {
			fn(&l.Items[i])
		}
	case *cdiv1beta1.DataVolumeList:
		for i := range l.Items {
			fn(&l.Items[i])
		}
	case *kubevirtv1.VirtualMachineInstanceList:
		for i := range l.Items {
			fn(&l.Items[i])
		}
	case *corev1.PodList:
		for i := range l.Items {
			fn(&l.Items[i])
		}
	default:
		return fmt.Errorf("unexpected list %T", list)
	}
	return nil
}

// ownerState is what the garbage collector knows of one owner reference.
type ownerState int

const (
	ownerAlive ownerState = iota
	ownerGone
	ownerDeletingForeground
)

// stateOf looks the owner up in the cache and, when the cache does not have it (yet), in the API server.
func (s *Simulator) stateOf(ctx context.Context, namespace string, ref metav1.OwnerReference, kind ownerKind) (ownerState, error) {
	owner := kind.newObject()
	err := s.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, owner, client.UnsafeDisableDeepCopy)
	if err != nil && !apierrors.IsNotFound(err) {
		return ownerAlive, err
	}
	if err != nil || owner.GetUID() != ref.UID {
		live := &metav1.PartialObjectMetadata{}
		live.SetGroupVersionKind(kind.gvk)
		err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, live)
		switch {
		case apierrors.IsNotFound(err):
			return ownerGone, nil
		case err != nil:
			return ownerAlive, err
		case live.UID != ref.UID:
			return ownerGone, nil
		}
		owner = live
	}
	if owner.GetDeletionTimestamp() != nil && controllerutil.ContainsFinalizer(owner, metav1.FinalizerDeleteDependents) {
		return ownerDeletingForeground, nil
	}
	return ownerAlive, nil
}

type gcDependent struct {
	s    *Simulator
	kind dependentKind
}

func (r *gcDependent) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	s := r.s
	obj := r.kind.newObject()
	if err := s.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	refs := obj.GetOwnerReferences()
	if obj.GetDeletionTimestamp() != nil || len(refs) == 0 {
		return reconcile.Result{}, nil
	}
	var gone []types.UID
	live, foreground := 0, false
	for _, ref := range refs {
		kind, ok := ownerKindOf(ref)
		if !ok {
			live++
			continue
		}
		state, err := s.stateOf(ctx, obj.GetNamespace(), ref, kind)
		if err != nil {
			return reconcile.Result{}, fmt.Errorf("looking up owner %s %s: %w", ref.Kind, ref.Name, err)
		}
		switch state {
		case ownerGone:
			gone = append(gone, ref.UID)
		case ownerDeletingForeground:
			foreground = true
			live++
		default:
			live++
		}
	}
	log := ctrl.LoggerFrom(ctx)
	switch {
	case foreground || (live == 0 && len(gone) > 0):
		log.V(1).Info("Garbage-collecting", "kind", r.kind.kind, "object", req.NamespacedName)
		uid := obj.GetUID()
		opts := []client.DeleteOption{client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground)}
		if r.kind.kind == "pod" {
			// No kubelet finishes a graceful pod deletion here.
			opts = append(opts, client.GracePeriodSeconds(0))
		}
		if err := s.client.Delete(ctx, obj, opts...); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return reconcile.Result{}, fmt.Errorf("garbage-collecting %s %s: %w", r.kind.kind, req.NamespacedName, err)
		}
	case len(gone) > 0:
		orig := obj.DeepCopyObject().(client.Object)
		obj.SetOwnerReferences(slices.DeleteFunc(refs, func(ref metav1.OwnerReference) bool { return slices.Contains(gone, ref.UID) }))
		if err := simkit.Patch(ctx, s.client, orig, obj, true); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("removing dangling owner references of %s %s: %w", r.kind.kind, req.NamespacedName, err)
		}
	}
	return reconcile.Result{}, nil
}

type gcOwner struct {
	s    *Simulator
	kind ownerKind
}

func (r *gcOwner) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	s := r.s
	owner := r.kind.newObject()
	if err := s.client.Get(ctx, req.NamespacedName, owner); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !deletingWithGCFinalizer(owner) {
		return reconcile.Result{}, nil
	}
	orphan := controllerutil.ContainsFinalizer(owner, metav1.FinalizerOrphanDependents)
	remaining := 0
	for _, d := range dependentKinds() {
		list := d.newList()
		if err := s.client.List(ctx, list, client.InNamespace(owner.GetNamespace()), client.MatchingFields{indexOwnerUID: string(owner.GetUID())}); err != nil {
			return reconcile.Result{}, err
		}
		var dependents []client.Object
		_ = metaEach(list, func(o metav1.Object) { dependents = append(dependents, o.(client.Object)) })
		for _, dep := range dependents {
			if !orphan {
				remaining++
				continue
			}
			orig := dep.DeepCopyObject().(client.Object)
			dep.SetOwnerReferences(slices.DeleteFunc(dep.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == owner.GetUID() }))
			if err := simkit.Patch(ctx, s.client, orig, dep, true); err != nil && !apierrors.IsNotFound(err) {
				return reconcile.Result{}, fmt.Errorf("orphaning %s %s: %w", d.kind, dep.GetName(), err)
			}
		}
	}
	if remaining > 0 {
		return reconcile.Result{}, nil
	}
	orig := owner.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(owner, metav1.FinalizerDeleteDependents)
	controllerutil.RemoveFinalizer(owner, metav1.FinalizerOrphanDependents)
	if err := simkit.Patch(ctx, s.client, orig, owner, true); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("removing the garbage collector's finalizer of %s %s: %w", r.kind.kind, req.NamespacedName, err)
	}
	return reconcile.Result{}, nil
}
