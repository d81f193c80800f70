package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// The tenant's namespace in an Infra cluster: made and adopted by the NestCluster controller, used by
// the NestMachine controller, deleted with the NestCluster once no machine object is left in it.

// ensureTenantNamespace creates the tenant's namespace in an Infra cluster when the cache does not
// have it. It is labelled so the cache (label-selected) sees it and events find the NestCluster. A
// namespace of the same name made by this provider for the NestCluster before identities existed, or
// handed over by the management cluster the tenant moved from, is adopted; one that belongs to
// another management cluster is refused.
func ensureTenantNamespace(ctx context.Context, conn *infra.Connection, id ownership.Identity, name string, cluster *clusterv1.Cluster, nc *infrav1.NestCluster) error {
	ns := &corev1.Namespace{}
	err := conn.Client().Get(ctx, client.ObjectKey{Name: name}, ns)
	if err == nil {
		if !ns.DeletionTimestamp.IsZero() {
			return fmt.Errorf("namespace %s in Infra cluster %s is being deleted; waiting for it to go before recreating it", name, conn.Name)
		}
		return adoptTenantObject(ctx, conn, id, nc, ns)
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading namespace %s in Infra cluster %s: %w", name, conn.Name, err)
	}
	ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: tenantLabels(id, cluster, nc), Annotations: ownership.Annotations(ownership.Cluster(nc))}}
	if err := conn.Client().Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s in Infra cluster %s: %w", name, conn.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Created the tenant namespace", "infraCluster", conn.Name, "namespace", name)
	return nil
}

// adoptTenantObject checks that a namespace or Service found under the NestCluster's name is the
// NestCluster's, and stamps it with this management cluster's identity when it was handed over or
// made before identities.
func adoptTenantObject(ctx context.Context, conn *infra.Connection, id ownership.Identity, nc *infrav1.NestCluster, obj client.Object) error {
	switch verdict, why := ownership.Claim(id, ownership.Cluster(nc), false, obj); verdict {
	case ownership.Ours:
		return nil
	case ownership.Adopt:
		if ownership.Stamp(obj, id, ownership.Cluster(nc)) {
			if err := conn.Client().Update(ctx, obj); err != nil {
				return fmt.Errorf("adopting %T %s in Infra cluster %s: %w", obj, client.ObjectKeyFromObject(obj), conn.Name, err)
			}
			ctrl.LoggerFrom(ctx).Info("Adopted an object of the NestCluster", "infraCluster", conn.Name, "object", client.ObjectKeyFromObject(obj).String(), "why", why)
		}
		return nil
	default:
		return fmt.Errorf("%T %s in Infra cluster %s is not this NestCluster's: %s", obj, client.ObjectKeyFromObject(obj), conn.Name, why)
	}
}

// clusterNameOf is the name of the NestCluster's Cluster: its cluster-name label, or its own name (as
// in clusterctl's templates, where both share it).
func clusterNameOf(nc *infrav1.NestCluster) string {
	if name := nc.Labels[clusterv1.ClusterNameLabel]; name != "" {
		return name
	}
	return nc.Name
}

// tenantLabels mark an object in an Infra cluster as belonging to a NestCluster.
func tenantLabels(id ownership.Identity, cluster *clusterv1.Cluster, nc *infrav1.NestCluster) map[string]string {
	l := ownership.Labels(id, ownership.Cluster(nc))
	l[clusterv1.ClusterNameLabel] = ownership.LabelValue(cluster.Name)
	return l
}

// deleteTenantObjects deletes the NestCluster's Services and, when no machine objects remain in it,
// the tenant namespace. It reports whether nothing is left to wait for. A namespace that is
// terminating counts as gone: the Infra cluster's namespace controller finishes it.
func deleteTenantObjects(ctx context.Context, conn *infra.Connection, id ownership.Identity, namespace string, cluster *clusterv1.Cluster, nc *infrav1.NestCluster) (bool, error) {
	c := conn.Client()
	owner := ownership.Cluster(nc)
	services := &corev1.ServiceList{}
	if err := c.List(ctx, services, client.InNamespace(namespace)); err != nil {
		return false, fmt.Errorf("listing Services in namespace %s of Infra cluster %s: %w", namespace, conn.Name, err)
	}
	for i := range services.Items {
		svc := &services.Items[i]
		if o, ok := ownership.OwnerOf(svc); !ok || !o.Same(owner) {
			continue
		}
		if verdict, _ := ownership.Claim(id, owner, false, svc); verdict == ownership.Ours || verdict == ownership.Adopt {
			if err := c.Delete(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("deleting Service %s in Infra cluster %s: %w", client.ObjectKeyFromObject(svc), conn.Name, err)
			}
		}
	}
	empty, err := tenantNamespaceEmpty(ctx, conn, namespace)
	if err != nil || !empty {
		return false, err
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	if verdict, why := ownership.Claim(id, owner, false, ns); verdict != ownership.Ours && verdict != ownership.Adopt {
		ctrl.LoggerFrom(ctx).Info("Leaving the namespace: it is not this NestCluster's", "infraCluster", conn.Name, "namespace", namespace, "why", why)
		return true, nil
	}
	if ns.DeletionTimestamp.IsZero() {
		if err := c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("deleting namespace %s in Infra cluster %s: %w", namespace, conn.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted the tenant namespace", "infraCluster", conn.Name, "namespace", namespace)
	}
	return true, nil
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
		if meta.LenList(l) > 0 {
			return false, nil
		}
	}
	return true, nil
}
