package nodes_test

import (
	"context"
	"fmt"
	"testing"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// env stands for a tenant (or Infra) API server: nodes need no CRDs.
var env *envtest.Environment

func TestMain(m *testing.M) {
	envtest.Main(m, envtest.Options{}, &env)
}

func TestCreateMakesReadySchedulableNodesWithCapacity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	created, err := nodes.Create(ctx, env.Client, nodes.Options{
		Prefix: "infra", Count: 3, KubeVirt: true,
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods: resource.MustParse("250"), "nvidia.com/gpu": resource.MustParse("2"),
		},
		Labels: map[string]string{"topology.kubernetes.io/zone": "a"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(created).To(HaveLen(3))

	for i, want := range created {
		node := &corev1.Node{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(want), node)).To(Succeed())
		g.Expect(node.Name).To(Equal(fmt.Sprintf("infra-%d", i)))
		g.Expect(node.Labels).To(And(
			HaveKeyWithValue(corev1.LabelHostname, node.Name),
			HaveKeyWithValue("topology.kubernetes.io/zone", "a"),
			HaveKeyWithValue(kubevirt.SchedulableLabel, "true"),
		))
		g.Expect(node.Status.Allocatable.Cpu().Value()).To(Equal(int64(64)))
		g.Expect(node.Status.Allocatable).To(HaveKey(corev1.ResourceName("nvidia.com/gpu")), "extended resources are advertised")
		g.Expect(node.Status.Allocatable).To(HaveKey(kubevirt.KVMDevice), "a KubeVirt node advertises virt-handler's devices")
		g.Expect(node.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
		g.Expect(node.Spec.Taints).To(BeEmpty(), "the not-ready taint the API server adds on creation is lifted, as the node lifecycle controller would")
		g.Expect(node.Status.Addresses).To(ContainElement(HaveField("Type", corev1.NodeInternalIP)))
	}
}

func TestSetReadyTaintsANodeThatGoesNotReady(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	created, err := nodes.Create(ctx, env.Client, nodes.Options{Prefix: "flappy"})
	g.Expect(err).NotTo(HaveOccurred())
	name := created[0].Name

	g.Expect(nodes.SetReady(ctx, env.Client, name, false)).To(Succeed())
	node := &corev1.Node{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, node)).To(Succeed())
	g.Expect(node.Status.Conditions[0].Status).To(Equal(corev1.ConditionFalse))
	g.Expect(node.Spec.Taints).To(ContainElement(HaveField("Key", corev1.TaintNodeNotReady)))

	g.Expect(nodes.SetReady(ctx, env.Client, name, true)).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, node)).To(Succeed())
	g.Expect(node.Status.Conditions[0].Status).To(Equal(corev1.ConditionTrue))
	g.Expect(node.Spec.Taints).To(BeEmpty())

	g.Expect(nodes.Remove(ctx, env.Client, name)).To(Succeed())
	g.Expect(nodes.Remove(ctx, env.Client, name)).To(Succeed(), "removing a gone node is fine")
	err = env.Client.Get(ctx, client.ObjectKey{Name: name}, node)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
}

func TestRegisterIsIdempotentAndSetsTheProviderIDLater(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-cp-0", Namespace: "tenant-acme"},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
			CPU: &kubevirtv1.CPU{Cores: 4}, Memory: &kubevirtv1.Memory{Guest: ptr.To(resource.MustParse("16Gi"))},
		}},
		Status: kubevirtv1.VirtualMachineInstanceStatus{Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{IP: "10.3.0.7"}}},
	}
	node := nodes.ForVMI(vmi, nodes.TenantOptions{Infra: "infra-a", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}})
	g.Expect(node.Spec.ProviderID).To(BeEmpty(), "left to the provider under test")
	g.Expect(nodes.Register(ctx, env.Client, node)).To(Succeed())
	g.Expect(nodes.Register(ctx, env.Client, node)).To(Succeed(), "a hook may run twice")

	got := &corev1.Node{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "acme-cp-0"}, got)).To(Succeed())
	g.Expect(got.Status.Capacity.Cpu().Value()).To(Equal(int64(4)))
	g.Expect(got.Status.Capacity.Memory().Value()).To(Equal(int64(16 << 30)))
	g.Expect(got.Status.Addresses).To(ContainElement(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.3.0.7"}))
	g.Expect(got.Labels).To(HaveKey("node-role.kubernetes.io/control-plane"))
	g.Expect(got.Status.NodeInfo.KubeletVersion).To(Equal(nodes.DefaultKubeletVersion))

	withID := nodes.ForVMI(vmi, nodes.TenantOptions{Infra: "infra-a", SetProviderID: true})
	g.Expect(nodes.Register(ctx, env.Client, withID)).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "acme-cp-0"}, got)).To(Succeed())
	g.Expect(got.Spec.ProviderID).To(Equal("nest://infra-a/tenant-acme/acme-cp-0"))
}

func TestForHostTakesInspectedHardware(t *testing.T) {
	g := NewWithT(t)
	host := &bmov1alpha1.BareMetalHost{
		ObjectMeta: metav1.ObjectMeta{Name: "host-3", Namespace: "metal"},
		Status: bmov1alpha1.BareMetalHostStatus{HardwareDetails: &bmov1alpha1.HardwareDetails{
			CPU: bmov1alpha1.CPU{Count: 48}, RAMMebibytes: 196608, Hostname: "worker-3",
			NIC: []bmov1alpha1.NIC{{Name: "eno1", IP: "172.16.0.9"}},
		}},
	}
	node := nodes.ForHost(host, nodes.TenantOptions{Infra: "infra-b", SetProviderID: true})
	g.Expect(node.Name).To(Equal("worker-3"))
	g.Expect(node.Status.Capacity.Cpu().Value()).To(Equal(int64(48)))
	g.Expect(node.Status.Capacity.Memory().Value()).To(Equal(int64(196608) << 20))
	g.Expect(node.Status.Addresses[0]).To(Equal(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.16.0.9"}))
	g.Expect(node.Spec.ProviderID).To(Equal("nest://infra-b/metal/host-3"))
}
