package clusterctl_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	bootstrapv1beta1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta1"
	controlplanev1beta1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta1"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	bootstrapadmission "sigs.k8s.io/cluster-api/bootstrap/kubeadm/webhooks/admission"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	controlplaneadmission "sigs.k8s.io/cluster-api/controlplane/kubeadm/webhooks/admission"
	"sigs.k8s.io/cluster-api/core/reconcilers/clusterclass"
	topologycluster "sigs.k8s.io/cluster-api/core/reconcilers/topology/cluster"
	coreadmission "sigs.k8s.io/cluster-api/core/webhooks/admission"
	"sigs.k8s.io/cluster-api/feature"
	"sigs.k8s.io/cluster-api/util/index"
	utilyaml "sigs.k8s.io/cluster-api/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks"
)

// capiWebhookResources are the CAPI resources whose admission webhooks the management cluster runs:
// every kind a template or the ClusterClass makes, directly or through the topology controller.
var capiWebhookResources = []string{
	"clusters", "clusterclasses", "machines", "machinedeployments", "machinehealthchecks",
	"kubeadmconfigs", "kubeadmconfigtemplates", "kubeadmcontrolplanes", "kubeadmcontrolplanetemplates",
}

// management is a management cluster as clusterctl users have it: a real API server with this
// provider's and CAPI's CRDs (and the OpenShift Assisted providers' kinds, from test/crd/assisted),
// the provider's webhooks, CAPI's webhooks for the kinds of the templates (so Machine,
// KubeadmControlPlane, MachineDeployment, Cluster topology and ClusterClass are validated by CAPI
// itself), and CAPI's ClusterClass and Cluster topology controllers, in-process. The tests share one:
// controllers register process-wide names, and one API server is cheaper than two.
type management struct {
	*envtest.Environment
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan error
}

var (
	sharedOnce       sync.Once
	sharedManagement *management
	sharedErr        error
)

// managementCluster returns the shared management cluster, started on first use with the tenant
// namespace and the InfraClusters registered; TestMain stops it.
func managementCluster(t *testing.T) *management {
	t.Helper()
	sharedOnce.Do(func() {
		sharedManagement, sharedErr = startManagement()
		if sharedErr == nil {
			sharedErr = sharedManagement.registerInfraClusters()
		}
	})
	if sharedErr != nil {
		t.Fatalf("starting the management cluster: %v", sharedErr)
	}
	return sharedManagement
}

func TestMain(m *testing.M) {
	// NEST_TEST_LOG=1 shows the logs of the webhooks and of CAPI's controllers.
	if os.Getenv("NEST_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	code := m.Run()
	if sharedManagement != nil {
		if err := sharedManagement.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the management cluster: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func startManagement() (*management, error) {
	// As `clusterctl init` with CLUSTER_TOPOLOGY=true and EXP_KUBEADM_BOOTSTRAP_FORMAT_IGNITION=true.
	if err := feature.MutableGates.SetFromMap(map[string]bool{
		string(feature.ClusterTopology):                true,
		string(feature.KubeadmBootstrapFormatIgnition): true,
	}); err != nil {
		return nil, fmt.Errorf("enabling CAPI feature gates: %w", err)
	}
	scheme, err := managementScheme()
	if err != nil {
		return nil, err
	}
	mutating, validating, err := capiWebhookConfigurations(scheme)
	if err != nil {
		return nil, err
	}
	env, err := envtest.Start(envtest.Options{
		CRDs: envtest.Management,
		Webhooks: &crenvtest.WebhookInstallOptions{
			Paths:              []string{filepath.Join(envtest.RepoRoot(), "config", "webhook", "manifests.yaml")},
			MutatingWebhooks:   mutating,
			ValidatingWebhooks: validating,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("starting the management API server: %w", err)
	}
	if err := labelKubeadmCRDs(env); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	if err := installAssistedCRDs(env); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	wh := env.Webhooks
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		}),
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating the manager: %w", err), env.Stop())
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &management{Environment: env, mgr: mgr, cancel: cancel, done: make(chan error, 1)}
	if err := setupManager(ctx, mgr); err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("setting up the manager: %w", err), env.Stop())
	}
	go func() { m.done <- mgr.Start(ctx) }()

	started := mgr.GetWebhookServer().StartedChecker()
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-m.done:
			return false, fmt.Errorf("the manager stopped: %w", err)
		default:
		}
		return started(nil) == nil && mgr.GetCache().WaitForCacheSync(ctx), nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("waiting for the webhook server and the caches: %w", err), m.stop())
	}
	return m, nil
}

