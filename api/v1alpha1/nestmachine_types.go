package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// NestMachine finalizer and conditions.
const (
	// NestMachineFinalizer holds the NestMachine until its VM or host is gone or released.
	NestMachineFinalizer = "nestmachine.infrastructure.cluster.x-k8s.io"

	// VMProvisionedCondition is true when the VirtualMachine's instance is running.
	VMProvisionedCondition = "VMProvisioned"
	// BootstrapReadyCondition is true when the bootstrap data is in place in the Infra cluster.
	BootstrapReadyCondition = "BootstrapReady"
	// LiveMigratableCondition mirrors KubeVirt's LiveMigratable condition of the VM instance.
	LiveMigratableCondition = "LiveMigratable"
	// HostClaimedCondition is true when a BareMetalHost is claimed for the machine.
	HostClaimedCondition = "HostClaimed"
	// HostProvisionedCondition is true when the claimed BareMetalHost is provisioned.
	HostProvisionedCondition = "HostProvisioned"

	// WaitingForClusterInfrastructureReason: the Cluster's infrastructure is not provisioned yet.
	WaitingForClusterInfrastructureReason = "WaitingForClusterInfrastructure"
	// WaitingForBootstrapDataReason: the Machine has no bootstrap data secret yet.
	WaitingForBootstrapDataReason = "WaitingForBootstrapData"
	// WaitingForFailureDomainReason: several Infra clusters are possible and the Machine names none.
	WaitingForFailureDomainReason = "WaitingForFailureDomain"
	// InfraClusterUnavailableReason: the machine's Infra cluster is not reachable.
	InfraClusterUnavailableReason = "InfraClusterUnavailable"
	// VMPatchFailedReason: a JSON patch in spec.kubevirt.vmPatches did not apply.
	VMPatchFailedReason = "VMPatchFailed"
	// ProvisioningReason: the remote object exists and is on its way.
	ProvisioningReason = "Provisioning"
	// NoHostAvailableReason: no BareMetalHost matches the selector in the failure domain.
	NoHostAvailableReason = "NoHostAvailable"
	// HostErrorReason: the claimed BareMetalHost reports an error.
	HostErrorReason = "HostError"
	// OrphanedReason: the Infra cluster stayed unreachable past the grace period during delete.
	OrphanedReason = "Orphaned"
	// VMNameInUseReason: an object under the machine's VM name belongs to someone else (another
	// NestMachine, another management cluster, or an earlier NestMachine of the same name the sweeper
	// has not removed yet); the machine waits and never touches it.
	VMNameInUseReason = "VMNameInUse"
	// HandedOverReason: the machine was moved away by clusterctl move; what it made in the Infra
	// cluster was left running for the management cluster it moved to.
	HandedOverReason = "HandedOver"
	// SecretCreatedReason: the bootstrap (or host data) Secret is in the Infra cluster.
	SecretCreatedReason = "SecretCreated"
	// PendingReason: the NestMachine has not started provisioning yet.
	PendingReason = "Pending"
	// ControlPlaneUnbalancedReason: creating this control-plane machine's VM now would put more
	// control-plane VMs in its Infra cluster than the spread rule allows; it waits for balance.
	ControlPlaneUnbalancedReason = "ControlPlaneUnbalanced"
	// InvalidBootstrapDataReason: the bootstrap data does not parse as its format says (Ignition is
	// validated with the Ignition libraries); nothing is created until it does.
	InvalidBootstrapDataReason = "InvalidBootstrapData"
	// SweptReason: the sweeper deleted an object whose owner is gone.
	SweptReason = "Swept"
	// OrphanKeptReason: the sweeper found an object without an owner and kept it, for the reason given.
	OrphanKeptReason = "OrphanKept"
)

// NestMachinePhase is a one-word summary for people; conditions are the API.
type NestMachinePhase string

