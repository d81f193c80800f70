package clusterctl_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	clusterctlv1 "sigs.k8s.io/cluster-api/cmd/clusterctl/api/v1alpha3"
	"sigs.k8s.io/cluster-api/util/contract"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

const (
	providerNamespace = "nest-system"
	providerLabel     = "infrastructure-nest"
)

// TestReleaseArtifactsFollowTheClusterctlContract checks the components and metadata that `make
// release-manifests` writes against the clusterctl provider contract, the way clusterctl's own
// validation reads them.
func TestReleaseArtifactsFollowTheClusterctlContract(t *testing.T) {
	t.Parallel()
	repo := localRepository(t, false)
	release := filepath.Join(repo.dir, providerLabel, providerVersion)

	t.Run("metadata", func(t *testing.T) {
		md := &clusterctlv1.Metadata{}
		if err := yaml.UnmarshalStrict(read(t, filepath.Join(release, "metadata.yaml")), md); err != nil {
			t.Fatalf("metadata.yaml is not a clusterctl Metadata: %v", err)
		}
		if md.APIVersion != clusterctlv1.GroupVersion.String() || md.Kind != "Metadata" {
			t.Errorf("metadata.yaml is %s %s, want %s Metadata", md.APIVersion, md.Kind, clusterctlv1.GroupVersion)
		}
		series := md.GetReleaseSeriesForVersion(version.MustParseSemantic(providerVersion))
		if series == nil || series.Contract != clusterv1.GroupVersion.Version {
			t.Errorf("metadata.yaml maps %s to %+v, want contract %s", providerVersion, series, clusterv1.GroupVersion.Version)
		}
	})

	t.Run("components", func(t *testing.T) {
		objs := objects(t, read(t, filepath.Join(release, "infrastructure-components.yaml")))
		var namespaces, crds []string
		for _, obj := range objs {
			if got := obj.GetLabels()[clusterv1.ProviderNameLabel]; got != providerLabel {
				t.Errorf("%s %s has %s=%q, want %q", obj.GetKind(), obj.GetName(), clusterv1.ProviderNameLabel, got, providerLabel)
			}
			switch obj.GetKind() {
			case "Namespace":
				namespaces = append(namespaces, obj.GetName())
			case "CustomResourceDefinition":
				crds = append(crds, obj.GetName())
				checkCRD(t, obj)
			case "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			default:
				if obj.GetNamespace() != providerNamespace {
					t.Errorf("%s %s is in namespace %q, want %s", obj.GetKind(), obj.GetName(), obj.GetNamespace(), providerNamespace)
				}
			}
			if obj.GetKind() == "Deployment" {
				checkDeployment(t, obj)
			}
			if strings.HasSuffix(obj.GetKind(), "WebhookConfiguration") {
				if got := obj.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != providerNamespace+"/capnest-serving-cert" {
					t.Errorf("%s %s: cert-manager.io/inject-ca-from is %q, want the serving Certificate", obj.GetKind(), obj.GetName(), got)
				}
			}
		}
		if !slices.Equal(namespaces, []string{providerNamespace}) {
			t.Errorf("the components have Namespaces %v, want exactly one, %s: clusterctl takes it as the target namespace", namespaces, providerNamespace)
		}
		want := []string{"infraclusters", "nestclusters", "nestclustertemplates", "nestmachines", "nestmachinetemplates"}
		for i := range want {
			want[i] += "." + infrav1.GroupVersion.Group
		}
		slices.Sort(crds)
		if !slices.Equal(crds, want) {
			t.Errorf("the components have CRDs %v, want %v", crds, want)
		}
	})
}

// checkCRD checks what CAPI and clusterctl require of a provider CRD: the name CAPI computes from the
// kind (clusterctl warns otherwise and CAPI cannot find it), and the contract label that maps the
// CAPI contract to the served version.
func checkCRD(t *testing.T, obj unstructured.Unstructured) {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, crd); err != nil {
		t.Fatalf("CRD %s: %v", obj.GetName(), err)
	}
	if want := contract.CalculateCRDName(crd.Spec.Group, crd.Spec.Names.Kind); crd.Name != want {
		t.Errorf("CRD %s should be named %s, as CAPI computes it", crd.Name, want)
	}
	if got := crd.Labels[clusterv1.GroupVersion.String()]; got != infrav1.GroupVersion.Version {
		t.Errorf("CRD %s has contract label %s=%q, want %q", crd.Name, clusterv1.GroupVersion, got, infrav1.GroupVersion.Version)
	}
}

