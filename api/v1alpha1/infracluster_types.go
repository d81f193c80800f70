package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InfraCluster finalizer and conditions.
const (
	// InfraClusterFinalizer lets the provider stop the connection and sweep before the object goes.
	InfraClusterFinalizer = "infracluster.infrastructure.cluster.x-k8s.io"

	// ReachableCondition is true when the Infra cluster's API server answered the last probe.
	ReachableCondition = "Reachable"
	// KubeVirtAvailableCondition is true when the Infra cluster serves the KubeVirt API.
	KubeVirtAvailableCondition = "KubeVirtAvailable"
	// Metal3AvailableCondition is true when the Infra cluster serves Metal3's BareMetalHost API.
	Metal3AvailableCondition = "Metal3Available"

	// KubeconfigSecretNotFoundReason: the Secret named by spec.kubeconfigSecretRef does not exist.
	KubeconfigSecretNotFoundReason = "KubeconfigSecretNotFound"
	// KubeconfigInvalidReason: the Secret exists but its key is missing or is not a usable kubeconfig.
	KubeconfigInvalidReason = "KubeconfigInvalid"
	// ProbeFailedReason: the API server did not answer readyz or discovery within the timeout.
	ProbeFailedReason = "ProbeFailed"
	// ProbeSucceededReason: the API server answered.
	ProbeSucceededReason = "ProbeSucceeded"
	// APINotServedReason: discovery does not list the API group.
	APINotServedReason = "APINotServed"
	// APIServedReason: discovery lists the API group.
	APIServedReason = "APIServed"
	// ProbeFailingReason: recent probes failed, fewer in a row than spec.probe.failureThreshold: the
	// Infra cluster is still taken as available.
	ProbeFailingReason = "ProbeFailing"
	// BecameUnavailableReason and BecameAvailableReason are the events of the transitions.
	BecameUnavailableReason = "Unavailable"
	BecameAvailableReason   = "Available"
	// InfraClusterInUseReason: the InfraCluster is being deleted while NestClusters list it or
	// NestMachines run on it; the message names them.
	InfraClusterInUseReason = "InfraClusterInUse"
)

// InfraClusterSpec says how to reach an Infra cluster and who may use it.
// +kubebuilder:validation:XValidation:rule="!has(self.probe) || !has(self.probe.timeoutSeconds) || !has(self.probe.intervalSeconds) || self.probe.timeoutSeconds <= self.probe.intervalSeconds",message="probe.timeoutSeconds must not exceed probe.intervalSeconds"
type InfraClusterSpec struct {
	// kubeconfigSecretRef names a Secret in the provider's namespace holding a kubeconfig for the
	// Infra cluster. Without it the Infra cluster is the management cluster itself.
	// +optional
	KubeconfigSecretRef *SecretKeyReference `json:"kubeconfigSecretRef,omitempty"`

	// allowedNamespaces selects the management namespaces whose NestClusters and NestMachines may use
	// this Infra cluster. Nil admits no namespace; an empty object admits every namespace.
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`

	// schedulerName is put on every VM created in this Infra cluster (for example "nest-scheduler",
	// the packing scheduler of this project). Empty means the Infra cluster's default scheduler.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SchedulerName string `json:"schedulerName,omitempty"`

	// tenantNamespacePrefix starts the name of the namespace each tenant cluster gets in this Infra
	// cluster: <prefix><cluster-namespace>-<cluster-name>, shortened with a hash when too long.
	// +optional
	// +kubebuilder:default=nest-
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[-a-z0-9])?)?$`
	TenantNamespacePrefix string `json:"tenantNamespacePrefix,omitempty"`

	// vmPatchPolicy says what tenants' spec.kubevirt.vmPatches may add to their VMs here, beyond what
	// the curated fields give. Unset allows none of the features below: patches may not add host
	// disks (files of the Infra node), host devices or GPUs, nor change the scheduler name this
	// InfraCluster sets.
	// +optional
	VMPatchPolicy *VMPatchPolicy `json:"vmPatchPolicy,omitempty"`

	// probe sets how often and how patiently the provider checks the Infra cluster's health. Loss is
	// noticed within intervalSeconds + timeoutSeconds.
	// +optional
	Probe *ProbeSpec `json:"probe,omitempty"`

	// orphanGracePeriodSeconds is how long a NestMachine being deleted waits for an unreachable Infra
	// cluster before it is released and its remote objects are recorded as orphans, to be swept when
	// the Infra cluster returns.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=604800
	OrphanGracePeriodSeconds *int32 `json:"orphanGracePeriodSeconds,omitempty"`
}

