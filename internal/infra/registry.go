package infra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// ErrNotConnected is returned for an Infra cluster whose connection is not up: it is unknown,
// unreachable, or its probe has not succeeded yet.
var ErrNotConnected = errors.New("infra cluster is not connected")

// Options configure a Registry.
type Options struct {
	// Scheme knows the remote kinds (KubeVirt, CDI, Metal3, core).
	Scheme *runtime.Scheme
	// QPS and Burst limit the client of each Infra cluster.
	QPS   float32
	Burst int
	// CacheSyncTimeout bounds the wait for a new cache's first list.
	CacheSyncTimeout time.Duration
}

// Watch maps events of one remote kind to reconcile requests.
type Watch struct {
	// Object is the kind, e.g. &kubevirtv1.VirtualMachine{}.
	Object client.Object
	// Map returns the requests an event on obj in Infra cluster infra should enqueue; ctx lives as
	// long as the Infra cluster's cache.
	Map func(ctx context.Context, infra string, obj client.Object) []reconcile.Request
}

type registeredWatch struct {
	Watch
	events chan event.TypedGenericEvent[remoteEvent]
}

// RemotePriority is the work-queue priority of a request enqueued by a change in an Infra cluster.
// It is above the default priority (0) of events in the management cluster: such a change is
// progress of work already under way (a VM started, a host provisioned, a VM gone), and reporting it
// is cheap and unblocks CAPI, so it goes before the next machine is created. An Infra cluster cache's
// first list enqueues at controller-runtime's handler.LowPriority instead, like its own handlers do.
const RemotePriority = 10

// remoteEvent is a request with the priority it is enqueued with.
type remoteEvent struct {
	req      reconcile.Request
	priority int
}

// Registry holds the connections to every Infra cluster. It is a manager Runnable: caches live as
// long as the manager.
type Registry struct {
	opts Options

	mu      sync.RWMutex
	conns   map[string]*Connection
	watches []*registeredWatch

	started chan struct{}
	ctx     context.Context
}

// NewRegistry returns an empty registry. Add it to the manager (mgr.Add) before starting it.
func NewRegistry(opts Options) *Registry {
	if opts.CacheSyncTimeout == 0 {
		opts.CacheSyncTimeout = 30 * time.Second
	}
	return &Registry{opts: opts, conns: map[string]*Connection{}, started: make(chan struct{})}
}

// Start records the manager's context for the caches and, when the manager stops, stops them all.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	close(r.started)
	<-ctx.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.disconnect()
	}
	return nil
}

// Source returns a controller-runtime source that enqueues the requests the watches map remote
// events to, from every Infra cluster, now and after any reconnect. Call it before the manager starts.
func (r *Registry) Source(watches ...Watch) source.TypedSource[reconcile.Request] {
	events := make(chan event.TypedGenericEvent[remoteEvent], 1024)
	r.mu.Lock()
	for _, w := range watches {
		r.watches = append(r.watches, &registeredWatch{Watch: w, events: events})
	}
	r.mu.Unlock()
	return source.TypedChannel[remoteEvent, reconcile.Request](events, handler.TypedFuncs[remoteEvent, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[remoteEvent], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
				pq.AddWithOpts(priorityqueue.AddOpts{Priority: &e.Object.priority}, e.Object.req)
				return
			}
			q.Add(e.Object.req)
		},
	})
}

// Get returns the connection of an Infra cluster if it is connected, else ErrNotConnected. It never
// waits for a connection that is connecting.
func (r *Registry) Get(name string) (*Connection, error) {
	r.mu.RLock()
	c, ok := r.conns[name]
	r.mu.RUnlock()
	if !ok || !c.Connected() {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, name)
	}
	return c, nil
}

