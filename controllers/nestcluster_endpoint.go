package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// The endpoints a NestCluster publishes as Services in its Infra clusters: the control-plane Service
// (spec.controlPlaneService) and, for an OpenShift tenant (spec.openshiftEndpoints), the API +
// machine-config server and ingress Services in every usable Infra cluster.

// Ports of an OpenShift control-plane and ingress VM, by the names status.endpoints reports.
const (
	apiPortName           = "api"
	machineConfigPortName = "machine-config"
	httpPortName          = "http"
	httpsPortName         = "https"

	apiServerPort     = 6443
	machineConfigPort = 22623
)

// tenantService is the part of a Service the provider decides; the rest (cluster IP, node ports,
// load balancer class) is the Infra cluster's.
type tenantService struct {
	role     infrav1.EndpointRole
	name     string
	typ      corev1.ServiceType
	selector map[string]string
	ports    []corev1.ServicePort
}

// roleSelector selects the tenant's VMs of one role (kubevirt.RoleControlPlane or RoleWorker).
func roleSelector(cluster *clusterv1.Cluster, role string) map[string]string {
	return map[string]string{clusterv1.ClusterNameLabel: ownership.LabelValue(cluster.Name), kubevirt.RoleLabel: role}
}

func tcpPort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(target)}
}

// derivesEndpoint reports whether the provider takes the control-plane endpoint from a Service it
// publishes, and in which Infra cluster: the controlPlaneService's, or with openshiftEndpoints the one
// Infra cluster that takes control-plane machines (with several, the user gives a VIP or load
// balancer in front of all of them).
func derivesEndpoint(nc *infrav1.NestCluster) (string, bool) {
	if s := nc.Spec.ControlPlaneService; s != nil {
		return s.InfraCluster, true
	}
	if nc.Spec.OpenShiftEndpoints == nil {
		return "", false
	}
	var hosts []string
	for _, use := range nc.Spec.InfraClusters {
		if ptr.Deref(use.ControlPlane, true) {
			hosts = append(hosts, use.Name)
		}
	}
	if len(hosts) != 1 {
		return "", false
	}
	return hosts[0], true
}

func endpointReady(cluster *clusterv1.Cluster, nc *infrav1.NestCluster) bool {
	_, derived := derivesEndpoint(nc)
	return nc.Spec.ControlPlaneEndpoint.IsValid() || (!derived && cluster.Spec.ControlPlaneEndpoint.IsValid())
}

// reconcileEndpoint publishes the tenant's Services and provides the control-plane endpoint: the one
// the user gave, or the address of the API Service in the one Infra cluster that hosts the control
// plane.
func (r *NestClusterReconciler) reconcileEndpoint(ctx context.Context, cluster *clusterv1.Cluster, nc *infrav1.NestCluster, uses []*infraUse) error {
	var published map[string]endpointAt
	if nc.Spec.OpenShiftEndpoints != nil {
		var err error
		if published, err = r.reconcileOpenShiftEndpoints(ctx, cluster, nc, uses); err != nil {
			conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.ServiceFailedReason, Message: err.Error()})
			return err
		}
	}
	hostName, derived := derivesEndpoint(nc)
	if !derived {
		if endpointReady(cluster, nc) {
			conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.EndpointProvidedReason})
			return nil
		}
		conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.WaitingForEndpointReason,
			Message: "set spec.controlPlaneEndpoint (a VIP or load balancer in front of the control-plane VMs of every Infra cluster) or spec.controlPlaneService"})
		return nil
	}
	var host *infraUse
	for _, u := range uses {
		if u.use.Name == hostName {
			host = u
		}
	}
	if host == nil || !host.usable {
		if !nc.Spec.ControlPlaneEndpoint.IsValid() {
			conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.InfraClusterNotReadyReason,
				Message: fmt.Sprintf("waiting for Infra cluster %s to create the control-plane Service", hostName)})
		}
		return nil
	}
	var at endpointAt
	var port int32
	if nc.Spec.ControlPlaneService != nil {
		spec := nc.Spec.ControlPlaneService
		svc, err := ensureService(ctx, host.conn, r.Identity, host.namespace, cluster, nc, tenantService{
			name:     controlPlaneServiceName(cluster),
			typ:      corev1.ServiceType(spec.Type),
			selector: roleSelector(cluster, kubevirt.RoleControlPlane),
			ports:    []corev1.ServicePort{tcpPort("kube-apiserver", spec.Port, apiServerPort)},
		})
		if err == nil && svc != nil {
			at, err = serviceAddress(ctx, host.conn, svc)
		}
		if err != nil {
			conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.ServiceFailedReason, Message: err.Error()})
			return err
		}
		port = at.ports["kube-apiserver"]
	} else {
		at = published[hostName]
		port = at.ports[apiPortName]
	}
	if at.host == "" || port == 0 {
		conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.WaitingForEndpointReason,
			Message: fmt.Sprintf("waiting for the control-plane Service in Infra cluster %s to get an address", hostName)})
		return nil
	}
	if !nc.Spec.ControlPlaneEndpoint.IsValid() {
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: at.host, Port: port}
	}
	conditions.Set(nc, metav1.Condition{Type: infrav1.ControlPlaneEndpointReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.ServiceReadyReason,
		Message: fmt.Sprintf("%s Service %s in Infra cluster %s", at.typ, at.service, hostName)})
	return nil
}

