package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// NestCluster finalizer and conditions.
const (
	// NestClusterFinalizer lets the provider remove tenant namespaces and Services before the object goes.
	NestClusterFinalizer = "nestcluster.infrastructure.cluster.x-k8s.io"

	// InfraClustersReadyCondition is true when every listed Infra cluster exists, admits this
	// namespace, is healthy and holds the tenant namespace.
	InfraClustersReadyCondition = "InfraClustersReady"
	// ControlPlaneEndpointReadyCondition is true when spec.controlPlaneEndpoint is set.
	ControlPlaneEndpointReadyCondition = "ControlPlaneEndpointReady"
	// ControlPlaneBalancedCondition reports whether the control plane has one machine per Infra
	// cluster, and records a restore the provider requested.
	ControlPlaneBalancedCondition = "ControlPlaneBalanced"
	// InfraClusterLossToleratedCondition is true when at least three Infra clusters take control-plane
	// machines, so that the control plane (one machine per Infra cluster) survives losing any one.
	InfraClusterLossToleratedCondition = "InfraClusterLossTolerated"

	// InfraClusterNotFoundReason: a listed InfraCluster does not exist.
	InfraClusterNotFoundReason = "InfraClusterNotFound"
	// NamespaceNotAllowedReason: a listed InfraCluster's allowedNamespaces does not admit this namespace.
	NamespaceNotAllowedReason = "NamespaceNotAllowed"
	// InfraClusterNotReadyReason: a listed InfraCluster is not Ready.
	InfraClusterNotReadyReason = "InfraClusterNotReady"
	// AllUsableReason: every listed Infra cluster is usable.
	AllUsableReason = "AllUsable"
	// EndpointProvidedReason: spec.controlPlaneEndpoint was given.
	EndpointProvidedReason = "Provided"
	// ServiceReadyReason and ServiceFailedReason: the control-plane Service has an address, or could
	// not be made.
	ServiceReadyReason  = "ServiceReady"
	ServiceFailedReason = "ServiceFailed"
	// ProvisionedReason and NotProvisionedReason summarise a NestCluster on Ready.
	ProvisionedReason    = "Provisioned"
	NotProvisionedReason = "NotProvisioned"
	// BalancedReason and UnbalancedReason are ControlPlaneBalanced's.
	BalancedReason   = "Balanced"
	UnbalancedReason = "Unbalanced"
	// ThreeOrMoreInfraClustersReason and OneInfraClusterReason are InfraClusterLossTolerated's, with
	// TwoInfraClustersReason.
	ThreeOrMoreInfraClustersReason = "ThreeOrMoreInfraClusters"
	OneInfraClusterReason          = "OneInfraCluster"
	// TwoInfraClustersReason: exactly two Infra clusters take control-plane machines.
	TwoInfraClustersReason = "TwoInfraClusters"
	// TwoInfraClustersMessage says why two Infra clusters are not highly available.
	TwoInfraClustersMessage = "exactly two Infra clusters take control-plane machines: an odd control plane (3 machines) puts two in one of them, and losing that one loses etcd quorum; use one Infra cluster, or three"
	// TenantNamespaceNotUsableReason: the tenant namespace in a listed Infra cluster cannot be used:
	// it is being deleted, or another management cluster made it.
	TenantNamespaceNotUsableReason = "TenantNamespaceNotUsable"
	// WaitingForEndpointReason: the control-plane endpoint is neither given nor provided yet.
	WaitingForEndpointReason = "WaitingForEndpoint"
	// RestoreRequestedReason: the provider asked the control plane to roll out to rebalance.
	RestoreRequestedReason = "RestoreRequested"
	// OperatorRestoreNeededReason: the control plane is unbalanced and is not a KubeadmControlPlane, so
	// the provider cannot request a rollout; the message says what the operator must do.
	OperatorRestoreNeededReason = "OperatorRestoreNeeded"
)

// ControlPlaneServiceType is the type of the Service that fronts the control-plane VMs.
// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
type ControlPlaneServiceType string

