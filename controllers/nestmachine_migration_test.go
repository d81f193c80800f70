package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
)

// A live migration is an ordinary operation in an Infra cluster: a node drain during an upgrade,
// or nest-consolidator emptying a node. The VM moves to another node with the same VMI, and the
// machine must not notice beyond its address: no new VM, the same providerID, Ready throughout,
// the address of the VM's new pod. The KubeVirt simulator carries the migration out as KubeVirt
// does (a target launcher pod, the VMI moving to it, the source launcher exiting).
func TestALiveMigratedVMStaysTheSameMachine(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: vmSpec()})
	waitProvisioned(t, nm)
	infra := infraEnv("infra-a").Client
	ns, name := tenantNamespace(nc), kubevirt.VMName(nm)

	vm, vmi := &kubevirtv1.VirtualMachine{}, &kubevirtv1.VirtualMachineInstance{}
	g.Expect(infra.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vm)).To(Succeed())
	g.Expect(infra.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vmi)).To(Succeed())
	source := vmi.Status.NodeName
	providerID := get(g, nm).(*infrav1.NestMachine).Spec.ProviderID
	addressesBefore := nm.Status.Addresses

	nodeList := &corev1.NodeList{}
	g.Expect(infra.List(ctx, nodeList)).To(Succeed())
	i := slices.IndexFunc(nodeList.Items, func(n corev1.Node) bool { return n.Name != source })
	g.Expect(i).To(BeNumerically(">=", 0))
	target := nodeList.Items[i].Name

	migration := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: name + "-"},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
			VMIName:           name,
			AddedNodeSelector: map[string]string{corev1.LabelHostname: nodeList.Items[i].Labels[corev1.LabelHostname]},
		},
	}
	g.Expect(infra.Create(ctx, migration)).To(Succeed())

	// Ready must hold at every look while the VM moves, until it runs on the target: one look
	// with Ready not True ends the test.
	g.Eventually(func(g Gomega) {
		if !conditions.IsTrue(get(g, nm).(*infrav1.NestMachine), infrav1.ReadyCondition) {
			StopTrying(fmt.Sprintf("the machine left Ready during the migration: %+v", conditions.Get(nm, infrav1.ReadyCondition))).Now()
		}
		g.Expect(infra.Get(ctx, client.ObjectKeyFromObject(migration), migration)).To(Succeed())
		g.Expect(migration.Status.Phase).To(Equal(kubevirtv1.MigrationSucceeded))
	}, eventuallyTimeout, 50*time.Millisecond).Should(Succeed())

	after := &kubevirtv1.VirtualMachineInstance{}
	g.Expect(infra.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, after)).To(Succeed())
	g.Expect(after.UID).To(Equal(vmi.UID), "the same VMI: the guest was not restarted")
	g.Expect(after.Status.NodeName).To(Equal(target))
	vms := &kubevirtv1.VirtualMachineList{}
	g.Expect(infra.List(ctx, vms, client.InNamespace(ns), client.MatchingLabels{infrav1.NestMachineUIDLabel: string(nm.UID)})).To(Succeed())
	g.Expect(vms.Items).To(HaveLen(1))
	g.Expect(vms.Items[0].UID).To(Equal(vm.UID), "the same VM")

	var ips []string
	for _, iface := range after.Status.Interfaces {
		ips = append(ips, iface.IPs...)
	}
	g.Expect(ips).NotTo(BeEmpty())
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(nm.Spec.ProviderID).To(Equal(providerID))
		g.Expect(conditions.IsTrue(nm, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(nm.Status.Phase).To(Equal(infrav1.NestMachinePhaseRunning))
		var got []string
		for _, a := range nm.Status.Addresses {
			if a.Type == clusterv1.MachineInternalIP {
				got = append(got, a.Address)
			}
		}
		g.Expect(got).To(ConsistOf(ips), "the machine's addresses follow the VM to its new pod (before: %v)", addressesBefore)
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}
