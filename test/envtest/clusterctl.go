package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterctlv1 "sigs.k8s.io/cluster-api/cmd/clusterctl/api/v1alpha3"
	clusterctlcluster "sigs.k8s.io/cluster-api/cmd/clusterctl/client/cluster"
	clusterctlconfig "sigs.k8s.io/cluster-api/cmd/clusterctl/client/config"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AsClusterctlInstalled makes the management API server look to clusterctl as one where `clusterctl
// init` installed CAPI and this provider (in providerNamespace): the provider inventory, and the
// clusterctl label on the CAPI and provider CRDs (kustomize puts it there in a release). It returns
// the path of an admin kubeconfig for clusterctl, removed when the environment stops.
func (e *Environment) AsClusterctlInstalled(ctx context.Context, providerNamespace string) (string, error) {
	path := filepath.Join(e.certDir, "clusterctl.kubeconfig")
	if err := os.WriteFile(path, e.KubeConfig, 0o600); err != nil {
		return "", err
	}
	cfg, err := clusterctlconfig.New(ctx, "")
	if err != nil {
		return "", fmt.Errorf("clusterctl configuration: %w", err)
	}
	inventory := clusterctlcluster.New(clusterctlcluster.Kubeconfig{Path: path}, cfg).ProviderInventory()
	if err := inventory.EnsureCustomResourceDefinitions(ctx); err != nil {
		return "", fmt.Errorf("installing clusterctl's inventory CRD: %w", err)
	}
	for _, p := range []clusterctlv1.Provider{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "capi-system", Name: "cluster-api"}, ProviderName: "cluster-api", Type: string(clusterctlv1.CoreProviderType), Version: "v1.14.2"},
		{ObjectMeta: metav1.ObjectMeta{Namespace: providerNamespace, Name: "infrastructure-nest"}, ProviderName: "nest", Type: string(clusterctlv1.InfrastructureProviderType), Version: "v0.1.0"},
	} {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		if err := inventory.Create(ctx, p); err != nil {
			return "", fmt.Errorf("recording provider %s in clusterctl's inventory: %w", p.Name, err)
		}
	}
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := e.Client.List(ctx, crds); err != nil {
		return "", err
	}
	for i := range crds.Items {
		crd := &crds.Items[i]
		if !strings.HasSuffix(crd.Spec.Group, "cluster.x-k8s.io") {
			continue
		}
		before := crd.DeepCopy()
		if crd.Labels == nil {
			crd.Labels = map[string]string{}
		}
		crd.Labels[clusterctlv1.ClusterctlLabel] = ""
		if err := e.Client.Patch(ctx, crd, client.MergeFrom(before)); err != nil {
			return "", fmt.Errorf("labelling CRD %s for clusterctl: %w", crd.Name, err)
		}
	}
	return path, nil
}
