package sandbox

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	addonsv1beta1 "sigs.k8s.io/cluster-api/api/addons/v1beta1"
	addonsv1 "sigs.k8s.io/cluster-api/api/addons/v1beta2"
	bootstrapv1beta1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1beta1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta1"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ipamv1alpha1 "sigs.k8s.io/cluster-api/api/ipam/v1alpha1"
	ipamv1beta1 "sigs.k8s.io/cluster-api/api/ipam/v1beta1"
	ipamv1 "sigs.k8s.io/cluster-api/api/ipam/v1beta2"
	runtimev1alpha1 "sigs.k8s.io/cluster-api/api/runtime/v1alpha1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	"sigs.k8s.io/cluster-api/bootstrap/kubeadm/reconcilers/kubeadmconfig"
	cabpksetup "sigs.k8s.io/cluster-api/bootstrap/kubeadm/setup"
	bootstrapadmission "sigs.k8s.io/cluster-api/bootstrap/kubeadm/webhooks/admission"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/cluster-api/controlplane/kubeadm/reconcilers/kubeadmcontrolplane"
	kcpsetup "sigs.k8s.io/cluster-api/controlplane/kubeadm/setup"
	controlplaneadmission "sigs.k8s.io/cluster-api/controlplane/kubeadm/webhooks/admission"
	"sigs.k8s.io/cluster-api/core/reconcilers/cluster"
	"sigs.k8s.io/cluster-api/core/reconcilers/machine"
	"sigs.k8s.io/cluster-api/core/reconcilers/machinedeployment"
	"sigs.k8s.io/cluster-api/core/reconcilers/machinehealthcheck"
	"sigs.k8s.io/cluster-api/core/reconcilers/machineset"
	"sigs.k8s.io/cluster-api/core/setup"
	coreadmission "sigs.k8s.io/cluster-api/core/webhooks/admission"
	"sigs.k8s.io/cluster-api/util/index"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/nestcapi/cluster-api-provider-nest/internal/scheme"
)

// The user agents and informer names of CAPI's three managers, as in their main.go files.
const (
	capiCoreName          = "cluster-api-controller-manager"
	capiControlPlaneName  = "cluster-api-kubeadm-control-plane-manager"
	capiBootstrapName     = "cluster-api-kubeadm-bootstrap-manager"
	capiClusterCacheQPS   = 100
	capiClusterCacheBurst = 200
)

// capiScheme is the scheme of CAPI's controllers and webhooks, as their main.go files build it: every
// served version of core, addons, IPAM, runtime extensions, kubeadm control plane and bootstrap
// (the webhooks register conversions between them), besides the kinds the provider knows.
func capiScheme() *runtime.Scheme {
	s := scheme.New()
	for _, add := range []func(*runtime.Scheme) error{
		clusterv1beta1.AddToScheme, addonsv1beta1.AddToScheme, addonsv1.AddToScheme,
		runtimev1alpha1.AddToScheme, runtimev1.AddToScheme,
		ipamv1alpha1.AddToScheme, ipamv1beta1.AddToScheme, ipamv1.AddToScheme,
		controlplanev1beta1.AddToScheme, bootstrapv1beta1.AddToScheme,
	} {
		utilruntime.Must(add(s))
	}
	return s
}

// namedManager is a manager with the name progress and errors call it by.
type namedManager struct {
	name string
	mgr  ctrl.Manager
	// webhooks says the manager serves webhooks.
	webhooks bool
}

