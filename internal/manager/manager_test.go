package manager_test

import (
	"context"
	"crypto/tls"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks"
)

var env *envtest.Environment

func TestMain(m *testing.M) {
	envtest.Main(m, envtest.Options{CRDs: envtest.Management}, &env)
}

// serves reports whether the manager's webhook server has a handler for path.
func serves(mgr ctrl.Manager, path string) bool {
	mux := mgr.GetWebhookServer().WebhookMux()
	if mux == nil {
		return false
	}
	_, pattern := mux.Handler(httptest.NewRequest("POST", path, nil))
	return pattern != ""
}

func newManager(t *testing.T, webhookPort int) ctrl.Manager {
	t.Helper()
	opts := manager.DefaultOptions()
	opts.Manager.DiagnosticsAddress = "0"
	opts.HealthAddr = "0"
	opts.WebhookPort = webhookPort
	opts.InProcessRestart = true
	mgr, err := manager.New(context.Background(), env.Config, envtest.Scheme(), opts)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return mgr
}

// TestTheManagerServesTheWebhooksWhenItHasAWebhookPort checks one path of every webhook
// SetupWithManager registers (webhooks/manifests_test.go ties them all to config/webhook).
func TestTheManagerServesTheWebhooksWhenItHasAWebhookPort(t *testing.T) {
	g := NewWithT(t)
	mgr := newManager(t, 9443)
	for _, path := range []string{
		webhooks.ControlPlaneSpreadDefaultPath,
		webhooks.ControlPlaneSpreadValidatePath,
		"/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachine",
		"/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestcluster",
		"/validate-infrastructure-cluster-x-k8s-io-v1alpha1-infracluster",
		"/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestclustertemplate",
		"/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachinetemplate",
	} {
		g.Expect(serves(mgr, path)).To(BeTrue(), "the manager serves %s", path)
	}
}

func TestWebhookPortZeroServesNoWebhook(t *testing.T) {
	NewWithT(t).Expect(serves(newManager(t, 0), webhooks.ControlPlaneSpreadValidatePath)).To(BeFalse())
}

// The webhook server offers HTTP/1.1 only unless --enable-http2 is set.
func TestTheWebhookServerSpeaksHTTP2OnlyWhenEnabled(t *testing.T) {
	for _, enable := range []bool{false, true} {
		opts := manager.DefaultOptions()
		opts.Manager.DiagnosticsAddress, opts.HealthAddr, opts.InProcessRestart = "0", "0", true
		opts.EnableHTTP2 = enable
		mgr, err := manager.New(context.Background(), env.Config, envtest.Scheme(), opts)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		server, ok := mgr.GetWebhookServer().(*webhook.DefaultServer)
		NewWithT(t).Expect(ok).To(BeTrue())
		cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
		for _, o := range server.Options.TLSOpts {
			o(cfg)
		}
		if enable {
			NewWithT(t).Expect(cfg.NextProtos).To(ContainElement("h2"), "--enable-http2")
		} else {
			NewWithT(t).Expect(cfg.NextProtos).To(Equal([]string{"http/1.1"}), "by default")
		}
	}
}
