package kubevirt

import (
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// Labels, annotations and names this package puts on the objects it renders, beyond the ownership
// labels of the API package.
const (
	// RoleLabel tells control-plane VMs from workers: the control-plane anti-affinity, the API
	// Services and the consolidator select on it.
	RoleLabel = "cluster.x-k8s.io/role"
	// RoleControlPlane is the RoleLabel value of a control-plane machine.
	RoleControlPlane = "control-plane"
	// RoleWorker is the RoleLabel value of every other machine.
	RoleWorker = "worker"

	// UserDataKey is the bootstrap Secret key KubeVirt reads the user data from, for both
	// cloudInitNoCloud and cloudInitConfigDrive secretRef volumes.
	UserDataKey = "userdata"
	// NetworkDataKey is the bootstrap Secret key KubeVirt reads the network data from.
	NetworkDataKey = "networkdata"

	// FormatCloudConfig is the CAPI bootstrap format served through a cloud-init NoCloud disk.
	FormatCloudConfig = "cloud-config"
	// FormatIgnition is the CAPI bootstrap format served through a config drive, where Ignition
	// (RHCOS, Fedora CoreOS, OpenShift) looks for it on KubeVirt.
	FormatIgnition = "ignition"

	// RootDiskName is the disk and volume the VM boots from.
	RootDiskName = "rootdisk"
	// BootstrapDiskName is the disk and volume that carries the bootstrap data.
	BootstrapDiskName = "cloudinitdisk"
	// DefaultNetworkName is the interface and network used when the NestMachine lists no network.
	DefaultNetworkName = "default"
)

// Input is everything RenderVM needs; all of it plain values the controller has already read.
// It deliberately holds no bootstrap data, so that printing an Input never prints a secret.
type Input struct {
	// NestMachine to render; its spec.kubevirt must be set.
	NestMachine *infrav1.NestMachine
	// Machine that owns the NestMachine. Its cluster.x-k8s.io/control-plane label makes the VM a
	// control-plane VM. When nil, the NestMachine's own labels are read instead.
	Machine *clusterv1.Machine
	// ClusterName is the tenant CAPI Cluster's name (the cluster.x-k8s.io/cluster-name label).
	ClusterName string
	// NestClusterName is the tenant's NestCluster; empty means ClusterName, as in clusterctl's
	// templates where both share the name.
	NestClusterName string
	// Namespace is the tenant namespace in the Infra cluster.
	Namespace string
	// SchedulerName is the InfraCluster's spec.schedulerName; the NestMachine's
	// spec.kubevirt.schedulerName overrides it. Empty leaves the Infra cluster's default scheduler.
	SchedulerName string
	// BootstrapSecretName is the Secret in Namespace with the bootstrap data (see
	// RenderBootstrapSecret and BootstrapSecretName).
	BootstrapSecretName string
	// BootstrapFormat is the CAPI bootstrap Secret's "format": FormatCloudConfig (the default when
	// empty) or FormatIgnition.
	BootstrapFormat string
	// WithNetworkData makes the bootstrap volume read network data from the Secret's NetworkDataKey
	// too; set it when RenderBootstrapSecret is given network data.
	WithNetworkData bool
	// PatchPolicy lists what spec.kubevirt.vmPatches may add (the InfraCluster's
	// spec.vmPatchPolicy.allow); RenderVM refuses patches that add anything else (*PolicyError).
	PatchPolicy []infrav1.VMPatchFeature
	// Identity is the management cluster's, put on the VM and the Secret (not on the VM's template:
	// a move changes it, and the template is the VM's spec).
	Identity ownership.Identity
}

// IsControlPlane tells whether the input renders a control-plane VM: the Machine carries CAPI's
// control-plane label, or, without a Machine, the NestMachine does (KubeadmControlPlane sets it on
// both).
func (in Input) IsControlPlane() bool {
	return in.machineLabelled(clusterv1.MachineControlPlaneLabel)
}

// IsBootstrap tells whether the input renders the OpenShift installer's bootstrap VM (see
// infrav1.BootstrapMachineLabel).
func (in Input) IsBootstrap() bool {
	return in.IsControlPlane() && in.machineLabelled(infrav1.BootstrapMachineLabel)
}

// machineLabelled tells whether the Machine carries the label key, or, without a Machine, the
// NestMachine does.
func (in Input) machineLabelled(key string) bool {
	var labels map[string]string
	switch {
	case in.Machine != nil:
		labels = in.Machine.Labels
	case in.NestMachine != nil:
		labels = in.NestMachine.Labels
	}
	_, ok := labels[key]
	return ok
}

func (in Input) role() string {
	if in.IsControlPlane() {
		return RoleControlPlane
	}
	return RoleWorker
}

func (in Input) validate() error {
	var errs []error
	if in.NestMachine == nil {
		return errors.New("no NestMachine to render")
	}
	if in.NestMachine.Spec.KubeVirt == nil {
		return fmt.Errorf("NestMachine %s/%s has no spec.kubevirt", in.NestMachine.Namespace, in.NestMachine.Name)
	}
	if in.NestMachine.Name == "" || in.NestMachine.Namespace == "" || in.NestMachine.UID == "" {
		errs = append(errs, errors.New("the NestMachine needs a name, a namespace and a UID: they are the VM's ownership labels"))
	}
	if in.ClusterName == "" {
		errs = append(errs, errors.New("the tenant cluster name is empty"))
	}
	if in.Namespace == "" {
		errs = append(errs, errors.New("the Infra cluster namespace is empty"))
	}
	if in.BootstrapSecretName == "" {
		errs = append(errs, errors.New("the bootstrap Secret name is empty"))
	}
	switch in.BootstrapFormat {
	case "", FormatCloudConfig, FormatIgnition:
	default:
		errs = append(errs, fmt.Errorf("bootstrap format %q is not supported: use %q or %q", in.BootstrapFormat, FormatCloudConfig, FormatIgnition))
	}
	return errors.Join(errs...)
}

// Owner is the NestMachine the rendered objects are for.
func (in Input) Owner() ownership.Owner {
	nestCluster := in.NestClusterName
	if nestCluster == "" {
		nestCluster = in.ClusterName
	}
	return ownership.Machine(in.NestMachine, nestCluster)
}

// Labels are the labels RenderVM puts on the VirtualMachine and RenderBootstrapSecret on the Secret:
// the tenant cluster and role the scheduler plugin reads, and the ownership labels that map watch
// events back to the NestMachine and let the orphan sweeper find what is ours.
func Labels(in Input) map[string]string {
	l := ownership.Labels(in.Identity, in.Owner())
	l[clusterv1.ClusterNameLabel] = ownership.LabelValue(in.ClusterName)
	l[RoleLabel] = in.role()
	if in.IsBootstrap() {
		l[infrav1.BootstrapMachineLabel] = ""
	}
	return l
}

// templateLabels are the labels of the VM's template, so of its instance, pods and DataVolumes: the
// VM's labels but the management cluster's identity, which adoption after a move changes without
// touching the VM's spec.
func templateLabels(in Input) map[string]string {
	l := Labels(in)
	delete(l, infrav1.ManagementClusterLabel)
	return l
}

// ownedLabelKeys are the label keys Labels sets: the ones drift reconciles and patches may not change.
var ownedLabelKeys = append([]string{clusterv1.ClusterNameLabel, RoleLabel, infrav1.BootstrapMachineLabel}, ownership.LabelKeys...)

// templateDriftKeys are the template label keys drift reconciles: not the owner's UID nor the
// identity, which stay as the VM was made (a moved VM's spec is not rewritten; the VM's own labels
// say who owns it now).
var templateDriftKeys = []string{
	clusterv1.ClusterNameLabel, RoleLabel, infrav1.BootstrapMachineLabel, infrav1.ManagedByLabel, infrav1.NestMachineNamespaceLabel,
	infrav1.NestMachineNameLabel, infrav1.NestClusterNamespaceLabel, infrav1.NestClusterNameLabel,
}

// RenderVM renders the KubeVirt VirtualMachine of a NestMachine, with spec.kubevirt.vmPatches
// applied last. The same input always gives the same object, so the controller can compare what it
// rendered with what it finds. Errors from a patch are *PatchError.
func RenderVM(in Input) (*kubevirtv1.VirtualMachine, error) {
	if err := in.validate(); err != nil {
		return nil, fmt.Errorf("cannot render the VirtualMachine: %w", err)
	}
	spec := in.NestMachine.Spec.KubeVirt
	name := VMName(in.NestMachine)
	labels := Labels(in)

	template := &kubevirtv1.VirtualMachineInstanceTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: templateLabels(in), Annotations: ownership.Annotations(in.Owner())},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain:           renderDomain(spec),
			EvictionStrategy: ptr.To(evictionStrategy(spec)),
			SchedulerName:    in.SchedulerName,
		},
	}
	if spec.SchedulerName != "" {
		template.Spec.SchedulerName = spec.SchedulerName
	}

	rootVolume, dataVolumes := renderRootVolume(spec, name, templateLabels(in))
	template.Spec.Volumes = []kubevirtv1.Volume{rootVolume, renderBootstrapVolume(in)}
	template.Spec.Domain.Devices.Disks = []kubevirtv1.Disk{
		// The root disk is the only disk with a boot order: libvirt then boots from it alone.
		{Name: RootDiskName, BootOrder: ptr.To[uint](1), DiskDevice: virtioDisk()},
		{Name: BootstrapDiskName, DiskDevice: virtioDisk()},
	}
	template.Spec.Domain.Devices.Interfaces, template.Spec.Networks = renderNetworks(spec.Networks)

	if p := spec.Placement; p != nil {
		template.Spec.NodeSelector = maps.Clone(p.NodeSelector)
		for i := range p.Tolerations {
			template.Spec.Tolerations = append(template.Spec.Tolerations, *p.Tolerations[i].DeepCopy())
		}
		if p.Affinity != nil {
			template.Spec.Affinity = p.Affinity.DeepCopy()
		}
	}
	if in.IsControlPlane() && !in.IsBootstrap() {
		template.Spec.Affinity = withControlPlaneAntiAffinity(template.Spec.Affinity, labels[clusterv1.ClusterNameLabel])
	}

	vm := &kubevirtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{
			APIVersion: kubevirtv1.SchemeGroupVersion.String(),
			Kind:       kubevirtv1.VirtualMachineGroupVersionKind.Kind,
		},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   in.Namespace,
			Labels:      labels,
			Annotations: ownership.Annotations(in.Owner()),
		},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy:         ptr.To(runStrategy(spec)),
			Template:            template,
			DataVolumeTemplates: dataVolumes,
		},
	}
	if spec.Instancetype != nil {
		kind := string(spec.Instancetype.Kind)
		if kind == "" {
			kind = "VirtualMachineClusterInstancetype"
		}
		vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Name: spec.Instancetype.Name, Kind: kind}
	}
	if spec.Preference != nil {
		kind := string(spec.Preference.Kind)
		if kind == "" {
			kind = "VirtualMachineClusterPreference"
		}
		vm.Spec.Preference = &kubevirtv1.PreferenceMatcher{Name: spec.Preference.Name, Kind: kind}
	}

	if len(spec.VMPatches) == 0 {
		return vm, nil
	}
	patched, err := ApplyPatches(vm, spec.VMPatches)
	if err != nil {
		return nil, err
	}
	if err := CheckPatchPolicy(vm, patched, in.PatchPolicy); err != nil {
		return nil, err
	}
	return patched, nil
}

