package kubevirt

import (
	"hash/fnv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names KubeVirt gives to what it puts on virt-launcher pods and Infra nodes.
const (
	// ComputeContainer is the virt-launcher container that runs the VM.
	ComputeContainer = "compute"
	// LauncherLabelValue is the value of kubevirt.io on virt-launcher pods.
	LauncherLabelValue = "virt-launcher"
	// SchedulableLabel is the node label virt-handler sets on nodes that can run VMs; virt-launcher
	// pods select it.
	SchedulableLabel = "kubevirt.io/schedulable"
	// KVMDevice, TunDevice and VhostNetDevice are the device-plugin resources virt-handler advertises
	// on nodes and virt-launcher pods request.
	KVMDevice      corev1.ResourceName = "devices.kubevirt.io/kvm"
	TunDevice      corev1.ResourceName = "devices.kubevirt.io/tun"
	VhostNetDevice corev1.ResourceName = "devices.kubevirt.io/vhost-net"

	// cpuAllocationRatio is KubeVirt's default developerConfiguration.cpuAllocationRatio: a vCPU that is
	// not dedicated requests 1/10 of a CPU.
	cpuAllocationRatio = 10
	// ephemeralStorageOverhead is what KubeVirt adds to the launcher's ephemeral-storage request.
	ephemeralStorageOverhead = "50M"
	// defaultLauncherImage is the virt-launcher image of the KubeVirt release whose API this module uses.
	defaultLauncherImage = "quay.io/kubevirt/virt-launcher:v1.9.0"
)

// VCPUs is the number of vCPUs KubeVirt gives a VMI: sockets×cores×threads (each at least 1) when a
// CPU topology is set, else the CPU limit, else the CPU request, else 1.
func VCPUs(spec *kubevirtv1.VirtualMachineInstanceSpec) int64 {
	if cpu := spec.Domain.CPU; cpu != nil {
		n := int64(1)
		for _, v := range []uint32{cpu.Sockets, cpu.Cores, cpu.Threads} {
			n *= int64(max(v, 1))
		}
		return n
	}
	res := spec.Domain.Resources
	var n int64
	if q, ok := res.Limits[corev1.ResourceCPU]; ok {
		n = q.Value()
	} else if q, ok := res.Requests[corev1.ResourceCPU]; ok {
		n = q.Value()
	}
	return max(n, 1)
}

// GuestMemory is the memory the guest asks for: the memory request, which KubeVirt's admission webhook
// defaults from spec.domain.memory.guest when it is absent.
func GuestMemory(spec *kubevirtv1.VirtualMachineInstanceSpec) resource.Quantity {
	if q, ok := spec.Domain.Resources.Requests[corev1.ResourceMemory]; ok {
		return q
	}
	if spec.Domain.Memory != nil && spec.Domain.Memory.Guest != nil {
		return *spec.Domain.Memory.Guest
	}
	if q, ok := spec.Domain.Resources.Limits[corev1.ResourceMemory]; ok {
		return q
	}
	return resource.Quantity{}
}

// MemoryOverhead approximates the virt-launcher memory overhead KubeVirt adds to the compute
// container's memory request: KubeVirt's GetMemoryOverhead for KVM on x86_64 (pkg/virt-controller
// services / hypervisor kvm, KubeVirt v1.x) with no additionalGuestMemoryOverheadRatio and no network
// binding plugins:
//
//   - page tables: guest memory / 512,
//   - 220Mi for virt-launcher-monitor, virt-launcher, virtlogd, virtqemud and qemu,
//   - 8Mi per vCPU and 8Mi for the IO thread,
//   - 32Mi of video RAM unless autoattachGraphicsDevice is false,
//   - 1Gi when a GPU, host device or SR-IOV interface needs VFIO,
//   - 1Mi for a downwardMetrics volume, 10Mi per exec probe plus 100Mi when there is one,
//   - 256Mi for SEV, 53Mi for a TPM, 100Mi for dedicated CPUs or a Guaranteed QoS request.
func MemoryOverhead(spec *kubevirtv1.VirtualMachineInstanceSpec) resource.Quantity {
	const mi = 1 << 20
	guest := GuestMemory(spec)
	overhead := guest.Value() / 512
	overhead += (25 + 100 + 25 + 40 + 30) * mi
	overhead += 8 * mi * VCPUs(spec)
	overhead += 8 * mi
	devices := spec.Domain.Devices
	if devices.AutoattachGraphicsDevice == nil || *devices.AutoattachGraphicsDevice {
		overhead += 32 * mi
	}
	if needsVFIO(spec) {
		overhead += 1024 * mi
	}
	for _, v := range spec.Volumes {
		if v.DownwardMetrics != nil {
			overhead += mi
			break
		}
	}
	liveness := spec.LivenessProbe != nil && spec.LivenessProbe.Exec != nil
	readiness := spec.ReadinessProbe != nil && spec.ReadinessProbe.Exec != nil
	if liveness {
		overhead += 10 * mi
	}
	if readiness {
		overhead += 10 * mi
	}
	if liveness || readiness {
		overhead += 100 * mi
	}
	if ls := spec.Domain.LaunchSecurity; ls != nil && (ls.SEV != nil || ls.SNP != nil) {
		overhead += 256 * mi
	}
	if tpm := devices.TPM; tpm != nil && (tpm.Enabled == nil || *tpm.Enabled) {
		overhead += 53 * mi
	}
	vmi := &kubevirtv1.VirtualMachineInstance{Spec: *spec}
	if vmi.IsCPUDedicated() || vmi.WantsToHaveQOSGuaranteed() {
		overhead += 100 * mi
	}
	return *resource.NewQuantity(overhead, resource.BinarySI)
}

func needsVFIO(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	devices := spec.Domain.Devices
	if len(devices.GPUs) > 0 || len(devices.HostDevices) > 0 {
		return true
	}
	for _, iface := range devices.Interfaces {
		if iface.SRIOV != nil {
			return true
		}
	}
	return false
}

// usesPodNetwork reports whether the VMI has an interface on the pod network, explicitly or through
// autoattachPodInterface (on by default when no network is listed).
func usesPodNetwork(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	if len(spec.Networks) == 0 {
		return spec.Domain.Devices.AutoattachPodInterface == nil || *spec.Domain.Devices.AutoattachPodInterface
	}
	for _, n := range spec.Networks {
		if n.Pod != nil {
			return true
		}
	}
	return false
}

// LauncherResources are the compute container's resources as virt-controller renders them:
//
//   - requests: the VMI's requests; memory = guest memory + MemoryOverhead (unless
//     overcommitGuestOverhead); cpu, when not requested, = vCPUs/cpuAllocationRatio (100m per vCPU), or
//     all vCPUs when they are dedicated; ephemeral-storage + 50M;
//   - limits: the VMI's limits (memory + overhead), cpu = vCPUs when dedicated, and one of each device
//     the VM uses: devices.kubevirt.io/kvm always, tun and vhost-net with a pod-network interface (the
//     API server then defaults their requests to these limits).
//
// Hugepages, sidecars, hotplug and auto memory limits are not rendered.
func LauncherResources(spec *kubevirtv1.VirtualMachineInstanceSpec) corev1.ResourceRequirements {
	vmi := &kubevirtv1.VirtualMachineInstance{Spec: *spec}
	res := spec.Domain.Resources
	requests := corev1.ResourceList{}
	limits := corev1.ResourceList{}
	for k, v := range res.Requests {
		requests[k] = v.DeepCopy()
	}
	for k, v := range res.Limits {
		limits[k] = v.DeepCopy()
	}
	overhead := MemoryOverhead(spec)

	memory := GuestMemory(spec)
	if !res.OvercommitGuestOverhead {
		memory.Add(overhead)
	}
	requests[corev1.ResourceMemory] = memory
	if l, ok := limits[corev1.ResourceMemory]; ok {
		l.Add(overhead)
		limits[corev1.ResourceMemory] = l
	}

	vcpus := VCPUs(spec)
	if vmi.IsCPUDedicated() {
		dedicated := *resource.NewQuantity(vcpus, resource.DecimalSI)
		limits[corev1.ResourceCPU] = dedicated
		requests[corev1.ResourceCPU] = dedicated
		limits[corev1.ResourceMemory] = requests[corev1.ResourceMemory]
	} else if _, ok := requests[corev1.ResourceCPU]; !ok {
		requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(vcpus*1000/cpuAllocationRatio, resource.DecimalSI)
	}

	storage := requests[corev1.ResourceEphemeralStorage]
	storage.Add(resource.MustParse(ephemeralStorageOverhead))
	requests[corev1.ResourceEphemeralStorage] = storage

	one := *resource.NewQuantity(1, resource.DecimalSI)
	limits[KVMDevice] = one
	requests[KVMDevice] = one
	if usesPodNetwork(spec) {
		for _, d := range []corev1.ResourceName{TunDevice, VhostNetDevice} {
			limits[d] = one
			requests[d] = one
		}
	}
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}
}

