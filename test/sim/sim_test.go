package sim_test

import (
	"context"
	"testing"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

func TestOneInfraRunsVMsAndHostsAndRegistersTenantNodes(t *testing.T) {
	g := NewWithT(t)
	infraEnv, err := envtest.Start(envtest.Options{CRDs: envtest.Infra})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { g.Expect(infraEnv.Stop()).To(Succeed()) })
	tenantEnv, err := envtest.Start(envtest.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { g.Expect(tenantEnv.Stop()).To(Succeed()) })

	ctx, cancel := context.WithCancel(context.Background())
	infra, err := sim.Run(ctx, infraEnv.Config, sim.Options{
		KubeVirt: &kubevirt.Options{ID: 1, SelfSchedule: true, OnRunning: func(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
			return nodes.Register(ctx, tenantEnv.Client, nodes.ForVMI(vmi, nodes.TenantOptions{Infra: "infra-a", SetProviderID: true}))
		}},
		Metal3: &metal3.Options{ID: 1, OnProvisioned: func(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
			return nodes.Register(ctx, tenantEnv.Client, nodes.ForHost(host, nodes.TenantOptions{Infra: "infra-a", SetProviderID: true}))
		}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		cancel()
		<-infra.Done()
		g.Expect(infra.Err()).NotTo(HaveOccurred())
	})

	_, err = nodes.Create(ctx, infraEnv.Client, nodes.Options{Count: 2, KubeVirt: true})
	g.Expect(err).NotTo(HaveOccurred())
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: "cp-0", Namespace: "default"},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain:  kubevirtv1.DomainSpec{CPU: &kubevirtv1.CPU{Cores: 2}, Memory: &kubevirtv1.Memory{Guest: ptr.To(resource.MustParse("4Gi"))}},
				Volumes: []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "img"}}}},
			}},
		},
	}
	g.Expect(infraEnv.Client.Create(ctx, vm)).To(Succeed())
	hosts, err := metal3.CreateHosts(ctx, infraEnv.Client, metal3.HostsOptions{Namespace: "default"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		host := &bmov1alpha1.BareMetalHost{}
		g.Expect(infraEnv.Client.Get(ctx, client.ObjectKeyFromObject(hosts[0]), host)).To(Succeed())
		g.Expect(host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
		patch := client.MergeFrom(host.DeepCopy())
		host.Spec.Online = true
		host.Spec.Image = &bmov1alpha1.Image{URL: "http://images.example/worker.qcow2", Checksum: "abc", ChecksumType: bmov1alpha1.SHA256}
		g.Expect(infraEnv.Client.Patch(ctx, host, patch)).To(Succeed())
	}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())

	g.Eventually(func(g Gomega) {
		list := &corev1.NodeList{}
		g.Expect(tenantEnv.Client.List(ctx, list)).To(Succeed())
		ids := map[string]string{}
		for _, n := range list.Items {
			ids[n.Name] = n.Spec.ProviderID
		}
		g.Expect(ids).To(Equal(map[string]string{
			"cp-0":   "nest://infra-a/default/cp-0",
			"host-0": "nest://infra-a/default/host-0",
		}), "a tenant Node per booted machine")
	}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
}
