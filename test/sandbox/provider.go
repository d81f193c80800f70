package sandbox

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// ProviderNamespace is the provider's namespace in the management cluster: it holds the kubeconfig
// Secrets of the InfraClusters.
const ProviderNamespace = "nest-system"

// newProviderManager builds the provider's manager, as main.go does, with its webhooks served on the
// webhook server wh was installed for.
func newProviderManager(ctx context.Context, cfg *rest.Config, wh *crenvtest.WebhookInstallOptions, o Options) (ctrl.Manager, error) {
	opts := manager.DefaultOptions()
	opts.Manager.DiagnosticsAddress = "0"
	opts.Manager.InsecureDiagnostics = true
	opts.HealthAddr = "0"
	opts.WebhookPort = wh.LocalServingPort
	opts.WebhookCertDir = wh.LocalServingCertDir
	opts.ProviderNamespace = ProviderNamespace
	opts.InProcessRestart = true
	mgr, err := manager.New(ctrl.LoggerInto(ctx, o.Log.WithName("nest")), cfg, envtest.Scheme(), opts)
	if err != nil {
		return nil, fmt.Errorf("creating the provider's manager: %w", err)
	}
	return mgr, nil
}