// reconcileOpenShiftEndpoints publishes, in every usable Infra cluster, the API + machine-config
// Service (where control-plane machines may run) and the ingress Service, and reports their addresses
// in status.endpoints. It returns the API Services' addresses by Infra cluster. An Infra cluster that
// is not usable now keeps the entries last reported for it: its Services are still there, and DNS
// records made from them stay right.
func (r *NestClusterReconciler) reconcileOpenShiftEndpoints(ctx context.Context, cluster *clusterv1.Cluster, nc *infrav1.NestCluster, uses []*infraUse) (map[string]endpointAt, error) {
	spec := nc.Spec.OpenShiftEndpoints
	typ := corev1.ServiceType(spec.Type)
	if typ == "" {
		typ = corev1.ServiceTypeLoadBalancer
	}
	ingressRole, err := r.ingressRole(ctx, cluster)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	apis := map[string]endpointAt{}
	var endpoints []infrav1.PublishedEndpoint
	var errs []error
	for _, u := range uses {
		if !u.usable {
			continue
		}
		usable[u.use.Name] = true
		var want []tenantService
		if ptr.Deref(u.use.ControlPlane, true) {
			want = append(want, tenantService{
				role: infrav1.EndpointAPI, name: openshiftServiceName(cluster, infrav1.EndpointAPI), typ: typ,
				selector: roleSelector(cluster, kubevirt.RoleControlPlane),
				ports:    []corev1.ServicePort{tcpPort(apiPortName, apiServerPort, apiServerPort), tcpPort(machineConfigPortName, machineConfigPort, machineConfigPort)},
			})
		}
		if ptr.Deref(spec.Ingress, true) {
			want = append(want, tenantService{
				role: infrav1.EndpointIngress, name: openshiftServiceName(cluster, infrav1.EndpointIngress), typ: typ,
				selector: roleSelector(cluster, ingressRole),
				ports:    []corev1.ServicePort{tcpPort(httpPortName, 80, 80), tcpPort(httpsPortName, 443, 443)},
			})
		}
		for _, w := range want {
			ep := infrav1.PublishedEndpoint{InfraCluster: u.use.Name, Role: w.role, Service: u.namespace + "/" + w.name}
			svc, err := ensureService(ctx, u.conn, r.Identity, u.namespace, cluster, nc, w)
			var at endpointAt
			if err == nil && svc != nil {
				at, err = serviceAddress(ctx, u.conn, svc)
			}
			if err != nil {
				errs = append(errs, err)
			}
			ep.Host = at.host
			if at.host != "" {
				for _, p := range w.ports {
					ep.Ports = append(ep.Ports, infrav1.EndpointPort{Name: p.Name, Port: at.ports[p.Name]})
				}
			}
			if w.role == infrav1.EndpointAPI {
				apis[u.use.Name] = at
			}
			endpoints = append(endpoints, ep)
		}
	}
	for _, old := range nc.Status.Endpoints {
		if !usable[old.InfraCluster] && slices.ContainsFunc(nc.Spec.InfraClusters, func(use infrav1.InfraClusterUse) bool { return use.Name == old.InfraCluster }) {
			endpoints = append(endpoints, old)
		}
	}
	slices.SortFunc(endpoints, func(a, b infrav1.PublishedEndpoint) int {
		return strings.Compare(a.InfraCluster+"/"+string(a.Role), b.InfraCluster+"/"+string(b.Role))
	})
	nc.Status.Endpoints = endpoints
	if len(errs) > 0 {
		return apis, fmt.Errorf("publishing the OpenShift endpoints: %w", errs[0])
	}
	return apis, nil
}

// ingressRole is the role of the VMs the ingress Services select: OpenShift runs its routers on the
// workers, or on the control plane of a cluster that has none (a compact cluster). A worker Machine
// made or deleted re-evaluates it (SetupWithManager).
func (r *NestClusterReconciler) ingressRole(ctx context.Context, cluster *clusterv1.Cluster) (string, error) {
	machines := &clusterv1.MachineList{}
	if err := r.Client.List(ctx, machines, client.InNamespace(cluster.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: cluster.Name}); err != nil {
		return "", fmt.Errorf("listing the Machines of Cluster %s: %w", cluster.Name, err)
	}
	for _, m := range machines.Items {
		if _, cp := m.Labels[clusterv1.MachineControlPlaneLabel]; !cp && m.DeletionTimestamp.IsZero() {
			return kubevirt.RoleWorker, nil
		}
	}
	return kubevirt.RoleControlPlane, nil
}

