package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// TestSweeperRemovesWhatAGoneNestMachineLeftWhileTheInfraClusterStayedConnected covers an object
// whose NestMachine went away without recording it (a crash between creating it and writing
// status): no outage brings a sweep, the periodic one does.
func TestSweeperRemovesWhatAGoneNestMachineLeftWhileTheInfraClusterStayedConnected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	_, nc := provisionedTenant(t)
	ns := tenantNamespace(nc)
	c := infraEnv("infra-c").Client
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})).To(Succeed())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed(), "the NestCluster made its tenant namespace")

	gone := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: nc.Namespace, Name: "gone-machine", UID: "3b0f1d5e-0000-4000-8000-000000000000", NestCluster: nc.Name}
	stray := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone-machine-bootstrap",
		Labels: ownership.Labels(identity, gone), Annotations: ownership.Annotations(gone)}}
	g.Expect(c.Create(ctx, stray)).To(Succeed())
	othersStray := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone-machine-of-another-management-cluster",
		Labels: ownership.Labels("mgmt-other", gone), Annotations: ownership.Annotations(gone)}}
	g.Expect(c.Create(ctx, othersStray)).To(Succeed())
	kept := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-ours", Labels: map[string]string{
		infrav1.NestMachineNameLabel: "gone-machine",
	}}}
	g.Expect(c.Create(ctx, kept)).To(Succeed())

	// Full probes come every sixth probe: every 6 s at this suite's 1 s interval.
	g.Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(stray), &corev1.Secret{}))
	}, eventuallyTimeout, 200*time.Millisecond).Should(BeTrue(), "the sweeper deletes the object of a NestMachine that no longer exists")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(kept), &corev1.Secret{})).To(Succeed(), "an object without the provider's managed-by label is never swept")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(othersStray), &corev1.Secret{})).To(Succeed(), "another management cluster's object is never swept")
}

// Two management clusters with different identities run their own tenants on the same three Infra
// clusters for several sweep periods: neither deletes anything of the other's, and each still sweeps
// its own orphans.
func TestTwoManagementClustersOnOneInfraClusterSweepOnlyTheirOwn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	other := secondManagement(t, "mgmt-second", "nest-b-")

	type tenant struct {
		mgmt     client.Client
		nc       *infrav1.NestCluster
		machines []*infrav1.NestMachine
		ns       string
	}
	var tenants []tenant
	for _, c := range []client.Client{mgmt, other} {
		// The same namespace and name in both management clusters.
		cluster, nc := newTenantOn(t, c, "default", uniqueName("shared"), withEndpoint, threeInfras...)
		markInfrastructureProvisionedOn(t, c, cluster)
		tn := tenant{mgmt: c, nc: nc}
		for _, infra := range threeInfras {
			_, nm := newMachineOn(t, c, cluster, machineOpts{failureDomain: infra, spec: vmSpec()})
			tn.machines = append(tn.machines, nm)
		}
		tenants = append(tenants, tn)
	}
	tenants[0].ns = tenantNamespace(tenants[0].nc)
	tenants[1].ns = ownership.TenantNamespace("nest-b-", tenants[1].nc.Namespace, tenants[1].nc.Name)

	before := map[string]types.UID{}
	for _, tn := range tenants {
		for i, nm := range tn.machines {
			g.Eventually(func(g Gomega) {
				g.Expect(tn.mgmt.Get(ctx, client.ObjectKeyFromObject(nm), nm)).To(Succeed())
				g.Expect(conditions.IsTrue(nm, infrav1.VMProvisionedCondition)).To(BeTrue(), "VMProvisioned: %s", conditions.GetMessage(nm, infrav1.VMProvisionedCondition))
			}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
			for k, v := range vmUIDs(g, topo.Infras[i].Client, tn.ns, nm) {
				before[threeInfras[i]+"/"+tn.ns+"/"+k] = v
			}
		}
	}
	// A stray of each management cluster, whose owner never existed in either.
	strays := map[ownership.Identity]*corev1.Secret{}
	c := infraEnv("infra-b").Client
	for i, id := range []ownership.Identity{identity, "mgmt-second"} {
		gone := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: "default", Name: "never-" + string(id), UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)), NestCluster: tenants[i].nc.Name}
		strays[id] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenants[i].ns, Name: "stray-" + string(id),
			Labels: ownership.Labels(id, gone), Annotations: ownership.Annotations(gone)}}
		g.Expect(c.Create(ctx, strays[id])).To(Succeed())
	}

	g.Consistently(func(g Gomega) {
		now := map[string]types.UID{}
		for _, tn := range tenants {
			for i, nm := range tn.machines {
				for k, v := range vmUIDs(g, topo.Infras[i].Client, tn.ns, nm) {
					now[threeInfras[i]+"/"+tn.ns+"/"+k] = v
				}
			}
		}
		g.Expect(now).To(Equal(before), "every VM of both management clusters is the same object")
	}, sweepsWindow, time.Second).Should(Succeed())
	for id, stray := range strays {
		g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(stray), &corev1.Secret{}))).To(BeTrue(),
			"the management cluster %s sweeps its own orphan", id)
	}
}

// A Cluster of 50+ characters and a Machine and NestMachine of 80+ named by hand get shortened
// labels; the sweeper reads the owner's full name from the annotations and leaves the live VM and its
// bootstrap Secret alone at every sweep; deleting the machine still removes everything.
func TestLongNamedMachineSurvivesSweepsAndDeleteStillRemovesEverything(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	clusterName := uniqueName("a-tenant-cluster-with-a-name-longer-than-fifty-chars")
	cluster, nc := newTenantOn(t, mgmt, "default", clusterName, withEndpoint, "infra-a")
	markInfrastructureProvisioned(t, cluster)
	_, nm := newMachine(t, cluster, machineOpts{name: clusterName + "-a-worker-named-by-hand-by-a-person", failureDomain: "infra-a", spec: vmSpec()})
	g.Expect(len(cluster.Name)).To(BeNumerically(">=", 50))
	g.Expect(len(nm.Name)).To(BeNumerically(">=", 80))
	waitProvisioned(t, nm)

	c := infraEnv("infra-a").Client
	ns := tenantNamespace(nc)
	vmName := kubevirt.VMName(nm)
	before := vmUIDs(g, c, ns, nm)
	secret := &corev1.Secret{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.BootstrapSecretName(vmName)}, secret)).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(vmUIDs(g, c, ns, nm)).To(Equal(before), "the VM is the same object")
		s := &corev1.Secret{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(secret), s)).To(Succeed())
		g.Expect(s.UID).To(Equal(secret.UID), "the bootstrap Secret is the same object")
	}, sweepsWindow, 500*time.Millisecond).Should(Succeed())
	g.Expect(conditions.IsTrue(get(g, nm).(*infrav1.NestMachine), infrav1.VMProvisionedCondition)).To(BeTrue())

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue())
		g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: vmName}, &kubevirtv1.VirtualMachine{}))).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, c, ns, nm)
}