// launcherSuffixAlphabet is the alphabet of Kubernetes' generateName suffixes (k8s.io/apimachinery
// util/rand): no vowels, no look-alike characters.
const launcherSuffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// LauncherPodName is the virt-launcher pod's name: virt-launcher-<vmi>-<5 characters>. KubeVirt lets the
// API server generate the suffix; the simulator derives it from the VMI's UID so that a retried create
// after a lost response cannot make a second pod.
func LauncherPodName(vmi *kubevirtv1.VirtualMachineInstance) string {
	return launcherPodName(vmi.Name, vmi.UID)
}

// MigrationTargetPodName is the name of the target virt-launcher pod of migration migrationUID of vmi: a
// launcher name whose suffix comes from the migration.
func MigrationTargetPodName(vmi *kubevirtv1.VirtualMachineInstance, migrationUID types.UID) string {
	return launcherPodName(vmi.Name, migrationUID)
}

func launcherPodName(vmiName string, uid types.UID) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	sum := h.Sum64()
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = launcherSuffixAlphabet[sum%uint64(len(launcherSuffixAlphabet))]
		sum /= uint64(len(launcherSuffixAlphabet))
	}
	prefix := "virt-launcher-" + vmiName
	// generateName prefixes are cut so that the name fits in 63 characters.
	if len(prefix) > 57 {
		prefix = prefix[:57]
	}
	return prefix + "-" + string(suffix)
}

