package controllers_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
)

// lockedBuffer is a bytes.Buffer that several goroutines write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureWriter keeps what is written to it between start and stop, and drops the rest: the suite
// logs through it at every level (TestMain), and a test that looks for something in the logs of the
// whole process captures them.
type captureWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *captureWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf != nil {
		w.buf.Write(p)
	}
	return len(p), nil
}

// Enabled makes the writer its own zap level: every level while capturing, none otherwise, so that
// the suite formats no debug line nobody keeps.
func (w *captureWriter) Enabled(zapcore.Level) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf != nil
}

func (w *captureWriter) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = &bytes.Buffer{}
}

func (w *captureWriter) stop() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.buf.String()
	w.buf = nil
	return out
}

// suiteLogs captures the logs of everything but a manager with a logger of its own.
var suiteLogs = &captureWriter{}

// Bootstrap data carries join tokens and certificates: the manager and the KubeVirt simulators,
// logging at the highest verbosity, never write any of it, nor do its events and conditions, while machines with
// distinctive bootstrap data are provisioned, fail to provision and are deleted.
func TestBootstrapDataIsNeverLoggedNorInEventsOrConditions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	logs := &lockedBuffer{}
	stopManager()
	stop, err := startManagerOn(ctx, topo.Management.Config, identity, func(o *manager.Options) {
		o.Logger = zap.New(zap.WriteTo(logs), zap.UseDevMode(false), zap.Level(zapcore.Level(-10)))
	})
	g.Expect(err).NotTo(HaveOccurred())
	stopManager = stop // the suite's manager from now on
	// And the simulators', at every level.
	suiteLogs.start()

	const secret = "nest-b00tstrap-t0ken-9f3c"
	cluster, _ := provisionedTenant(t)
	_, ok := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", spec: vmSpec(),
		data: []byte("#cloud-config\nwrite_files:\n- path: /etc/token\n  content: " + secret + "\n")})
	_, bad := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", format: "ignition", spec: vmSpec(),
		data: []byte(`{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative/` + secret + `"}]}}`)})
	waitProvisioned(t, ok)
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.GetReason(get(g, bad).(*infrav1.NestMachine), infrav1.VMProvisionedCondition)).To(Equal(infrav1.InvalidBootstrapDataReason))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	for _, nm := range []*infrav1.NestMachine{ok, bad} {
		g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	}
	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(ok), &infrav1.NestMachine{})) &&
			apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(bad), &infrav1.NestMachine{}))
	}, eventuallyTimeout, 200*time.Millisecond).Should(BeTrue())

	written := logs.String()
	g.Expect(written).To(ContainSubstring("Created the VirtualMachine"), "the capture holds the manager's logs")
	g.Expect(strings.Count(written, "\n")).To(BeNumerically(">", 20))
	g.Expect(written).NotTo(ContainSubstring(secret), "bootstrap data in the manager's logs")
	simulators := suiteLogs.stop()
	g.Expect(simulators).To(ContainSubstring(`"controller":"kubevirt-vmi"`), "the capture holds the KubeVirt simulators' logs")
	g.Expect(simulators).NotTo(ContainSubstring(secret), "bootstrap data in the simulators' logs")
	events := &corev1.EventList{}
	g.Expect(mgmt.List(ctx, events)).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Message).NotTo(ContainSubstring(secret), "bootstrap data in event %s", e.Name)
	}
	for _, nm := range []*infrav1.NestMachine{ok, bad} {
		for _, c := range nm.Status.Conditions {
			g.Expect(c.Message).NotTo(ContainSubstring(secret), "bootstrap data in condition %s of %s", c.Type, nm.Name)
		}
	}
}
