package kubevirt

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

const mi = 1 << 20

func spec(cores uint32, guest string, mutate ...func(*kubevirtv1.VirtualMachineInstanceSpec)) *kubevirtv1.VirtualMachineInstanceSpec {
	s := &kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
		CPU:    &kubevirtv1.CPU{Cores: cores},
		Memory: &kubevirtv1.Memory{Guest: ptr.To(resource.MustParse(guest))},
	}}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func TestMemoryOverheadFollowsKubeVirtsEstimate(t *testing.T) {
	cases := []struct {
		name string
		spec *kubevirtv1.VirtualMachineInstanceSpec
		want int64
	}{
		// 4Gi/512 page tables + 220Mi processes + 2×8Mi vCPUs + 8Mi IO thread + 32Mi video.
		{"2 vCPUs, 4Gi", spec(2, "4Gi"), (8 + 220 + 16 + 8 + 32) * mi},
		{"sockets×cores×threads", spec(2, "4Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.CPU.Sockets, s.Domain.CPU.Threads = 2, 2
		}), (8 + 220 + 64 + 8 + 32) * mi},
		{"no graphics device", spec(2, "4Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.AutoattachGraphicsDevice = ptr.To(false)
		}), (8 + 220 + 16 + 8) * mi},
		{"dedicated CPUs", spec(4, "8Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.CPU.DedicatedCPUPlacement = true
		}), (16 + 220 + 32 + 8 + 32 + 100) * mi},
		{"exec liveness probe and TPM", spec(1, "2Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.LivenessProbe = &kubevirtv1.Probe{Handler: kubevirtv1.Handler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			s.Domain.Devices.TPM = &kubevirtv1.TPMDevice{}
		}), (4 + 220 + 8 + 8 + 32 + 10 + 100 + 53) * mi},
		{"GPU needs VFIO", spec(1, "2Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.GPUs = []kubevirtv1.GPU{{Name: "gpu", DeviceName: "nvidia.com/A100"}}
		}), (4 + 220 + 8 + 8 + 32 + 1024) * mi},
		{"no topology: vCPUs from the CPU request", &kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
			Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("3"), corev1.ResourceMemory: resource.MustParse("1Gi"),
			}},
		}}, (2 + 220 + 24 + 8 + 32) * mi},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := MemoryOverhead(tc.spec)
			NewWithT(t).Expect(got.Value()).To(Equal(tc.want), "got %s", got.String())
		})
	}
}

func TestLauncherResourcesAsVirtControllerRendersThem(t *testing.T) {
	g := NewWithT(t)

	res := LauncherResources(spec(2, "4Gi"))
	g.Expect(res.Requests.Cpu().MilliValue()).To(Equal(int64(200)), "100m per vCPU at cpuAllocationRatio 10")
	g.Expect(res.Requests.Memory().Value()).To(Equal(int64(4096+284)*mi), "guest memory plus overhead")
	g.Expect(res.Requests.StorageEphemeral().String()).To(Equal("50M"))
	for _, d := range []corev1.ResourceName{KVMDevice, TunDevice, VhostNetDevice} {
		g.Expect(res.Requests).To(HaveKey(d), "the pod network needs %s", d)
		g.Expect(res.Limits).To(HaveKey(d))
	}
	g.Expect(res.Limits).NotTo(HaveKey(corev1.ResourceCPU), "no CPU limit unless dedicated")
	g.Expect(res.Limits).NotTo(HaveKey(corev1.ResourceMemory), "no memory limit unless the VMI has one")

	res = LauncherResources(spec(4, "8Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) { s.Domain.CPU.DedicatedCPUPlacement = true }))
	g.Expect(res.Requests.Cpu().Value()).To(Equal(int64(4)), "dedicated CPUs are requested whole")
	g.Expect(res.Limits.Cpu().Value()).To(Equal(int64(4)))
	g.Expect(res.Limits.Memory().Cmp(*res.Requests.Memory())).To(Equal(0), "Guaranteed QoS")

	res = LauncherResources(spec(2, "4Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
		s.Domain.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}
		s.Domain.Resources.OvercommitGuestOverhead = true
	}))
	g.Expect(res.Requests.Cpu().MilliValue()).To(Equal(int64(1500)), "an explicit CPU request wins")
	g.Expect(res.Requests.Memory().Value()).To(Equal(int64(4096)*mi), "overcommitGuestOverhead leaves the overhead out")

	res = LauncherResources(spec(1, "1Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
		s.Networks = []kubevirtv1.Network{{Name: "storage", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "storage"}}}}
	}))
	g.Expect(res.Requests).To(HaveKey(KVMDevice))
	g.Expect(res.Requests).NotTo(HaveKey(TunDevice), "no pod network, no tun device")
}

