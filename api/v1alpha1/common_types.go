package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations this provider puts on the objects it creates in Infra clusters. They are how
// watch events find their NestMachine, and how the orphan sweeper finds what is ours.
const (
	// ManagedByLabel marks every object this provider creates in an Infra cluster.
	ManagedByLabel = "infrastructure.cluster.x-k8s.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel.
	ManagedByValue = "nest"
	// NestMachineNamespaceLabel is the management namespace of the owning NestMachine.
	NestMachineNamespaceLabel = "nest.infrastructure.cluster.x-k8s.io/machine-namespace"
	// NestMachineNameLabel is the name of the owning NestMachine.
	NestMachineNameLabel = "nest.infrastructure.cluster.x-k8s.io/machine-name"
	// NestMachineUIDLabel is the UID of the owning NestMachine: a NestMachine recreated under the same
	// name is a different owner.
	NestMachineUIDLabel = "nest.infrastructure.cluster.x-k8s.io/machine-uid"
	// NestClusterNamespaceLabel is the management namespace of the owning NestCluster.
	NestClusterNamespaceLabel = "nest.infrastructure.cluster.x-k8s.io/cluster-namespace"
	// NestClusterNameLabel is the name of the owning NestCluster.
	NestClusterNameLabel = "nest.infrastructure.cluster.x-k8s.io/cluster-name"
	// ManagementClusterLabel is the identity of the management cluster whose provider made the object
	// (the manager's --management-cluster-id). A sweeper only ever considers objects carrying its own.
	ManagementClusterLabel = "nest.infrastructure.cluster.x-k8s.io/management-cluster"

	// NestMachineAnnotation holds "<namespace>/<name>" of the owning NestMachine in full: the
	// NestMachineNameLabel is shortened with a hash when the name is longer than a label value.
	NestMachineAnnotation = "nest.infrastructure.cluster.x-k8s.io/machine"
	// NestClusterAnnotation holds "<namespace>/<name>" of the owning NestCluster in full.
	NestClusterAnnotation = "nest.infrastructure.cluster.x-k8s.io/cluster"
	// HandedOverAnnotation is set, with the identity of the management cluster that let the object go,
	// when its owner was moved away by clusterctl move (and the ManagementClusterLabel removed): no
	// sweeper considers it until the management cluster the owner moved to adopts it.
	HandedOverAnnotation = "nest.infrastructure.cluster.x-k8s.io/handed-over-by"
)

// BootstrapMachineLabel marks the OpenShift installer's temporary bootstrap machine, on its Machine
// (as openshift-install and the openshift flavors put it) or its NestMachine. It is a control-plane
// machine for the tenant's API and machine-config Services while the control plane forms, and is
// deleted once bootstrap completes; it is not a member of the control plane that has to survive the
// loss of an Infra cluster or of an Infra node. So the control plane's spread over Infra clusters
// does not count it (internal/placement), nor does the one-control-plane-VM-per-node anti-affinity
// (internal/kubevirt), and its VM carries the label too.
const BootstrapMachineLabel = "install.openshift.io/bootstrap"

// Condition types and reasons shared by several kinds.
const (
	// ReadyCondition summarises the other conditions of an object.
	ReadyCondition = "Ready"
	// PausedCondition is true while the object or its Cluster is paused (CAPI v1beta2 contract).
	PausedCondition = "Paused"
	// DeletingReason is used on Ready while an object is being deleted.
	DeletingReason = "Deleting"
	// ForbiddenReason: an Infra cluster refused the provider's identity a request it needs; the message
	// names the verb, resource and namespace to grant (config/infra-rbac ships the grants).
	ForbiddenReason = "Forbidden"
)

// SecretKeyReference names a key of a Secret.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key in the Secret's data. Defaults to "value", the key CAPI uses for kubeconfig Secrets.
	// +optional
	// +kubebuilder:default=value
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// LocalObjectName is the name of an object in the same namespace.
type LocalObjectName struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// NamespacedName names an object in an Infra cluster.
type NamespacedName struct {
	// namespace of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// Placement constrains where, inside an Infra cluster, a VM may run.
// +kubebuilder:validation:MinProperties=1
type Placement struct {
	// nodeSelector must match the labels of the Infra node that runs the VM.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations of the VM's pod.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity of the VM's pod. Control-plane VMs of one tenant always get a required anti-affinity to
	// each other on top of this.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
}