// Ensure makes sure a connection for the Infra cluster exists with this REST config. identity names
// the config's source (the kubeconfig Secret's UID and resourceVersion, or "management"): a different
// identity replaces the connection, which is how a rotated kubeconfig takes effect without a restart.
func (r *Registry) Ensure(name string, cfg *rest.Config, identity string) (*Connection, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[name]; ok {
		if c.identity == identity {
			return c, nil
		}
		c.disconnect()
		delete(r.conns, name)
	}
	c, err := newConnection(name, cfg, identity, r.opts)
	if err != nil {
		return nil, err
	}
	r.conns[name] = c
	return c, nil
}

// Lookup returns the connection of an Infra cluster, connected or not.
func (r *Registry) Lookup(name string) (*Connection, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.conns[name]
	return c, ok
}

// Connect starts the connection's cache for the API groups the Infra cluster serves and waits for
// its first sync. A connected connection is left alone.
func (r *Registry) Connect(ctx context.Context, c *Connection, groups sets.Set[string]) error {
	select {
	case <-r.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.RLock()
	parent, watches := r.ctx, r.watches
	r.mu.RUnlock()
	return c.connect(ctx, parent, groups, watches, r.opts.CacheSyncTimeout)
}

// Disconnect stops the connection's cache: reads fail with ErrNotConnected until Connect.
func (r *Registry) Disconnect(name string) {
	r.mu.RLock()
	c, ok := r.conns[name]
	r.mu.RUnlock()
	if ok {
		c.disconnect()
	}
}

// Remove stops and forgets the connection of a deleted InfraCluster.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[name]; ok {
		c.disconnect()
		delete(r.conns, name)
	}
	Reachable.DeleteLabelValues(name)
}

// Connection is the link to one Infra cluster.
type Connection struct {
	// Name of the InfraCluster.
	Name string

	identity    string
	config      *rest.Config
	probeConfig *rest.Config
	httpClient  *http.Client
	mapper      meta.RESTMapper
	scheme      *runtime.Scheme
	// Uncached reads and writes straight to the Infra cluster, for the rare read the cache does not hold.
	Uncached client.Client

	// connecting serializes connects; mu guards the fields below and is never held while waiting on
	// the Infra cluster, so that readers of a slow or hung Infra cluster's connection do not wait.
	connecting sync.Mutex
	mu         sync.RWMutex
	connected  bool
	// epoch counts disconnects: a connect that a disconnect overtook throws its cache away.
	epoch  int
	groups sets.Set[string]
	cache  cache.Cache
	client client.Client
	cancel context.CancelFunc
	// refusals are the list and watch refusals of the running cache's informers.
	refusals *refusals
}

// refusals records what an Infra cluster refused the informers of one cache: the first refusal ends
// the wait for its sync at once (it would only time out), the last one is Connection.Forbidden.
type refusals struct {
	first chan error
	mu    sync.Mutex
	last  error
}

func newRefusals() *refusals { return &refusals{first: make(chan error, 1)} }

// handler is the cache's watch error handler: it records refusals and leaves the rest, and the
// logging, to client-go's default handler.
func (f *refusals) handler(infra string) toolscache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, r *toolscache.Reflector, err error) {
		if apierrors.IsForbidden(err) {
			err = Forbidden(infra, "list", "", err)
			select {
			case f.first <- err:
			default:
			}
			f.mu.Lock()
			f.last = err
			f.mu.Unlock()
		}
		toolscache.DefaultWatchErrorHandler(ctx, r, err)
	}
}

// Forbidden is the last list or watch of the connected cache that the Infra cluster refused (a
// *ForbiddenError), or nil. A refused informer never fills, or stops following, its kind: the
// connection is not usable until the grant is fixed and the cache rebuilt.
func (c *Connection) Forbidden() error {
	c.mu.RLock()
	f := c.refusals
	c.mu.RUnlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func newConnection(name string, cfg *rest.Config, identity string, opts Options) (*Connection, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	cfg.UserAgent = "cluster-api-provider-nest/" + name
	probeCfg := rest.CopyConfig(cfg)
	cfg.Wrap(countRequests(name, PurposeClient))
	probeCfg.Wrap(countRequests(name, PurposeProbe))

	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the HTTP client of Infra cluster %s: %w", name, err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("building the REST mapper of Infra cluster %s: %w", name, err)
	}
	uncached, err := client.New(cfg, client.Options{Scheme: opts.Scheme, HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("building the client of Infra cluster %s: %w", name, err)
	}
	return &Connection{
		Name: name, identity: identity, config: cfg, probeConfig: probeCfg, httpClient: httpClient,
		mapper: mapper, scheme: opts.Scheme, Uncached: forbiddenNamed(name, uncached),
	}, nil
}

// Identity names the source of the connection's REST config (see Registry.Ensure).
func (c *Connection) Identity() string { return c.identity }

// Connected reports whether the cache is running.
func (c *Connection) Connected() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.connected
}

