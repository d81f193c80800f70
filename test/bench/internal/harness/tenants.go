package harness

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Parallel runs do(i) for i in [0, n) on workers goroutines and returns the first error; the others
// stop taking work once one fails.
func Parallel(ctx context.Context, n, workers int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// CreateNamespace creates a management namespace for tenants.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	return e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// CreateTenant creates a CAPI Cluster and its NestCluster over every Infra cluster, owned by the
// Cluster as CAPI's Cluster controller would make it, with a user-given control-plane endpoint (a
// control plane spread over several Infra clusters needs one).
func (e *Env) CreateTenant(ctx context.Context, namespace, name string) (*clusterv1.Cluster, error) {
	cluster := &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: name},
		},
	}
	if err := e.Client.Create(ctx, cluster); err != nil {
		return nil, fmt.Errorf("creating Cluster %s/%s: %w", namespace, name, err)
	}
	nc := &infrav1.NestCluster{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels:          map[string]string{clusterv1.ClusterNameLabel: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Cluster", Name: name, UID: cluster.UID}},
		},
		Spec: infrav1.NestClusterSpec{ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443}},
	}
	for _, infra := range e.Infras {
		nc.Spec.InfraClusters = append(nc.Spec.InfraClusters, infrav1.InfraClusterUse{Name: infra})
	}
	if err := e.Client.Create(ctx, nc); err != nil {
		return nil, fmt.Errorf("creating NestCluster %s/%s: %w", namespace, name, err)
	}
	return cluster, nil
}

// WaitTenantsProvisioned waits until n NestClusters of namespace are provisioned with a failure
// domain on every Infra cluster.
func (e *Env) WaitTenantsProvisioned(ctx context.Context, namespace string, n int, timeout time.Duration) error {
	return e.Wait(ctx, fmt.Sprintf("%d NestClusters provisioned over %d Infra clusters", n, len(e.Infras)), timeout, func(ctx context.Context) (bool, error) {
		list := &infrav1.NestClusterList{}
		if err := e.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		ready := 0
		for _, nc := range list.Items {
			if ptr.Deref(nc.Status.Initialization.Provisioned, false) && len(nc.Status.FailureDomains) == len(e.Infras) {
				ready++
			}
		}
		return ready == n, nil
	})
}

// MarkInfrastructureProvisioned does what CAPI's Cluster controller does once the NestCluster is
// provisioned; NestMachines wait for it.
func (e *Env) MarkInfrastructureProvisioned(ctx context.Context, cluster *clusterv1.Cluster) error {
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(cluster), cluster); err != nil {
		return err
	}
	cluster.Status.Initialization.InfrastructureProvisioned = ptr.To(true)
	if err := e.Client.Status().Update(ctx, cluster); err != nil {
		return fmt.Errorf("marking the infrastructure of Cluster %s/%s provisioned: %w", cluster.Namespace, cluster.Name, err)
	}
	return nil
}

// CreateMachine creates what CAPI would for one worker machine of cluster in failureDomain: the
// bootstrap Secret, the Machine, and the NestMachine it owns (a small VM booting a container disk).
// It returns the NestMachine as created.
func (e *Env) CreateMachine(ctx context.Context, cluster *clusterv1.Cluster, name, failureDomain string) (*infrav1.NestMachine, error) {
	labels := map[string]string{clusterv1.ClusterNameLabel: cluster.Name}
	bootstrap := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: name + "-bootstrap"},
		Data:       map[string][]byte{"value": []byte("#cloud-config\nhostname: " + name + "\n"), "format": []byte("cloud-config")},
	}
	if err := e.Client.Create(ctx, bootstrap); err != nil {
		return nil, fmt.Errorf("creating the bootstrap Secret of %s: %w", name, err)
	}
	machine := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: name, Labels: labels},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster.Name,
			FailureDomain:     failureDomain,
			Bootstrap:         clusterv1.Bootstrap{DataSecretName: ptr.To(bootstrap.Name)},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachine", Name: name},
		},
	}
	if err := e.Client.Create(ctx, machine); err != nil {
		return nil, fmt.Errorf("creating Machine %s: %w", name, err)
	}
	memory := resource.MustParse("1Gi")
	nm := &infrav1.NestMachine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: cluster.Namespace, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Machine", Name: name, UID: machine.UID}},
		},
		Spec: infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{
			CPU:       &infrav1.CPU{Cores: 1},
			Memory:    &memory,
			BootImage: infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/fedora:42"}},
		}},
	}
	if err := e.Client.Create(ctx, nm); err != nil {
		return nil, fmt.Errorf("creating NestMachine %s: %w", name, err)
	}
	return nm, nil
}

// NodesFor is how many fake nodes each of the three Infra clusters needs for n machines: room for
// every launcher pod (110 pods and 128Gi per fake node; a 1Gi VM asks ~1.2Gi) with slack, so that
// scheduling never waits for capacity.
func NodesFor(n int) int {
	return (n+2)/3/80 + 2
}

// CreateTenants creates the tenant clusters tenant-<first> … tenant-<first+n-1> in namespace (see
// CreateTenant), waits until their NestClusters are provisioned (and those of the first before
// them), gives each a kubeconfig Secret for the tenant API server (with Options.Tenant) and marks
// their infrastructure provisioned, as CAPI would: NestMachines of these clusters then start at once.
func (e *Env) CreateTenants(ctx context.Context, namespace string, first, n int) ([]*clusterv1.Cluster, error) {
	clusters := make([]*clusterv1.Cluster, n)
	if err := Parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		cluster, err := e.CreateTenant(ctx, namespace, fmt.Sprintf("tenant-%d", first+i))
		clusters[i] = cluster
		return err
	}); err != nil {
		return nil, err
	}
	if err := e.WaitTenantsProvisioned(ctx, namespace, first+n, 5*time.Minute); err != nil {
		return nil, err
	}
	for _, cluster := range clusters {
		if e.Tenant != nil {
			// Before the infrastructure is provisioned: that is when the ClusterCache connects.
			if err := e.Client.Create(ctx, e.Tenant.KubeconfigSecret(namespace, cluster.Name+"-kubeconfig")); err != nil {
				return nil, fmt.Errorf("creating the kubeconfig Secret of tenant %s: %w", cluster.Name, err)
			}
		}
		if err := e.MarkInfrastructureProvisioned(ctx, cluster); err != nil {
			return nil, err
		}
	}
	e.Logf("%d tenant clusters provisioned over %v", n, e.Infras)
	return clusters, nil
}
