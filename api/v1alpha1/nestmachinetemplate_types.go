package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// NestMachineTemplate conditions.
const (
	// CapacityKnownCondition says whether status.capacity could be derived from the template.
	CapacityKnownCondition = "CapacityKnown"
	// CapacityFromSpecReason: status.capacity is the template's CPU and memory.
	CapacityFromSpecReason = "FromSpec"
	// CapacityNotDerivableReason: the template does not say what a machine offers (a bare-metal
	// template: the host decides).
	CapacityNotDerivableReason = "NotDerivable"
)

// NestMachineTemplateResource is the NestMachine a NestMachineTemplate stamps out.
type NestMachineTemplateResource struct {
	// metadata of the NestMachines created from the template.
	// +optional
	ObjectMeta clusterv1.ObjectMeta `json:"metadata,omitempty,omitzero"`
	// spec of the NestMachines created from the template.
	// +required
	Spec NestMachineSpec `json:"spec"`
}

// NestMachineTemplateSpec holds the template.
type NestMachineTemplateSpec struct {
	// template is the NestMachine to create.
	// +required
	Template NestMachineTemplateResource `json:"template"`
}

// Architecture is the CPU architecture of a node.
// +kubebuilder:validation:Enum=amd64;arm64;s390x;ppc64le
type Architecture string

// NodeInfo describes the node a template's machines become, for scale-from-zero.
// +kubebuilder:validation:MinProperties=1
type NodeInfo struct {
	// architecture of the node.
	// +optional
	Architecture Architecture `json:"architecture,omitempty"`
	// operatingSystem of the node, such as linux.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	OperatingSystem string `json:"operatingSystem,omitempty"`
}

// NestMachineTemplateStatus tells the cluster autoscaler what a machine of this template offers.
type NestMachineTemplateStatus struct {
	// capacity of a machine of this template (cpu, memory).
	// +optional
	Capacity corev1.ResourceList `json:"capacity,omitempty"`
	// nodeInfo of a machine of this template.
	// +optional
	NodeInfo NodeInfo `json:"nodeInfo,omitempty,omitzero"`
	// conditions of the template.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nestmachinetemplates,scope=Namespaced,shortName=nmt,categories=cluster-api
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels="cluster.x-k8s.io/v1beta2=v1alpha1"
// +kubebuilder:printcolumn:name="CPU",type="string",JSONPath=".status.capacity.cpu"
// +kubebuilder:printcolumn:name="Memory",type="string",JSONPath=".status.capacity.memory"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"

// NestMachineTemplate is a NestMachine template for MachineDeployments, KubeadmControlPlane and
// ClusterClass.
type NestMachineTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the template.
	// +required
	Spec NestMachineTemplateSpec `json:"spec"`
	// status is what a machine of this template offers.
	// +optional
	Status NestMachineTemplateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// NestMachineTemplateList is a list of NestMachineTemplates.
type NestMachineTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NestMachineTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NestMachineTemplate{}, &NestMachineTemplateList{})
}
