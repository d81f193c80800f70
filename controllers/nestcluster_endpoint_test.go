package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// openshiftService reads an OpenShift tenant's Service ("api" or "ingress") in an Infra cluster.
func openshiftService(g Gomega, c client.Client, nc *infrav1.NestCluster, role string) *corev1.Service {
	svc := &corev1.Service{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: tenantNamespace(nc), Name: nc.Name + "-" + role}, svc)).To(Succeed())
	return svc
}

func publishedEndpoint(nc *infrav1.NestCluster, infra string, role infrav1.EndpointRole) *infrav1.PublishedEndpoint {
	for i, ep := range nc.Status.Endpoints {
		if ep.InfraCluster == infra && ep.Role == role {
			return &nc.Status.Endpoints[i]
		}
	}
	return nil
}

func portsOf(ep *infrav1.PublishedEndpoint) map[string]int32 {
	ports := map[string]int32{}
	for _, p := range ep.Ports {
		ports[p.Name] = p.Port
	}
	return ports
}

// An OpenShift tenant on one Infra cluster: the provider publishes the API + machine-config and the
// ingress LoadBalancer Services, takes the control-plane endpoint from the API Service's load
// balancer address, moves ingress from the control plane to the workers when the first worker comes,
// and removes the Services with the NestCluster.
func TestOpenShiftEndpointsOnOneInfraCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	infraA := topo.Infras[0].Client
	cluster, nc := newTenantWith(t, func(nc *infrav1.NestCluster) {
		nc.Spec.OpenShiftEndpoints = &infrav1.OpenShiftEndpoints{}
	}, "infra-a")

	var api, ingress *corev1.Service
	g.Eventually(func(g Gomega) {
		api = openshiftService(g, infraA, nc, "api")
		ingress = openshiftService(g, infraA, nc, "ingress")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(api.Spec.Type).To(Equal(corev1.ServiceTypeLoadBalancer), "LoadBalancer is the default")
	g.Expect(api.Spec.Selector).To(Equal(map[string]string{"cluster.x-k8s.io/cluster-name": cluster.Name, "cluster.x-k8s.io/role": "control-plane"}))
	g.Expect(api.Spec.Ports).To(HaveLen(2))
	g.Expect(api.Spec.Ports[0].Port).To(Equal(int32(6443)))
	g.Expect(api.Spec.Ports[1].Port).To(Equal(int32(22623)), "the machine-config server")
	g.Expect(ingress.Spec.Selector).To(HaveKeyWithValue("cluster.x-k8s.io/role", "control-plane"), "no workers yet: the routers run on the control plane")

	// Until the load balancer answers, the endpoint waits.
	g.Consistently(func(g Gomega) {
		get(g, nc)
		g.Expect(nc.Spec.ControlPlaneEndpoint.Host).To(BeEmpty())
		g.Expect(conditions.GetReason(nc, infrav1.ControlPlaneEndpointReadyCondition)).To(Equal(infrav1.WaitingForEndpointReason))
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())

	// The Infra cluster's load balancer controller (none runs in envtest) gives both an address.
	for svc, ip := range map[*corev1.Service]string{api: "192.0.2.10", ingress: "192.0.2.11"} {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		g.Expect(infraA.Status().Update(ctx, svc)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(nc.Spec.ControlPlaneEndpoint.Host).To(Equal("192.0.2.10"))
		g.Expect(nc.Spec.ControlPlaneEndpoint.Port).To(Equal(int32(6443)))
		g.Expect(conditions.IsTrue(nc, infrav1.ReadyCondition)).To(BeTrue(), conditions.GetMessage(nc, infrav1.ReadyCondition))
		ep := publishedEndpoint(nc, "infra-a", infrav1.EndpointAPI)
		g.Expect(ep).NotTo(BeNil())
		g.Expect(ep.Host).To(Equal("192.0.2.10"))
		g.Expect(portsOf(ep)).To(Equal(map[string]int32{"api": 6443, "machine-config": 22623}))
		ep = publishedEndpoint(nc, "infra-a", infrav1.EndpointIngress)
		g.Expect(ep).NotTo(BeNil())
		g.Expect(ep.Host).To(Equal("192.0.2.11"))
		g.Expect(portsOf(ep)).To(Equal(map[string]int32{"http": 80, "https": 443}))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	// The first worker moves ingress to the workers.
	markInfrastructureProvisioned(t, cluster)
	worker, _ := newMachine(t, cluster, machineOpts{spec: vmSpec()})
	g.Eventually(func(g Gomega) {
		g.Expect(openshiftService(g, infraA, nc, "ingress").Spec.Selector).To(HaveKeyWithValue("cluster.x-k8s.io/role", "worker"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(mgmt.Delete(ctx, worker)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(openshiftService(g, infraA, nc, "ingress").Spec.Selector).To(HaveKeyWithValue("cluster.x-k8s.io/role", "control-plane"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed(), "the last worker gone, ingress is back on the control plane")

	g.Expect(mgmt.Delete(ctx, nc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		svcs := &corev1.ServiceList{}
		g.Expect(infraA.List(ctx, svcs, client.InNamespace(tenantNamespace(nc)))).To(Succeed())
		g.Expect(svcs.Items).To(BeEmpty())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

// An OpenShift tenant over three Infra clusters: one API and one ingress Service in each (here
// NodePorts, reported at the first node's address), and the control-plane endpoint is the user's VIP.
// Losing an Infra cluster keeps its last reported endpoints.
func TestOpenShiftEndpointsOverThreeInfraClusters(t *testing.T) {
	g := NewWithT(t)
	ensureThreeInfras(t)
	_, nc := newTenantWith(t, func(nc *infrav1.NestCluster) {
		withEndpoint(nc)
		nc.Spec.OpenShiftEndpoints = &infrav1.OpenShiftEndpoints{Type: "NodePort"}
	}, threeInfras...)
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(nc.Status.Endpoints).To(HaveLen(6))
		for i, name := range threeInfras {
			api := openshiftService(g, topo.Infras[i].Client, nc, "api")
			g.Expect(api.Spec.Type).To(Equal(corev1.ServiceTypeNodePort))
			ep := publishedEndpoint(nc, name, infrav1.EndpointAPI)
			g.Expect(ep).NotTo(BeNil())
			g.Expect(ep.Host).NotTo(BeEmpty(), "a node's address")
			g.Expect(portsOf(ep)).To(Equal(map[string]int32{"api": api.Spec.Ports[0].NodePort, "machine-config": api.Spec.Ports[1].NodePort}))
			g.Expect(publishedEndpoint(nc, name, infrav1.EndpointIngress).Host).To(Equal(ep.Host))
		}
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(nc.Spec.ControlPlaneEndpoint.Host).To(Equal("10.0.0.10"), "with three control-plane Infra clusters, the user's VIP")

	restart := stopAPIServer(t, topo.Infras[2])
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(failureDomainNames(nc)).NotTo(ContainElement("infra-c"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(nc.Status.Endpoints).To(HaveLen(6), "the lost Infra cluster's endpoints stay as last reported")
	g.Expect(publishedEndpoint(nc, "infra-c", infrav1.EndpointAPI).Host).NotTo(BeEmpty())
	restart()

	g.Expect(mgmt.Delete(context.Background(), nc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := mgmt.Get(context.Background(), client.ObjectKeyFromObject(nc), nc)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "NestCluster released, got %v", err)
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}
