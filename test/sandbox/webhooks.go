package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// webhookManifest is a file of webhook configurations and the prefix its configurations are
// renamed with: every provider names its own "mutating-webhook-configuration".
type webhookManifest struct{ prefix, path string }

// installWebhooks installs, in the management API server, the webhook configurations of manifests,
// pointed at one local webhook server with a fresh certificate.
func installWebhooks(cfg *rest.Config, manifests ...webhookManifest) (*crenvtest.WebhookInstallOptions, error) {
	wh := &crenvtest.WebhookInstallOptions{}
	for _, mf := range manifests {
		mutating, validating, err := readWebhookConfigurations(mf.path)
		if err != nil {
			return nil, err
		}
		for _, m := range mutating {
			m.Name = mf.prefix + m.Name
			wh.MutatingWebhooks = append(wh.MutatingWebhooks, m)
		}
		for _, v := range validating {
			v.Name = mf.prefix + v.Name
			wh.ValidatingWebhooks = append(wh.ValidatingWebhooks, v)
		}
	}
	if err := wh.Install(cfg); err != nil {
		return nil, errors.Join(fmt.Errorf("installing webhook configurations: %w", err), wh.Cleanup())
	}
	return wh, nil
}

// readWebhookConfigurations reads the webhook configurations of a manifests file.
func readWebhookConfigurations(path string) ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading webhook manifests: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var mutating []*admissionv1.MutatingWebhookConfiguration
	var validating []*admissionv1.ValidatingWebhookConfiguration
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return mutating, validating, nil
			}
			return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			m := &admissionv1.MutatingWebhookConfiguration{}
			if err := json.Unmarshal(doc, m); err != nil {
				return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
			}
			mutating = append(mutating, m)
		case "ValidatingWebhookConfiguration":
			v := &admissionv1.ValidatingWebhookConfiguration{}
			if err := json.Unmarshal(doc, v); err != nil {
				return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
			}
			validating = append(validating, v)
		}
	}
}

// capiWebhookManifests are the webhook configurations of CAPI core, KubeadmControlPlane and kubeadm
// bootstrap, from the module go.mod selects.
func capiWebhookManifests() ([]webhookManifest, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/cluster-api")
	cmd.Dir = envtest.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the sigs.k8s.io/cluster-api module: %w: %s", err, stderr.String())
	}
	dir := string(bytes.TrimSpace(out))
	if dir == "" {
		return nil, errors.New("sigs.k8s.io/cluster-api is not in the module cache: run 'go mod download'")
	}
	var manifests []webhookManifest
	for prefix, sub := range map[string]string{"capi-": "core", "capi-kubeadm-control-plane-": "controlplane/kubeadm", "capi-kubeadm-bootstrap-": "bootstrap/kubeadm"} {
		manifests = append(manifests, webhookManifest{prefix: prefix, path: filepath.Join(dir, sub, "config", "webhook", "manifests.yaml")})
	}
	return manifests, nil
}

// nestWebhookManifests is the provider's generated webhook configuration.
func nestWebhookManifests() webhookManifest {
	return webhookManifest{prefix: "nest-", path: filepath.Join(envtest.RepoRoot(), "config", "webhook", "manifests.yaml")}
}