// NestClusterSpec is the tenant cluster's infrastructure.
// +kubebuilder:validation:XValidation:rule="!has(self.controlPlaneService) || self.infraClusters.exists(i, i.name == self.controlPlaneService.infraCluster && (!has(i.controlPlane) || i.controlPlane))",message="controlPlaneService.infraCluster must be one of spec.infraClusters with controlPlane true: the Service fronts the control-plane VMs, which run only there, and its address becomes the immutable spec.controlPlaneEndpoint"
// +kubebuilder:validation:XValidation:rule="!has(self.controlPlaneService) || !has(self.openshiftEndpoints)",message="give controlPlaneService or openshiftEndpoints, not both: openshiftEndpoints publishes the API Service itself"
// +kubebuilder:validation:XValidation:rule="!has(self.controlPlaneService) || self.infraClusters.filter(i, !has(i.controlPlane) || i.controlPlane).size() == 1",message="controlPlaneService needs exactly one Infra cluster in spec.infraClusters with controlPlane true; with several, give spec.controlPlaneEndpoint (a VIP or load balancer in front of all of them)"
type NestClusterSpec struct {
	// infraClusters this tenant may use; each is one failure domain.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	InfraClusters []InfraClusterUse `json:"infraClusters"`

	// controlPlaneEndpoint is where the tenant's API server is reached. Give it for a control plane
	// over several Infra clusters (a VIP or load balancer); with controlPlaneService the provider
	// fills it in.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(oldSelf.host) || self == oldSelf",message="controlPlaneEndpoint is immutable once set"
	ControlPlaneEndpoint clusterv1.APIEndpoint `json:"controlPlaneEndpoint,omitempty,omitzero"`

	// controlPlaneService asks the provider to create, in the one Infra cluster that hosts the
	// control plane, a Service selecting this tenant's control-plane VMs, and to take the endpoint
	// from it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="controlPlaneService is immutable"
	ControlPlaneService *ControlPlaneService `json:"controlPlaneService,omitempty"`

	// openshiftEndpoints asks the provider to publish what an OpenShift cluster needs, in every Infra
	// cluster that hosts this tenant's machines: the API and machine-config server (6443, 22623) in
	// front of the control-plane VMs, and ingress (80, 443) in front of the worker VMs (or the
	// control-plane VMs where that Infra cluster runs no worker VM). Every address is reported in
	// status.endpoints. Where exactly one Infra cluster takes control-plane machines, the
	// control-plane endpoint is taken from its API Service.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="openshiftEndpoints is immutable"
	OpenShiftEndpoints *OpenShiftEndpoints `json:"openshiftEndpoints,omitempty"`
}

// OpenShiftEndpoints configures the Services the provider publishes for an OpenShift tenant.
type OpenShiftEndpoints struct {
	// type of the Services. The address is the cluster IP, the first node address (with node ports),
	// or the load balancer address.
	// +optional
	// +kubebuilder:default=LoadBalancer
	Type ControlPlaneServiceType `json:"type,omitempty"`

	// ingress publishes the ingress Service (ports 80 and 443). Defaults to true.
	// +optional
	Ingress *bool `json:"ingress,omitempty"`
}

// EndpointRole is what a published Service serves.
// +kubebuilder:validation:Enum=API;Ingress
type EndpointRole string

const (
	// EndpointAPI fronts the API server (6443) and the machine-config server (22623).
	EndpointAPI EndpointRole = "API"
	// EndpointIngress fronts the ingress routers (80, 443).
	EndpointIngress EndpointRole = "Ingress"
)