// renderDomain sets CPU and memory from the curated fields. With an instancetype it sets neither:
// KubeVirt rejects a VM whose domain conflicts with its instancetype.
func renderDomain(spec *infrav1.KubeVirtMachineSpec) kubevirtv1.DomainSpec {
	var d kubevirtv1.DomainSpec
	if spec.Instancetype != nil {
		return d
	}
	if c := spec.CPU; c != nil {
		d.CPU = &kubevirtv1.CPU{
			Cores:   uint32(c.Cores),
			Sockets: uint32(defaultOne(c.Sockets)),
			Threads: uint32(defaultOne(c.Threads)),
			// With dedicated placement KubeVirt derives whole-CPU requests equal to limits from the
			// topology, which gives the Guaranteed QoS the CPU manager needs to pin.
			DedicatedCPUPlacement: c.Dedicated,
		}
	}
	if m := spec.Memory; m != nil {
		d.Memory = &kubevirtv1.Memory{Guest: ptr.To(m.DeepCopy())}
		// KubeVirt adds its overhead to the memory request of the virt-launcher pod; stating the
		// request as the guest memory makes the pod sized for the guest whatever the cluster's
		// defaults. CPU requests are left to KubeVirt: they follow the Infra cluster's
		// cpuAllocationRatio, the overcommit its administrator chose.
		d.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: m.DeepCopy()}
	}
	return d
}