// Client reads from the Infra cluster's cache and writes straight to its API server.
func (c *Connection) Client() client.Client {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.client
}

// Serves reports whether the Infra cluster serves an API group, as of the last full probe.
func (c *Connection) Serves(group string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.groups.Has(group)
}

// cachedKind is a remote kind held in the cache, when its API group is served.
type cachedKind struct {
	object client.Object
	group  string
	// managedOnly restricts the informer to objects carrying this provider's managed-by label.
	managedOnly bool
}

// cachedKinds are what the controllers read and watch in an Infra cluster. BareMetalHosts are all
// cached: free hosts carry no label of ours. Nodes feed the capacity summary.
var cachedKinds = []cachedKind{
	{&kubevirtv1.VirtualMachine{}, kubevirtv1.GroupVersion.Group, true},
	{&kubevirtv1.VirtualMachineInstance{}, kubevirtv1.GroupVersion.Group, true},
	{&cdiv1beta1.DataVolume{}, cdiv1beta1.SchemeGroupVersion.Group, true},
	{&bmov1alpha1.BareMetalHost{}, bmov1alpha1.GroupVersion.Group, false},
	{&corev1.Namespace{}, "", true},
	{&corev1.Service{}, "", true},
	{&corev1.Secret{}, "", true},
	{&corev1.Node{}, "", false},
}

func (c *Connection) connect(ctx, parent context.Context, groups sets.Set[string], watches []*registeredWatch, syncTimeout time.Duration) error {
	c.connecting.Lock()
	defer c.connecting.Unlock()
	c.mu.RLock()
	connected, epoch := c.connected, c.epoch
	c.mu.RUnlock()
	if connected {
		return nil
	}
	var kinds []cachedKind
	for _, k := range cachedKinds {
		if groups.Has(k.group) || k.group == "" {
			kinds = append(kinds, k)
		}
	}
	// The checks and the first list share one bound: an Infra cluster that hangs is given up on.
	syncCtx, syncCancel := context.WithTimeout(ctx, syncTimeout)
	defer syncCancel()
	if err := c.checkCacheGrants(syncCtx, kinds); err != nil {
		return err
	}
	managed := labels.SelectorFromSet(labels.Set{infrav1.ManagedByLabel: infrav1.ManagedByValue})
	byObject := map[client.Object]cache.ByObject{}
	for _, k := range cachedKinds {
		if k.managedOnly {
			byObject[k.object] = cache.ByObject{Label: managed}
		}
	}
	refused := newRefusals()
	remoteCache, err := cache.New(c.config, cache.Options{
		HTTPClient:                  c.httpClient,
		Scheme:                      c.scheme,
		Mapper:                      c.mapper,
		ByObject:                    byObject,
		DefaultTransform:            stripCached,
		DefaultWatchErrorHandler:    refused.handler(c.Name),
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return fmt.Errorf("building the cache of Infra cluster %s: %w", c.Name, err)
	}
	cacheCtx, cancel := context.WithCancel(parent)
	for _, k := range kinds {
		inf, err := remoteCache.GetInformer(cacheCtx, k.object)
		if err != nil {
			cancel()
			return fmt.Errorf("watching %T in Infra cluster %s: %w", k.object, c.Name, err)
		}
		for _, w := range watches {
			if sameKind(w.Object, k.object) {
				if _, err := inf.AddEventHandler(eventForwarder(cacheCtx, c.Name, w)); err != nil {
					cancel()
					return fmt.Errorf("adding an event handler for %T in Infra cluster %s: %w", k.object, c.Name, err)
				}
			}
		}
	}
	go func() {
		if err := remoteCache.Start(cacheCtx); err != nil {
			ctrl.LoggerFrom(parent).Error(err, "Cache of Infra cluster stopped", "infraCluster", c.Name)
		}
	}()
	synced := make(chan bool, 1)
	go func() { synced <- remoteCache.WaitForCacheSync(syncCtx) }()
	select {
	case ok := <-synced:
		if !ok {
			cancel()
			return fmt.Errorf("the cache of Infra cluster %s did not sync within %s", c.Name, syncTimeout)
		}
	case err := <-refused.first:
		// A refused list is retried forever and never syncs: say what to grant now.
		cancel()
		return err
	}
	cl, err := client.New(c.config, client.Options{
		Scheme: c.scheme, HTTPClient: c.httpClient, Mapper: c.mapper,
		Cache: &client.CacheOptions{Reader: remoteCache},
	})
	if err != nil {
		cancel()
		return fmt.Errorf("building the cached client of Infra cluster %s: %w", c.Name, err)
	}
	cl = forbiddenNamed(c.Name, cl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		cancel()
		return fmt.Errorf("Infra cluster %s was disconnected while connecting", c.Name)
	}
	c.cache, c.client, c.cancel, c.groups, c.connected, c.refusals = remoteCache, cl, cancel, groups, true, refused
	return nil
}

func (c *Connection) disconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	c.epoch++
	c.cache, c.client, c.cancel, c.connected, c.refusals = nil, nil, nil, false, nil
}