// labelKubeadmCRDs adds to the kubeadm bootstrap and control-plane CRDs the contract labels that
// CAPI's config/crd kustomizations add to the generated bases (which envtest loads): the topology
// controller finds the API version of a ClusterClass template through them.
func labelKubeadmCRDs(env *envtest.Environment) error {
	ctx := context.Background()
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := env.Client.List(ctx, crds); err != nil {
		return fmt.Errorf("listing CRDs: %w", err)
	}
	for i := range crds.Items {
		crd := &crds.Items[i]
		if (crd.Spec.Group != "bootstrap.cluster.x-k8s.io" && crd.Spec.Group != "controlplane.cluster.x-k8s.io") || !strings.HasPrefix(crd.Name, "kubeadm") {
			continue
		}
		patch := client.MergeFrom(crd.DeepCopy())
		if crd.Labels == nil {
			crd.Labels = map[string]string{}
		}
		crd.Labels["cluster.x-k8s.io/v1beta1"] = "v1beta1"
		crd.Labels["cluster.x-k8s.io/v1beta2"] = "v1beta2"
		if err := env.Client.Patch(ctx, crd, patch); err != nil {
			return fmt.Errorf("labelling CRD %s: %w", crd.Name, err)
		}
	}
	return nil
}

// installAssistedCRDs installs the OpenShift Assisted bootstrap and control-plane CRDs of
// test/crd/assisted, which the openshift-assisted flavors use (their module is not served here, so
// envtest's CRD sets do not have them), and waits until they are served.
func installAssistedCRDs(env *envtest.Environment) error {
	if _, err := crenvtest.InstallCRDs(env.Config, crenvtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(envtest.RepoRoot(), "test", "crd", "assisted")},
		ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing the OpenShift Assisted CRDs: %w", err)
	}
	return nil
}

// stop stops the manager, then the API server.
func (m *management) stop() error {
	m.cancel()
	var errs []error
	select {
	case err := <-m.done:
		errs = append(errs, err)
	case <-time.After(30 * time.Second):
		errs = append(errs, errors.New("the manager did not stop within 30s"))
	}
	return errors.Join(append(errs, m.Environment.Stop())...)
}

// managementScheme is the provider's scheme with CAPI's older API versions too: CAPI's webhooks
// register conversions to them.
func managementScheme() (*runtime.Scheme, error) {
	s := envtest.Scheme()
	for _, add := range []func(*runtime.Scheme) error{clusterv1beta1.AddToScheme, bootstrapv1beta1.AddToScheme, controlplanev1beta1.AddToScheme, runtimev1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	return s, nil
}

// setupManager registers the provider's webhooks, CAPI's webhooks for capiWebhookResources and CAPI's
// ClusterClass and Cluster topology controllers, as CAPI's core and kubeadm managers do.
func setupManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := index.AddDefaultIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("adding CAPI's indexes: %w", err)
	}
	if err := webhooks.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the provider's webhooks: %w", err)
	}
	clusterCache, err := clustercache.SetupWithManager(ctx, mgr, clustercache.Options{
		SecretClient: mgr.GetAPIReader(),
		Client:       clustercache.ClientOptions{UserAgent: "cluster-api-provider-nest-clusterctl-test"},
	}, controller.Options{})
	if err != nil {
		return fmt.Errorf("setting up CAPI's cluster cache: %w", err)
	}
	for name, setup := range map[string]func(ctrl.Manager) error{
		"Cluster":                     (&coreadmission.Cluster{Client: mgr.GetClient(), ClusterCacheReader: clusterCache}).SetupWebhookWithManager,
		"Machine":                     (&coreadmission.Machine{}).SetupWebhookWithManager,
		"ClusterClass":                (&coreadmission.ClusterClass{Client: mgr.GetClient()}).SetupWebhookWithManager,
		"MachineDeployment":           (&coreadmission.MachineDeployment{}).SetupWebhookWithManager,
		"MachineHealthCheck":          (&coreadmission.MachineHealthCheck{}).SetupWebhookWithManager,
		"KubeadmConfig":               (&bootstrapadmission.KubeadmConfig{}).SetupWebhookWithManager,
		"KubeadmConfigTemplate":       (&bootstrapadmission.KubeadmConfigTemplate{}).SetupWebhookWithManager,
		"KubeadmControlPlane":         (&controlplaneadmission.KubeadmControlPlane{}).SetupWebhookWithManager,
		"KubeadmControlPlane scale":   (&controlplaneadmission.ScaleValidator{Client: mgr.GetClient()}).SetupWebhookWithManager,
		"KubeadmControlPlaneTemplate": (&controlplaneadmission.KubeadmControlPlaneTemplate{}).SetupWebhookWithManager,
	} {
		if err := setup(mgr); err != nil {
			return fmt.Errorf("setting up CAPI's %s webhook: %w", name, err)
		}
	}
	if err := (&clusterclass.Reconciler{Client: mgr.GetClient()}).SetupWithManager(ctx, mgr, controller.Options{}); err != nil {
		return fmt.Errorf("setting up CAPI's ClusterClass controller: %w", err)
	}
	if err := (&topologycluster.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ClusterCache: clusterCache,
	}).SetupWithManager(ctx, mgr, controller.Options{}); err != nil {
		return fmt.Errorf("setting up CAPI's Cluster topology controller: %w", err)
	}
	return nil
}

