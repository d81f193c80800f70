package kubevirt

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

func TestRenderVM(t *testing.T) {
	workerLabels := map[string]string{
		"cluster.x-k8s.io/cluster-name":                          "tenant1",
		"cluster.x-k8s.io/role":                                  "worker",
		"infrastructure.cluster.x-k8s.io/managed-by":             "nest",
		"nest.infrastructure.cluster.x-k8s.io/machine-namespace": "team-a",
		"nest.infrastructure.cluster.x-k8s.io/machine-name":      "tenant1-md-0-abcde",
		"nest.infrastructure.cluster.x-k8s.io/machine-uid":       "9b2d1c3e-0000-4000-8000-000000000001",
		"nest.infrastructure.cluster.x-k8s.io/cluster-namespace": "team-a",
		"nest.infrastructure.cluster.x-k8s.io/cluster-name":      "tenant1",
	}
	httpImage := func(in *Input) {
		in.NestMachine.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://images.example.com/rhcos.qcow2", CertConfigMap: "images-ca"}}
		in.NestMachine.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi")}
	}
	cpTerm := corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"cluster.x-k8s.io/cluster-name": "tenant1", "cluster.x-k8s.io/role": "control-plane"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "install.openshift.io/bootstrap", Operator: metav1.LabelSelectorOpDoesNotExist}},
		},
		TopologyKey: "kubernetes.io/hostname",
	}
	bootstrapMachine := func(in *Input) { in.Machine.Labels["install.openshift.io/bootstrap"] = "" }

	tests := []struct {
		name   string
		base   func() Input
		modify func(in *Input)
		check  func(g Gomega, vm *kubevirtv1.VirtualMachine)
	}{
		{
			name: "identity: name from the NestMachine, namespace of the tenant, kubevirt.io/v1 VirtualMachine",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.APIVersion).To(Equal("kubevirt.io/v1"))
				g.Expect(vm.Kind).To(Equal("VirtualMachine"))
				g.Expect(vm.Name).To(Equal("tenant1-md-0-abcde"))
				g.Expect(vm.Namespace).To(Equal("nest-team-a-tenant1"))
				g.Expect(vm.Annotations).To(Equal(map[string]string{infrav1.NestMachineAnnotation: "team-a/tenant1-md-0-abcde", infrav1.NestClusterAnnotation: "team-a/tenant1"}))
			},
		},
		{
			name: "labels: the VM and its template (the virt-launcher pod) carry cluster, role and ownership",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).To(Equal(workerLabels))
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(Equal(workerLabels))
			},
		},
		{
			name:   "labels: DataVolumes carry the same labels",
			modify: httpImage,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.DataVolumeTemplates).To(HaveLen(1))
				g.Expect(vm.Spec.DataVolumeTemplates[0].Labels).To(Equal(workerLabels))
			},
		},
		{
			name: "role: a Machine with the control-plane label makes a control-plane VM",
			base: controlPlaneInput,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).To(HaveKeyWithValue(RoleLabel, RoleControlPlane))
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue(RoleLabel, RoleControlPlane))
			},
		},
		{
			name: "role: without a Machine the NestMachine's control-plane label decides",
			modify: func(in *Input) {
				in.Machine = nil
				in.NestMachine.Labels = map[string]string{clusterv1.MachineControlPlaneLabel: ""}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).To(HaveKeyWithValue(RoleLabel, RoleControlPlane))
			},
		},
		{
			name:   "role: the Machine wins over the NestMachine's labels",
			modify: func(in *Input) { in.NestMachine.Labels = map[string]string{clusterv1.MachineControlPlaneLabel: ""} },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).To(HaveKeyWithValue(RoleLabel, RoleWorker))
			},
		},
		{
			name:   "labels: a NestMachine name longer than a label value is shortened in the label, kept whole in the annotation",
			modify: func(in *Input) { in.NestMachine.Name = strings.Repeat("n", 70) },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels[infrav1.NestMachineNameLabel]).To(Equal(ownership.LabelValue(strings.Repeat("n", 70))))
				g.Expect(len(vm.Labels[infrav1.NestMachineNameLabel])).To(Equal(63))
				g.Expect(vm.Annotations[infrav1.NestMachineAnnotation]).To(Equal("team-a/" + strings.Repeat("n", 70)))
				g.Expect(vm.Name).To(HaveLen(MaxVMNameLength))
			},
		},
		{
			name:   "labels: NestClusterName, when given, names the NestCluster",
			modify: func(in *Input) { in.NestClusterName = "tenant1-x9f2k" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).To(HaveKeyWithValue(infrav1.NestClusterNameLabel, "tenant1-x9f2k"))
				g.Expect(vm.Labels).To(HaveKeyWithValue(clusterv1.ClusterNameLabel, "tenant1"))
			},
		},
		{
			name: "cpu: sockets and threads default to 1",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.CPU).To(Equal(&kubevirtv1.CPU{Cores: 2, Sockets: 1, Threads: 1}))
			},
		},
		{
			name: "cpu: topology and dedicated placement are copied",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.CPU = &infrav1.CPU{Cores: 4, Sockets: 2, Threads: 2, Dedicated: true}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.CPU).To(Equal(&kubevirtv1.CPU{Cores: 4, Sockets: 2, Threads: 2, DedicatedCPUPlacement: true}))
			},
		},
		{
			name: "memory: guest memory and the pod's memory request are the NestMachine's memory; CPU requests are KubeVirt's",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				d := vm.Spec.Template.Spec.Domain
				g.Expect(d.Memory.Guest.String()).To(Equal("4Gi"))
				g.Expect(d.Resources.Requests).To(HaveLen(1))
				g.Expect(ptr.To(d.Resources.Requests[corev1.ResourceMemory]).String()).To(Equal("4Gi"))
				g.Expect(d.Resources.Limits).To(BeEmpty())
			},
		},
		{
			name: "instancetype: default kinds are the cluster-wide ones and the domain has no cpu, memory or requests",
			modify: func(in *Input) {
				kv := in.NestMachine.Spec.KubeVirt
				kv.CPU, kv.Memory = nil, nil
				kv.Instancetype = &infrav1.InstancetypeReference{Name: "u1.large"}
				kv.Preference = &infrav1.PreferenceReference{Name: "rhel.9"}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Instancetype).To(Equal(&kubevirtv1.InstancetypeMatcher{Name: "u1.large", Kind: "VirtualMachineClusterInstancetype"}))
				g.Expect(vm.Spec.Preference).To(Equal(&kubevirtv1.PreferenceMatcher{Name: "rhel.9", Kind: "VirtualMachineClusterPreference"}))
				d := vm.Spec.Template.Spec.Domain
				g.Expect(d.CPU).To(BeNil())
				g.Expect(d.Memory).To(BeNil())
				g.Expect(d.Resources).To(Equal(kubevirtv1.ResourceRequirements{}))
			},
		},
		{
			name: "instancetype: namespaced kinds are kept",
			modify: func(in *Input) {
				kv := in.NestMachine.Spec.KubeVirt
				kv.CPU, kv.Memory = nil, nil
				kv.Instancetype = &infrav1.InstancetypeReference{Name: "small", Kind: "VirtualMachineInstancetype"}
				kv.Preference = &infrav1.PreferenceReference{Name: "linux", Kind: "VirtualMachinePreference"}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Instancetype.Kind).To(Equal("VirtualMachineInstancetype"))
				g.Expect(vm.Spec.Preference.Kind).To(Equal("VirtualMachinePreference"))
			},
		},
		{
			name: "preference: alone, it keeps the explicit cpu and memory",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.Preference = &infrav1.PreferenceReference{Name: "rhel.9"}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Instancetype).To(BeNil())
				g.Expect(vm.Spec.Preference.Name).To(Equal("rhel.9"))
				g.Expect(vm.Spec.Template.Spec.Domain.CPU).NotTo(BeNil())
				g.Expect(vm.Spec.Template.Spec.Domain.Memory).NotTo(BeNil())
			},
		},
		{
			name: "boot image: a container disk is a containerDisk volume and no DataVolume",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.DataVolumeTemplates).To(BeEmpty())
				g.Expect(vm.Spec.Template.Spec.Volumes[0]).To(Equal(kubevirtv1.Volume{
					Name:         "rootdisk",
					VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/containerdisks/centos-stream:9"}},
				}))
			},
		},
		{
			name:   "boot image: HTTP imports into a DataVolume named <vm>-root with the CA ConfigMap",
			modify: httpImage,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				dv := vm.Spec.DataVolumeTemplates[0]
				g.Expect(dv.Name).To(Equal("tenant1-md-0-abcde-root"))
				g.Expect(dv.Spec.Source).To(Equal(&cdiv1.DataVolumeSource{HTTP: &cdiv1.DataVolumeSourceHTTP{URL: "https://images.example.com/rhcos.qcow2", CertConfigMap: "images-ca"}}))
				g.Expect(dv.Spec.SourceRef).To(BeNil())
				g.Expect(dv.Spec.PVC).To(BeNil(), "the storage API is used, not a raw PVC spec")
				g.Expect(vm.Spec.Template.Spec.Volumes[0]).To(Equal(kubevirtv1.Volume{
					Name:         "rootdisk",
					VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: "tenant1-md-0-abcde-root"}},
				}))
			},
		},
		{
			name:   "root disk: size only leaves class, access and volume mode to the StorageProfile",
			modify: httpImage,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				s := vm.Spec.DataVolumeTemplates[0].Spec.Storage
				g.Expect(ptr.To(s.Resources.Requests[corev1.ResourceStorage]).String()).To(Equal("40Gi"))
				g.Expect(s.StorageClassName).To(BeNil())
				g.Expect(s.AccessModes).To(BeEmpty())
				g.Expect(s.VolumeMode).To(BeNil())
			},
		},
		{
			name: "root disk: storage class, access mode and volume mode are copied",
			modify: func(in *Input) {
				httpImage(in)
				in.NestMachine.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi"), StorageClassName: "ceph-rbd", AccessMode: corev1.ReadWriteMany, VolumeMode: corev1.PersistentVolumeBlock}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				s := vm.Spec.DataVolumeTemplates[0].Spec.Storage
				g.Expect(s.StorageClassName).To(Equal(ptr.To("ceph-rbd")))
				g.Expect(s.AccessModes).To(Equal([]corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}))
				g.Expect(s.VolumeMode).To(Equal(ptr.To(corev1.PersistentVolumeBlock)))
			},
		},
		{
			name: "boot image: a registry image is imported by URL",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.BootImage = infrav1.BootImage{Registry: &infrav1.RegistrySource{URL: "docker://quay.io/containerdisks/fedora:40"}}
				in.NestMachine.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("20Gi")}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.DataVolumeTemplates[0].Spec.Source).To(Equal(&cdiv1.DataVolumeSource{Registry: &cdiv1.DataVolumeSourceRegistry{URL: ptr.To("docker://quay.io/containerdisks/fedora:40")}}))
			},
		},
		{
			name: "boot image: a golden PVC is cloned",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.BootImage = infrav1.BootImage{PVC: &infrav1.NamespacedName{Namespace: "golden", Name: "rhcos-4.18"}}
				in.NestMachine.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi")}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.DataVolumeTemplates[0].Spec.Source).To(Equal(&cdiv1.DataVolumeSource{PVC: &cdiv1.DataVolumeSourcePVC{Namespace: "golden", Name: "rhcos-4.18"}}))
			},
		},
		{
			name: "boot image: a DataSource is cloned through sourceRef",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.BootImage = infrav1.BootImage{DataSource: &infrav1.NamespacedName{Namespace: "openshift-virtualization-os-images", Name: "rhel9"}}
				in.NestMachine.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi")}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				dv := vm.Spec.DataVolumeTemplates[0].Spec
				g.Expect(dv.Source).To(BeNil())
				g.Expect(dv.SourceRef).To(Equal(&cdiv1.DataVolumeSourceRef{Kind: "DataSource", Namespace: ptr.To("openshift-virtualization-os-images"), Name: "rhel9"}))
			},
		},
		{
			name: "disks: rootdisk first and the only one with a boot order, then the bootstrap disk",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				virtio := kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}
				g.Expect(vm.Spec.Template.Spec.Domain.Devices.Disks).To(Equal([]kubevirtv1.Disk{
					{Name: "rootdisk", BootOrder: ptr.To[uint](1), DiskDevice: virtio},
					{Name: "cloudinitdisk", DiskDevice: virtio},
				}))
				g.Expect(vm.Spec.Template.Spec.Volumes).To(HaveLen(2))
				g.Expect(vm.Spec.Template.Spec.Volumes[0].Name).To(Equal("rootdisk"))
				g.Expect(vm.Spec.Template.Spec.Volumes[1].Name).To(Equal("cloudinitdisk"))
			},
		},
		{
			name: "bootstrap: cloud-config is a NoCloud disk reading the Secret",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Volumes[1]).To(Equal(kubevirtv1.Volume{
					Name: "cloudinitdisk",
					VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
						UserDataSecretRef: &corev1.LocalObjectReference{Name: "tenant1-md-0-abcde-bootstrap"},
					}},
				}))
			},
		},
		{
			name:   "bootstrap: an empty format means cloud-config, as in CAPI",
			modify: func(in *Input) { in.BootstrapFormat = "" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Volumes[1].CloudInitNoCloud).NotTo(BeNil())
				g.Expect(vm.Spec.Template.Spec.Volumes[1].CloudInitConfigDrive).To(BeNil())
			},
		},
		{
			name:   "bootstrap: network data is read from the same Secret",
			modify: func(in *Input) { in.WithNetworkData = true },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				ref := &corev1.LocalObjectReference{Name: "tenant1-md-0-abcde-bootstrap"}
				g.Expect(vm.Spec.Template.Spec.Volumes[1].CloudInitNoCloud).To(Equal(&kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: ref, NetworkDataSecretRef: ref}))
			},
		},
		{
			name:   "bootstrap: ignition is a config drive reading the Secret",
			modify: func(in *Input) { in.BootstrapFormat = FormatIgnition },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Volumes[1]).To(Equal(kubevirtv1.Volume{
					Name: "cloudinitdisk",
					VolumeSource: kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{
						UserDataSecretRef: &corev1.LocalObjectReference{Name: "tenant1-md-0-abcde-bootstrap"},
					}},
				}))
			},
		},
		{
			name:   "bootstrap: ignition with network data reads both from the Secret",
			modify: func(in *Input) { in.BootstrapFormat, in.WithNetworkData = FormatIgnition, true },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				ref := &corev1.LocalObjectReference{Name: "tenant1-md-0-abcde-bootstrap"}
				g.Expect(vm.Spec.Template.Spec.Volumes[1].CloudInitConfigDrive).To(Equal(&kubevirtv1.CloudInitConfigDriveSource{UserDataSecretRef: ref, NetworkDataSecretRef: ref}))
			},
		},
		{
			name: "networks: none given means the pod network with masquerade",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.Devices.Interfaces).To(Equal([]kubevirtv1.Interface{
					{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}},
				}))
				g.Expect(vm.Spec.Template.Spec.Networks).To(Equal([]kubevirtv1.Network{
					{Name: "default", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}},
				}))
			},
		},
		{
			name: "networks: pod network with bridge binding, then Multus, in spec order, with MAC addresses",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.Networks = []infrav1.Network{
					{Name: "storage", Multus: &infrav1.MultusNetwork{NetworkName: "infra/storage-net"}, MACAddress: "02:00:00:00:00:02"},
					{Name: "pod", Pod: &infrav1.PodNetwork{Binding: "bridge"}},
					{Name: "masq", Pod: &infrav1.PodNetwork{Binding: "masquerade"}, MACAddress: "02:00:00:00:00:01"},
				}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.Devices.Interfaces).To(Equal([]kubevirtv1.Interface{
					{Name: "storage", MacAddress: "02:00:00:00:00:02", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}},
					{Name: "pod", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}},
					{Name: "masq", MacAddress: "02:00:00:00:00:01", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}},
				}))
				g.Expect(vm.Spec.Template.Spec.Networks).To(Equal([]kubevirtv1.Network{
					{Name: "storage", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "infra/storage-net"}}},
					{Name: "pod", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}},
					{Name: "masq", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}},
				}))
			},
		},
		{
			name: "run strategy: defaults to Always",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyAlways)))
				g.Expect(vm.Spec.Running).To(BeNil())
			},
		},
		{
			name:   "run strategy: copied when set",
			modify: func(in *Input) { in.NestMachine.Spec.KubeVirt.RunStrategy = "RerunOnFailure" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyRerunOnFailure)))
			},
		},
		{
			name: "eviction strategy: defaults to LiveMigrate",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.EvictionStrategy).To(Equal(ptr.To(kubevirtv1.EvictionStrategyLiveMigrate)))
			},
		},
		{
			name:   "eviction strategy: copied when set",
			modify: func(in *Input) { in.NestMachine.Spec.KubeVirt.EvictionStrategy = "External" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.EvictionStrategy).To(Equal(ptr.To(kubevirtv1.EvictionStrategyExternal)))
			},
		},
		{
			name: "placement: node selector, tolerations and affinity are copied for a worker, with no anti-affinity added",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.Placement = &infrav1.Placement{
					NodeSelector: map[string]string{"node-role.kubernetes.io/virt": "", "topology.kubernetes.io/zone": "a"},
					Tolerations:  []corev1.Toleration{{Key: "virt", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](30)}},
					Affinity:     userNodeAffinity(),
				}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				s := vm.Spec.Template.Spec
				g.Expect(s.NodeSelector).To(Equal(map[string]string{"node-role.kubernetes.io/virt": "", "topology.kubernetes.io/zone": "a"}))
				g.Expect(s.Tolerations).To(Equal([]corev1.Toleration{{Key: "virt", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](30)}}))
				g.Expect(s.Affinity).To(Equal(userNodeAffinity()))
			},
		},
		{
			name: "placement: a worker without placement has none",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				s := vm.Spec.Template.Spec
				g.Expect(s.NodeSelector).To(BeNil())
				g.Expect(s.Tolerations).To(BeNil())
				g.Expect(s.Affinity).To(BeNil())
			},
		},
		{
			name: "anti-affinity: a control-plane VM must not share an Infra node with another of its tenant",
			base: controlPlaneInput,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Affinity).To(Equal(&corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{cpTerm},
				}}))
			},
		},
		{
			// A fourth control-plane VM for the install's duration must not need a fourth Infra node:
			// the bootstrap VM neither carries the term nor is selected by the masters' (DoesNotExist).
			name:   "anti-affinity: the OpenShift installer's bootstrap VM is exempt, and behind the API Services",
			base:   controlPlaneInput,
			modify: bootstrapMachine,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Affinity).To(BeNil())
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue("install.openshift.io/bootstrap", ""))
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue("cluster.x-k8s.io/role", "control-plane"))
				sel, err := metav1.LabelSelectorAsSelector(cpTerm.LabelSelector)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(sel.Matches(labels.Set(vm.Spec.Template.ObjectMeta.Labels))).To(BeFalse(), "the masters' anti-affinity must not select the bootstrap VM")
				master, err := RenderVM(controlPlaneInput())
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(sel.Matches(labels.Set(master.Spec.Template.ObjectMeta.Labels))).To(BeTrue(), "the masters' anti-affinity selects the masters")
			},
		},
		{
			name: "anti-affinity: the bootstrap label on a worker changes nothing",
			modify: func(in *Input) {
				in.Machine.Labels = map[string]string{"install.openshift.io/bootstrap": ""}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).NotTo(HaveKey("install.openshift.io/bootstrap"))
				g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue("cluster.x-k8s.io/role", "worker"))
			},
		},
		{
			name: "anti-affinity: merged with the user's affinity, keeping all of it",
			base: controlPlaneInput,
			modify: func(in *Input) {
				aff := userNodeAffinity()
				aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = []corev1.PodAffinityTerm{{TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "noisy"}}}}
				in.NestMachine.Spec.KubeVirt.Placement = &infrav1.Placement{Affinity: aff}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				want := userNodeAffinity()
				want.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = []corev1.PodAffinityTerm{
					{TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "noisy"}}},
					cpTerm,
				}
				g.Expect(vm.Spec.Template.Spec.Affinity).To(Equal(want))
			},
		},
		{
			name: "anti-affinity: not added twice when the user already asked for it",
			base: controlPlaneInput,
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{*cpTerm.DeepCopy()},
				}}}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).To(Equal([]corev1.PodAffinityTerm{cpTerm}))
			},
		},
		{
			name: "scheduler: the InfraCluster's scheduler by default",
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.SchedulerName).To(Equal("nest-scheduler"))
			},
		},
		{
			name:   "scheduler: the NestMachine's schedulerName overrides the InfraCluster's",
			modify: func(in *Input) { in.NestMachine.Spec.KubeVirt.SchedulerName = "special-scheduler" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.SchedulerName).To(Equal("special-scheduler"))
			},
		},
		{
			name:   "scheduler: none anywhere leaves the Infra cluster's default scheduler",
			modify: func(in *Input) { in.SchedulerName = "" },
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.SchedulerName).To(BeEmpty())
			},
		},
		{
			name: "patches: applied last, over the rendered fields",
			modify: func(in *Input) {
				in.NestMachine.Spec.KubeVirt.VMPatches = []infrav1.JSONPatch{
					{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"bootloader":{"efi":{"secureBoot":false}}}`)},
					{Op: "replace", Path: "/spec/template/spec/evictionStrategy", Value: jsonValue(`"None"`)},
				}
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				fw := vm.Spec.Template.Spec.Domain.Firmware
				g.Expect(fw).NotTo(BeNil())
				g.Expect(fw.Bootloader.EFI.SecureBoot).To(Equal(ptr.To(false)))
				g.Expect(vm.Spec.Template.Spec.EvictionStrategy).To(Equal(ptr.To(kubevirtv1.EvictionStrategyNone)))
				g.Expect(vm.Labels).To(Equal(workerLabels), "patches keep the ownership labels")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			base := workerInput
			if tt.base != nil {
				base = tt.base
			}
			in := base()
			if tt.modify != nil {
				tt.modify(&in)
			}
			before := in.NestMachine.DeepCopy()
			vm := mustRender(t, in)
			tt.check(g, vm)
			g.Expect(in.NestMachine).To(Equal(before), "rendering must not modify the NestMachine")
		})
	}
}

func TestRenderVMIsDeterministic(t *testing.T) {
	full := func(selectorOrder []string) Input {
		in := controlPlaneInput()
		kv := in.NestMachine.Spec.KubeVirt
		kv.BootImage = infrav1.BootImage{DataSource: &infrav1.NamespacedName{Namespace: "os-images", Name: "rhel9"}}
		kv.RootDisk = &infrav1.RootDisk{Size: qty("40Gi"), StorageClassName: "ceph-rbd", AccessMode: corev1.ReadWriteMany}
		kv.Networks = []infrav1.Network{{Name: "pod", Pod: &infrav1.PodNetwork{}}, {Name: "storage", Multus: &infrav1.MultusNetwork{NetworkName: "storage"}}}
		selector := map[string]string{}
		for _, k := range selectorOrder {
			selector[k] = "v-" + k
		}
		kv.Placement = &infrav1.Placement{NodeSelector: selector, Affinity: userNodeAffinity()}
		kv.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/metadata/labels/extra", Value: jsonValue(`"yes"`)}}
		return in
	}
	g := NewWithT(t)
	first := mustJSON(t, mustRender(t, full([]string{"a", "b", "c", "d", "e"})))
	for range 20 {
		g.Expect(string(mustJSON(t, mustRender(t, full([]string{"a", "b", "c", "d", "e"}))))).To(Equal(string(first)), "rendering twice must give the same bytes")
	}
	g.Expect(string(mustJSON(t, mustRender(t, full([]string{"e", "d", "c", "b", "a"}))))).To(Equal(string(first)), "map insertion order must not matter")
}

func TestRenderVMDoesNotAliasTheNestMachine(t *testing.T) {
	g := NewWithT(t)
	in := workerInput()
	in.NestMachine.Spec.KubeVirt.Placement = &infrav1.Placement{
		NodeSelector: map[string]string{"zone": "a"},
		Tolerations:  []corev1.Toleration{{Key: "virt", Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To[int64](30)}},
		Affinity:     userNodeAffinity(),
	}
	vm := mustRender(t, in)
	vm.Spec.Template.Spec.NodeSelector["zone"] = "b"
	*vm.Spec.Template.Spec.Tolerations[0].TolerationSeconds = 99
	vm.Spec.Template.Spec.Affinity.NodeAffinity = nil
	vm.Spec.Template.Spec.Domain.Memory.Guest.Add(*qty("1Gi"))
	vm.Labels["x"] = "y"

	g.Expect(in.NestMachine.Spec.KubeVirt.Placement.NodeSelector).To(HaveKeyWithValue("zone", "a"))
	g.Expect(*in.NestMachine.Spec.KubeVirt.Placement.Tolerations[0].TolerationSeconds).To(Equal(int64(30)))
	g.Expect(in.NestMachine.Spec.KubeVirt.Placement.Affinity.NodeAffinity).NotTo(BeNil())
	g.Expect(in.NestMachine.Spec.KubeVirt.Memory.String()).To(Equal("4Gi"))
	g.Expect(vm.Spec.Template.ObjectMeta.Labels).NotTo(HaveKey("x"), "the VM and its template must not share a label map")
}

func TestRenderVMRejectsIncompleteInput(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(in *Input)
		wantErr string
	}{
		{
			name:    "no NestMachine",
			modify:  func(in *Input) { in.NestMachine = nil },
			wantErr: "cannot render the VirtualMachine: no NestMachine to render",
		},
		{
			name:    "a bare-metal NestMachine",
			modify:  func(in *Input) { in.NestMachine.Spec.KubeVirt = nil },
			wantErr: "cannot render the VirtualMachine: NestMachine team-a/tenant1-md-0-abcde has no spec.kubevirt",
		},
		{
			name:    "an unknown bootstrap format",
			modify:  func(in *Input) { in.BootstrapFormat = "butane" },
			wantErr: `cannot render the VirtualMachine: bootstrap format "butane" is not supported: use "cloud-config" or "ignition"`,
		},
		{
			name: "missing identity, cluster, namespace and Secret, all reported at once",
			modify: func(in *Input) {
				in.NestMachine.UID = ""
				in.ClusterName, in.Namespace, in.BootstrapSecretName = "", "", ""
			},
			wantErr: "cannot render the VirtualMachine: the NestMachine needs a name, a namespace and a UID: they are the VM's ownership labels\n" +
				"the tenant cluster name is empty\nthe Infra cluster namespace is empty\nthe bootstrap Secret name is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			in := workerInput()
			tt.modify(&in)
			vm, err := RenderVM(in)
			g.Expect(err).To(MatchError(tt.wantErr))
			g.Expect(vm).To(BeNil())
		})
	}
}

func TestRenderBootstrapSecret(t *testing.T) {
	tests := []struct {
		name        string
		networkData []byte
		wantData    map[string][]byte
	}{
		{
			name:     "user data only: no networkdata key",
			wantData: map[string][]byte{"userdata": []byte("#cloud-config\n")},
		},
		{
			name:        "user and network data under the keys KubeVirt reads",
			networkData: []byte("version: 2\n"),
			wantData:    map[string][]byte{"userdata": []byte("#cloud-config\n"), "networkdata": []byte("version: 2\n")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			in := workerInput()
			userData := []byte("#cloud-config\n")
			s := RenderBootstrapSecret(in, userData, tt.networkData)
			g.Expect(s.Name).To(Equal("tenant1-md-0-abcde-bootstrap"))
			g.Expect(s.Namespace).To(Equal("nest-team-a-tenant1"))
			g.Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
			g.Expect(s.Labels).To(Equal(Labels(in)))
			g.Expect(s.Annotations).To(HaveKeyWithValue(infrav1.NestMachineAnnotation, "team-a/tenant1-md-0-abcde"))
			g.Expect(s.Data).To(Equal(tt.wantData))
			userData[0] = 'X'
			g.Expect(s.Data["userdata"][0]).To(Equal(byte('#')), "the Secret must own a copy of the data")
		})
	}
}

func TestSetOwner(t *testing.T) {
	vm := &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "nest-team-a-tenant1", Name: "vm-1", UID: "vm-uid"}}
	want := metav1.OwnerReference{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachine", Name: "vm-1", UID: "vm-uid"}

	t.Run("adds the VM as owner once, however often it is called", func(t *testing.T) {
		g := NewWithT(t)
		other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "other"}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: vm.Namespace, OwnerReferences: []metav1.OwnerReference{other}}}
		g.Expect(SetOwner(s, vm)).To(Succeed())
		g.Expect(SetOwner(s, vm)).To(Succeed())
		g.Expect(s.OwnerReferences).To(Equal([]metav1.OwnerReference{other, want}))
	})
	t.Run("fails before the VM exists", func(t *testing.T) {
		g := NewWithT(t)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: vm.Namespace}}
		err := SetOwner(s, &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: vm.Namespace, Name: "vm-1"}})
		g.Expect(err).To(MatchError("VirtualMachine nest-team-a-tenant1/vm-1 has no UID yet: create it before owning objects with it"))
		g.Expect(s.OwnerReferences).To(BeEmpty())
	})
	t.Run("fails across namespaces, which garbage collection does not follow", func(t *testing.T) {
		g := NewWithT(t)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere"}}
		g.Expect(SetOwner(s, vm)).To(MatchError(`VirtualMachine nest-team-a-tenant1/vm-1 cannot own an object in namespace "elsewhere"`))
	})
}
