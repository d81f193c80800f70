package clusterctl_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// repository is a clusterctl local repository (<dir>/<provider-label>/<version>/) and a clusterctl
// configuration file whose providers point into it.
type repository struct {
	dir    string
	config string
}

// localRepository writes this provider's release (`hack/release-manifests.sh`, what `make
// release-manifests` does) into a local repository as infrastructure-nest/v0.1.0. With capi, it also
// holds CAPI's core, kubeadm bootstrap and kubeadm control-plane providers at the version of go.mod,
// built with kustomize from their config/ in the module cache as CAPI's release does, and the
// cert-manager stand-in of testdata/.
func localRepository(t *testing.T, capi bool) repository {
	t.Helper()
	dir := t.TempDir()
	nest := filepath.Join(dir, "infrastructure-nest", providerVersion)
	run(t, []string{"KUSTOMIZE=" + tool(t, "kustomize", "kustomize")},
		filepath.Join(envtest.RepoRoot(), "hack", "release-manifests.sh"), nest)

	var config strings.Builder
	config.WriteString("providers:\n")
	provider := func(name, kind, path string) {
		fmt.Fprintf(&config, "- name: %s\n  type: %s\n  url: file://%s\n", name, kind, path)
	}
	provider("nest", "InfrastructureProvider", filepath.Join(nest, "infrastructure-components.yaml"))
	if capi {
		capiDir := moduleDir(t, "sigs.k8s.io/cluster-api")
		capiVersion := moduleVersion(t, "sigs.k8s.io/cluster-api")
		for _, p := range []struct{ name, kind, label, config, file string }{
			{"cluster-api", "CoreProvider", "cluster-api", "core", "core-components.yaml"},
			{"kubeadm", "BootstrapProvider", "bootstrap-kubeadm", "bootstrap/kubeadm", "bootstrap-components.yaml"},
			{"kubeadm", "ControlPlaneProvider", "control-plane-kubeadm", "controlplane/kubeadm", "control-plane-components.yaml"},
		} {
			release := filepath.Join(dir, p.label, capiVersion)
			if err := os.MkdirAll(release, 0o755); err != nil {
				t.Fatal(err)
			}
			components := run(t, nil, tool(t, "kustomize", "kustomize"), "build", filepath.Join(capiDir, p.config, "config", "default"))
			write(t, filepath.Join(release, p.file), components)
			write(t, filepath.Join(release, "metadata.yaml"), read(t, filepath.Join(capiDir, "metadata.yaml")))
			provider(p.name, p.kind, filepath.Join(release, p.file))
		}
		certManager := filepath.Join(dir, "cert-manager", certManagerVersion, "cert-manager.yaml")
		if err := os.MkdirAll(filepath.Dir(certManager), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, certManager, read(t, filepath.Join("testdata", "cert-manager.yaml")))
		fmt.Fprintf(&config, "cert-manager:\n  url: file://%s\n  version: %s\n  timeout: 1m\n", certManager, certManagerVersion)
	}
	path := filepath.Join(dir, "clusterctl.yaml")
	write(t, path, []byte(config.String()))
	return repository{dir: dir, config: path}
}

// run runs a command in the repository root with env added and returns its stdout; a failure fails
// the test.
func run(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = envtest.RepoRoot()
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
