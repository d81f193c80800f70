package manager

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/cluster-api/util/flags"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/nestcapi/cluster-api-provider-nest/controllers"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks"
)

// The diagnostics endpoint (/metrics, pprof) authenticates and authorizes each request through the
// API server unless --insecure-diagnostics is set: the manager reviews the caller's token and asks
// whether it may get the path.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// New builds a manager for the management cluster at cfg, with every controller and webhook of the
// provider registered. It does not start it.
func New(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, o Options) (ctrl.Manager, error) {
	tlsOptions, metricsOptions, err := flags.GetManagerOptions(o.Manager)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS and diagnostics flags: %w", err)
	}
	if !o.EnableHTTP2 {
		tlsOptions = append(tlsOptions, webhooks.HTTP1Only)
		metricsOptions.TLSOpts = append(metricsOptions.TLSOpts, webhooks.HTTP1Only)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	cfg.UserAgent = "cluster-api-provider-nest-manager"
	// One limiter for the manager's clients of the management cluster (its own and the NestMachine
	// controller's, see readYourWritesClient): --kube-api-qps limits the manager, not each client.
	// cfg stays without it: it also reaches the management cluster as an Infra cluster, under
	// --infra-api-qps.
	mgrCfg := rest.CopyConfig(cfg)
	if o.KubeAPIQPS > 0 {
		mgrCfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(o.KubeAPIQPS, o.KubeAPIBurst)
	}

	var watchNamespaces map[string]cache.Config
	if o.WatchNamespace != "" {
		watchNamespaces = map[string]cache.Config{o.WatchNamespace: {}}
	}
	mgrOpts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 *metricsOptions,
		HealthProbeBindAddress:  o.HealthAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "controller-leader-election-capnest",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		Cache: cache.Options{
			DefaultNamespaces: watchNamespaces,
			SyncPeriod:        &o.SyncPeriod,
			// No reconciler reads managedFields; they are a large part of every object cached (a
			// NestMachine's one entry per writer and subresource), and the fleet's memory with them.
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Controller: config.Controller{SkipNameValidation: &o.InProcessRestart},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: uncached()}},
	}
	if o.WebhookPort != 0 {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Port: o.WebhookPort, CertDir: o.WebhookCertDir, TLSOpts: tlsOptions})
	}
	if o.Logger.GetSink() != nil {
		mgrOpts.Logger = o.Logger
	}
	mgr, err := ctrl.NewManager(mgrCfg, mgrOpts)
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	id, err := managementClusterID(ctx, mgr.GetAPIReader(), o.ManagementClusterID)
	if err != nil {
		return nil, err
	}
	if err := setupControllers(ctx, mgr, cfg, o, id); err != nil {
		return nil, err
	}
	if err := controllers.RegisterNestMachineCollector(metrics.Registry, mgr.GetCache()); err != nil {
		return nil, fmt.Errorf("registering the NestMachine metrics: %w", err)
	}
	if o.WebhookPort != 0 {
		if err := webhooks.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the webhooks: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	readyCheck := healthz.Ping
	if o.WebhookPort != 0 {
		readyCheck = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("ready", readyCheck); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, nil
}

// managementClusterID is the identity given, or else the UID of the kube-system namespace.
func managementClusterID(ctx context.Context, reader client.Reader, given string) (ownership.Identity, error) {
	id := ownership.Identity(given)
	if id == "" {
		ns := &corev1.Namespace{}
		if err := reader.Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, ns); err != nil {
			return "", fmt.Errorf("reading the kube-system namespace, whose UID is the default --management-cluster-id: %w", err)
		}
		id = ownership.Identity(ns.UID)
	}
	if err := id.Validate(); err != nil {
		return "", fmt.Errorf("--management-cluster-id: %w", err)
	}
	return id, nil
}

// uncached are the kinds the manager's clients read from the API server, not from a cache.
// Bootstrap Secrets are read once per machine; caching them would keep every Secret and ConfigMap of
// the management cluster in memory.
func uncached() []client.Object {
	return []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}
}

