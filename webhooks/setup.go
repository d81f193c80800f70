package webhooks

import (
	"context"
	"crypto/tls"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// The webhooks read, through the manager's cache:
// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=infraclusters;nestclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=cluster.x-k8s.io,resources=clusters;machines,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers every webhook of the provider with the manager's webhook server, the
// cache index they read through, and the informers they need, so that the first admission after a
// start does not wait for a cache to fill.
func SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clusterv1.Machine{}, controlPlaneMachineClusterIndex, indexControlPlaneMachineByCluster); err != nil {
		return fmt.Errorf("indexing control-plane Machines by cluster: %w", err)
	}
	for _, obj := range []client.Object{&infrav1.InfraCluster{}, &infrav1.NestCluster{}, &clusterv1.Cluster{}, &corev1.Namespace{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("starting an informer for %T: %w", obj, err)
		}
	}

	reader := mgr.GetClient()
	for _, setup := range []func(ctrl.Manager) error{
		(&InfraCluster{Client: reader}).SetupWebhookWithManager,
		(&NestCluster{Client: reader}).SetupWebhookWithManager,
		(&NestClusterTemplate{Client: reader}).SetupWebhookWithManager,
		(&NestMachine{Client: reader}).SetupWebhookWithManager,
		(&NestMachineTemplate{Client: reader}).SetupWebhookWithManager,
		(&ControlPlaneSpread{Client: reader}).SetupWebhookWithManager,
	} {
		if err := setup(mgr); err != nil {
			return err
		}
	}
	return nil
}

// controlPlaneMachineClusterIndex indexes control-plane Machines by spec.clusterName, so the spread
// webhook lists one cluster's control plane without scanning every Machine of the namespace.
const controlPlaneMachineClusterIndex = "nest.webhooks/control-plane-machine-cluster"

func indexControlPlaneMachineByCluster(obj client.Object) []string {
	m, ok := obj.(*clusterv1.Machine)
	if !ok {
		return nil
	}
	if _, ok := m.Labels[clusterv1.MachineControlPlaneLabel]; !ok || m.Spec.ClusterName == "" {
		return nil
	}
	return []string{m.Spec.ClusterName}
}

// HTTP1Only makes a TLS server offer HTTP/1.1 only. The manager's webhook and metrics servers use it
// unless --enable-http2 is set, as kubebuilder scaffolds them: HTTP/2 adds the stream-reset attacks
// of CVE-2023-44487 and CVE-2023-39325, and an API server under load sends an HTTP/2 request's body
// after its headers, a wait that counts as the webhook's latency (docs/performance.md).
func HTTP1Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
