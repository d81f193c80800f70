// Package webhooktest runs the provider's webhooks for real for tests and benchmarks: a test API
// server (envtest) with the webhook configurations of config/webhook installed, and a manager whose
// webhook server, with its cache, answers them.
package webhooktest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks"
)

// Environment is a test API server whose admission goes through the provider's webhook server.
type Environment struct {
	*envtest.Environment
	// Cache is the manager's cache: what the webhooks read. Tests wait for it to see their writes
	// before the next admission that depends on them.
	Cache cache.Cache
	// Manager runs the webhook server.
	Manager ctrl.Manager

	cancel context.CancelFunc
	done   chan struct{} // closed when the manager has stopped, with its error in err
	err    error
}

// ManifestsPath is the generated webhook configuration the environment installs.
func ManifestsPath() string {
	return filepath.Join(envtest.RepoRoot(), "config", "webhook", "manifests.yaml")
}

// Options configure Start.
type Options struct {
	// Observe, when set, is called after each request the webhook server answers, with the webhook's
	// path, the AdmissionReview it received, the time from the request reaching the server until the
	// response was written (took), and the part of it after the request body had arrived (handled).
	// Benchmarks use it.
	Observe func(path string, review []byte, took, handled time.Duration)
}

// Start starts the API server, installs the webhook configurations, starts a manager with every
// webhook of the provider on envtest's local serving address, and returns once the webhook server
// answers and the caches are synced.
func Start(opts Options) (*Environment, error) {
	ctrl.SetLogger(logr.Discard())
	env, err := envtest.Start(envtest.Options{
		CRDs:     envtest.Management,
		Webhooks: &crenvtest.WebhookInstallOptions{Paths: []string{ManifestsPath()}},
	})
	if err != nil {
		return nil, err
	}
	wh := env.Webhooks
	// As the manager serves them by default (--enable-http2=false).
	server := webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		TLSOpts: []func(*tls.Config){webhooks.HTTP1Only}})
	if opts.Observe != nil {
		server = observedServer{Server: server, observe: opts.Observe}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 envtest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          server,
		// As the provider's manager: Secrets and ConfigMaps are not cached.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating the manager: %w", err), env.Stop())
	}
	if err := webhooks.SetupWithManager(mgr); err != nil {
		return nil, errors.Join(fmt.Errorf("setting up the webhooks: %w", err), env.Stop())
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Environment{Environment: env, Cache: mgr.GetCache(), Manager: mgr, cancel: cancel, done: make(chan struct{})}
	go func() {
		e.err = mgr.Start(ctx)
		close(e.done)
	}()

	started := mgr.GetWebhookServer().StartedChecker()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case <-e.done:
			return false, fmt.Errorf("the manager stopped: %w", e.err)
		default:
		}
		return started(nil) == nil && mgr.GetCache().WaitForCacheSync(ctx), nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("waiting for the webhook server and the caches: %w", err), e.Stop())
	}
	return e, nil
}

// Stop stops the manager, then the API server.
func (e *Environment) Stop() error {
	e.cancel()
	var errs []error
	select {
	case <-e.done:
		errs = append(errs, e.err)
	case <-time.After(30 * time.Second):
		errs = append(errs, errors.New("the manager did not stop within 30s"))
	}
	return errors.Join(append(errs, e.Environment.Stop())...)
}

// observedServer times every request of the webhooks registered with it.
type observedServer struct {
	webhook.Server
	observe func(path string, review []byte, took, handled time.Duration)
}

// Register registers handler at path, timed from the moment the request reaches it until the
// response is written.
func (s observedServer) Register(path string, handler http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		review, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(review))
		received := time.Now()
		handler.ServeHTTP(w, r)
		s.observe(path, review, time.Since(start), time.Since(received))
	}))
}