func sameKind(a, b client.Object) bool {
	return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}

// stripCached is what the cache keeps of an object. Never managedFields. No image list on Nodes
// (hundreds of entries on a busy node; only capacity is read). No spec of VirtualMachineInstances:
// it is the VM's template, which the VM has, and only their status and metadata are read. No data
// in Secrets: the provider
// writes the bootstrap data into the Infra cluster and never reads it back; it only checks that the
// Secret exists and patches its metadata (adoption, hand-over), so the manager holds no tenant's
// bootstrap data beyond the reconcile that writes it, and an update from the cache could not write
// it away (patchMetadata in controllers).
func stripCached(in any) (any, error) {
	out, err := stripManagedFields(in)
	if err != nil {
		return out, err
	}
	switch o := out.(type) {
	case *corev1.Node:
		o.Status.Images = nil
	case *corev1.Secret:
		o.Data, o.StringData = nil, nil
	case *kubevirtv1.VirtualMachineInstance:
		o.Spec = kubevirtv1.VirtualMachineInstanceSpec{}
	}
	return out, nil
}

var stripManagedFields = cache.TransformStripManagedFields()

// eventForwarder sends the requests an informer event maps to into the watch's channel, at
// RemotePriority, or handler.LowPriority for the objects of the cache's first list. It blocks rather
// than drop an event; the channel's consumer is the controller, which runs as long as the cache.
func eventForwarder(ctx context.Context, infra string, w *registeredWatch) toolscache.ResourceEventHandler {
	send := func(obj any, priority int) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		o, ok := obj.(client.Object)
		if !ok {
			return
		}
		for _, req := range w.Map(ctx, infra, o) {
			select {
			case w.events <- event.TypedGenericEvent[remoteEvent]{Object: remoteEvent{req: req, priority: priority}}:
			case <-ctx.Done():
				return
			}
		}
	}
	return toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) {
			if isInInitialList {
				send(obj, handler.LowPriority)
				return
			}
			send(obj, RemotePriority)
		},
		UpdateFunc: func(_, newObj any) { send(newObj, RemotePriority) },
		DeleteFunc: func(obj any) { send(obj, RemotePriority) },
	}
}