func defaultOne(v int32) int32 {
	if v == 0 {
		return 1
	}
	return v
}

func virtioDisk() kubevirtv1.DiskDevice {
	return kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}
}

func runStrategy(spec *infrav1.KubeVirtMachineSpec) kubevirtv1.VirtualMachineRunStrategy {
	if spec.RunStrategy == "" {
		return kubevirtv1.RunStrategyAlways
	}
	return kubevirtv1.VirtualMachineRunStrategy(spec.RunStrategy)
}

func evictionStrategy(spec *infrav1.KubeVirtMachineSpec) kubevirtv1.EvictionStrategy {
	if spec.EvictionStrategy == "" {
		return kubevirtv1.EvictionStrategyLiveMigrate
	}
	return kubevirtv1.EvictionStrategy(spec.EvictionStrategy)
}

// renderRootVolume returns the root volume and, unless the image is a container disk, the
// DataVolume template that imports or clones it; the DataVolume lives and dies with the VM.
func renderRootVolume(spec *infrav1.KubeVirtMachineSpec, vmName string, labels map[string]string) (kubevirtv1.Volume, []kubevirtv1.DataVolumeTemplateSpec) {
	img := spec.BootImage
	if img.ContainerDisk != nil {
		return kubevirtv1.Volume{
			Name:         RootDiskName,
			VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: img.ContainerDisk.Image}},
		}, nil
	}

	dvName := RootDataVolumeName(vmName)
	dv := cdiv1.DataVolumeSpec{Storage: renderStorage(spec.RootDisk)}
	switch {
	case img.HTTP != nil:
		dv.Source = &cdiv1.DataVolumeSource{HTTP: &cdiv1.DataVolumeSourceHTTP{URL: img.HTTP.URL, CertConfigMap: img.HTTP.CertConfigMap}}
	case img.Registry != nil:
		dv.Source = &cdiv1.DataVolumeSource{Registry: &cdiv1.DataVolumeSourceRegistry{URL: ptr.To(img.Registry.URL)}}
	case img.PVC != nil:
		dv.Source = &cdiv1.DataVolumeSource{PVC: &cdiv1.DataVolumeSourcePVC{Namespace: img.PVC.Namespace, Name: img.PVC.Name}}
	case img.DataSource != nil:
		dv.SourceRef = &cdiv1.DataVolumeSourceRef{Kind: cdiv1.DataVolumeDataSource, Namespace: ptr.To(img.DataSource.Namespace), Name: img.DataSource.Name}
	}
	return kubevirtv1.Volume{
			Name:         RootDiskName,
			VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: dvName}},
		}, []kubevirtv1.DataVolumeTemplateSpec{{
			ObjectMeta: metav1.ObjectMeta{Name: dvName, Labels: maps.Clone(labels)},
			Spec:       dv,
		}}
}

