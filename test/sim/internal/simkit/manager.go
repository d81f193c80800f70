// Package simkit is the plumbing the simulators share: controller-runtime managers (one per API server,
// unthrottled, without metrics or health endpoints, so that several simulators and other managers share
// a process), lean status writes, a clock for delays without sleeping, and address allocation.
package simkit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Scheme holds the kinds the simulators read and write: built-in kinds, KubeVirt, CDI and Metal3.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kubevirtv1.AddToScheme(s))
	utilruntime.Must(cdiv1beta1.AddToScheme(s))
	utilruntime.Must(bmov1alpha1.AddToScheme(s))
	return s
}

// NewManager returns a manager for cfg whose client is not rate-limited on the client side: the
// simulators stand in for cluster components that talk to their own API server, and a client-side
// limit of a few requests per second would make them the bottleneck of every benchmark. Managed fields
// are stripped from cached objects to keep large caches small.
func NewManager(cfg *rest.Config, cacheOpts cache.Options) (manager.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = -1
	cacheOpts.DefaultTransform = cache.TransformStripManagedFields()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  Scheme(),
		Cache:   cacheOpts,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Several simulators run in one process: controller names repeat.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// Simulated components stop with the test that runs them; waiting for in-flight work to finish
		// against an API server that is going away only delays that.
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("creating a simulator manager: %w", err)
	}
	return mgr, nil
}

// Queue is a controller's work queue, as event handlers see it.
type Queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// ControllerOptions are the options of every simulator controller: concurrency workers and a per-item
// exponential backoff without the default controller limiter's global 10 qps bucket, which would throttle
// retries of hundreds of objects at once.
func ControllerOptions(concurrency int) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: concurrency,
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 10*time.Second),
	}
}

// HasStatusSubresource reports whether the API server serves resource/status in groupVersion: the
// simulators then write status through it, and through the main resource otherwise (the KubeVirt CRDs
// generated for envtest have none, the real VirtualMachine CRD has one).
func HasStatusSubresource(cfg *rest.Config, groupVersion, resource string) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("creating a discovery client: %w", err)
	}
	list, err := dc.ServerResourcesForGroupVersion(groupVersion)
	if err != nil {
		return false, fmt.Errorf("discovering %s (are its CRDs installed?): %w", groupVersion, err)
	}
	found := false
	for _, r := range list.APIResources {
		switch r.Name {
		case resource + "/status":
			return true, nil
		case resource:
			found = true
		}
	}
	if !found {
		return false, fmt.Errorf("the API server does not serve %s in %s: install its CRD", resource, groupVersion)
	}
	return false, nil
}

// NamespacedCache is the cache option of a simulator restricted to namespaces; every namespace when
// there are none.
func NamespacedCache(namespaces []string) cache.Options {
	o := cache.Options{}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// Handle is a manager running in the background. A nil Handle is a simulator that was set up on a
// caller's manager: it has no Done channel and no error of its own.
type Handle struct {
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// Done is closed when the manager has stopped; nil for a nil Handle.
func (h *Handle) Done() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.done
}

// Err is the error the manager stopped with, nil while it runs or when it stopped because its context
// ended.
func (h *Handle) Err() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Start runs mgr until ctx ends and returns once the informers of warm have synced, so that a caller
// creating objects right after Start finds the simulator watching.
func Start(ctx context.Context, mgr manager.Manager, warm []client.Object) (*Handle, error) {
	for _, obj := range warm {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("preparing the informer of %T: %w", obj, err)
		}
	}
	h := &Handle{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		err := mgr.Start(ctx)
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}()
	synced := make(chan bool, 1)
	go func() { synced <- mgr.GetCache().WaitForCacheSync(ctx) }()
	select {
	case ok := <-synced:
		if !ok {
			return h, errors.New("the simulator's caches did not sync before its context ended")
		}
		return h, nil
	case <-h.done:
		return h, fmt.Errorf("the simulator's manager stopped while starting: %w", h.Err())
	}
}
