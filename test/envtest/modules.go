package envtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// RepoRoot is the root of this repository, found from this source file so tests work from any package.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	moduleDirsMu sync.Mutex
	moduleDirs   = map[string]string{}
)

// moduleDir is the directory of a module in the module cache: the version go.mod selects, or version
// when given (for a module go.mod does not require, such as the root module of a Go API module).
func moduleDir(module, version string) (string, error) {
	key := module + "@" + version
	moduleDirsMu.Lock()
	defer moduleDirsMu.Unlock()
	if dir, ok := moduleDirs[key]; ok {
		return dir, nil
	}
	var cmd *exec.Cmd
	if version == "" {
		cmd = exec.Command("go", "list", "-m", "-json", module)
	} else {
		cmd = exec.Command("go", "mod", "download", "-json", key)
	}
	cmd.Dir = RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w: %s", key, err, stderr.String())
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("reading go's description of module %s: %w", key, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("module %s is not in the module cache: run 'go mod download'", key)
	}
	if version == "" {
		moduleDirs[module+"@"+m.Version] = m.Dir
	}
	moduleDirs[key] = m.Dir
	return m.Dir, nil
}

// moduleVersion is the version of a module that go.mod selects.
func moduleVersion(module string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("reading the version of %s from go.mod: %w", module, err)
	}
	return string(bytes.TrimSpace(out)), nil
}

// crdPaths lists the CRD directories a test API server loads.
func crdPaths(kinds CRDSet) ([]string, error) {
	var paths []string
	if kinds&CRDsNest != 0 {
		paths = append(paths, filepath.Join(RepoRoot(), "config", "crd", "bases"))
	}
	if kinds&CRDsCAPI != 0 {
		dir, err := moduleDir("sigs.k8s.io/cluster-api", "")
		if err != nil {
			return nil, err
		}
		for _, sub := range []string{"core", "controlplane/kubeadm", "bootstrap/kubeadm"} {
			paths = append(paths, filepath.Join(dir, sub, "config", "crd", "bases"))
		}
	}
	if kinds&CRDsKubeVirt != 0 {
		paths = append(paths, filepath.Join(RepoRoot(), "test", "crd", "kubevirt"))
	}
	if kinds&CRDsMetal3 != 0 {
		// The CRDs live in the operator's root module, released with the same version as its apis module.
		version, err := moduleVersion("github.com/metal3-io/baremetal-operator/apis")
		if err != nil {
			return nil, err
		}
		dir, err := moduleDir("github.com/metal3-io/baremetal-operator", version)
		if err != nil {
			return nil, err
		}
		paths = append(paths, filepath.Join(dir, "config", "base", "crds", "bases"))
	}
	return paths, nil
}
