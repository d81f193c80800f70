package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

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
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})).To(Succeed())
	}, 3*time.Second, 500*time.Millisecond).Should(Succeed(), "nothing of a user is removed")

	// The tenant lets it go: the machine is deleted and the NestCluster no longer lists it. Neither
	// can finish while the InfraCluster is being deleted without the other; the machine goes first.
	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))
	}, eventuallyTimeout, 200*time.Millisecond).Should(BeTrue())
	get(g, nc)
	before := nc.DeepCopy()
	nc.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
	g.Expect(mgmt.Patch(ctx, nc, client.MergeFrom(before))).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(ic), &infrav1.InfraCluster{}))
	}, eventuallyTimeout, 200*time.Millisecond).Should(BeTrue(), "the InfraCluster goes once nothing uses it")
	for _, l := range []client.ObjectList{&kubevirtv1.VirtualMachineList{}, &corev1.SecretList{}, &corev1.ServiceList{}} {
		g.Expect(env.Client.List(ctx, l, client.MatchingLabels{infrav1.ManagementClusterLabel: string(identity), infrav1.NestClusterNameLabel: nc.Name})).To(Succeed())
		g.Expect(l).To(HaveField("Items", BeEmpty()), "%T of this provider left behind", l)
	}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(others), &corev1.Secret{})).To(Succeed(), "another management cluster's object stays")
	nsObj := &corev1.Namespace{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed(), "the namespace holds another management cluster's object, so it stays")
}
