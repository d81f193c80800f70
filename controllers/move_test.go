package controllers_test

import (
	"context"
	"testing"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	clusterctlclient "sigs.k8s.io/cluster-api/cmd/clusterctl/client"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	metal3sim "github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
)

// remoteState is what must not change about a machine's objects in its Infra cluster across a move.
type remoteState struct {
	UID        types.UID
	Generation int64
	Data       string
}

func vmState(g Gomega, c client.Client, ns, name string) map[string]remoteState {
	vm := &kubevirtv1.VirtualMachine{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, vm)).To(Succeed())
	g.Expect(vm.DeletionTimestamp).To(BeNil())
	secret := &corev1.Secret{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: kubevirt.BootstrapSecretName(name)}, secret)).To(Succeed())
	return map[string]remoteState{
		"vm/" + name:     {UID: vm.UID, Generation: vm.Generation},
		"secret/" + name: {UID: secret.UID, Data: string(secret.Data[kubevirt.UserDataKey])},
	}
}

func hostState(g Gomega, c client.Client, ns, name string) map[string]remoteState {
	host := &bmov1alpha1.BareMetalHost{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, host)).To(Succeed())
	g.Expect(host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioned))
	g.Expect(host.Spec.Image).NotTo(BeNil())
	g.Expect(host.Spec.UserData).NotTo(BeNil())
	return map[string]remoteState{"host/" + name: {UID: host.UID, Data: host.Spec.Image.URL + " " + host.Spec.UserData.Name}}
}