// capiWebhookConfigurations reads CAPI's generated webhook configurations (core, kubeadm bootstrap,
// kubeadm control plane) from the module cache and keeps the webhooks of capiWebhookResources.
func capiWebhookConfigurations(scheme *runtime.Scheme) ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	dir, err := goModuleDir("sigs.k8s.io/cluster-api")
	if err != nil {
		return nil, nil, err
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var mutating []*admissionv1.MutatingWebhookConfiguration
	var validating []*admissionv1.ValidatingWebhookConfiguration
	for _, sub := range []string{"core", "bootstrap/kubeadm", "controlplane/kubeadm"} {
		path := filepath.Join(dir, sub, "config", "webhook", "manifests.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("reading CAPI's webhook configurations: %w", err)
		}
		objs, err := utilyaml.ToUnstructured(data)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		for _, u := range objs {
			raw, err := u.MarshalJSON()
			if err != nil {
				return nil, nil, fmt.Errorf("encoding %s: %w", path, err)
			}
			obj, _, err := decoder.Decode(raw, nil, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
			}
			// Named per CAPI manager, as each installs its own configurations.
			switch c := obj.(type) {
			case *admissionv1.MutatingWebhookConfiguration:
				c.Name = "capi-" + filepath.Base(sub) + "-" + c.Name
				c.Webhooks = slices.DeleteFunc(c.Webhooks, func(w admissionv1.MutatingWebhook) bool { return !forResources(w.Rules) })
				mutating = append(mutating, c)
			case *admissionv1.ValidatingWebhookConfiguration:
				c.Name = "capi-" + filepath.Base(sub) + "-" + c.Name
				c.Webhooks = slices.DeleteFunc(c.Webhooks, func(w admissionv1.ValidatingWebhook) bool { return !forResources(w.Rules) })
				validating = append(validating, c)
			}
		}
	}
	return mutating, validating, nil
}

func forResources(rules []admissionv1.RuleWithOperations) bool {
	for _, r := range rules {
		for _, res := range r.Resources {
			base, _, _ := strings.Cut(res, "/")
			if slices.Contains(capiWebhookResources, base) {
				return true
			}
		}
	}
	return false
}

// tenantNamespace is where the tests put tenant clusters; infraClusters are the InfraClusters the
// templates name, admitting every namespace.
const tenantNamespace = "tenants"

var infraClusterNames = []string{"infra-a", "infra-b", "infra-c"}

// registerInfraClusters creates the tenant namespace and the InfraClusters, and waits until the
// webhooks' cache has them (the NestCluster webhook checks that the Infra clusters exist and admit the
// namespace).
func (m *management) registerInfraClusters() error {
	ctx := context.Background()
	if err := m.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNamespace}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", tenantNamespace, err)
	}
	for _, name := range infraClusterNames {
		ic := &infrav1.InfraCluster{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{}},
		}
		if err := m.Client.Create(ctx, ic); err != nil {
			return fmt.Errorf("creating InfraCluster %s: %w", name, err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, name := range infraClusterNames {
			if err := m.mgr.GetCache().Get(ctx, client.ObjectKey{Name: name}, &infrav1.InfraCluster{}); err != nil {
				return false, nil
			}
		}
		return m.mgr.GetCache().Get(ctx, client.ObjectKey{Name: tenantNamespace}, &corev1.Namespace{}) == nil, nil
	}); err != nil {
		return fmt.Errorf("waiting for the webhooks' cache to see the InfraClusters: %w", err)
	}
	return nil
}
