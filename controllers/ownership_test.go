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
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// sweepsWindow covers five full probes, so five sweeps, at the suite's 1 s probe interval (a full
// probe every sixth) with margin for a loaded machine.
const sweepsWindow = 33 * time.Second

// vmUIDs reads the UID of each NestMachine's VM in the Infra cluster c.
func vmUIDs(g Gomega, c client.Client, ns string, nms ...*infrav1.NestMachine) map[string]types.UID {
	uids := map[string]types.UID{}
	for _, nm := range nms {
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, vm)).To(Succeed())
		g.Expect(vm.DeletionTimestamp).To(BeNil(), "VM %s is being deleted", vm.Name)
		uids[vm.Name] = vm.UID
	}
	return uids
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
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, c, ns, nm)
}

// secondManagement starts a second management API server and a manager of the provider on it, with
// another identity, registering the three Infra clusters of the suite with their own tenant namespace
// prefix.
func secondManagement(t *testing.T, id ownership.Identity, prefix string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	env, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: providerNamespace}})).To(Succeed())
	for i, name := range threeInfras {
		registerInfraClusterOn(t, env.Client, name, topo.Infras[i], &infrav1.AllowedNamespaces{}, func(ic *infrav1.InfraCluster) {
			ic.Spec.TenantNamespacePrefix = prefix
		})
	}
	stop, err := startManagerOn(ctx, env.Config, id)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(stop)
	return env.Client
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
			}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
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

// Deleting an InfraCluster that a NestCluster lists (the webhook refuses it; here none runs) waits,
// naming the user; once nothing uses it, everything this provider made there is removed and only then
// does the InfraCluster go. Another management cluster's objects there stay.
func TestDeletingAnInfraClusterWaitsForItsUsersThenRemovesWhatItMade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	env := topo.Infras[2]
	ic := registerInfraCluster(t, uniqueName("leaving"), env, &infrav1.AllowedNamespaces{})
	cluster, nc := newTenant(t, ic.Name)
	markInfrastructureProvisioned(t, cluster)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: ic.Name, spec: vmSpec()})
	waitProvisioned(t, nm)
	ns := tenantNamespace(nc)
	others := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "of-another-management-cluster",
		Labels: ownership.Labels("mgmt-other", ownership.Cluster(nc))}}
	g.Expect(env.Client.Create(ctx, others)).To(Succeed())

	g.Expect(mgmt.Delete(ctx, ic)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, ic)
		g.Expect(conditions.GetReason(ic, infrav1.ReadyCondition)).To(Equal(infrav1.InfraClusterInUseReason))
		g.Expect(conditions.GetMessage(ic, infrav1.ReadyCondition)).To(And(
			ContainSubstring("NestCluster "+nc.Namespace+"/"+nc.Name), ContainSubstring("NestMachine "+nm.Namespace+"/"+nm.Name)))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})).To(Succeed())
	}, 3*time.Second, 500*time.Millisecond).Should(Succeed(), "nothing of a user is removed")

	// The tenant lets it go: the machine is deleted and the NestCluster no longer lists it. Neither
	// can finish while the InfraCluster is being deleted without the other; the machine goes first.
	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))
	}, 60*time.Second, 200*time.Millisecond).Should(BeTrue())
	get(g, nc)
	before := nc.DeepCopy()
	nc.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
	g.Expect(mgmt.Patch(ctx, nc, client.MergeFrom(before))).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(ic), &infrav1.InfraCluster{}))
	}, 60*time.Second, 200*time.Millisecond).Should(BeTrue(), "the InfraCluster goes once nothing uses it")
	for _, l := range []client.ObjectList{&kubevirtv1.VirtualMachineList{}, &corev1.SecretList{}, &corev1.ServiceList{}} {
		g.Expect(env.Client.List(ctx, l, client.MatchingLabels{infrav1.ManagementClusterLabel: string(identity), infrav1.NestClusterNameLabel: nc.Name})).To(Succeed())
		g.Expect(l).To(HaveField("Items", BeEmpty()), "%T of this provider left behind", l)
	}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(others), &corev1.Secret{})).To(Succeed(), "another management cluster's object stays")
	nsObj := &corev1.Namespace{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed(), "the namespace holds another management cluster's object, so it stays")
}
