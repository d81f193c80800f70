package controllers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
)

// eventReasons lists the reasons of the events recorded about an InfraCluster.
func eventReasons(g Gomega, name string) []string {
	events := &corev1.EventList{}
	g.Expect(mgmt.List(context.Background(), events, client.MatchingFields{"involvedObject.name": name})).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// An Infra cluster behind a flapping network (one probe in three fails) keeps its failure domain and
// its tenants' machines; one that stays down past spec.probe.failureThreshold loses it and gets it
// back once a probe succeeds. Every transition is an event.
func TestAFlappingInfraClusterKeepsItsFailureDomainAndALostOneComesBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	env := infraEnv("infra-b")
	proxy, err := env.StartProxy()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = proxy.Close() })
	name := uniqueName("flapping")
	secret, err := proxy.KubeconfigSecret(env, providerNamespace, name+"-kubeconfig")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mgmt.Create(ctx, secret)).To(Succeed())
	ic := &infrav1.InfraCluster{}
	ic.Name = name
	ic.Spec = infrav1.InfraClusterSpec{
		KubeconfigSecretRef: &infrav1.SecretKeyReference{Name: name + "-kubeconfig"},
		AllowedNamespaces:   &infrav1.AllowedNamespaces{},
		Probe:               &infrav1.ProbeSpec{IntervalSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3},
	}
	g.Expect(mgmt.Create(ctx, ic)).To(Succeed())
	_, nc := newTenant(t, "infra-a", name)
	hasDomain := func(g Gomega) bool {
		return slices.Contains(failureDomainNames(get(g, nc).(*infrav1.NestCluster)), name)
	}
	g.Eventually(hasDomain, 30*time.Second, 200*time.Millisecond).Should(BeTrue(), "the Infra cluster behind the proxy becomes a failure domain")

	// One probe in three fails: down for one probe interval out of every three.
	flapping, stop, stopped := time.NewTicker(3*time.Second), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		defer flapping.Stop()
		for {
			select {
			case <-stop:
				return
			case <-flapping.C:
				proxy.SetDown(true)
				time.Sleep(1100 * time.Millisecond)
				proxy.SetDown(false)
			}
		}
	}()
	g.Consistently(func(g Gomega) {
		g.Expect(conditions.IsTrue(get(g, ic).(*infrav1.InfraCluster), infrav1.ReadyCondition)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ic, infrav1.ReadyCondition))
		g.Expect(hasDomain(g)).To(BeTrue(), "the failure domain stays")
	}, 15*time.Second, 200*time.Millisecond).Should(Succeed())
	close(stop)
	<-stopped
	g.Eventually(func(g Gomega) []string { return eventReasons(g, name) }, 10*time.Second, 200*time.Millisecond).
		Should(ContainElement(infrav1.ProbeFailingReason), "the failing probes were an event")
	g.Expect(eventReasons(g, name)).NotTo(ContainElement(infrav1.BecameUnavailableReason), "a blip never made it unavailable")

	proxy.SetDown(true)
	g.Eventually(func(g Gomega) {
		get(g, ic)
		g.Expect(conditions.IsFalse(ic, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(ic, infrav1.ReachableCondition)).To(Equal(infrav1.ProbeFailedReason))
		g.Expect(hasDomain(g)).To(BeFalse(), "an unavailable Infra cluster leaves the failure domains")
		g.Expect(eventReasons(g, name)).To(ContainElement(infrav1.BecameUnavailableReason))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

	proxy.SetDown(false)
	g.Eventually(func(g Gomega) {
		get(g, ic)
		g.Expect(conditions.IsTrue(ic, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(hasDomain(g)).To(BeTrue(), "back after one successful probe")
		g.Expect(ptr.Deref(get(g, nc).(*infrav1.NestCluster).Status.Initialization.Provisioned, false)).To(BeTrue())
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(eventReasons(g, name)).To(ContainElement(infrav1.BecameAvailableReason))
}

// Removing a namespace from an InfraCluster's allowedNamespaces stops new machines of its tenants
// there, worker or control plane, with a condition saying why; the machines already there stay.
func TestNarrowingAllowedNamespacesStopsNewMachinesAndKeepsTheOthers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	ic := registerInfraCluster(t, uniqueName("narrowing"), topo.Infras[0], &infrav1.AllowedNamespaces{List: []string{"default"}})
	cluster, nc := newTenant(t, ic.Name)
	markInfrastructureProvisioned(t, cluster)
	_, first := newMachine(t, cluster, machineOpts{failureDomain: ic.Name, spec: vmSpec()})
	waitProvisioned(t, first)

	get(g, ic)
	before := ic.DeepCopy()
	ic.Spec.AllowedNamespaces = &infrav1.AllowedNamespaces{List: []string{"someone-else"}}
	g.Expect(mgmt.Patch(ctx, ic, client.MergeFrom(before))).To(Succeed())
	_, second := newMachine(t, cluster, machineOpts{failureDomain: ic.Name, spec: vmSpec()})
	g.Eventually(func(g Gomega) {
		get(g, second)
		g.Expect(conditions.GetReason(second, infrav1.VMProvisionedCondition)).To(Equal(infrav1.NamespaceNotAllowedReason))
		g.Expect(conditions.GetMessage(second, infrav1.VMProvisionedCondition)).To(ContainSubstring("does not admit namespace default"))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(second.Status.Remote).To(BeNil(), "no VM is made for the new machine")
		g.Expect(ptr.Deref(get(g, first).(*infrav1.NestMachine).Status.Initialization.Provisioned, false)).To(BeTrue(), "the machine already there stays")
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(topo.Infras[0].Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(first)}, vm)).To(Succeed())
		g.Expect(vm.DeletionTimestamp).To(BeNil())
		get(g, second)
	}, 5*time.Second, 500*time.Millisecond).Should(Succeed())
}

// A control-plane Machine that admission let through into an Infra cluster that already has more
// than its share (several webhook replicas, or none, as in this suite) gets no VM: the NestMachine
// says why with the counts, and goes on once the other Infra clusters have theirs.
func TestAControlPlaneVMThatWouldUnbalanceWaitsForBalance(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	g.Eventually(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(HaveLen(3))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	_, first := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: vmSpec()})
	waitProvisioned(t, first)
	_, second := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: vmSpec()})
	g.Eventually(func(g Gomega) {
		get(g, second)
		g.Expect(conditions.GetReason(second, infrav1.VMProvisionedCondition)).To(Equal(infrav1.ControlPlaneUnbalancedReason))
		g.Expect(conditions.GetMessage(second, infrav1.VMProvisionedCondition)).To(ContainSubstring("infra-a=1"))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(second)}, &kubevirtv1.VirtualMachine{})
	g.Expect(err).To(HaveOccurred(), "no second control-plane VM in infra-a while infra-b and infra-c have none")

	for _, infra := range []string{"infra-b", "infra-c"} {
		_, nm := newMachine(t, cluster, machineOpts{failureDomain: infra, controlPlane: true, spec: vmSpec()})
		waitProvisioned(t, nm)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		get(g, second)
		g.Expect(ptr.Deref(second.Status.Initialization.Provisioned, false)).To(BeTrue(), "VMProvisioned: %s", conditions.GetMessage(second, infrav1.VMProvisionedCondition))
	}, 60*time.Second, 500*time.Millisecond).Should(Succeed(), "with one control-plane VM in each Infra cluster, a fourth is within the rule")
}

// A NestMachine whose VM patches add a host disk (a file of the Infra node) gets no VM in an Infra
// cluster whose spec.vmPatchPolicy does not allow it, even when admission let it through (no webhook
// runs in this suite); the condition names the policy.
func TestVMPatchesTheInfraClusterDoesNotAllowMakeNoVM(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	spec := vmSpec()
	spec.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/volumes/-",
		Value: &apiextensionsv1.JSON{Raw: []byte(`{"name":"shadow","hostDisk":{"path":"/etc/shadow","type":"Disk"}}`)}}}
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", spec: spec})
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.GetReason(nm, infrav1.VMProvisionedCondition)).To(Equal(infrav1.VMPatchFailedReason))
		g.Expect(conditions.GetMessage(nm, infrav1.VMProvisionedCondition)).To(ContainSubstring("spec.vmPatchPolicy.allow does not list HostDisk"))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})
	g.Expect(err).To(HaveOccurred(), "no VM with a host disk the Infra cluster does not allow")
}