// newCAPIManagers builds the three managers CAPI ships as three deployments, each wired as its
// main.go does (cache and client options, indexes, ClusterCache, controllers): core (Cluster, Machine,
// MachineSet, MachineDeployment, MachineHealthCheck), KubeadmControlPlane and kubeadm bootstrap. The
// core manager also serves the webhooks of all three, on the webhook server wh was installed for.
func newCAPIManagers(ctx context.Context, cfg *rest.Config, wh *crenvtest.WebhookInstallOptions, o Options, suffix string) ([]namedManager, error) {
	// Informer names are process-wide: a second management cluster's managers get their own.
	capiCoreName, capiControlPlaneName, capiBootstrapName := capiCoreName+suffix, capiControlPlaneName+suffix, capiBootstrapName+suffix
	s := capiScheme()
	syncPeriod := 10 * time.Minute
	cfg = rest.CopyConfig(cfg)
	// Above CAPI's defaults (20/30): the benchmark runs hundreds of machines through one process.
	cfg.QPS, cfg.Burst = 100, 200
	newManager := func(name string, cache ctrlcache.Options, clientOpts client.Options, webhookServer webhook.Server) (ctrl.Manager, error) {
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme: s,
			Logger: o.Log.WithName(name),
			Controller: config.Controller{
				UsePriorityQueue: ptr.To(true),
				// Several managers run in this process, each with its own ClusterCache controller.
				SkipNameValidation: ptr.To(true),
			},
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			Cache:                  cache,
			Client:                 clientOpts,
			WebhookServer:          webhookServer,
		})
		if err != nil {
			return nil, fmt.Errorf("creating the manager %s: %w", name, err)
		}
		return mgr, nil
	}

	core, err := newManager(capiCoreName, setup.ManagerCacheOptions(s, capiCoreName, "", syncPeriod), setup.ManagerClientOptions(),
		webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}))
	if err != nil {
		return nil, err
	}
	if err := index.AddDefaultIndexes(ctx, core); err != nil {
		return nil, fmt.Errorf("adding CAPI's indexes: %w", err)
	}
	coreSecrets, err := setup.CreateSecretCachingClient(core)
	if err != nil {
		return nil, fmt.Errorf("creating CAPI's Secret caching client: %w", err)
	}
	coreCache, err := clustercache.SetupWithManager(ctx, core, clustercache.Options{
		SecretClient: coreSecrets,
		Cache:        setup.ClusterCacheCacheOptions(),
		Client:       setup.ClusterCacheClientOptions(capiCoreName, capiClusterCacheQPS, capiClusterCacheBurst),
	}, concurrency(10))
	if err != nil {
		return nil, fmt.Errorf("setting up CAPI's ClusterCache: %w", err)
	}
	for name, setupFn := range map[string]func() error{
		"Cluster": func() error {
			return (&cluster.Reconciler{
				Client: core.GetClient(), APIReader: core.GetAPIReader(), ClusterCache: coreCache,
				RemoteConnectionGracePeriod: 50 * time.Second,
			}).SetupWithManager(ctx, core, concurrency(10))
		},
		"Machine": func() error {
			return (&machine.Reconciler{
				Client: core.GetClient(), APIReader: core.GetAPIReader(), ClusterCache: coreCache,
				RemoteConditionsGracePeriod: 5 * time.Minute,
			}).SetupWithManager(ctx, core, concurrency(10))
		},
		"MachineSet": func() error {
			return (&machineset.Reconciler{
				Client: core.GetClient(), APIReader: core.GetAPIReader(), ClusterCache: coreCache,
				PreflightChecks: sets.New(clusterv1.MachineSetPreflightCheckAll),
			}).SetupWithManager(ctx, core, concurrency(10))
		},
		"MachineDeployment": func() error {
			return (&machinedeployment.Reconciler{Client: core.GetClient(), APIReader: core.GetAPIReader()}).
				SetupWithManager(ctx, core, concurrency(10))
		},
		"MachineHealthCheck": func() error {
			return (&machinehealthcheck.Reconciler{Client: core.GetClient(), ClusterCache: coreCache}).
				SetupWithManager(ctx, core, concurrency(10))
		},
	} {
		if err := setupFn(); err != nil {
			return nil, fmt.Errorf("setting up CAPI's %s controller: %w", name, err)
		}
	}
	if err := setupCAPIWebhooks(core, coreCache); err != nil {
		return nil, err
	}

	kcp, err := newManager(capiControlPlaneName, kcpsetup.ManagerCacheOptions(s, capiControlPlaneName, "", syncPeriod), kcpsetup.ManagerClientOptions(), nil)
	if err != nil {
		return nil, err
	}
	kcpSecrets, err := kcpsetup.CreateSecretCachingClient(kcp)
	if err != nil {
		return nil, fmt.Errorf("creating KubeadmControlPlane's Secret caching client: %w", err)
	}
	kcpCache, err := clustercache.SetupWithManager(ctx, kcp, clustercache.Options{
		SecretClient: kcpSecrets,
		Cache:        kcpsetup.ClusterCacheCacheOptions(),
		Client:       kcpsetup.ClusterCacheClientOptions(capiControlPlaneName, capiClusterCacheQPS, capiClusterCacheBurst),
	}, concurrency(10))
	if err != nil {
		return nil, fmt.Errorf("setting up KubeadmControlPlane's ClusterCache: %w", err)
	}
	if err := (&kubeadmcontrolplane.Reconciler{
		Client: kcp.GetClient(), APIReader: kcp.GetAPIReader(), SecretCachingClient: kcpSecrets,
		ClusterCache: kcpCache, EtcdDialTimeout: 10 * time.Second, EtcdCallTimeout: 15 * time.Second,
		EtcdLogger: zap.NewNop(), RemoteConditionsGracePeriod: 5 * time.Minute,
	}).SetupWithManager(ctx, kcp, controller.Options{MaxConcurrentReconciles: 10, ReconciliationTimeout: 3 * time.Minute}); err != nil {
		return nil, fmt.Errorf("setting up CAPI's KubeadmControlPlane controller: %w", err)
	}

	cabpk, err := newManager(capiBootstrapName, cabpksetup.ManagerCacheOptions(s, capiBootstrapName, "", syncPeriod), cabpksetup.ManagerClientOptions(), nil)
	if err != nil {
		return nil, err
	}
	cabpkSecrets, err := cabpksetup.CreateSecretCachingClient(cabpk)
	if err != nil {
		return nil, fmt.Errorf("creating kubeadm bootstrap's Secret caching client: %w", err)
	}
	cabpkCache, err := clustercache.SetupWithManager(ctx, cabpk, clustercache.Options{
		SecretClient: cabpkSecrets,
		Cache:        cabpksetup.ClusterCacheCacheOptions(),
		Client:       cabpksetup.ClusterCacheClientOptions(capiBootstrapName, capiClusterCacheQPS, capiClusterCacheBurst),
	}, concurrency(10))
	if err != nil {
		return nil, fmt.Errorf("setting up kubeadm bootstrap's ClusterCache: %w", err)
	}
	if err := (&kubeadmconfig.Reconciler{
		Client: cabpk.GetClient(), SecretCachingClient: cabpkSecrets, APIReader: cabpk.GetAPIReader(),
		ClusterCache: cabpkCache, TokenTTL: kubeadmconfig.DefaultTokenTTL,
	}).SetupWithManager(ctx, cabpk, concurrency(10)); err != nil {
		return nil, fmt.Errorf("setting up CAPI's KubeadmConfig controller: %w", err)
	}
	return []namedManager{
		{name: "CAPI core controllers", mgr: core, webhooks: true},
		{name: "KubeadmControlPlane controller", mgr: kcp},
		{name: "kubeadm bootstrap controller", mgr: cabpk},
	}, nil
}