// PublishedEndpoint is one Service the provider published for the tenant.
type PublishedEndpoint struct {
	// infraCluster whose Service this is.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	InfraCluster string `json:"infraCluster"`
	// role of the Service.
	// +required
	Role EndpointRole `json:"role"`
	// service is the Service's namespace/name in that Infra cluster.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Service string `json:"service,omitempty"`
	// host is the Service's address; empty until it has one.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Host string `json:"host,omitempty"`
	// ports the Service exposes at host (node ports for type NodePort), by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=4
	Ports []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is one port of a published endpoint.
type EndpointPort struct {
	// name of the port: api, machine-config, http or https.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// port at the endpoint's host.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// InfraClusterUse is one Infra cluster a tenant may use.
type InfraClusterUse struct {
	// name of the InfraCluster.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// controlPlane says whether control-plane machines may be placed here. Defaults to true.
	// +optional
	ControlPlane *bool `json:"controlPlane,omitempty"`
}

// ControlPlaneService configures the provider-managed Service in front of the control-plane VMs.
type ControlPlaneService struct {
	// infraCluster that hosts the control plane and the Service: the one of spec.infraClusters with
	// controlPlane true.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	InfraCluster string `json:"infraCluster"`

	// type of the Service. The endpoint is its cluster IP, its node port on the first node address, or
	// its load balancer address.
	// +optional
	// +kubebuilder:default=ClusterIP
	Type ControlPlaneServiceType `json:"type,omitempty"`

	// port the Service exposes; the VMs' API servers listen on 6443.
	// +optional
	// +kubebuilder:default=6443
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// NestClusterStatus is what the provider observed of the tenant's infrastructure.
type NestClusterStatus struct {
	// initialization reports when the infrastructure is provisioned (CAPI v1beta2 contract).
	// +optional
	Initialization NestClusterInitializationStatus `json:"initialization,omitempty,omitzero"`

	// failureDomains: one per healthy, allowed Infra cluster.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	FailureDomains []clusterv1.FailureDomain `json:"failureDomains,omitempty"`

	// infraClusters: the state of each listed Infra cluster for this tenant.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	InfraClusters []InfraClusterUseStatus `json:"infraClusters,omitempty"`

	// lastControlPlaneRestore is when the provider last asked the control plane to roll out to restore
	// one machine per Infra cluster.
	// +optional
	LastControlPlaneRestore *metav1.Time `json:"lastControlPlaneRestore,omitempty"`

	// endpoints the provider published for spec.openshiftEndpoints, one per Infra cluster and role.
	// +optional
	// +listType=map
	// +listMapKey=infraCluster
	// +listMapKey=role
	// +kubebuilder:validation:MaxItems=32
	Endpoints []PublishedEndpoint `json:"endpoints,omitempty"`

	// conditions: InfraClustersReady, ControlPlaneEndpointReady, ControlPlaneBalanced, Paused and the
	// summary Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NestClusterInitializationStatus is the CAPI v1beta2 initialization status.
// +kubebuilder:validation:MinProperties=1
type NestClusterInitializationStatus struct {
	// provisioned is true when the infrastructure is ready for machines.
	// +optional
	Provisioned *bool `json:"provisioned,omitempty"`
}

// InfraClusterUseStatus is the state of one Infra cluster for a tenant.
type InfraClusterUseStatus struct {
	// name of the InfraCluster.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// namespace that holds this tenant's objects in that Infra cluster.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// usable is true when the tenant may place machines there now.
	// +optional
	Usable bool `json:"usable"`
	// reason it is not usable.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nestclusters,scope=Namespaced,shortName=nc,categories=cluster-api
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels="cluster.x-k8s.io/v1beta2=v1alpha1"
// +kubebuilder:printcolumn:name="Cluster",type="string",JSONPath=".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
// +kubebuilder:printcolumn:name="Provisioned",type="boolean",JSONPath=".status.initialization.provisioned"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Endpoint",type="string",JSONPath=".spec.controlPlaneEndpoint.host"
// +kubebuilder:printcolumn:name="Failure Domains",type="string",JSONPath=".status.failureDomains[*].name",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"

// NestCluster is the infrastructure of a tenant cluster: the Infra clusters it may use and its
// control-plane endpoint.
type NestCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired infrastructure.
	// +required
	Spec NestClusterSpec `json:"spec"`
	// status is what the provider observed.
	// +optional
	Status NestClusterStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// NestClusterList is a list of NestClusters.
type NestClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NestCluster `json:"items"`
}

// NestClusterTemplateResource is the NestCluster a NestClusterTemplate stamps out.
type NestClusterTemplateResource struct {
	// metadata of the NestClusters created from the template.
	// +optional
	ObjectMeta clusterv1.ObjectMeta `json:"metadata,omitempty,omitzero"`
	// spec of the NestClusters created from the template.
	// +required
	Spec NestClusterSpec `json:"spec"`
}

// NestClusterTemplateSpec holds the template.
type NestClusterTemplateSpec struct {
	// template is the NestCluster to create.
	// +required
	Template NestClusterTemplateResource `json:"template"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nestclustertemplates,scope=Namespaced,shortName=nct,categories=cluster-api
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels="cluster.x-k8s.io/v1beta2=v1alpha1"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"

// NestClusterTemplate is a NestCluster template for ClusterClass.
type NestClusterTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the template.
	// +required
	Spec NestClusterTemplateSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// NestClusterTemplateList is a list of NestClusterTemplates.
type NestClusterTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NestClusterTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NestCluster{}, &NestClusterList{}, &NestClusterTemplate{}, &NestClusterTemplateList{})
}
