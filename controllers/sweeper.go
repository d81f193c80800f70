package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
)

// maxOrphans bounds status.orphans (the CRD's maxItems).
const maxOrphans = 1024

// recordOrphan adds an object to the InfraCluster's status.orphans, under optimistic concurrency so
// two recorders never drop each other's entries.
func recordOrphan(ctx context.Context, c client.Client, ic *infrav1.InfraCluster, o infrav1.OrphanedObject) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		latest := &infrav1.InfraCluster{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ic), latest); err != nil {
			return err
		}
		if slices.ContainsFunc(latest.Status.Orphans, func(x infrav1.OrphanedObject) bool {
			return x.Kind == o.Kind && x.Namespace == o.Namespace && x.Name == o.Name
		}) || len(latest.Status.Orphans) >= maxOrphans {
			return nil
		}
		before := latest.DeepCopy()
		latest.Status.Orphans = append(latest.Status.Orphans, o)
		return c.Status().Patch(ctx, latest, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}

// tenantNamespaceEmpty reports whether no machine object of ours (VM, DataVolume, Secret) is left in
// the tenant namespace.
func tenantNamespaceEmpty(ctx context.Context, conn *infra.Connection, namespace string) (bool, error) {
	c := conn.Client()
	managed := client.MatchingLabels{infrav1.ManagedByLabel: infrav1.ManagedByValue}
	lists := []client.ObjectList{&corev1.SecretList{}}
	if conn.Serves(kubevirtv1.GroupVersion.Group) {
		lists = append(lists, &kubevirtv1.VirtualMachineList{})
	}
	if conn.Serves(cdiv1beta1.SchemeGroupVersion.Group) {
		lists = append(lists, &cdiv1beta1.DataVolumeList{})
	}
	for _, l := range lists {
		if err := c.List(ctx, l, client.InNamespace(namespace), managed); err != nil {
			return false, fmt.Errorf("listing %T in namespace %s of Infra cluster %s: %w", l, namespace, conn.Name, err)
		}
		if n, _ := itemCount(l); n > 0 {
			return false, nil
		}
	}
	return true, nil
}

func itemCount(l client.ObjectList) (int, error) {
	switch l := l.(type) {
	case *corev1.SecretList:
		return len(l.Items), nil
	case *kubevirtv1.VirtualMachineList:
		return len(l.Items), nil
	case *cdiv1beta1.DataVolumeList:
		return len(l.Items), nil
	}
	return 0, fmt.Errorf("unexpected list %T", l)
}