// setupCAPIWebhooks registers the webhooks core, KubeadmControlPlane and kubeadm bootstrap register
// in their main.go.
func setupCAPIWebhooks(mgr ctrl.Manager, clusterCache clustercache.ClusterCache) error {
	c := mgr.GetClient()
	for name, setupFn := range map[string]func(ctrl.Manager) error{
		"ClusterClass":              (&coreadmission.ClusterClass{Client: c}).SetupWebhookWithManager,
		"Cluster":                   (&coreadmission.Cluster{Client: c, ClusterCacheReader: clusterCache}).SetupWebhookWithManager,
		"Machine":                   (&coreadmission.Machine{}).SetupWebhookWithManager,
		"MachineSet":                (&coreadmission.MachineSet{}).SetupWebhookWithManager,
		"MachineDeployment":         (&coreadmission.MachineDeployment{}).SetupWebhookWithManager,
		"MachineDrainRule":          (&coreadmission.MachineDrainRule{}).SetupWebhookWithManager,
		"MachinePool":               (&coreadmission.MachinePool{}).SetupWebhookWithManager,
		"ClusterResourceSet":        (&coreadmission.ClusterResourceSet{}).SetupWebhookWithManager,
		"ClusterResourceSetBinding": (&coreadmission.ClusterResourceSetBinding{}).SetupWebhookWithManager,
		"MachineHealthCheck":        (&coreadmission.MachineHealthCheck{}).SetupWebhookWithManager,
		"ExtensionConfig":           (&coreadmission.ExtensionConfig{}).SetupWebhookWithManager,
		"IPAddress":                 (&coreadmission.IPAddress{Client: c}).SetupWebhookWithManager,
		"IPAddressClaim":            (&coreadmission.IPAddressClaim{}).SetupWebhookWithManager,
		"KubeadmControlPlane":       (&controlplaneadmission.KubeadmControlPlane{}).SetupWebhookWithManager,
		"KubeadmControlPlane scale": (&controlplaneadmission.ScaleValidator{Client: c}).SetupWebhookWithManager,
		"KubeadmControlPlaneTemplate": (&controlplaneadmission.KubeadmControlPlaneTemplate{}).
			SetupWebhookWithManager,
		"KubeadmConfig":         (&bootstrapadmission.KubeadmConfig{}).SetupWebhookWithManager,
		"KubeadmConfigTemplate": (&bootstrapadmission.KubeadmConfigTemplate{}).SetupWebhookWithManager,
	} {
		if err := setupFn(mgr); err != nil {
			return fmt.Errorf("setting up CAPI's %s webhook: %w", name, err)
		}
	}
	return nil
}

func concurrency(n int) controller.Options { return controller.Options{MaxConcurrentReconciles: n} }

// labelCAPIProviderCRDs puts on the KubeadmControlPlane and kubeadm bootstrap CRDs the contract labels
// their release manifests carry (kustomize adds them; the CRD bases envtest installs lack them), so
// CAPI's controllers can resolve the contract version of objects they reference.
func labelCAPIProviderCRDs(ctx context.Context, c client.Client) error {
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := c.List(ctx, crds); err != nil {
		return fmt.Errorf("listing CRDs: %w", err)
	}
	for i := range crds.Items {
		crd := &crds.Items[i]
		if crd.Spec.Group != controlplanev1.GroupVersion.Group && crd.Spec.Group != bootstrapv1.GroupVersion.Group {
			continue
		}
		orig := crd.DeepCopy()
		if crd.Labels == nil {
			crd.Labels = map[string]string{}
		}
		crd.Labels[clusterv1beta1.GroupVersion.String()] = "v1beta1"
		crd.Labels[clusterv1.GroupVersion.String()] = "v1beta2"
		if err := c.Patch(ctx, crd, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("labelling CRD %s: %w", crd.Name, err)
		}
	}
	return nil
}