// controlPlaneServiceName is the name of the Service in front of a tenant's control-plane VMs.
func controlPlaneServiceName(cluster *clusterv1.Cluster) string {
	return ownership.ShortName(cluster.Name+"-control-plane", 63)
}

// openshiftServiceName is the name of an OpenShift tenant's API or ingress Service.
func openshiftServiceName(cluster *clusterv1.Cluster, role infrav1.EndpointRole) string {
	return ownership.ShortName(cluster.Name+"-"+strings.ToLower(string(role)), 63)
}

// ensureService creates the Service when the Infra cluster's cache does not have it, and otherwise
// adopts it and brings its selector and ports to what is wanted (the ingress selector follows the
// tenant's workers). It returns nil while the Service was just created: its address comes with the
// watch event that follows.
func ensureService(ctx context.Context, conn *infra.Connection, id ownership.Identity, namespace string, cluster *clusterv1.Cluster, nc *infrav1.NestCluster, want tenantService) (*corev1.Service, error) {
	key := client.ObjectKey{Namespace: namespace, Name: want.name}
	svc := &corev1.Service{}
	err := conn.Client().Get(ctx, key, svc)
	if apierrors.IsNotFound(err) {
		svc = &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: tenantLabels(id, cluster, nc), Annotations: ownership.Annotations(ownership.Cluster(nc))},
			Spec:       corev1.ServiceSpec{Type: want.typ, Selector: want.selector, Ports: want.ports},
		}
		if err := conn.Client().Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating Service %s in Infra cluster %s: %w", key, conn.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Created a Service", "infraCluster", conn.Name, "service", key.String())
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Service %s in Infra cluster %s: %w", key, conn.Name, err)
	}
	if err := adoptTenantObject(ctx, conn, id, nc, svc); err != nil {
		return nil, err
	}
	if maps.Equal(svc.Spec.Selector, want.selector) && samePorts(svc.Spec.Ports, want.ports) {
		return svc, nil
	}
	ports := make([]corev1.ServicePort, 0, len(want.ports))
	for _, p := range want.ports {
		for _, had := range svc.Spec.Ports {
			if had.Name == p.Name {
				p.NodePort = had.NodePort
			}
		}
		ports = append(ports, p)
	}
	svc.Spec.Selector, svc.Spec.Ports = want.selector, ports
	if err := conn.Client().Update(ctx, svc); err != nil {
		return nil, fmt.Errorf("updating Service %s in Infra cluster %s: %w", key, conn.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Updated a Service's selector and ports", "infraCluster", conn.Name, "service", key.String(), "selector", want.selector)
	return svc, nil
}

// samePorts compares what the provider sets of each port.
func samePorts(have, want []corev1.ServicePort) bool {
	return slices.EqualFunc(have, want, func(a, b corev1.ServicePort) bool {
		return a.Name == b.Name && a.Port == b.Port && a.TargetPort == b.TargetPort && a.Protocol == b.Protocol
	})
}

// endpointAt is where a Service answers from outside its Infra cluster.
type endpointAt struct {
	service string
	typ     corev1.ServiceType
	// host is the load balancer's address, the first node's (node ports) or the cluster IP; empty
	// until there is one.
	host string
	// ports by name: the Service's ports, or its node ports.
	ports map[string]int32
}

func serviceAddress(ctx context.Context, conn *infra.Connection, svc *corev1.Service) (endpointAt, error) {
	at := endpointAt{service: svc.Namespace + "/" + svc.Name, typ: svc.Spec.Type, ports: map[string]int32{}}
	for _, p := range svc.Spec.Ports {
		if svc.Spec.Type == corev1.ServiceTypeNodePort {
			if p.NodePort == 0 {
				return endpointAt{}, nil
			}
			at.ports[p.Name] = p.NodePort
			continue
		}
		at.ports[p.Name] = p.Port
	}
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if at.host = ing.IP; at.host == "" {
				at.host = ing.Hostname
			}
			if at.host != "" {
				break
			}
		}
	case corev1.ServiceTypeNodePort:
		addr, err := firstNodeAddress(ctx, conn)
		if err != nil {
			return endpointAt{}, err
		}
		at.host = addr
	default:
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			at.host = svc.Spec.ClusterIP
		}
	}
	return at, nil
}

// firstNodeAddress is the InternalIP of the first (by name) schedulable node: a NodePort answers on
// every node, so any stable choice works.
func firstNodeAddress(ctx context.Context, conn *infra.Connection) (string, error) {
	nodes := &corev1.NodeList{}
	if err := conn.Client().List(ctx, nodes); err != nil {
		return "", fmt.Errorf("listing nodes of Infra cluster %s: %w", conn.Name, err)
	}
	slices.SortFunc(nodes.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address, nil
			}
		}
	}
	return "", nil
}
