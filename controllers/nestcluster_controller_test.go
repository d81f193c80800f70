package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// The three shared Infra clusters, registered once.
var threeInfras = []string{"infra-a", "infra-b", "infra-c"}

func ensureThreeInfras(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	for i, name := range threeInfras {
		if err := mgmt.Get(context.Background(), client.ObjectKey{Name: name}, &infrav1.InfraCluster{}); apierrors.IsNotFound(err) {
			registerInfraCluster(t, name, topo.Infras[i], &infrav1.AllowedNamespaces{})
		}
	}
	g.Eventually(func(g Gomega) {
		for _, name := range threeInfras {
			ic := get(g, &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}).(*infrav1.InfraCluster)
			g.Expect(conditions.IsTrue(ic, infrav1.ReadyCondition)).To(BeTrue(), "InfraCluster %s Ready: %s", name, conditions.GetMessage(ic, infrav1.ReadyCondition))
		}
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

func TestInfraClustersBecomeReadyAndFailureDomains(t *testing.T) {
	g := NewWithT(t)
	ensureThreeInfras(t)
	ic := get(g, &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-a"}}).(*infrav1.InfraCluster)
	g.Expect(ic.Status.KubernetesVersion).To(Equal("v1.37.2"))
	g.Expect(conditions.IsTrue(ic, infrav1.KubeVirtAvailableCondition)).To(BeTrue())
	g.Expect(conditions.IsTrue(ic, infrav1.Metal3AvailableCondition)).To(BeTrue())
	g.Expect(ic.Finalizers).To(ContainElement(infrav1.InfraClusterFinalizer))

	_, nc := newTenant(t, threeInfras...)
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(failureDomainNames(nc)).To(ConsistOf(threeInfras))
		g.Expect(ptr.Deref(nc.Status.Initialization.Provisioned, false)).To(BeTrue())
		g.Expect(conditions.IsTrue(nc, infrav1.ReadyCondition)).To(BeTrue(), conditions.GetMessage(nc, infrav1.ReadyCondition))
		g.Expect(conditions.IsTrue(nc, infrav1.InfraClusterLossToleratedCondition)).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	_, two := newTenant(t, "infra-a", "infra-b")
	g.Eventually(func(g Gomega) {
		get(g, two)
		g.Expect(conditions.GetReason(two, infrav1.InfraClusterLossToleratedCondition)).To(Equal(infrav1.TwoInfraClustersReason))
		g.Expect(conditions.GetMessage(two, infrav1.InfraClusterLossToleratedCondition)).To(ContainSubstring("losing that one loses etcd quorum"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed(), "two Infra clusters are not highly available")

	for i := range threeInfras {
		ns := &corev1.Namespace{}
		g.Expect(topo.Infras[i].Client.Get(context.Background(), client.ObjectKey{Name: tenantNamespace(nc)}, ns)).To(Succeed(), "tenant namespace in %s", threeInfras[i])
		g.Expect(ns.Labels).To(HaveKeyWithValue(infrav1.ManagedByLabel, infrav1.ManagedByValue))
		g.Expect(ns.Labels).To(HaveKeyWithValue(infrav1.NestClusterNameLabel, nc.Name))
	}
}

func TestNamespaceNotAllowedNeverGetsTheFailureDomain(t *testing.T) {
	g := NewWithT(t)
	ensureThreeInfras(t)
	registerInfraCluster(t, "restricted", topo.Infras[1], &infrav1.AllowedNamespaces{List: []string{"team-other"}})
	g.Eventually(func(g Gomega) {
		ic := get(g, &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "restricted"}}).(*infrav1.InfraCluster)
		g.Expect(conditions.IsTrue(ic, infrav1.ReadyCondition)).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	_, nc := newTenant(t, "infra-a", "restricted")
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(failureDomainNames(nc)).To(ConsistOf("infra-a"))
		c := conditions.Get(nc, infrav1.InfraClustersReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(infrav1.NamespaceNotAllowedReason))
		g.Expect(c.Message).To(ContainSubstring("InfraCluster restricted does not admit namespace default"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).NotTo(ContainElement("restricted"))
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
}

// TestLosingAnInfraClusterDropsItsFailureDomainAndRecoveryBringsItBack stops an Infra API server.
// The bound: probe interval (1 s) + timeout (1 s) + a reconcile; we allow 10 s.
func TestLosingAnInfraClusterDropsItsFailureDomainAndRecoveryBringsItBack(t *testing.T) {
	g := NewWithT(t)
	ensureThreeInfras(t)
	_, nc := newTenant(t, threeInfras...)
	g.Eventually(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(HaveLen(3))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	restartInfra := stopAPIServer(t, topo.Infras[2])
	g.Eventually(func(g Gomega) {
		ic := get(g, &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-c"}}).(*infrav1.InfraCluster)
		g.Expect(conditions.IsFalse(ic, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(ic, infrav1.ReachableCondition)).To(Equal(infrav1.ProbeFailedReason))
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(ConsistOf("infra-a", "infra-b"))
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed(), "the lost Infra cluster leaves the failure domains within 10 s")
	g.Expect(conditions.IsTrue(nc, infrav1.ReadyCondition)).To(BeTrue(), "two Infra clusters still serve the tenant")

	restartInfra()
	g.Eventually(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(ConsistOf(threeInfras))
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed(), "the recovered Infra cluster returns")
}

func TestUnbalancedControlPlaneAfterRecoveryGetsExactlyOneRollout(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	cluster, nc := newTenant(t, threeInfras...)
	g.Eventually(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(HaveLen(3))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	kcp := &controlplanev1.KubeadmControlPlane{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: cluster.Name + "-cp"},
		Spec: controlplanev1.KubeadmControlPlaneSpec{
			Replicas: ptr.To[int32](3),
			Version:  "v1.34.0",
			MachineTemplate: controlplanev1.KubeadmControlPlaneMachineTemplate{Spec: controlplanev1.KubeadmControlPlaneMachineTemplateSpec{
				InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachineTemplate", Name: "cp"},
			}},
			KubeadmConfigSpec: bootstrapv1.KubeadmConfigSpec{},
		},
	}
	g.Expect(mgmt.Create(ctx, kcp)).To(Succeed())
	kcp.Status.Replicas, kcp.Status.UpToDateReplicas = ptr.To[int32](3), ptr.To[int32](3)
	g.Expect(mgmt.Status().Update(ctx, kcp)).To(Succeed())

	before := get(g, cluster).(*clusterv1.Cluster).DeepCopy()
	cluster.Spec.ControlPlaneRef = clusterv1.ContractVersionedObjectReference{APIGroup: controlplanev1.GroupVersion.Group, Kind: "KubeadmControlPlane", Name: kcp.Name}
	g.Expect(mgmt.Patch(ctx, cluster, client.MergeFrom(before))).To(Succeed())

	// Two control-plane machines in infra-a and one in infra-b: what KCP leaves after infra-c was lost
	// and one machine was remediated into infra-a.
	for _, fd := range []string{"infra-a", "infra-a", "infra-b"} {
		g.Expect(mgmt.Create(ctx, controlPlaneMachine(cluster, fd))).To(Succeed())
	}

	var after metav1.Time
	g.Eventually(func(g Gomega) {
		get(g, kcp)
		g.Expect(kcp.Spec.Rollout.After.IsZero()).To(BeFalse(), "a rollout was requested")
		after = kcp.Spec.Rollout.After
		get(g, nc)
		g.Expect(conditions.GetReason(nc, infrav1.ControlPlaneBalancedCondition)).To(Equal(infrav1.RestoreRequestedReason))
		g.Expect(nc.Status.LastControlPlaneRestore).NotTo(BeNil())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	// More events for the same unbalanced control plane must not request another rollout.
	machines := &clusterv1.MachineList{}
	g.Expect(mgmt.List(ctx, machines, client.MatchingLabels{clusterv1.ClusterNameLabel: cluster.Name})).To(Succeed())
	for i := range machines.Items {
		m := &machines.Items[i]
		before := m.DeepCopy()
		m.Annotations = map[string]string{"poke": "1"}
		g.Expect(mgmt.Patch(ctx, m, client.MergeFrom(before))).To(Succeed())
	}
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, kcp).(*controlplanev1.KubeadmControlPlane).Spec.Rollout.After).To(Equal(after))
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed(), "exactly one rollout per recovery")
}

func TestDeletingANestClusterRemovesItsNamespacesAndService(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	_, nc := newTenantWith(t, func(nc *infrav1.NestCluster) {
		nc.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-a", Type: "ClusterIP", Port: 6443}
	}, "infra-a")
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(nc.Spec.ControlPlaneEndpoint.Host).NotTo(BeEmpty(), "the endpoint comes from the Service's cluster IP")
		g.Expect(nc.Spec.ControlPlaneEndpoint.Port).To(Equal(int32(6443)))
		g.Expect(ptr.Deref(nc.Status.Initialization.Provisioned, false)).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	svcs := &corev1.ServiceList{}
	g.Expect(topo.Infras[0].Client.List(ctx, svcs, client.InNamespace(tenantNamespace(nc)))).To(Succeed())
	g.Expect(svcs.Items).To(HaveLen(1))
	g.Expect(svcs.Items[0].Spec.ClusterIP).To(Equal(nc.Spec.ControlPlaneEndpoint.Host))
	g.Expect(svcs.Items[0].Spec.Selector).To(HaveKeyWithValue("cluster.x-k8s.io/role", "control-plane"))

	g.Expect(mgmt.Delete(ctx, nc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := mgmt.Get(ctx, client.ObjectKeyFromObject(nc), nc)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "NestCluster released, got %v", err)
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(topo.Infras[0].Client.List(ctx, svcs, client.InNamespace(tenantNamespace(nc)))).To(Succeed())
	g.Expect(svcs.Items).To(BeEmpty())
	ns := &corev1.Namespace{}
	err := topo.Infras[0].Client.Get(ctx, client.ObjectKey{Name: tenantNamespace(nc)}, ns)
	g.Expect(apierrors.IsNotFound(err) || !ns.DeletionTimestamp.IsZero()).To(BeTrue(), "the tenant namespace is deleted (envtest has no namespace controller to finish it)")
}

// TestTheOpenShiftBootstrapMachineDoesNotUnbalanceTheControlPlane: the installer's bootstrap machine
// is a control-plane Machine while the masters form, but not a member of the spread. Beside masters
// in infra-a, infra-b and infra-a (as balanced as two Infra clusters allow), a bootstrap machine in
// infra-a must not make the control plane look unbalanced and ask the operator for a restore.
func TestTheOpenShiftBootstrapMachineDoesNotUnbalanceTheControlPlane(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	cluster, nc := newTenant(t, "infra-a", "infra-b")
	g.Eventually(func(g Gomega) {
		g.Expect(failureDomainNames(get(g, nc).(*infrav1.NestCluster))).To(HaveLen(2))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	for _, fd := range []string{"infra-a", "infra-b", "infra-a"} {
		g.Expect(mgmt.Create(ctx, controlPlaneMachine(cluster, fd))).To(Succeed())
	}
	bootstrap := controlPlaneMachine(cluster, "infra-a")
	bootstrap.Labels[infrav1.BootstrapMachineLabel] = ""
	g.Expect(mgmt.Create(ctx, bootstrap)).To(Succeed())
	balanced := func(g Gomega) {
		c := conditions.Get(get(g, nc).(*infrav1.NestCluster), infrav1.ControlPlaneBalancedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(infrav1.BalancedReason), c.Message)
		g.Expect(c.Message).To(ContainSubstring("infra-a=2 infra-b=1"))
	}
	g.Eventually(balanced, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Consistently(balanced, 2*time.Second, 200*time.Millisecond).Should(Succeed())
}

// controlPlaneMachine is a control-plane Machine of cluster in failure domain fd, on a NestMachine
// of its own name that the test does not create: the NestCluster controller counts Machines.
func controlPlaneMachine(cluster *clusterv1.Cluster, fd string) *clusterv1.Machine {
	name := uniqueName(cluster.Name + "-cp")
	return &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: name,
			Labels: map[string]string{clusterv1.ClusterNameLabel: cluster.Name, clusterv1.MachineControlPlaneLabel: ""}},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster.Name,
			FailureDomain:     fd,
			Bootstrap:         clusterv1.Bootstrap{DataSecretName: ptr.To("bootstrap")},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachine", Name: name},
		},
	}
}
