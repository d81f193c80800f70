// Package envtest starts real kube-apiservers (with etcd) for tests: a management cluster with this
// provider's and CAPI's CRDs, and Infra clusters with KubeVirt, CDI and Metal3 CRDs. The binaries are
// the ones `make envtest-assets` builds into bin/k8s from the Go module proxy.
package envtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nestcapi/cluster-api-provider-nest/internal/scheme"
)

// CRDSet selects groups of CRDs to install.
type CRDSet uint8

// The CRD groups a test API server can carry.
const (
	// CRDsNest are this provider's CRDs.
	CRDsNest CRDSet = 1 << iota
	// CRDsCAPI are CAPI core, KubeadmControlPlane and kubeadm bootstrap.
	CRDsCAPI
	// CRDsKubeVirt are KubeVirt and CDI, generated from their Go types.
	CRDsKubeVirt
	// CRDsMetal3 are the baremetal-operator's.
	CRDsMetal3

	// Management is what a management cluster serves.
	Management = CRDsNest | CRDsCAPI
	// Infra is what an Infra cluster serves.
	Infra = CRDsKubeVirt | CRDsMetal3
)

// Scheme is the manager's scheme plus CustomResourceDefinitions, which tests inspect.
func Scheme() *runtime.Scheme {
	s := scheme.New()
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}

// Options configure one test API server.
type Options struct {
	// CRDs to install.
	CRDs CRDSet
	// Webhooks to install and point at a webhook server the test runs (envtest's WebhookInstallOptions).
	Webhooks *crenvtest.WebhookInstallOptions
}

// Environment is one running API server.
type Environment struct {
	env     *crenvtest.Environment
	certDir string
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a cluster-admin client with Scheme().
	Client client.Client
	// KubeConfig is an admin kubeconfig for Config.
	KubeConfig []byte
	// Webhooks holds the webhook server's host, port and certificate directory when webhooks are installed.
	Webhooks *crenvtest.WebhookInstallOptions
	// killed is set while the API server is down by StopAPIServer.
	killed atomic.Bool
}

// AssetsDir is where the API server binaries are: $KUBEBUILDER_ASSETS, or bin/k8s of this repository.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("no %s in %s: run 'make envtest-assets' to build it from the Go module proxy", bin, dir)
		}
	}
	return dir, nil
}

// Start starts an API server with etcd and installs the CRDs and webhooks of opts.
func Start(opts Options) (*Environment, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	paths, err := crdPaths(opts.CRDs)
	if err != nil {
		return nil, err
	}
	scheme := Scheme()
	// An API server directory we own survives StopAPIServer, so a restarted server keeps its serving
	// certificate and client CA and old kubeconfigs keep working, as with a real cluster that returns.
	certDir, err := os.MkdirTemp("", "nest-envtest-apiserver-")
	if err != nil {
		return nil, fmt.Errorf("creating the API server's directory: %w", err)
	}
	env := &crenvtest.Environment{
		ControlPlane:             crenvtest.ControlPlane{APIServer: &crenvtest.APIServer{CertDir: certDir}},
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        paths,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  60 * time.Second,
	}
	if opts.Webhooks != nil {
		env.WebhookInstallOptions = *opts.Webhooks
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("starting a test API server: %w", err), env.Stop(), os.RemoveAll(certDir))
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating a client of the test API server: %w", err), env.Stop(), os.RemoveAll(certDir))
	}
	e := &Environment{env: env, certDir: certDir, Config: cfg, Client: c, KubeConfig: env.KubeConfig}
	if opts.Webhooks != nil {
		e.Webhooks = &env.WebhookInstallOptions
	}
	return e, nil
}

// Stop stops the API server and etcd and removes their data.
func (e *Environment) Stop() error {
	err := e.env.Stop()
	if e.killed.Load() {
		err = withoutGoneProcess(err)
	}
	return errors.Join(err, os.RemoveAll(e.certDir))
}

// withoutGoneProcess drops from envtest's stop errors those of signalling a process that is gone.
// envtest reaps an API server that StopAPIServer killed and records its exit a moment later: a
// Stop in that moment signals a process that no longer exists (ESRCH) and fails, although the
// process is gone, which is all Stop wants (seen once in a clean-clone e2e run).
func withoutGoneProcess(err error) error {
	return kerrors.FilterOut(err, func(err error) bool {
		return errors.Is(err, syscall.ESRCH) || errors.Is(err, os.ErrProcessDone)
	})
}

// StopAPIServer kills only the API server, keeping etcd and its data: the cluster becomes
// unreachable the way a lost Infra cluster does (a crash, not a graceful shutdown, which would also
// wait for every watch to drain). StartAPIServer brings it back at the same address.
func (e *Environment) StopAPIServer() error {
	pid, err := findProcess("kube-apiserver", "--cert-dir="+e.certDir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing the test API server (pid %d): %w", pid, err)
	}
	e.killed.Store(true)
	// envtest reaps its child; wait until it has, so the port is free for StartAPIServer.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the test API server (pid %d) did not exit after SIGKILL", pid)
}

// findProcess returns the pid of the process whose command line holds name and arg.
func findProcess(name, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], name) && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no running %s with %s", name, arg)
}

// StartAPIServer starts the API server stopped by StopAPIServer again.
func (e *Environment) StartAPIServer() error {
	if err := e.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("restarting the test API server: %w", err)
	}
	e.killed.Store(false)
	return nil
}
