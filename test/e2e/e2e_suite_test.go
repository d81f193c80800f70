// Package e2e runs the provider end to end on one machine (test/sandbox): real API servers, real CAPI
// controllers (core, KubeadmControlPlane, kubeadm bootstrap), the provider's manager and webhooks, the
// real nest-scheduler and clusterctl, and simulated KubeVirt and Metal3 in three Infra clusters.
package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nestcapi/cluster-api-provider-nest/test/sandbox"
)

var (
	// sb is the sandbox every spec runs on.
	sb *sandbox.Sandbox
	// ha is the highly available tenant the ordered specs build, break and delete.
	ha *sandbox.Tenant
	// ocp is the OpenShift tenant (installer ignition, one master per Infra cluster) that lives
	// through the same loss and return of an Infra cluster, then is deleted before the move.
	ocp *sandbox.Tenant
)

// Timeouts of the steps, generous for a loaded two-core machine.
const (
	readyTimeout    = 4 * time.Minute
	recoveryTimeout = 6 * time.Minute
	poll            = 250 * time.Millisecond
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "end to end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// E2E_LOG=<file> keeps the controllers' and simulators' logs.
	log := logr.Discard()
	if path := os.Getenv("E2E_LOG"); path != "" {
		f, err := os.Create(path)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(f.Close)
		log = zap.New(zap.WriteTo(f), zap.UseDevMode(false))
	}
	ctrl.SetLogger(log)
	klog.SetLogger(log)

	dir, err := os.MkdirTemp("", "nest-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	sb, err = sandbox.Start(ctx, sandbox.Options{
		// Four: a single-Infra OpenShift tenant runs four control-plane VMs during installation (three
		// masters and the bootstrap machine), at most one per Infra node.
		NodesPerInfra: 4,
		HostsPerInfra: 3,
		BootDelay:     200 * time.Millisecond,
		Dir:           dir,
		Progress:      GinkgoWriter,
		Log:           log,
		Tenants: []sandbox.TenantOptions{{
			Name: "ha", Namespace: "tenants", Flavor: sandbox.FlavorHA, Workers: 3, HealthCheck: true,
		}, {
			Name: "ocp", Namespace: "tenants-ocp", Flavor: sandbox.FlavorOpenShiftHA, Workers: 3,
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(sb.Stop()).To(Succeed(), "stopping the sandbox") })
	ha, ocp = sb.Tenants()[0], sb.Tenants()[1]
	Expect(sb.WaitReady(ctx, ha, readyTimeout)).To(Succeed(), "the HA tenant comes up")
	Expect(sb.WaitReady(ctx, ocp, readyTimeout)).To(Succeed(), "the OpenShift tenant comes up")
}, NodeTimeout(10*time.Minute))

// ReportAfterEach prints where the machines are when a spec fails.
var _ = ReportAfterEach(func(report SpecReport) {
	if report.Failed() && sb != nil {
		fmt.Fprintln(GinkgoWriter, "machines when the spec failed:")
		_ = sb.PrintTable(GinkgoWriter)
	}
})