func TestLauncherPodCarriesKubeVirtsLabelsOwnerAndPlacement(t *testing.T) {
	g := NewWithT(t)
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "cp-0", Namespace: "tenant", UID: "1234", Labels: map[string]string{"cluster.x-k8s.io/cluster-name": "acme"}},
		Spec: *spec(2, "4Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.SchedulerName = "nest-scheduler"
			s.NodeSelector = map[string]string{"zone": "a"}
			s.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}}
		}),
	}
	pod := LauncherPod(vmi, "launcher:v1")
	g.Expect(pod.Name).To(MatchRegexp(`^virt-launcher-cp-0-[bcdfghjklmnpqrstvwxz2456789]{5}$`))
	g.Expect(LauncherPod(vmi, "launcher:v1").Name).To(Equal(pod.Name), "the same VMI always gets the same name")
	g.Expect(pod.Labels).To(Equal(map[string]string{
		"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "1234", "vm.kubevirt.io/name": "cp-0",
		"cluster.x-k8s.io/cluster-name": "acme",
	}))
	g.Expect(metav1.IsControlledBy(pod, vmi)).To(BeTrue())
	g.Expect(pod.Spec.SchedulerName).To(Equal("nest-scheduler"))
	g.Expect(pod.Spec.NodeSelector).To(Equal(map[string]string{"zone": "a", SchedulableLabel: "true"}))
	g.Expect(pod.Spec.Tolerations).To(Equal(vmi.Spec.Tolerations))
	g.Expect(pod.Spec.Affinity).To(Equal(vmi.Spec.Affinity))
	g.Expect(pod.Spec.Containers).To(HaveLen(1))
	g.Expect(pod.Spec.Containers[0].Name).To(Equal(ComputeContainer))
	g.Expect(pod.Spec.Hostname).To(Equal("cp-0"))

	long := vmi.DeepCopy()
	long.Name = "a-very-long-virtual-machine-instance-name-that-goes-on-and-on"
	g.Expect(len(LauncherPodName(long))).To(BeNumerically("<=", 63), "pod names stay valid labels")
}

func TestMigrationTargetPodNarrowsPlacementAndAvoidsTheVMsNode(t *testing.T) {
	g := NewWithT(t)
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "cp-0", Namespace: "tenant", UID: "1234"},
		Spec: *spec(2, "4Gi", func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.NodeSelector = map[string]string{"zone": "a"}
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone"}},
			}}
		}),
	}
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "move", Namespace: "tenant", UID: "5678"},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "cp-0", AddedNodeSelector: map[string]string{corev1.LabelHostname: "node-2", "zone": "b"}},
	}
	pod := MigrationTargetPod(vmi, m, "launcher:v1")
	g.Expect(pod.Name).NotTo(Equal(LauncherPodName(vmi)))
	g.Expect(pod.Name).To(Equal(MigrationTargetPodName(vmi, m.UID)))
	g.Expect(pod.Labels).To(HaveKeyWithValue(kubevirtv1.MigrationJobLabel, "5678"))
	g.Expect(pod.Labels).To(HaveKeyWithValue(kubevirtv1.CreatedByLabel, "1234"))
	g.Expect(pod.Annotations).To(HaveKeyWithValue(kubevirtv1.MigrationJobNameAnnotation, "move"))
	g.Expect(pod.Spec.NodeSelector).To(Equal(map[string]string{
		"zone": "a", corev1.LabelHostname: "node-2", SchedulableLabel: "true",
	}), "the VMI's own selector wins a collision")
	terms := pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	g.Expect(terms).To(HaveLen(2))
	g.Expect(terms[1].TopologyKey).To(Equal(corev1.LabelHostname))
	g.Expect(terms[1].LabelSelector.MatchExpressions).To(ConsistOf(metav1.LabelSelectorRequirement{
		Key: kubevirtv1.CreatedByLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"1234"},
	}))
	g.Expect(vmi.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).To(HaveLen(1), "the VMI is not changed")

	// The source launcher, running on node-1, keeps the target off it.
	source := LauncherPod(vmi, "launcher:v1")
	source.Spec.NodeName = "node-1"
	node := func(name string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, "zone": "a", SchedulableLabel: "true"}},
			Status: corev1.NodeStatus{
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110"), KVMDevice: resource.MustParse("100"), TunDevice: resource.MustParse("100"), VhostNetDevice: resource.MustParse("100"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")},
			},
		}
	}
	pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = terms[1:]
	pod.Spec.NodeSelector = map[string]string{SchedulableLabel: "true"}
	got, why := FirstFit(pod, []NodePods{{Node: node("node-1"), Pods: []*corev1.Pod{source}}})
	g.Expect(got).To(BeEmpty())
	g.Expect(why).To(ContainSubstring("didn't match pod anti-affinity rules"))
	got, _ = FirstFit(pod, []NodePods{{Node: node("node-1"), Pods: []*corev1.Pod{source}}, {Node: node("node-2")}})
	g.Expect(got).To(Equal("node-2"))
}