// VMPatchFeature is something a VM patch can add that the Infra cluster's administrator governs.
// +kubebuilder:validation:Enum=HostDisk;HostDevices;SchedulerName
type VMPatchFeature string

// VM patch features.
const (
	// VMPatchHostDisk: hostDisk volumes, files or directories of the Infra node.
	VMPatchHostDisk VMPatchFeature = "HostDisk"
	// VMPatchHostDevices: host devices and GPUs passed through to the VM.
	VMPatchHostDevices VMPatchFeature = "HostDevices"
	// VMPatchSchedulerName: a scheduler name other than the InfraCluster's.
	VMPatchSchedulerName VMPatchFeature = "SchedulerName"
)

// VMPatchPolicy governs tenants' VM patches in an Infra cluster.
type VMPatchPolicy struct {
	// allow lists the features tenants' patches may add.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	Allow []VMPatchFeature `json:"allow,omitempty"`
}

// AllowedNamespaces selects namespaces by name or by label.
type AllowedNamespaces struct {
	// list of namespace names.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	List []string `json:"list,omitempty"`

	// selector matches namespace labels. A namespace is allowed when it is in list or matches selector.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ProbeSpec configures the health probe of an Infra cluster.
type ProbeSpec struct {
	// intervalSeconds between probes.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	IntervalSeconds int32 `json:"intervalSeconds,omitempty"`

	// timeoutSeconds of one probe.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// failureThreshold is how many probes in a row must fail before the Infra cluster is taken as
	// unavailable: its failure domain is dropped and its cache stopped. Until then the cache keeps
	// serving what it last saw and Reachable says the probes are failing. One success makes an
	// unavailable Infra cluster available again. At the defaults (10 s, 3) a network blip shorter than
	// about 20 s changes nothing.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// InfraClusterStatus is what the provider last saw of the Infra cluster.
type InfraClusterStatus struct {
	// conditions: Reachable, KubeVirtAvailable, Metal3Available and the summary Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// kubernetesVersion the Infra cluster's API server reports.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`

	// lastProbeTime is when the last probe finished.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`

	// capacity of the Infra cluster's schedulable nodes.
	// +optional
	Capacity *InfraCapacity `json:"capacity,omitempty"`

	// orphans are objects of deleted NestMachines that could not be removed because the Infra cluster
	// was unreachable; the sweeper removes them when it is back.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Orphans []OrphanedObject `json:"orphans,omitempty"`
}

// InfraCapacity summarises the schedulable nodes of an Infra cluster.
type InfraCapacity struct {
	// nodes is the number of nodes.
	// +optional
	Nodes int32 `json:"nodes"`
	// schedulableNodes is the number of Ready nodes that are not cordoned.
	// +optional
	SchedulableNodes int32 `json:"schedulableNodes"`
	// allocatable is the sum of the schedulable nodes' allocatable resources.
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
}

// OrphanedObject is a remote object whose NestMachine was released while its Infra cluster was
// unreachable.
type OrphanedObject struct {
	// kind of the object (VirtualMachine, BareMetalHost, ...).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// namespace of the object in the Infra cluster.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name of the object in the Infra cluster.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// nestMachine is namespace/name of the NestMachine that owned it.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	NestMachine string `json:"nestMachine,omitempty"`
	// since is when it was recorded.
	// +required
	Since metav1.Time `json:"since"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=infraclusters,scope=Cluster,shortName=infra,categories=cluster-api
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels="cluster.x-k8s.io/v1beta2=v1alpha1"
// +kubebuilder:metadata:labels="clusterctl.cluster.x-k8s.io/move-hierarchy="
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type="string",JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// +kubebuilder:printcolumn:name="Version",type="string",JSONPath=".status.kubernetesVersion"
// +kubebuilder:printcolumn:name="Nodes",type="integer",JSONPath=".status.capacity.schedulableNodes"
// +kubebuilder:printcolumn:name="Scheduler",type="string",JSONPath=".spec.schedulerName",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lower-case letters, digits and '-', at most 63 characters): it is a failure domain name and part of every providerID"

// InfraCluster registers a cluster that hosts tenant machines: KubeVirt VMs and/or Metal3 bare-metal
// hosts. Each InfraCluster is one CAPI failure domain.
type InfraCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says how to reach the Infra cluster and who may use it.
	// +optional
	Spec InfraClusterSpec `json:"spec,omitempty"`
	// status is what the provider last saw of it.
	// +optional
	Status InfraClusterStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// InfraClusterList is a list of InfraClusters.
type InfraClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []InfraCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&InfraCluster{}, &InfraClusterList{})
}