// Phases of a NestMachine.
const (
	NestMachinePhasePending      NestMachinePhase = "Pending"
	NestMachinePhaseProvisioning NestMachinePhase = "Provisioning"
	NestMachinePhaseRunning      NestMachinePhase = "Running"
	NestMachinePhaseDeleting     NestMachinePhase = "Deleting"
	NestMachinePhaseFailed       NestMachinePhase = "Failed"
)

// NestMachineSpec is a tenant machine: a KubeVirt VM or a Metal3 bare-metal host. The Infra cluster
// is the owning Machine's spec.failureDomain.
// +kubebuilder:validation:XValidation:rule="has(self.kubevirt) != has(self.baremetal)",message="exactly one of spec.kubevirt or spec.baremetal must be set"
type NestMachineSpec struct {
	// providerID is nest://<infra-cluster>/<namespace>/<name>, set by the provider.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="providerID is immutable once set"
	ProviderID string `json:"providerID,omitempty"`

	// kubevirt makes the machine a KubeVirt VirtualMachine.
	// +optional
	KubeVirt *KubeVirtMachineSpec `json:"kubevirt,omitempty"`

	// baremetal makes the machine a Metal3 BareMetalHost.
	// +optional
	BareMetal *BareMetalMachineSpec `json:"baremetal,omitempty"`
}

// RunStrategy of the VM, as KubeVirt defines it.
// +kubebuilder:validation:Enum=Always;RerunOnFailure;Manual;Halted
type RunStrategy string

// EvictionStrategy of the VM, as KubeVirt defines it.
// +kubebuilder:validation:Enum=None;LiveMigrate;LiveMigrateIfPossible;External
type EvictionStrategy string

// KubeVirtMachineSpec is the curated part of a KubeVirt VirtualMachine a tenant machine may set.
// +kubebuilder:validation:XValidation:rule="has(self.instancetype) || (has(self.cpu) && has(self.memory))",message="set spec.kubevirt.instancetype, or both spec.kubevirt.cpu and spec.kubevirt.memory"
// +kubebuilder:validation:XValidation:rule="!has(self.instancetype) || (!has(self.cpu) && !has(self.memory))",message="spec.kubevirt.cpu and spec.kubevirt.memory cannot be set with spec.kubevirt.instancetype, which defines them"
// +kubebuilder:validation:XValidation:rule="has(self.bootImage.containerDisk) || (has(self.rootDisk) && has(self.rootDisk.size))",message="spec.kubevirt.rootDisk.size is required when the boot image is imported or cloned (anything but containerDisk)"
// +kubebuilder:validation:XValidation:rule="!has(self.networks) || self.networks.filter(n, has(n.pod)).size() <= 1",message="at most one network in spec.kubevirt.networks may be the pod network"
type KubeVirtMachineSpec struct {
	// cpu of the VM.
	// +optional
	CPU *CPU `json:"cpu,omitempty"`

	// memory of the VM guest, from 128Mi to 8Ti.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('128Mi')) >= 0 && quantity(string(self)).compareTo(quantity('8Ti')) <= 0",message="memory must be between 128Mi and 8Ti"
	Memory *resource.Quantity `json:"memory,omitempty"`

	// instancetype of the VM instead of cpu and memory.
	// +optional
	Instancetype *InstancetypeReference `json:"instancetype,omitempty"`

	// preference of the VM.
	// +optional
	Preference *PreferenceReference `json:"preference,omitempty"`

	// bootImage is the disk the VM boots from.
	// +required
	BootImage BootImage `json:"bootImage"`

	// rootDisk sizes and places the root disk when the boot image is imported or cloned.
	// +optional
	RootDisk *RootDisk `json:"rootDisk,omitempty"`

	// networks of the VM, in order; the first is the default route. Defaults to the pod network
	// with masquerade binding.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Networks []Network `json:"networks,omitempty"`

	// runStrategy of the VM. Defaults to Always.
	// +optional
	RunStrategy RunStrategy `json:"runStrategy,omitempty"`

	// evictionStrategy of the VM when its Infra node drains. Defaults to LiveMigrate, which needs a
	// ReadWriteMany root disk (or a containerDisk).
	// +optional
	EvictionStrategy EvictionStrategy `json:"evictionStrategy,omitempty"`

	// placement inside the Infra cluster.
	// +optional
	Placement *Placement `json:"placement,omitempty"`

	// schedulerName overrides the InfraCluster's scheduler for this VM.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SchedulerName string `json:"schedulerName,omitempty"`

	// vmPatches are RFC 6902 JSON patches applied to the rendered VirtualMachine, for what the curated
	// fields do not cover. A patch that does not apply is reported on the NestMachine.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	VMPatches []JSONPatch `json:"vmPatches,omitempty"`
}

