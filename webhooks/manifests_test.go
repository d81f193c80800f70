package webhooks_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/nestcapi/cluster-api-provider-nest/webhooks/webhooktest"
)

// TestEveryGeneratedWebhookIsServed ties the generated configuration (config/webhook, from the
// kubebuilder markers) to the handlers SetupWithManager registers: a path in one and not the other
// would fail every request of that kind, since every webhook fails closed.
func TestEveryGeneratedWebhookIsServed(t *testing.T) {
	g := NewWithT(t)
	mux := env(t).Manager.GetWebhookServer().WebhookMux()
	raw, err := os.ReadFile(webhooktest.ManifestsPath())
	g.Expect(err).NotTo(HaveOccurred())
	var paths []string
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var cfg struct {
			Kind     string                                      `json:"kind"`
			Webhooks []admissionregistrationv1.ValidatingWebhook `json:"webhooks"`
		}
		g.Expect(yaml.Unmarshal(doc, &cfg)).To(Succeed())
		for _, wh := range cfg.Webhooks {
			g.Expect(wh.FailurePolicy).To(HaveValue(Equal(admissionregistrationv1.Fail)), "%s fails closed", wh.Name)
			g.Expect(wh.SideEffects).To(HaveValue(Equal(admissionregistrationv1.SideEffectClassNone)), "%s has no side effects, so dry runs reach it", wh.Name)
			paths = append(paths, *wh.ClientConfig.Service.Path)
		}
	}
	g.Expect(paths).To(HaveLen(12), "a mutating and a validating webhook for five kinds and for control-plane Machines")
	for _, p := range paths {
		_, pattern := mux.Handler(&http.Request{URL: &url.URL{Path: p}})
		g.Expect(pattern).To(Equal(p), "the webhook server serves %s", p)
	}
}