// LauncherPod is the virt-launcher pod of vmi as virt-controller creates it: labels kubevirt.io,
// kubevirt.io/created-by and vm.kubevirt.io/name plus the VMI's labels, a controller reference to the VMI,
// one compute container with LauncherResources, and the VMI's scheduling constraints (scheduler name,
// node selector plus kubevirt.io/schedulable, tolerations, affinity, topology spread, priority class).
func LauncherPod(vmi *kubevirtv1.VirtualMachineInstance, image string) *corev1.Pod {
	labels := map[string]string{}
	for k, v := range vmi.Labels {
		labels[k] = v
	}
	labels[kubevirtv1.AppLabel] = LauncherLabelValue
	labels[kubevirtv1.CreatedByLabel] = string(vmi.UID)
	labels[kubevirtv1.DeprecatedVirtualMachineNameLabel] = vmi.Name

	nodeSelector := map[string]string{SchedulableLabel: "true"}
	for k, v := range vmi.Spec.NodeSelector {
		nodeSelector[k] = v
	}
	hostname := vmi.Spec.Hostname
	if hostname == "" {
		hostname = vmi.Name
	}
	spec := &vmi.Spec
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      LauncherPodName(vmi),
			Namespace: vmi.Namespace,
			Labels:    labels,
			Annotations: map[string]string{
				kubevirtv1.DomainAnnotation:               vmi.Name,
				"kubectl.kubernetes.io/default-container": ComputeContainer,
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vmi, kubevirtv1.VirtualMachineInstanceGroupVersionKind)},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:      ComputeContainer,
				Image:     image,
				Command:   []string{"/usr/bin/virt-launcher-monitor", "--qemu-timeout", "300s", "--name", vmi.Name, "--uid", string(vmi.UID), "--namespace", vmi.Namespace},
				Resources: LauncherResources(spec),
			}},
			SchedulerName:                 spec.SchedulerName,
			NodeSelector:                  nodeSelector,
			Tolerations:                   spec.Tolerations,
			Affinity:                      spec.Affinity,
			TopologySpreadConstraints:     spec.TopologySpreadConstraints,
			PriorityClassName:             spec.PriorityClassName,
			Hostname:                      hostname,
			Subdomain:                     spec.Subdomain,
			DNSPolicy:                     spec.DNSPolicy,
			DNSConfig:                     spec.DNSConfig,
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(ptr.Deref(spec.TerminationGracePeriodSeconds, 30) + 15),
		},
	}
}

