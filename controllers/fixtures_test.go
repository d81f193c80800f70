package controllers_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// zapLevel is error unless NEST_TEST_LOG=debug asks for the controllers' logs.
func zapLevel() zapcore.Level {
	if os.Getenv("NEST_TEST_LOG") == "debug" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

var seq atomic.Int64

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// registerInfraCluster stores env's kubeconfig in a Secret and registers an InfraCluster for it,
// probed every second so tests see loss and recovery quickly.
func registerInfraCluster(t *testing.T, name string, env *envtest.Environment, allowed *infrav1.AllowedNamespaces) *infrav1.InfraCluster {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(mgmt.Create(ctx, env.KubeconfigSecret(providerNamespace, name+"-kubeconfig"))).To(Succeed())
	ic := &infrav1.InfraCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: infrav1.InfraClusterSpec{
			KubeconfigSecretRef: &infrav1.SecretKeyReference{Name: name + "-kubeconfig"},
			AllowedNamespaces:   allowed,
			Probe:               &infrav1.ProbeSpec{IntervalSeconds: 1, TimeoutSeconds: 1},
		},
	}
	g.Expect(mgmt.Create(ctx, ic)).To(Succeed())
	return ic
}

// newTenant creates a CAPI Cluster and its NestCluster (owned by it, as CAPI's Cluster controller
// would make it) over the given Infra clusters, with a user-given endpoint.
func newTenant(t *testing.T, infras ...string) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	return newTenantWith(t, func(nc *infrav1.NestCluster) {
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443}
	}, infras...)
}

func newTenantWith(t *testing.T, mutate func(*infrav1.NestCluster), infras ...string) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	name := uniqueName("tenant")
	cluster := &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: name},
		},
	}
	g.Expect(mgmt.Create(ctx, cluster)).To(Succeed())
	nc := &infrav1.NestCluster{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name,
			Labels:          map[string]string{clusterv1.ClusterNameLabel: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Cluster", Name: name, UID: cluster.UID}},
		},
	}
	for _, i := range infras {
		nc.Spec.InfraClusters = append(nc.Spec.InfraClusters, infrav1.InfraClusterUse{Name: i})
	}
	mutate(nc)
	g.Expect(mgmt.Create(ctx, nc)).To(Succeed())
	return cluster, nc
}

func failureDomainNames(nc *infrav1.NestCluster) []string {
	names := []string{}
	for _, fd := range nc.Status.FailureDomains {
		if ptr.Deref(fd.ControlPlane, false) {
			names = append(names, fd.Name)
		}
	}
	return names
}

// tenantNamespace is the namespace of nc in an Infra cluster with the default prefix.
func tenantNamespace(nc *infrav1.NestCluster) string {
	return infra.TenantNamespace("nest-", nc.Namespace, nc.Labels[clusterv1.ClusterNameLabel])
}

func get(g Gomega, obj client.Object) client.Object {
	g.Expect(mgmt.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return obj
}
