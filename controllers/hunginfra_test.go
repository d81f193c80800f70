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
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// An Infra cluster whose API server answers its probe and discovery but never a request for a
// resource (its storage wedged) slows nobody else down: while the provider's connect to it is still
// waiting for its cache's first list, a machine placed there says its Infra cluster is unavailable,
// and machines in the other Infra clusters provision — in one connected before the hang and in one
// registered during it (a new connection takes the registry's write lock, which a lookup stuck
// behind the hung connection would block for everyone).
func TestAHungInfraClusterDoesNotStallTheOthers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// A management cluster of its own, whose manager waits far longer than this test for a cache's
	// first list: the connect to the hung Infra cluster lasts through the test, so what provisions
	// does so while it waits, not after it gave up.
	env, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: providerNamespace}})).To(Succeed())
	stop, err := startManagerOn(ctx, env.Config, "mgmt-hung", func(o *manager.Options) { o.InfraCacheSyncTimeout = 10 * time.Minute })
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(stop)
	ready := func(ic *infrav1.InfraCluster) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ic), ic)).To(Succeed())
			g.Expect(conditions.IsTrue(ic, infrav1.ReadyCondition)).To(BeTrue(), "InfraCluster %s Ready: %s", ic.Name, conditions.GetMessage(ic, infrav1.ReadyCondition))
		}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	}
	steady := registerInfraClusterOn(t, c, "steady", topo.Infras[0], &infrav1.AllowedNamespaces{})
	ready(steady)

	proxy, err := topo.Infras[2].StartHTTPProxy()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = proxy.Close() })
	proxy.HangResources(true)
	secret, err := proxy.KubeconfigSecret(topo.Infras[2], providerNamespace, "hung-kubeconfig")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Create(ctx, secret)).To(Succeed())
	hung := &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "hung"}, Spec: infrav1.InfraClusterSpec{
		KubeconfigSecretRef: &infrav1.SecretKeyReference{Name: secret.Name},
		AllowedNamespaces:   &infrav1.AllowedNamespaces{},
		Probe:               &infrav1.ProbeSpec{IntervalSeconds: 1, TimeoutSeconds: 1},
	}}
	g.Expect(c.Create(ctx, hung)).To(Succeed())
	g.Eventually(proxy.Held, 60*time.Second, 100*time.Millisecond).Should(BeNumerically(">", 0),
		"the probe passes and the provider connects: the hung API server holds its cache's lists")

	cluster, _ := newTenantOn(t, c, "default", uniqueName("hung"), withEndpoint, "steady", "hung", "added")
	markInfrastructureProvisionedOn(t, c, cluster)
	// A bare-metal machine stores its finalizer before it looks up its Infra cluster's connection: once
	// it is stored, that lookup is under way (or done, when it does not wait).
	_, onHung := newMachineOn(t, c, cluster, machineOpts{failureDomain: "hung", spec: bareMetalSpec("none")})
	g.Eventually(func(g Gomega) bool {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(onHung), onHung)).To(Succeed())
		return len(onHung.Finalizers) > 0 || conditions.GetReason(onHung, infrav1.HostProvisionedCondition) == infrav1.InfraClusterUnavailableReason
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the machine on the hung Infra cluster is being reconciled: it looks up that Infra cluster")
	registerInfraClusterOn(t, c, "added", topo.Infras[1], &infrav1.AllowedNamespaces{})
	_, onSteady := newMachineOn(t, c, cluster, machineOpts{failureDomain: "steady", spec: vmSpec()})
	_, onAdded := newMachineOn(t, c, cluster, machineOpts{failureDomain: "added", spec: vmSpec()})

	g.Eventually(func(g Gomega) {
		for _, nm := range []*infrav1.NestMachine{onSteady, onAdded} {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(nm), nm)).To(Succeed())
			g.Expect(ptr.Deref(nm.Status.Initialization.Provisioned, false)).To(BeTrue(),
				"NestMachine %s in %s: VMProvisioned: %s", nm.Name, nm.Status.FailureDomain, conditions.GetMessage(nm, infrav1.VMProvisionedCondition))
		}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(onHung), onHung)).To(Succeed())
		g.Expect(conditions.GetReason(onHung, infrav1.HostProvisionedCondition)).To(Equal(infrav1.InfraClusterUnavailableReason))
	}, 90*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(proxy.Released()).To(BeZero(), "the connect to the hung Infra cluster never gave up: the others did not wait for it")
	g.Expect(proxy.Held()).To(BeNumerically(">", 0), "and it still waits")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hung), hung)).To(Succeed())
	g.Expect(conditions.IsTrue(hung, infrav1.ReadyCondition)).To(BeFalse())

	// The VMs are in the suite's shared Infra clusters: delete them.
	for _, nm := range []*infrav1.NestMachine{onSteady, onAdded} {
		g.Expect(c.Delete(ctx, nm)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, nm := range []*infrav1.NestMachine{onSteady, onAdded} {
			g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "NestMachine %s released", nm.Name)
		}
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
}
