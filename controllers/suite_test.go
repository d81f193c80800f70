package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

const providerNamespace = "nest-system"

var (
	topo *envtest.Topology
	mgmt client.Client
)

// TestMain starts one management and three Infra API servers and the provider's manager, shared by
// every test of the package.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel())))
	var err error
	topo, err = envtest.StartTopology(3, envtest.Options{CRDs: envtest.Management})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mgmt = topo.Management.Client
	ctx, cancel := context.WithCancel(context.Background())
	if err := mgmt.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: providerNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts := manager.DefaultOptions()
	opts.Manager.DiagnosticsAddress = "0"
	opts.Manager.InsecureDiagnostics = true
	opts.HealthAddr = "0"
	opts.WebhookPort = 0
	opts.ProviderNamespace = providerNamespace
	mgr, err := manager.New(ctx, topo.Management.Config, envtest.Scheme(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	if err := topo.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
