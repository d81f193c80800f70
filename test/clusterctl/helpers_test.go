// Package clusterctl_test runs the real clusterctl (bin/clusterctl, built from the Go module proxy by
// `make clusterctl`) against this provider's release artifacts: the cluster templates and the
// ClusterClass, the components and metadata, and a clusterctl repository made of them.
package clusterctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "sigs.k8s.io/cluster-api/util/yaml"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// Versions the tests pin: the provider release the local repository serves, and the CAPI release of
// go.mod whose components the repository serves too.
const (
	providerVersion   = "v0.1.0"
	kubernetesVersion = "v1.34.1"
	// certManagerVersion is clusterctl v1.14's default cert-manager version: where it looks for it.
	certManagerVersion = "v1.21.1"
)

// tool is the path of a binary the Makefile builds into bin/; the test fails when it is missing.
func tool(t *testing.T, name, target string) string {
	t.Helper()
	path := filepath.Join(envtest.RepoRoot(), "bin", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no %s at %s: run 'make %s' to build it from the Go module proxy", name, path, target)
	}
	return path
}

// clusterctl runs bin/clusterctl with a private configuration directory, without the version check
// that would reach GitHub, and with env added to the environment. It returns stdout; a failure of the
// command fails the test with its stderr.
func clusterctl(t *testing.T, env map[string]string, args ...string) []byte {
	t.Helper()
	bin := tool(t, "clusterctl", "clusterctl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = envtest.RepoRoot()
	home := t.TempDir()
	// Hermetic: no kubeconfig, clusterctl configuration or template variables of the developer's.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "NEST_") || strings.HasPrefix(kv, "CLUSTERCTL_")
	})
	cmd.Env = append(cmd.Env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"CLUSTERCTL_DISABLE_VERSIONCHECK=true")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("clusterctl %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// objects parses a multi-document YAML stream.
func objects(t *testing.T, data []byte) []unstructured.Unstructured {
	t.Helper()
	objs, err := utilyaml.ToUnstructured(data)
	if err != nil {
		t.Fatalf("parsing YAML: %v", err)
	}
	return objs
}

// moduleDir is the directory of a module of go.mod in the module cache.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	dir, err := goModuleDir(module)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func goModuleDir(module string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-json", module)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("module %s is not in the module cache (%v): run 'go mod download'", module, err)
	}
	return m.Dir, nil
}

// moduleVersion is the version of a module go.mod selects.
func moduleVersion(t *testing.T, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reading the version of %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}

// flavors maps each flavor name ("" for the default) to its template file under templates/.
func flavors(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(envtest.RepoRoot(), "templates", "cluster-template*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cluster templates in templates/ (%v)", err)
	}
	out := map[string]string{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "cluster-template"), ".yaml")
		out[strings.TrimPrefix(name, "-")] = f
	}
	return out
}
