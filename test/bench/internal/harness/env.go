// Package harness sets up what the provider's scale benchmarks measure: a management and three Infra
// API servers (real kube-apiservers), fake Infra nodes and a KubeVirt simulator per Infra cluster, all
// in the benchmark's process, and the provider's manager binary as a separate process whose memory
// and metrics are then its own. It also creates tenants the way CAPI would, without CAPI's
// controllers.
package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	kvsim "github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// ProviderNamespace holds the InfraClusters' kubeconfig Secrets.
const ProviderNamespace = "nest-system"

// Options configure Start.
type Options struct {
	// ManagerBinary is the manager to run; relative paths are from the repository root.
	ManagerBinary string
	// ManagerArgs are added to the manager's command line.
	ManagerArgs []string
	// ManagerLog is where the manager's output goes; empty means a temporary file, kept only when the
	// run fails.
	ManagerLog string
	// NodesPerInfra is the number of fake nodes in each Infra cluster.
	NodesPerInfra int
	// Log receives progress lines.
	Log io.Writer
	// Tenant starts one more API server that plays every tenant cluster: CreateTenants gives each
	// tenant a kubeconfig Secret for it, as CAPI's control-plane providers do, so that the manager
	// reaches its tenants through CAPI's ClusterCache.
	Tenant bool
	// OnRunning, when set, is called by the KubeVirt simulators once a VMI runs (see
	// kvsim.Options.OnRunning), e.g. to register its tenant Node.
	OnRunning kvsim.VMIHook
}

// AddFlags registers the flags that choose and configure the manager, with o's values as defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ManagerBinary, "manager", o.ManagerBinary, "the manager binary (relative to the repository root unless absolute)")
	fs.Func("manager-args", `extra manager flags, space-separated, e.g. "--kube-api-qps=200 --kube-api-burst=400"`, func(s string) error {
		o.ManagerArgs = strings.Fields(s)
		return nil
	})
	fs.StringVar(&o.ManagerLog, "manager-log", o.ManagerLog, "write the manager's output to this file (default: a temporary file, kept only when the run fails)")
}

// Env is a running benchmark environment. Stop it.
type Env struct {
	// Topology is the management and the Infra API servers.
	Topology *envtest.Topology
	// Client reaches the management API server without client-side rate limits: the benchmarks
	// measure the manager, not their own throttling.
	Client client.Client
	// Config is Client's REST config.
	Config *rest.Config
	// Infras are the names of the InfraClusters, one per Infra API server, in Topology.Infras order.
	Infras []string
	// Manager is the provider's manager process.
	Manager *Manager
	// Tenant is the API server of every tenant cluster, with Options.Tenant.
	Tenant *envtest.Environment

	log        io.Writer
	tmpDir     string
	stopSims   context.CancelFunc
	sims       []*kvsim.Simulator
	stopOnce   sync.Once
	stopResult error
}

// Start brings the environment up: API servers, fake nodes and simulators, the manager, and three
// Ready InfraClusters. On error it stops what it started.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	// The simulators log through controller-runtime: errors only and without stack traces, so that
	// progress lines stay readable.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel), zap.StacktraceLevel(zapcore.PanicLevel)))
	e := &Env{log: o.Log}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Stop(err))
		}
	}()
	if e.tmpDir, err = os.MkdirTemp("", "nest-bench-"); err != nil {
		return nil, err
	}
	start := time.Now()
	if e.Topology, err = envtest.StartTopology(3, envtest.Options{CRDs: envtest.Management}); err != nil {
		return nil, err
	}
	if o.Tenant {
		if e.Tenant, err = envtest.Start(envtest.Options{}); err != nil {
			return nil, fmt.Errorf("starting the tenant API server: %w", err)
		}
	}
	e.Logf("API servers up in %s", time.Since(start).Round(time.Millisecond))
	e.Config = rest.CopyConfig(e.Topology.Management.Config)
	e.Config.QPS = -1
	if e.Client, err = client.New(e.Config, client.Options{Scheme: envtest.Scheme()}); err != nil {
		return nil, err
	}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ProviderNamespace}}); err != nil {
		return nil, err
	}

	// The simulators outlive ctx (a Ctrl-C): Stop ends them after the manager, which talks to the
	// Infra clusters until it has shut down.
	simCtx, stopSims := context.WithCancel(context.Background())
	e.stopSims = stopSims
	for i, infra := range e.Topology.Infras {
		if _, err := nodes.Create(ctx, infra.Client, nodes.Options{Prefix: fmt.Sprintf("infra%d-node", i), Count: o.NodesPerInfra, KubeVirt: true}); err != nil {
			return nil, err
		}
		// Zero boot delay: the benchmark measures the provider, not a simulated boot.
		sim, err := kvsim.Run(simCtx, infra.Config, kvsim.Options{ID: uint8(i + 1), SelfSchedule: true, OnRunning: o.OnRunning})
		if err != nil {
			return nil, fmt.Errorf("starting the KubeVirt simulator of Infra cluster %d: %w", i, err)
		}
		e.sims = append(e.sims, sim)
	}

	kubeconfig := filepath.Join(e.tmpDir, "management.kubeconfig")
	if err := os.WriteFile(kubeconfig, e.Topology.Management.KubeConfig, 0o600); err != nil {
		return nil, err
	}
	binary := o.ManagerBinary
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(envtest.RepoRoot(), binary)
	}
	logPath := o.ManagerLog
	if logPath == "" {
		logPath = filepath.Join(e.tmpDir, "manager.log")
	}
	if e.Manager, err = StartManager(ctx, binary, kubeconfig, logPath, o.ManagerArgs); err != nil {
		return nil, err
	}
	e.Logf("manager pid %d running (log %s)", e.Manager.Pid(), e.Manager.LogPath())

	if err := e.registerInfraClusters(ctx); err != nil {
		return nil, err
	}
	e.Logf("InfraClusters %v Ready", e.Infras)
	return e, nil
}