// checkDeployment checks the manager Deployment: the container clusterctl expects, the webhook
// serving certificate, the probes.
func checkDeployment(t *testing.T, obj unstructured.Unstructured) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d); err != nil {
		t.Fatalf("Deployment %s: %v", obj.GetName(), err)
	}
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatalf("Deployment %s has no container named manager, which clusterctl requires", d.Name)
	}
	c := d.Spec.Template.Spec.Containers[i]
	if c.Image != "ghcr.io/nestcapi/cluster-api-provider-nest:dev" {
		t.Errorf("manager image = %s", c.Image)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("manager probes = %+v / %+v, want /readyz and /healthz", c.ReadinessProbe, c.LivenessProbe)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "webhook-server" && p.ContainerPort == 9443 }) {
		t.Errorf("manager ports = %+v, want webhook-server 9443 (the webhook Service's target)", c.Ports)
	}
	if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "capnest-webhook-service-cert"
	}) {
		t.Errorf("the manager does not mount the webhook serving certificate Secret")
	}
}

// TestClusterctlInitInstallsTheProvider runs `clusterctl init` against an empty API server with a
// local repository holding this release, CAPI's core and kubeadm providers of go.mod's version (built
// from the module cache) and a cert-manager stand-in, and checks what clusterctl installed.
func TestClusterctlInitInstallsTheProvider(t *testing.T) {
	t.Parallel()
	repo := localRepository(t, true)
	env, err := envtest.Start(envtest.Options{})
	if err != nil {
		t.Fatalf("starting an API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	capiVersion := moduleVersion(t, "sigs.k8s.io/cluster-api")
	clusterctl(t, map[string]string{"CLUSTER_TOPOLOGY": "true"}, "init", "--config", repo.config, "--kubeconfig", kubeconfig,
		"--core", "cluster-api:"+capiVersion, "--bootstrap", "kubeadm:"+capiVersion, "--control-plane", "kubeadm:"+capiVersion,
		"--infrastructure", "nest:"+providerVersion)

	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: initScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	providers := &clusterctlv1.ProviderList{}
	if err := c.List(ctx, providers); err != nil {
		t.Fatalf("listing clusterctl's provider inventory: %v", err)
	}
	i := slices.IndexFunc(providers.Items, func(p clusterctlv1.Provider) bool { return p.Name == providerLabel })
	if i < 0 {
		t.Fatalf("clusterctl's inventory has no %s: %+v", providerLabel, providers.Items)
	}
	if p := providers.Items[i]; p.Namespace != providerNamespace || p.ProviderName != "nest" || p.Type != string(clusterctlv1.InfrastructureProviderType) || p.Version != providerVersion {
		t.Errorf("inventory entry %s/%s: provider %s type %s version %s, want nest InfrastructureProvider %s in %s",
			p.Namespace, p.Name, p.ProviderName, p.Type, p.Version, providerVersion, providerNamespace)
	}
	if len(providers.Items) != 4 {
		t.Errorf("clusterctl's inventory has %d providers, want CAPI core, kubeadm bootstrap and control plane, and nest", len(providers.Items))
	}

	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := c.List(ctx, crds, client.MatchingLabels{clusterv1.ProviderNameLabel: providerLabel}); err != nil {
		t.Fatal(err)
	}
	if len(crds.Items) != 5 {
		t.Errorf("clusterctl installed %d CRDs labelled %s, want 5", len(crds.Items), providerLabel)
	}
	for _, crd := range crds.Items {
		if _, ok := crd.Labels[clusterctlv1.ClusterctlLabel]; !ok {
			t.Errorf("CRD %s lacks clusterctl's label %s", crd.Name, clusterctlv1.ClusterctlLabel)
		}
	}
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: providerNamespace, Name: "capnest-controller-manager"}, d); err != nil {
		t.Fatalf("the manager Deployment: %v", err)
	}
	if d.Labels[clusterv1.ProviderNameLabel] != providerLabel || len(d.Spec.Template.Spec.Containers) == 0 || d.Spec.Template.Spec.Containers[0].Name != "manager" {
		t.Errorf("Deployment %s: labels %v, containers %+v", d.Name, d.Labels, d.Spec.Template.Spec.Containers)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--diagnostics-address=:8443") || !slices.Contains(args, "--insecure-diagnostics=false") {
		t.Errorf("manager args %v: clusterctl should have substituted the CAPNEST_* variables with their defaults", args)
	}
}

func initScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := envtest.Scheme()
	if err := clusterctlv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}
