package envtest_test

import (
	"context"
	"testing"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// TestInfraEnvironmentServesKubeVirtAndMetal3WithStructuralSchemas proves an Infra test API server
// prunes and rejects what a real KubeVirt would, and reports the pinned Kubernetes version.
func TestInfraEnvironmentServesKubeVirtAndMetal3WithStructuralSchemas(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	env, err := envtest.Start(envtest.Options{CRDs: envtest.Infra})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { g.Expect(env.Stop()).To(Succeed()) })

	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	version, err := dc.ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(version.GitVersion).To(HavePrefix("v1.37."), "the API server is built with version ldflags")

	vm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
		"metadata": map[string]any{"name": "vm", "namespace": "default"},
		"spec": map[string]any{
			"runStrategy":       "Always",
			"notAKubeVirtField": "pruned",
			"template": map[string]any{"spec": map[string]any{
				"domain": map[string]any{"devices": map[string]any{}, "memory": map[string]any{"guest": "1Gi"}},
			}},
		},
	}}
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	got := &kubevirtv1.VirtualMachine{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vm), got)).To(Succeed())
	g.Expect(got.Spec.Template.Spec.Domain.Memory.Guest.String()).To(Equal("1Gi"))
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vm), vm)).To(Succeed())
	g.Expect(vm.Object["spec"]).NotTo(HaveKey("notAKubeVirtField"), "unknown fields are pruned by the structural schema")

	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
		"metadata": map[string]any{"name": "bad", "namespace": "default"},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"domain": "not-an-object"}}},
	}}
	err = env.Client.Create(ctx, bad)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "a wrongly typed field is rejected, got %v", err)

	host := &bmov1alpha1.BareMetalHost{
		ObjectMeta: metav1.ObjectMeta{Name: "host-0", Namespace: "default"},
		Spec:       bmov1alpha1.BareMetalHostSpec{Online: true, BootMACAddress: "00:00:00:00:00:01"},
	}
	g.Expect(env.Client.Create(ctx, host)).To(Succeed())
}
