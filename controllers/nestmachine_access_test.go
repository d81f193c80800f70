package controllers_test

import (
	"context"
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
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
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
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	_, first := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: vmSpec()})
	waitProvisioned(t, first)
	_, second := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: vmSpec()})
	g.Eventually(func(g Gomega) {
		get(g, second)
		g.Expect(conditions.GetReason(second, infrav1.VMProvisionedCondition)).To(Equal(infrav1.ControlPlaneUnbalancedReason))
		g.Expect(conditions.GetMessage(second, infrav1.VMProvisionedCondition)).To(ContainSubstring("infra-a=1"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(second)}, &kubevirtv1.VirtualMachine{})
	g.Expect(err).To(HaveOccurred(), "no second control-plane VM in infra-a while infra-b and infra-c have none")

	for _, infra := range []string{"infra-b", "infra-c"} {
		_, nm := newMachine(t, cluster, machineOpts{failureDomain: infra, controlPlane: true, spec: vmSpec()})
		waitProvisioned(t, nm)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		get(g, second)
		g.Expect(ptr.Deref(second.Status.Initialization.Provisioned, false)).To(BeTrue(), "VMProvisioned: %s", conditions.GetMessage(second, infrav1.VMProvisionedCondition))
	}, eventuallyTimeout, 500*time.Millisecond).Should(Succeed(), "with one control-plane VM in each Infra cluster, a fourth is within the rule")
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
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})
	g.Expect(err).To(HaveOccurred(), "no VM with a host disk the Infra cluster does not allow")
}