// readYourWritesClient is the manager's client, but its reads from the cache wait until the cache has
// seen the writes this client made before them (controller-runtime's read-your-writes consistency).
// The NestMachine controller uses it: an Infra-cluster event (the VM it just created) often starts
// the next reconcile of a machine before the management watch has delivered the previous
// reconcile's write, and working from the copy before that write would repeat it. Waiting for the
// watch costs no request; reading the NestMachine from the API server instead, which the controller
// did before, cost 1.1 to 1.8 GETs per machine (docs/performance.md).
func readYourWritesClient(mgr ctrl.Manager) (client.Client, error) {
	c, err := client.New(mgr.GetConfig(), client.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
		Cache: &client.CacheOptions{Reader: mgr.GetCache(), DisableFor: uncached(), EnableReadYourWritesConsistency: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the NestMachine controller's client: %w", err)
	}
	return c, nil
}

// setupControllers registers the Infra-cluster registry and every controller.
func setupControllers(ctx context.Context, mgr ctrl.Manager, cfg *rest.Config, o Options, id ownership.Identity) error {
	registry := infra.NewRegistry(infra.Options{Scheme: mgr.GetScheme(), QPS: o.InfraAPIQPS, Burst: o.InfraAPIBurst, CacheSyncTimeout: o.InfraCacheSyncTimeout})
	if err := mgr.Add(registry); err != nil {
		return fmt.Errorf("adding the Infra-cluster registry: %w", err)
	}
	if err := (&controllers.InfraClusterReconciler{
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Cache:             mgr.GetCache(),
		ManagementConfig:  cfg,
		ProviderNamespace: o.ProviderNamespace,
		Registry:          registry,
		Recorder:          mgr.GetEventRecorderFor("infracluster-controller"),
		Identity:          id,
	}).SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.InfraClusterConcurrency}); err != nil {
		return fmt.Errorf("setting up the InfraCluster controller: %w", err)
	}
	if err := (&controllers.NestClusterReconciler{
		Client:      mgr.GetClient(),
		Registry:    registry,
		Recorder:    mgr.GetEventRecorderFor("nestcluster-controller"),
		WatchFilter: o.WatchFilter,
		Identity:    id,
	}).SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.NestClusterConcurrency}); err != nil {
		return fmt.Errorf("setting up the NestCluster controller: %w", err)
	}
	clusterCache, err := clustercache.SetupWithManager(ctx, mgr, clustercache.Options{
		SecretClient:     mgr.GetAPIReader(),
		WatchFilterValue: o.WatchFilter,
		Client:           clustercache.ClientOptions{QPS: o.KubeAPIQPS, Burst: o.KubeAPIBurst, UserAgent: "cluster-api-provider-nest-clustercache"},
	}, controller.Options{MaxConcurrentReconciles: o.ClusterCacheConcurrency})
	if err != nil {
		return fmt.Errorf("setting up the cache of tenant clusters: %w", err)
	}
	machineClient, err := readYourWritesClient(mgr)
	if err != nil {
		return err
	}
	if err := (&controllers.NestMachineReconciler{
		Client:       machineClient,
		APIReader:    mgr.GetAPIReader(),
		Registry:     registry,
		ClusterCache: clusterCache,
		Recorder:     mgr.GetEventRecorderFor("nestmachine-controller"),
		WatchFilter:  o.WatchFilter,
		Identity:     id,
	}).SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.NestMachineConcurrency}); err != nil {
		return fmt.Errorf("setting up the NestMachine controller: %w", err)
	}
	if err := (&controllers.NestMachineTemplateReconciler{Client: mgr.GetClient()}).
		SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.NestMachineTemplateConcurrency}); err != nil {
		return fmt.Errorf("setting up the NestMachineTemplate controller: %w", err)
	}
	return nil
}