// renderStorage uses CDI's storage API rather than a raw PVC spec: what is left empty (access mode,
// volume mode, even the size of a clone) is completed from the Infra cluster's StorageProfile.
func renderStorage(rd *infrav1.RootDisk) *cdiv1.StorageSpec {
	s := &cdiv1.StorageSpec{}
	if rd == nil {
		return s
	}
	if rd.Size != nil {
		s.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: rd.Size.DeepCopy()}
	}
	if rd.StorageClassName != "" {
		s.StorageClassName = ptr.To(rd.StorageClassName)
	}
	if rd.AccessMode != "" {
		s.AccessModes = []corev1.PersistentVolumeAccessMode{rd.AccessMode}
	}
	if rd.VolumeMode != "" {
		s.VolumeMode = ptr.To(rd.VolumeMode)
	}
	return s
}

// renderBootstrapVolume points the bootstrap disk at the Secret rather than inlining the data, so
// the bootstrap data never sits in the VM object that many can read. cloud-config goes through
// NoCloud; Ignition reads its config from the config drive's user data on KubeVirt.
func renderBootstrapVolume(in Input) kubevirtv1.Volume {
	ref := &corev1.LocalObjectReference{Name: in.BootstrapSecretName}
	var networkRef *corev1.LocalObjectReference
	if in.WithNetworkData {
		// Both keys live in one Secret: KubeVirt reads each from the Secret its reference names.
		networkRef = &corev1.LocalObjectReference{Name: in.BootstrapSecretName}
	}
	v := kubevirtv1.Volume{Name: BootstrapDiskName}
	if in.BootstrapFormat == FormatIgnition {
		v.CloudInitConfigDrive = &kubevirtv1.CloudInitConfigDriveSource{UserDataSecretRef: ref, NetworkDataSecretRef: networkRef}
	} else {
		v.CloudInitNoCloud = &kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: ref, NetworkDataSecretRef: networkRef}
	}
	return v
}