// A real clusterctl move of a tenant with three control-plane VMs (one per Infra cluster) and a
// bare-metal worker, from the suite's management cluster to a second one, both managers running and
// sweeping: the source hands over, the target adopts, every VM, bootstrap Secret and host is the same
// object with the same spec afterwards; the target provisions a new machine and deleting the tenant
// there removes everything.
func TestClusterctlMoveHandsOverAndTheTargetAdoptsWithoutTouchingTheMachines(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	pool := newHostPool(t, "infra-a", uniqueName("moving"), metal3sim.Options{})
	pool.add(2, nil, false)

	// clusterctl move moves one namespace: the tenant gets its own.
	ns := uniqueName("moving")
	g.Expect(mgmt.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	cluster, nc := newTenantOn(t, mgmt, ns, uniqueName("moving"), withEndpoint, threeInfras...)
	markInfrastructureProvisioned(t, cluster)
	var vms []*infrav1.NestMachine
	machines := map[string]*clusterv1.Machine{}
	for _, infra := range threeInfras {
		m, nm := newMachine(t, cluster, machineOpts{failureDomain: infra, controlPlane: true, spec: vmSpec()})
		vms, machines[nm.Name] = append(vms, nm), m
	}
	m, bm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", spec: bareMetalSpec(pool.pool)})
	machines[bm.Name] = m
	for _, nm := range vms {
		waitProvisioned(t, nm)
	}
	waitHostProvisioned(t, bm)

	tenantNS := tenantNamespace(nc)
	hostName := get(g, bm).(*infrav1.NestMachine).Status.Remote.Name
	state := func(g Gomega) map[string]remoteState {
		all := map[string]remoteState{}
		for i, nm := range vms {
			for k, v := range vmState(g, topo.Infras[i].Client, tenantNS, kubevirt.VMName(nm)) {
				all[threeInfras[i]+"/"+k] = v
			}
		}
		for k, v := range hostState(g, pool.env.Client, pool.ns, hostName) {
			all[k] = v
		}
		return all
	}
	before := state(g)

	// What CAPI's controllers would have written by now, which clusterctl checks before a move.
	get(g, cluster)
	conditions.Set(cluster, metav1.Condition{Type: clusterv1.ClusterControlPlaneInitializedCondition, Status: metav1.ConditionTrue, Reason: "Initialized"})
	g.Expect(mgmt.Status().Update(ctx, cluster)).To(Succeed())
	for name, m := range machines {
		get(g, m)
		m.Status.NodeRef = clusterv1.MachineNodeReference{Name: name}
		g.Expect(mgmt.Status().Update(ctx, m)).To(Succeed())
	}

	targetEnv, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = targetEnv.Stop() })
	from, err := topo.Management.AsClusterctlInstalled(ctx, providerNamespace)
	g.Expect(err).NotTo(HaveOccurred())
	to, err := targetEnv.AsClusterctlInstalled(ctx, providerNamespace)
	g.Expect(err).NotTo(HaveOccurred())
	stopTarget, err := startManagerOn(ctx, targetEnv.Config, "mgmt-target")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(stopTarget)

	c, err := clusterctlclient.New(ctx, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Move(ctx, clusterctlclient.MoveOptions{
		FromKubeconfig: clusterctlclient.Kubeconfig{Path: from},
		ToKubeconfig:   clusterctlclient.Kubeconfig{Path: to},
		Namespace:      ns,
	})).To(Succeed())
	target := targetEnv.Client

	// clusterctl does not carry status: CAPI's Cluster controller would mark the moved Cluster's
	// infrastructure provisioned again from the NestCluster. None runs here.
	g.Eventually(func(g Gomega) {
		moved := &clusterv1.Cluster{}
		g.Expect(target.Get(ctx, client.ObjectKeyFromObject(cluster), moved)).To(Succeed())
		g.Expect(ptr.Deref(moved.Spec.Paused, false)).To(BeFalse(), "clusterctl unpauses it")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	markInfrastructureProvisionedOn(t, target, cluster)

	for _, nm := range append(append([]*infrav1.NestMachine{}, vms...), bm) {
		g.Eventually(func(g Gomega) {
			moved := &infrav1.NestMachine{}
			g.Expect(target.Get(ctx, client.ObjectKeyFromObject(nm), moved)).To(Succeed())
			g.Expect(ptr.Deref(moved.Status.Initialization.Provisioned, false)).To(BeTrue(), "moved NestMachine %s: %+v", nm.Name, moved.Status.Conditions)
			g.Expect(moved.UID).NotTo(Equal(nm.UID), "clusterctl made a new object")
			g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "gone from the source")
		}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	}
	for i, nm := range vms {
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(topo.Infras[i].Client.Get(ctx, client.ObjectKey{Namespace: tenantNS, Name: kubevirt.VMName(nm)}, vm)).To(Succeed())
		g.Expect(ownership.IdentityOf(vm)).To(Equal(ownership.Identity("mgmt-target")), "the target adopted the VM")
		g.Expect(ownership.HandedOver(vm)).To(BeFalse())
	}

	// Both managers run and sweep: nothing is recreated, rewritten or deprovisioned.
	g.Consistently(func(g Gomega) {
		g.Expect(state(g)).To(Equal(before))
	}, sweepsWindow, time.Second).Should(Succeed())

	// The target runs the tenant: a new machine, then deleting everything.
	movedCluster := &clusterv1.Cluster{}
	g.Expect(target.Get(ctx, client.ObjectKeyFromObject(cluster), movedCluster)).To(Succeed())
	_, added := newMachineOn(t, target, movedCluster, machineOpts{failureDomain: "infra-b", spec: vmSpec()})
	g.Eventually(func(g Gomega) {
		g.Expect(target.Get(ctx, client.ObjectKeyFromObject(added), added)).To(Succeed())
		g.Expect(ptr.Deref(added.Status.Initialization.Provisioned, false)).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	for _, nm := range append(append(vms, bm), added) {
		g.Expect(target.Delete(ctx, &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Namespace: nm.Namespace, Name: nm.Name}})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for i := range threeInfras {
			list := &kubevirtv1.VirtualMachineList{}
			g.Expect(topo.Infras[i].Client.List(ctx, list, client.InNamespace(tenantNS))).To(Succeed())
			g.Expect(list.Items).To(BeEmpty(), "VMs left in %s", threeInfras[i])
		}
	}, 90*time.Second, 500*time.Millisecond).Should(Succeed())
	pool.expectAllReleased(t)
}