// CPU topology of a VM.
type CPU struct {
	// cores per socket.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	Cores int32 `json:"cores"`

	// sockets of the VM. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Sockets int32 `json:"sockets,omitempty"`

	// threads per core. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=8
	Threads int32 `json:"threads,omitempty"`

	// dedicated pins the VM's vCPUs to host CPUs.
	// +optional
	Dedicated bool `json:"dedicated,omitempty"`
}

// InstancetypeKind is the kind of a KubeVirt instancetype.
// +kubebuilder:validation:Enum=VirtualMachineClusterInstancetype;VirtualMachineInstancetype
type InstancetypeKind string

// PreferenceKind is the kind of a KubeVirt preference.
// +kubebuilder:validation:Enum=VirtualMachineClusterPreference;VirtualMachinePreference
type PreferenceKind string

// InstancetypeReference names a KubeVirt instancetype in the Infra cluster.
type InstancetypeReference struct {
	// kind of the instancetype. Defaults to VirtualMachineClusterInstancetype.
	// +optional
	Kind InstancetypeKind `json:"kind,omitempty"`
	// name of the instancetype, for example u1.large.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// PreferenceReference names a KubeVirt preference in the Infra cluster.
type PreferenceReference struct {
	// kind of the preference. Defaults to VirtualMachineClusterPreference.
	// +optional
	Kind PreferenceKind `json:"kind,omitempty"`
	// name of the preference, for example rhel.9.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// BootImage is where the VM's root disk comes from: exactly one source.
// +kubebuilder:validation:XValidation:rule="[has(self.containerDisk), has(self.http), has(self.registry), has(self.pvc), has(self.dataSource)].filter(x, x).size() == 1",message="exactly one of containerDisk, http, registry, pvc or dataSource must be set in bootImage"
type BootImage struct {
	// containerDisk boots from a container image holding a disk (ephemeral root disk).
	// +optional
	ContainerDisk *ContainerDiskSource `json:"containerDisk,omitempty"`
	// http imports the disk from an HTTP(S) URL with a CDI DataVolume.
	// +optional
	HTTP *HTTPSource `json:"http,omitempty"`
	// registry imports the disk from a container registry with a CDI DataVolume.
	// +optional
	Registry *RegistrySource `json:"registry,omitempty"`
	// pvc clones a golden PersistentVolumeClaim in the Infra cluster.
	// +optional
	PVC *NamespacedName `json:"pvc,omitempty"`
	// dataSource clones a CDI DataSource in the Infra cluster.
	// +optional
	DataSource *NamespacedName `json:"dataSource,omitempty"`
}

// ContainerDiskSource is a container image with a disk in it.
type ContainerDiskSource struct {
	// image reference, for example quay.io/containerdisks/centos-stream:9.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image"`
}

// HTTPSource is a disk image at an HTTP(S) URL.
type HTTPSource struct {
	// url of the image.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="url must be an http:// or https:// URL"
	URL string `json:"url"`
	// certConfigMap in the tenant namespace of the Infra cluster with the CA of the server.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	CertConfigMap string `json:"certConfigMap,omitempty"`
}

// RegistrySource is a disk image in a container registry.
type RegistrySource struct {
	// url of the image: docker://<image> or oci-archive://<path>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('docker://') || self.startsWith('oci-archive://')",message="url must start with docker:// or oci-archive://"
	URL string `json:"url"`
}

// RootDisk sizes and places the VM's root disk.
type RootDisk struct {
	// size of the disk, from 1Gi to 64Ti.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('1Gi')) >= 0 && quantity(string(self)).compareTo(quantity('64Ti')) <= 0",message="rootDisk.size must be between 1Gi and 64Ti"
	Size *resource.Quantity `json:"size,omitempty"`
	// storageClassName in the Infra cluster; empty means its default.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	StorageClassName string `json:"storageClassName,omitempty"`
	// accessMode of the volume. ReadWriteMany allows live migration.
	// +optional
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany;ReadWriteOncePod
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`
	// volumeMode of the volume.
	// +optional
	// +kubebuilder:validation:Enum=Filesystem;Block
	VolumeMode corev1.PersistentVolumeMode `json:"volumeMode,omitempty"`
}

// PodNetworkBinding is how a VM attaches to the pod network.
// +kubebuilder:validation:Enum=masquerade;bridge
type PodNetworkBinding string

// Network attaches the VM to the pod network or to a Multus network.
// +kubebuilder:validation:XValidation:rule="has(self.pod) != has(self.multus)",message="exactly one of pod or multus must be set in a network"
type Network struct {
	// name of the interface in the VM spec.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// pod attaches to the pod network.
	// +optional
	Pod *PodNetwork `json:"pod,omitempty"`
	// multus attaches to a NetworkAttachmentDefinition.
	// +optional
	Multus *MultusNetwork `json:"multus,omitempty"`
	// macAddress of the interface.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`
	MACAddress string `json:"macAddress,omitempty"`
}

// PodNetwork is the pod network.
type PodNetwork struct {
	// binding of the interface. Defaults to masquerade.
	// +optional
	Binding PodNetworkBinding `json:"binding,omitempty"`
}

// MultusNetwork is a Multus NetworkAttachmentDefinition, attached with bridge binding.
type MultusNetwork struct {
	// networkName is <name> or <namespace>/<name> of the NetworkAttachmentDefinition.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	NetworkName string `json:"networkName"`
}

// JSONPatchOp is an RFC 6902 operation.
// +kubebuilder:validation:Enum=add;remove;replace;move;copy;test
type JSONPatchOp string

// JSONPatch is one RFC 6902 operation on the rendered VirtualMachine.
// +kubebuilder:validation:XValidation:rule="!(self.op in ['move', 'copy']) || has(self.from)",message="from is required for move and copy"
type JSONPatch struct {
	// op of the patch.
	// +required
	Op JSONPatchOp `json:"op"`
	// path is a JSON pointer into the VirtualMachine, for example /spec/template/spec/domain/firmware.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// from is the source pointer of move and copy.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	From string `json:"from,omitempty"`
	// value of add, replace and test.
	// +optional
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
}

// ImageChecksumType is the checksum algorithm of a bare-metal image.
// +kubebuilder:validation:Enum=md5;sha256;sha512;auto
type ImageChecksumType string

// ImageDiskFormat is the disk format of a bare-metal image.
// +kubebuilder:validation:Enum=raw;qcow2;vdi;vmdk;live-iso
type ImageDiskFormat string

// CleaningMode is Metal3's automated cleaning mode.
// +kubebuilder:validation:Enum=disabled;metadata
type CleaningMode string

// BareMetalMachineSpec is a tenant machine on a Metal3 BareMetalHost.
type BareMetalMachineSpec struct {
	// hostSelector chooses among the available BareMetalHosts of the machine's Infra cluster.
	// +optional
	HostSelector metav1.LabelSelector `json:"hostSelector,omitempty"`

	// image written to the host's disk.
	// +required
	Image BareMetalImage `json:"image"`

	// networkDataSecretRef names a Secret in this namespace with the host's network data (key "networkData").
	// +optional
	NetworkDataSecretRef *LocalObjectName `json:"networkDataSecretRef,omitempty"`

	// cleaningMode when the host is deprovisioned. Defaults to metadata.
	// +optional
	CleaningMode CleaningMode `json:"cleaningMode,omitempty"`
}

// BareMetalImage is the image Metal3 writes to a host.
// +kubebuilder:validation:XValidation:rule="(has(self.diskFormat) && self.diskFormat == 'live-iso') || has(self.checksum)",message="image.checksum is required unless image.diskFormat is live-iso"
type BareMetalImage struct {
	// url of the image.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="image.url must be a URL"
	URL string `json:"url"`
	// checksum of the image, or the URL of a checksum file.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Checksum string `json:"checksum,omitempty"`
	// checksumType of the checksum. Defaults to auto.
	// +optional
	ChecksumType ImageChecksumType `json:"checksumType,omitempty"`
	// diskFormat of the image.
	// +optional
	DiskFormat ImageDiskFormat `json:"diskFormat,omitempty"`
}

// NestMachineStatus is what the provider observed of the machine.
type NestMachineStatus struct {
	// initialization reports when the machine is provisioned (CAPI v1beta2 contract).
	// +optional
	Initialization NestMachineInitializationStatus `json:"initialization,omitempty,omitzero"`

	// addresses of the machine.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Addresses []clusterv1.MachineAddress `json:"addresses,omitempty"`

	// failureDomain is the Infra cluster the machine really runs on.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	FailureDomain string `json:"failureDomain,omitempty"`

	// remote is the VirtualMachine or BareMetalHost backing the machine in its Infra cluster.
	// +optional
	Remote *RemoteObject `json:"remote,omitempty"`

	// phase is a one-word summary for people: Pending, Provisioning, Running, Deleting or Failed.
	// +optional
	Phase NestMachinePhase `json:"phase,omitempty"`

	// conditions: VMProvisioned, BootstrapReady, LiveMigratable (VMs), HostClaimed, HostProvisioned
	// (bare metal), Paused and the summary Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NestMachineInitializationStatus is the CAPI v1beta2 initialization status.
// +kubebuilder:validation:MinProperties=1
type NestMachineInitializationStatus struct {
	// provisioned is true when the machine has booted.
	// +optional
	Provisioned *bool `json:"provisioned,omitempty"`
}

// RemoteObject is an object in an Infra cluster.
type RemoteObject struct {
	// infraCluster that holds it.
	// +required
	// +kubebuilder:validation:MaxLength=63
	InfraCluster string `json:"infraCluster"`
	// kind of the object.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// namespace of the object.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name of the object.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nestmachines,scope=Namespaced,shortName=nm,categories=cluster-api
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels="cluster.x-k8s.io/v1beta2=v1alpha1"
// +kubebuilder:printcolumn:name="Cluster",type="string",JSONPath=".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
// +kubebuilder:printcolumn:name="Infra",type="string",JSONPath=".status.failureDomain"
// +kubebuilder:printcolumn:name="Phase",type="string",JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="ProviderID",type="string",JSONPath=".spec.providerID"
// +kubebuilder:printcolumn:name="Machine",type="string",JSONPath=".metadata.ownerReferences[?(@.kind=='Machine')].name",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:validation:XValidation:rule="has(self.spec.kubevirt) == has(oldSelf.spec.kubevirt)",message="spec.kubevirt and spec.baremetal cannot be swapped: a machine does not change kind"

// NestMachine is a tenant machine: a KubeVirt VM or a Metal3 bare-metal host in an Infra cluster.
type NestMachine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired machine.
	// +required
	Spec NestMachineSpec `json:"spec"`
	// status is what the provider observed.
	// +optional
	Status NestMachineStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// NestMachineList is a list of NestMachines.
type NestMachineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NestMachine `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NestMachine{}, &NestMachineList{})
}