// registerInfraClusters creates an InfraCluster (default probe interval) and its kubeconfig Secret
// for each Infra API server, admitting every namespace, and waits until they are Ready.
func (e *Env) registerInfraClusters(ctx context.Context) error {
	for i, infra := range e.Topology.Infras {
		name := fmt.Sprintf("infra-%c", 'a'+i)
		if err := e.Client.Create(ctx, infra.KubeconfigSecret(ProviderNamespace, name+"-kubeconfig")); err != nil {
			return err
		}
		ic := &infrav1.InfraCluster{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: infrav1.InfraClusterSpec{
				KubeconfigSecretRef: &infrav1.SecretKeyReference{Name: name + "-kubeconfig"},
				AllowedNamespaces:   &infrav1.AllowedNamespaces{},
			},
		}
		if err := e.Client.Create(ctx, ic); err != nil {
			return err
		}
		e.Infras = append(e.Infras, name)
	}
	return e.Wait(ctx, "InfraClusters Ready", 2*time.Minute, func(ctx context.Context) (bool, error) {
		for _, name := range e.Infras {
			ic := &infrav1.InfraCluster{}
			if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, ic); err != nil {
				return false, err
			}
			if !conditions.IsTrue(ic, infrav1.ReadyCondition) {
				return false, nil
			}
		}
		return true, nil
	})
}

// ManagementHost is the host:port of the management API server, as client-go's metrics label it.
func (e *Env) ManagementHost() string {
	return hostOf(e.Topology.Management.Config)
}

// TenantHost is the host:port of the tenant API server (Options.Tenant), or "".
func (e *Env) TenantHost() string {
	if e.Tenant == nil {
		return ""
	}
	return hostOf(e.Tenant.Config)
}

func hostOf(cfg *rest.Config) string {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return cfg.Host
	}
	return u.Host
}

// Wait polls cond every 200 ms until it holds, fails, timeout passes or ctx ends; what names the
// wait in the error.
func (e *Env) Wait(ctx context.Context, what string, timeout time.Duration, cond wait.ConditionWithContextFunc) error {
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, cond); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// Logf writes a progress line, stamped with the time of day.
func (e *Env) Logf(format string, args ...any) {
	if e.log != nil {
		fmt.Fprintf(e.log, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
}

// Stop stops the manager, then the simulators, then the API servers, and removes the temporary
// directory unless the manager's log in it is worth keeping: when the benchmark failed (runErr) or
// stopping did. It is safe to call more than once.
func (e *Env) Stop(runErr error) error {
	e.stopOnce.Do(func() {
		var errs []error
		if e.Manager != nil {
			errs = append(errs, e.Manager.Stop())
		}
		if e.stopSims != nil {
			e.stopSims()
			for _, s := range e.sims {
				<-s.Done()
				errs = append(errs, s.Err())
			}
		}
		if e.Topology != nil {
			errs = append(errs, e.Topology.Stop())
		}
		if e.Tenant != nil {
			errs = append(errs, e.Tenant.Stop())
		}
		e.stopResult = errors.Join(errs...)
		if e.tmpDir == "" {
			return
		}
		if (runErr != nil || e.stopResult != nil) && e.Manager != nil {
			e.Logf("kept the manager's log: %s", e.Manager.LogPath())
			return
		}
		e.stopResult = errors.Join(e.stopResult, os.RemoveAll(e.tmpDir))
	})
	return e.stopResult
}