// CurrentLauncherPodName names the launcher pod that runs vmi now: the target of its last migration once
// that completed, the source of a migration that did not (yet), else the pod the VMI started in.
func CurrentLauncherPodName(vmi *kubevirtv1.VirtualMachineInstance) string {
	if m := vmi.Status.MigrationState; m != nil {
		if m.Completed && !m.Failed && m.TargetPod != "" {
			return m.TargetPod
		}
		if m.SourcePod != "" {
			return m.SourcePod
		}
	}
	return LauncherPodName(vmi)
}

// MigrationTargetPod is the target virt-launcher pod of migration m of vmi as virt-controller creates
// it: vmi's LauncherPod with the kubevirt.io/migrationJobUID label and kubevirt.io/migrationJobName
// annotation, the migration's addedNodeSelector merged into the node selector (the VMI's own values
// win: addedNodeSelector can narrow the placement, not widen it), and a required pod anti-affinity on
// kubernetes.io/hostname against the pods of the VMI (kubevirt.io/created-by), which keeps the target
// off the node the VM runs on.
func MigrationTargetPod(vmi *kubevirtv1.VirtualMachineInstance, m *kubevirtv1.VirtualMachineInstanceMigration, image string) *corev1.Pod {
	pod := LauncherPod(vmi, image)
	pod.Name = MigrationTargetPodName(vmi, m.UID)
	pod.Labels[kubevirtv1.MigrationJobLabel] = string(m.UID)
	pod.Annotations[kubevirtv1.MigrationJobNameAnnotation] = m.Name
	for k, v := range m.Spec.AddedNodeSelector {
		if _, ok := pod.Spec.NodeSelector[k]; !ok {
			pod.Spec.NodeSelector[k] = v
		}
	}
	affinity := &corev1.Affinity{}
	if pod.Spec.Affinity != nil {
		affinity = pod.Spec.Affinity.DeepCopy()
	}
	if affinity.PodAntiAffinity == nil {
		affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
		corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: kubevirtv1.CreatedByLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{string(vmi.UID)},
			}}},
			TopologyKey: corev1.LabelHostname,
		})
	pod.Spec.Affinity = affinity
	return pod
}

// isMigrationTarget reports whether a pod is the target launcher of a migration.
func isMigrationTarget(p client.Object) bool {
	_, ok := p.GetLabels()[kubevirtv1.MigrationJobLabel]
	return ok
}

// isLauncher reports whether a pod is a virt-launcher pod.
func isLauncher(p client.Object) bool {
	return p.GetLabels()[kubevirtv1.AppLabel] == LauncherLabelValue
}