// sweep deletes, in a connected Infra cluster, every object carrying this provider's ownership
// labels whose owner in the management cluster is gone: VMs (their DataVolumes, instances and
// bootstrap Secrets go with them), stray Secrets, control-plane Services and, once empty, tenant
// namespaces; and it deprovisions and releases BareMetalHosts claimed by a NestMachine that is gone.
// It returns how many objects it deleted or released.
func sweep(ctx context.Context, mgmt client.Reader, conn *infra.Connection) (int, error) {
	c := conn.Client()
	managed := client.MatchingLabels{infrav1.ManagedByLabel: infrav1.ManagedByValue}
	var objs []client.Object
	var errs []error
	collect := func(l client.ObjectList, items func() []client.Object) {
		if err := c.List(ctx, l, managed); err != nil {
			errs = append(errs, fmt.Errorf("listing %T: %w", l, err))
			return
		}
		objs = append(objs, items()...)
	}
	if conn.Serves(kubevirtv1.GroupVersion.Group) {
		vms := &kubevirtv1.VirtualMachineList{}
		collect(vms, func() []client.Object { return ptrs(vms.Items) })
	}
	secrets := &corev1.SecretList{}
	collect(secrets, func() []client.Object { return ptrs(secrets.Items) })
	services := &corev1.ServiceList{}
	collect(services, func() []client.Object { return ptrs(services.Items) })

	deleted := 0
	if conn.Serves(bmov1alpha1.GroupVersion.Group) {
		released, err := releaseOrphanedHosts(ctx, mgmt, conn)
		deleted += released
		errs = append(errs, err)
	}
	for _, o := range objs {
		gone, err := ownerGone(ctx, mgmt, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !gone || !o.GetDeletionTimestamp().IsZero() {
			continue
		}
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting orphan %T %s: %w", o, client.ObjectKeyFromObject(o), err))
			continue
		}
		deleted++
		ctrl.LoggerFrom(ctx).Info("Swept an orphan", "infraCluster", conn.Name, "kind", fmt.Sprintf("%T", o), "object", client.ObjectKeyFromObject(o).String())
	}

	namespaces := &corev1.NamespaceList{}
	if err := c.List(ctx, namespaces, managed); err != nil {
		errs = append(errs, fmt.Errorf("listing tenant namespaces: %w", err))
	}
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		if !ns.DeletionTimestamp.IsZero() {
			continue
		}
		gone, err := ownerGone(ctx, mgmt, ns)
		if err != nil || !gone {
			errs = append(errs, err)
			continue
		}
		empty, err := tenantNamespaceEmpty(ctx, conn, ns.Name)
		if err != nil || !empty {
			errs = append(errs, err)
			continue
		}
		if err := c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting orphaned namespace %s: %w", ns.Name, err))
			continue
		}
		deleted++
		ctrl.LoggerFrom(ctx).Info("Swept an orphaned tenant namespace", "infraCluster", conn.Name, "namespace", ns.Name)
	}
	return deleted, errors.Join(errs...)
}

// ownerGone reports whether the NestMachine (by name and UID) or, for objects of a cluster, the
// NestCluster that an object's labels name no longer exists.
func ownerGone(ctx context.Context, mgmt client.Reader, o client.Object) (bool, error) {
	l := o.GetLabels()
	if name := l[infrav1.NestMachineNameLabel]; name != "" {
		nm := &infrav1.NestMachine{}
		err := mgmt.Get(ctx, client.ObjectKey{Namespace: l[infrav1.NestMachineNamespaceLabel], Name: name}, nm)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		uid := l[infrav1.NestMachineUIDLabel]
		return uid != "" && uid != string(nm.UID), nil
	}
	if name := l[infrav1.NestClusterNameLabel]; name != "" {
		err := mgmt.Get(ctx, client.ObjectKey{Namespace: l[infrav1.NestClusterNamespaceLabel], Name: name}, &infrav1.NestCluster{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

func ptrs[T any, PT interface {
	*T
	client.Object
}](items []T) []client.Object {
	out := make([]client.Object, 0, len(items))
	for i := range items {
		out = append(out, PT(&items[i]))
	}
	return out
}

// remainingOrphans keeps the recorded orphans that still exist in the Infra cluster (their owner may
// not be released yet); the next probe sweeps again while any remain.
func remainingOrphans(ctx context.Context, conn *infra.Connection, orphans []infrav1.OrphanedObject) []infrav1.OrphanedObject {
	var left []infrav1.OrphanedObject
	for _, o := range orphans {
		var obj client.Object
		switch o.Kind {
		case hostKind:
			// A host is never deleted: it is an orphan until it is released.
			if hostStillHeld(ctx, conn, o.Namespace, o.Name) {
				left = append(left, o)
			}
			continue
		case "VirtualMachine":
			obj = &kubevirtv1.VirtualMachine{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Secret":
			obj = &corev1.Secret{}
		case "Service":
			obj = &corev1.Service{}
		default:
			left = append(left, o)
			continue
		}
		key := client.ObjectKey{Namespace: o.Namespace, Name: o.Name}
		if o.Kind == "Namespace" {
			key.Namespace = ""
		}
		if err := conn.Client().Get(ctx, key, obj); err == nil && obj.GetDeletionTimestamp().IsZero() {
			left = append(left, o)
		}
	}
	return left
}
