package webhooks_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks/webhooktest"
)

// The package's one API server with the webhook server behind it. It starts with the first test that
// needs it, so the fuzz targets (which run in worker processes) and the unit tests do not pay for it;
// TestMain stops it.
var (
	suiteOnce sync.Once
	suite     *webhooktest.Environment
	suiteErr  error
	// k8sClient is a cluster-admin client that records the API server's warnings per request.
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	code := m.Run()
	if suite != nil {
		if err := suite.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// env returns the running environment, starting it the first time.
func env(t testing.TB) *webhooktest.Environment {
	t.Helper()
	suiteOnce.Do(func() {
		suite, suiteErr = webhooktest.Start(webhooktest.Options{})
		if suiteErr != nil {
			return
		}
		cfg := rest.CopyConfig(suite.Config)
		cfg.WarningHandlerWithContext = warningRecorder{}
		k8sClient, suiteErr = client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	})
	if suiteErr != nil {
		t.Fatalf("starting the API server and the webhook server: %v", suiteErr)
	}
	return suite
}

type warningsKey struct{}

// warningRecorder appends the API server's warnings to the slice in the request's context.
type warningRecorder struct{}

func (warningRecorder) HandleWarningHeaderWithContext(ctx context.Context, _ int, _ string, text string) {
	if w, ok := ctx.Value(warningsKey{}).(*warnings); ok {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.texts = append(w.texts, text)
	}
}

type warnings struct {
	mu    sync.Mutex
	texts []string
}

// withWarnings returns a context whose requests record their warnings in the returned value.
func withWarnings(ctx context.Context) (context.Context, *warnings) {
	w := &warnings{}
	return context.WithValue(ctx, warningsKey{}, w), w
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.texts...)
}

var seq atomic.Int64

// uniqueName keeps tests independent on the shared API server.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// namespace creates a namespace with labels for one test.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	env(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("ns"), Labels: labels}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	waitCached(t, ns)
	return ns.Name
}

// waitCached waits until the webhooks' cache holds obj at least as new as the API server returned
// it: an admission that depends on obj must see it.
func waitCached(t *testing.T, obj client.Object) {
	t.Helper()
	want := obj.GetResourceVersion()
	NewWithT(t).Eventually(func() string {
		cached := obj.DeepCopyObject().(client.Object)
		if err := suite.Cache.Get(context.Background(), client.ObjectKeyFromObject(obj), cached); err != nil {
			return err.Error()
		}
		return cached.GetResourceVersion()
	}).WithTimeout(10*time.Second).WithPolling(10*time.Millisecond).Should(Equal(want),
		"the webhooks' cache should see %T %s before the next admission", obj, client.ObjectKeyFromObject(obj))
}

// waitGone waits until the webhooks' cache no longer holds obj.
func waitGone(t *testing.T, obj client.Object) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		cached := obj.DeepCopyObject().(client.Object)
		return apierrors.IsNotFound(suite.Cache.Get(context.Background(), client.ObjectKeyFromObject(obj), cached))
	}).WithTimeout(10*time.Second).WithPolling(10*time.Millisecond).Should(BeTrue(),
		"the webhooks' cache should see %T %s deleted before the next admission", obj, client.ObjectKeyFromObject(obj))
}

// expectInvalid checks err is an Invalid rejection whose message has every substring.
func expectInvalid(g Gomega, err error, substrings ...string) {
	g.ExpectWithOffset(1, err).To(HaveOccurred(), "want a rejection")
	g.ExpectWithOffset(1, apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid status, got %v", err)
	for _, s := range substrings {
		g.ExpectWithOffset(1, err.Error()).To(ContainSubstring(s))
	}
}
