package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	kvsim "github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

const providerNamespace = "nest-system"

// identity is the management cluster identity of the suite's manager.
const identity ownership.Identity = "mgmt-test"

var (
	topo *envtest.Topology
	mgmt client.Client
	// stopManager stops the running manager and waits for it; startManager starts a new one. Tests
	// that restart the manager use them; the others share the one TestMain starts.
	stopManager func()
)

// TestMain starts one management and three Infra API servers, a KubeVirt simulator with four fake
// nodes on each Infra cluster, and the provider's manager, shared by every test of the package.
func TestMain(m *testing.M) {
	// Everything in the process logs through this logger but the manager a test starts with its own:
	// the KubeVirt simulators (which place launcher pods themselves here) and the suite's manager. stderr gets
	// zapLevel(); suiteLogs gets every level while a test captures it (and costs nothing otherwise).
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel()),
		zap.RawZapOpts(uberzap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewTee(c, zapcore.NewCore(zapcore.NewJSONEncoder(uberzap.NewProductionEncoderConfig()), zapcore.AddSync(suiteLogs), suiteLogs))
		}))))
	var err error
	topo, err = envtest.StartTopology(3, envtest.Options{CRDs: envtest.Management})
	exitOn(err)
	mgmt = topo.Management.Client
	ctx, cancel := context.WithCancel(context.Background())
	exitOn(mgmt.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: providerNamespace}}))
	for i, infra := range topo.Infras {
		_, err := nodes.Create(ctx, infra.Client, nodes.Options{Prefix: fmt.Sprintf("infra%d-node", i), Count: 4, KubeVirt: true})
		exitOn(err)
		_, err = kvsim.Run(ctx, infra.Config, kvsim.Options{ID: uint8(i + 1), SelfSchedule: true})
		exitOn(err)
	}
	exitOn(startManager(ctx))

	code := m.Run()
	stopManager()
	cancel()
	if err := topo.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// startManager starts the provider's manager against the management API server.
func startManager(ctx context.Context) error {
	stop, err := startManagerOn(ctx, topo.Management.Config, identity)
	if err != nil {
		return err
	}
	stopManager = stop
	return nil
}

// startManagerOn starts a manager of the provider against the management API server at cfg, with the
// given management cluster identity, and returns how to stop it. mutate changes the suite's options
// (no metrics, health or webhook server) before the manager is built.
func startManagerOn(ctx context.Context, cfg *rest.Config, id ownership.Identity, mutate ...func(*manager.Options)) (stop func(), err error) {
	opts := manager.DefaultOptions()
	opts.Manager.DiagnosticsAddress = "0"
	opts.Manager.InsecureDiagnostics = true
	opts.HealthAddr = "0"
	opts.WebhookPort = 0
	opts.ProviderNamespace = providerNamespace
	opts.InProcessRestart = true
	opts.ManagementClusterID = string(id)
	for _, m := range mutate {
		m(&opts)
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	mgr, err := manager.New(mgrCtx, cfg, envtest.Scheme(), opts)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error)
	go func() { done <- mgr.Start(mgrCtx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}