// renderNetworks returns interfaces and networks in the NestMachine's order (the first carries the
// default route in the guest). Without networks the VM gets the pod network with masquerade, the
// binding that survives live migration.
func renderNetworks(networks []infrav1.Network) ([]kubevirtv1.Interface, []kubevirtv1.Network) {
	if len(networks) == 0 {
		networks = []infrav1.Network{{Name: DefaultNetworkName, Pod: &infrav1.PodNetwork{}}}
	}
	interfaces := make([]kubevirtv1.Interface, 0, len(networks))
	nets := make([]kubevirtv1.Network, 0, len(networks))
	for _, n := range networks {
		iface := kubevirtv1.Interface{Name: n.Name, MacAddress: n.MACAddress}
		net := kubevirtv1.Network{Name: n.Name}
		switch {
		case n.Pod != nil:
			net.Pod = &kubevirtv1.PodNetwork{}
			if n.Pod.Binding == "bridge" {
				iface.Bridge = &kubevirtv1.InterfaceBridge{}
			} else {
				iface.Masquerade = &kubevirtv1.InterfaceMasquerade{}
			}
		case n.Multus != nil:
			net.Multus = &kubevirtv1.MultusNetwork{NetworkName: n.Multus.NetworkName}
			iface.Bridge = &kubevirtv1.InterfaceBridge{}
		}
		interfaces = append(interfaces, iface)
		nets = append(nets, net)
	}
	return interfaces, nets
}

// ControlPlaneAntiAffinityTerm keeps two control-plane VMs of one tenant off the same Infra node, so
// that losing a node costs a tenant at most one etcd member. The installer's bootstrap VM is not
// selected (it runs no etcd member of the cluster, and goes once bootstrap completes), so it may share
// a node with a master.
func ControlPlaneAntiAffinityTerm(clusterNameLabelValue string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{
				clusterv1.ClusterNameLabel: clusterNameLabelValue,
				RoleLabel:                  RoleControlPlane,
			},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: infrav1.BootstrapMachineLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
		},
		TopologyKey: corev1.LabelHostname,
	}
}

// withControlPlaneAntiAffinity adds the required control-plane anti-affinity to the user's
// affinity, keeping everything the user asked for, and does not add it twice.
func withControlPlaneAntiAffinity(affinity *corev1.Affinity, clusterNameLabelValue string) *corev1.Affinity {
	if affinity == nil {
		affinity = &corev1.Affinity{}
	}
	if affinity.PodAntiAffinity == nil {
		affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	term := ControlPlaneAntiAffinityTerm(clusterNameLabelValue)
	required := affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	for i := range required {
		if equality.Semantic.DeepEqual(required[i], term) {
			return affinity
		}
	}
	affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(required, term)
	return affinity
}

// RenderBootstrapSecret renders the Secret the VM's bootstrap volume reads: the user data under
// UserDataKey and, when given, the network data under NetworkDataKey. The Secret carries the
// bootstrap data: never log or print it (a Secret's String method prints its data). The caller sets
// the VM as its owner with SetOwner once the VM exists, so the Secret goes when the VM goes.
func RenderBootstrapSecret(in Input, userData, networkData []byte) *corev1.Secret {
	data := map[string][]byte{UserDataKey: bytesClone(userData)}
	if len(networkData) > 0 {
		data[NetworkDataKey] = bytesClone(networkData)
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        in.BootstrapSecretName,
			Namespace:   in.Namespace,
			Labels:      Labels(in),
			Annotations: ownership.Annotations(in.Owner()),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

func bytesClone(b []byte) []byte {
	return append([]byte{}, b...)
}

// SetOwner makes vm an owner of obj (the bootstrap Secret), so that the Infra cluster's garbage
// collector deletes obj with the VM. It replaces an earlier reference to the same VM and fails
// when the VM has not been created yet (no UID).
func SetOwner(obj metav1.Object, vm *kubevirtv1.VirtualMachine) error {
	if vm.UID == "" {
		return fmt.Errorf("VirtualMachine %s/%s has no UID yet: create it before owning objects with it", vm.Namespace, vm.Name)
	}
	if obj.GetNamespace() != vm.Namespace {
		return fmt.Errorf("VirtualMachine %s/%s cannot own an object in namespace %q", vm.Namespace, vm.Name, obj.GetNamespace())
	}
	ref := metav1.OwnerReference{
		APIVersion: kubevirtv1.SchemeGroupVersion.String(),
		Kind:       kubevirtv1.VirtualMachineGroupVersionKind.Kind,
		Name:       vm.Name,
		UID:        vm.UID,
	}
	refs := obj.GetOwnerReferences()
	for i := range refs {
		if refs[i].UID == vm.UID {
			refs[i] = ref
			obj.SetOwnerReferences(refs)
			return nil
		}
	}
	obj.SetOwnerReferences(append(refs, ref))
	return nil
}
