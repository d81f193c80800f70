package controllers_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	metal3sim "github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
)

const (
	// poolLabel is the host label the machines of one test select their hosts by.
	poolLabel = "nest.test/pool"
	// failLabel makes the simulator fail a host at the step it names (see failFromLabel).
	failLabel = "nest.test/fail"
)

// metal3SimIDs numbers the Metal3 simulators of the suite (their NIC addresses are 172.<16+ID>.x.y).
var metal3SimIDs atomic.Uint32

// hostPool is a namespace of BareMetalHosts in one Infra API server with a Metal3 simulator of its own
// walking them through their states; every host carries the pool's label.
type hostPool struct {
	t     *testing.T
	env   *envtest.Environment
	infra string
	ns    string
	pool  string
	next  int
}

// newHostPool starts a simulator with opts on the shared Infra cluster infraName, scoped to a new
// namespace, stopped when the test ends. pool is the value of poolLabel on its hosts.
func newHostPool(t *testing.T, infraName, pool string, opts metal3sim.Options) *hostPool {
	t.Helper()
	return startHostPool(t, infraEnv(infraName), infraName, pool, opts)
}

// startHostPool is newHostPool on any Infra API server, registered as InfraCluster infraName.
func startHostPool(t *testing.T, env *envtest.Environment, infraName, pool string, opts metal3sim.Options) *hostPool {
	t.Helper()
	g := NewWithT(t)
	ns := uniqueName("metal3")
	g.Expect(env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	opts.ID = uint8(metal3SimIDs.Add(1) % 16)
	opts.Namespaces = []string{ns}
	if opts.Fail == nil {
		opts.Fail = failFromLabel
	}
	sim, err := metal3sim.Run(ctx, env.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		cancel()
		<-sim.Done()
	})
	return &hostPool{t: t, env: env, infra: infraName, ns: ns, pool: pool}
}

// failFromLabel fails a host with the error type its failLabel names, dashes for spaces
// ("power-management" → "power management error").
func failFromLabel(host *bmov1alpha1.BareMetalHost) bmov1alpha1.ErrorType {
	if v := host.Labels[failLabel]; v != "" {
		return bmov1alpha1.ErrorType(strings.ReplaceAll(v, "-", " ") + " error")
	}
	return ""
}

// add creates n hosts in the pool, with extra labels, and waits until they are available (or
// already claimed).
func (p *hostPool) add(n int, extra map[string]string, online bool) []string {
	p.t.Helper()
	g := NewWithT(p.t)
	labels := map[string]string{poolLabel: p.pool}
	for k, v := range extra {
		labels[k] = v
	}
	hosts, err := metal3sim.CreateHosts(context.Background(), p.env.Client, metal3sim.HostsOptions{
		Namespace: p.ns, Prefix: "host", Count: n, First: p.next, Labels: labels, Online: online,
	})
	g.Expect(err).NotTo(HaveOccurred())
	p.next += n
	names := make([]string, 0, n)
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	g.Eventually(func(g Gomega) {
		for _, name := range names {
			// A waiting machine may claim the host as soon as it is available.
			h := p.host(g, name)
			if h.Spec.ConsumerRef == nil {
				g.Expect(h.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable), "host %s registers and is inspected", name)
			}
		}
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())
	return names
}

func (p *hostPool) host(g Gomega, name string) *bmov1alpha1.BareMetalHost {
	host := &bmov1alpha1.BareMetalHost{}
	g.Expect(p.env.Client.Get(context.Background(), client.ObjectKey{Namespace: p.ns, Name: name}, host)).To(Succeed())
	return host
}

func (p *hostPool) hosts(g Gomega) []bmov1alpha1.BareMetalHost {
	list := &bmov1alpha1.BareMetalHostList{}
	g.Expect(p.env.Client.List(context.Background(), list, client.InNamespace(p.ns))).To(Succeed())
	return list.Items
}

// claimedBy maps each claimed host of the pool to its consumer's namespace/name.
func (p *hostPool) claimedBy(g Gomega) map[string]string {
	out := map[string]string{}
	for _, h := range p.hosts(g) {
		if ref := h.Spec.ConsumerRef; ref != nil {
			out[h.Name] = ref.Namespace + "/" + ref.Name
		}
	}
	return out
}

// expectAllReleased checks every host of the pool is back: available, unclaimed, without image,
// data or our labels, and that no data Secret of ours is left next to them.
func (p *hostPool) expectAllReleased(t *testing.T) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, h := range p.hosts(g) {
			g.Expect(h.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable), "host %s is available again", h.Name)
			g.Expect(h.Spec.ConsumerRef).To(BeNil(), "host %s is released", h.Name)
			g.Expect(h.Spec.Image).To(BeNil(), "host %s has no image", h.Name)
			g.Expect(h.Spec.UserData).To(BeNil(), "host %s has no user data", h.Name)
			g.Expect(h.Spec.NetworkData).To(BeNil(), "host %s has no network data", h.Name)
			g.Expect(h.Spec.CustomDeploy).To(BeNil())
			g.Expect(h.Labels).NotTo(HaveKey(infrav1.ManagedByLabel), "host %s carries none of our labels", h.Name)
			g.Expect(h.Labels).NotTo(HaveKey(infrav1.NestMachineUIDLabel))
			g.Expect(h.Labels).To(HaveKeyWithValue(poolLabel, p.pool), "the labels of others stay")
		}
		secrets := &corev1.SecretList{}
		g.Expect(p.env.Client.List(context.Background(), secrets, client.InNamespace(p.ns),
			client.MatchingLabels{infrav1.ManagedByLabel: infrav1.ManagedByValue})).To(Succeed())
		g.Expect(secrets.Items).To(BeEmpty(), "data Secrets are deleted")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

// bareMetalSpec selects hosts of a pool and writes a qcow2 image.
func bareMetalSpec(pool string) infrav1.NestMachineSpec {
	return infrav1.NestMachineSpec{BareMetal: &infrav1.BareMetalMachineSpec{
		HostSelector: metav1.LabelSelector{MatchLabels: map[string]string{poolLabel: pool}},
		Image: infrav1.BareMetalImage{
			URL:        "http://images.example/ubuntu-24.04.qcow2",
			Checksum:   "http://images.example/ubuntu-24.04.qcow2.sha256sum",
			DiskFormat: "qcow2",
		},
	}}
}

// newBareMetalMachines creates n bare-metal machines of cluster in failure domain fd.
func newBareMetalMachines(t *testing.T, cluster *clusterv1.Cluster, fd string, spec infrav1.NestMachineSpec, n int) []*infrav1.NestMachine {
	t.Helper()
	out := make([]*infrav1.NestMachine, 0, n)
	for range n {
		_, nm := newMachine(t, cluster, machineOpts{failureDomain: fd, spec: spec})
		out = append(out, nm)
	}
	return out
}

func hostProvisioned(nm *infrav1.NestMachine) bool {
	return ptr.Deref(nm.Status.Initialization.Provisioned, false)
}

func waitHostProvisioned(t *testing.T, nms ...*infrav1.NestMachine) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, nm := range nms {
			get(g, nm)
			g.Expect(hostProvisioned(nm)).To(BeTrue(), "NestMachine %s: HostClaimed %q, HostProvisioned %q", nm.Name,
				conditions.GetMessage(nm, infrav1.HostClaimedCondition), conditions.GetMessage(nm, infrav1.HostProvisionedCondition))
		}
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

// expectOneHostEach checks every machine holds its own host of the pool and the host names it.
func expectOneHostEach(t *testing.T, p *hostPool, nms []*infrav1.NestMachine) {
	t.Helper()
	g := NewWithT(t)
	claimed := p.claimedBy(g)
	g.Expect(claimed).To(HaveLen(len(nms)), "one claimed host per machine")
	seen := map[string]string{}
	for _, nm := range nms {
		get(g, nm)
		remote := nm.Status.Remote
		g.Expect(remote).NotTo(BeNil())
		g.Expect(remote.Kind).To(Equal("BareMetalHost"))
		g.Expect(remote.InfraCluster).To(Equal(p.infra))
		g.Expect(remote.Namespace).To(Equal(p.ns))
		g.Expect(seen).NotTo(HaveKey(remote.Name), "host %s is held by %s and %s", remote.Name, seen[remote.Name], nm.Name)
		seen[remote.Name] = nm.Name
		g.Expect(claimed).To(HaveKeyWithValue(remote.Name, nm.Namespace+"/"+nm.Name), "the host's consumerRef names its machine")
	}
}

func TestBareMetalConcurrentMachinesClaimDistinctHostsAndDeletingReturnsThem(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	p := newHostPool(t, "infra-a", uniqueName("concurrent"), metal3sim.Options{})
	p.add(20, nil, false)
	cluster, _ := provisionedTenant(t)
	nms := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(p.pool), 20)
	waitHostProvisioned(t, nms...)
	expectOneHostEach(t, p, nms)

	for _, nm := range nms {
		hostName := nm.Status.Remote.Name
		g.Expect(nm.Spec.ProviderID).To(Equal(infrav1.ProviderID("infra-a", p.ns, hostName)))
		g.Expect(nm.Status.FailureDomain).To(Equal("infra-a"))
		g.Expect(nm.Status.Phase).To(Equal(infrav1.NestMachinePhaseRunning))
		g.Expect(conditions.IsTrue(nm, infrav1.HostClaimedCondition)).To(BeTrue())
		g.Expect(conditions.IsTrue(nm, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(nm.Status.Addresses).To(ContainElement(HaveField("Type", clusterv1.MachineInternalIP)))
		g.Expect(nm.Status.Addresses).To(ContainElement(clusterv1.MachineAddress{Type: clusterv1.MachineHostName, Address: hostName}))

		host := p.host(g, hostName)
		g.Expect(host.Spec.Online).To(BeTrue())
		g.Expect(host.Spec.Image).To(Equal(&bmov1alpha1.Image{URL: "http://images.example/ubuntu-24.04.qcow2",
			Checksum: "http://images.example/ubuntu-24.04.qcow2.sha256sum", ChecksumType: "auto", DiskFormat: ptr.To("qcow2")}))
		g.Expect(host.Spec.AutomatedCleaningMode).To(Equal(bmov1alpha1.CleaningModeMetadata))
		secretName := metal3.DataSecretName(hostName, nm.UID)
		g.Expect(host.Spec.UserData).To(Equal(&corev1.SecretReference{Namespace: p.ns, Name: secretName}))
		g.Expect(host.Labels).To(HaveKeyWithValue(infrav1.NestMachineUIDLabel, string(nm.UID)))
		secret := &corev1.Secret{}
		g.Expect(p.env.Client.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: secretName}, secret)).To(Succeed())
		g.Expect(string(secret.Data[metal3.UserDataKey])).To(Equal("#cloud-config\nhostname: "+nm.Name+"\n"),
			"the Machine's bootstrap data, under the key the baremetal-operator reads")
	}

	for _, nm := range nms {
		g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, nm := range nms {
			g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(),
				"NestMachine %s keeps its finalizer until its host is back", nm.Name)
		}
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	p.expectAllReleased(t)
}

func TestBareMetalMachinesBeyondTheHostsWaitAndProceedWhenHostsAreAdded(t *testing.T) {
	g := NewWithT(t)
	p := newHostPool(t, "infra-a", uniqueName("scarce"), metal3sim.Options{})
	p.add(20, nil, false)
	cluster, _ := provisionedTenant(t)
	nms := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(p.pool), 25)

	var waiting []*infrav1.NestMachine
	g.Eventually(func(g Gomega) {
		waiting = nil
		provisioned := 0
		for _, nm := range nms {
			get(g, nm)
			switch {
			case hostProvisioned(nm):
				provisioned++
			case conditions.GetReason(nm, infrav1.HostClaimedCondition) == infrav1.NoHostAvailableReason:
				waiting = append(waiting, nm)
			}
		}
		g.Expect(provisioned).To(Equal(20), "every host is used")
		g.Expect(waiting).To(HaveLen(5), "the others wait for a host")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	for _, nm := range waiting {
		msg := conditions.GetMessage(nm, infrav1.HostClaimedCondition)
		g.Expect(msg).To(ContainSubstring("Infra cluster infra-a"))
		g.Expect(msg).To(ContainSubstring(poolLabel + "=" + p.pool))
		g.Expect(conditions.GetReason(nm, infrav1.ReadyCondition)).To(Equal(infrav1.NoHostAvailableReason), "Ready says why")
		g.Expect(nm.Status.Remote).To(BeNil())
		g.Expect(nm.Spec.ProviderID).To(BeEmpty())
	}

	// Nothing polls: the new hosts' events are what wake the waiting machines.
	p.add(5, nil, false)
	waitHostProvisioned(t, nms...)
	expectOneHostEach(t, p, nms)
}

func TestBareMetalHostInErrorIsSkipped(t *testing.T) {
	g := NewWithT(t)
	p := newHostPool(t, "infra-a", uniqueName("error"), metal3sim.Options{})
	// An online host whose BMC refuses to power it on: available, but in error.
	broken := p.add(1, map[string]string{failLabel: "power-management"}, true)[0]
	g.Eventually(func(g Gomega) {
		g.Expect(p.host(g, broken).Status.ErrorType).To(Equal(bmov1alpha1.PowerManagementError))
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())

	cluster, _ := provisionedTenant(t)
	nm := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(p.pool), 1)[0]
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.GetReason(nm, infrav1.HostClaimedCondition)).To(Equal(infrav1.NoHostAvailableReason))
		g.Expect(conditions.GetMessage(nm, infrav1.HostClaimedCondition)).To(ContainSubstring("1 match, 0 available"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(p.host(g, broken).Spec.ConsumerRef).To(BeNil(), "a host in error is never claimed")

	healthy := p.add(1, nil, false)[0]
	waitHostProvisioned(t, nm)
	g.Expect(get(g, nm).(*infrav1.NestMachine).Status.Remote.Name).To(Equal(healthy))
	g.Expect(p.host(g, broken).Spec.ConsumerRef).To(BeNil())
}

func TestBareMetalProvisioningFailureIsReportedAndDeleteStillReleases(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	p := newHostPool(t, "infra-a", uniqueName("failing"), metal3sim.Options{})
	host := p.add(1, map[string]string{failLabel: "provisioning"}, false)[0]
	cluster, _ := provisionedTenant(t)
	nm := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(p.pool), 1)[0]

	g.Eventually(func(g Gomega) {
		get(g, nm)
		c := conditions.Get(nm, infrav1.HostProvisionedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(infrav1.HostErrorReason), "HostProvisioned: %s", c.Message)
		g.Expect(c.Message).To(ContainSubstring(p.ns + "/" + host))
		g.Expect(c.Message).To(ContainSubstring("provisioning error"))
		g.Expect(c.Message).To(ContainSubstring("checksum mismatch"), "the operator's error message is passed on")
		g.Expect(nm.Status.Phase).To(Equal(infrav1.NestMachinePhaseFailed))
		g.Expect(conditions.GetReason(nm, infrav1.ReadyCondition)).To(Equal(infrav1.HostErrorReason))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(hostProvisioned(nm)).To(BeFalse())

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue())
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	p.expectAllReleased(t)
}

func TestBareMetalMachineNeverTakesAHostOfAnotherInfraCluster(t *testing.T) {
	g := NewWithT(t)
	pool := uniqueName("elsewhere")
	other := newHostPool(t, "infra-b", pool, metal3sim.Options{})
	other.add(3, nil, false)
	cluster, _ := provisionedTenant(t)
	nm := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(pool), 1)[0]

	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.GetReason(nm, infrav1.HostClaimedCondition)).To(Equal(infrav1.NoHostAvailableReason))
		g.Expect(conditions.GetMessage(nm, infrav1.HostClaimedCondition)).To(ContainSubstring("Infra cluster infra-a"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(other.claimedBy(g)).To(BeEmpty(), "matching hosts of infra-b are not a fallback for infra-a")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())

	here := newHostPool(t, "infra-a", pool, metal3sim.Options{})
	host := here.add(1, nil, false)[0]
	waitHostProvisioned(t, nm)
	get(g, nm)
	g.Expect(nm.Spec.ProviderID).To(Equal(infrav1.ProviderID("infra-a", here.ns, host)))
	g.Expect(nm.Status.FailureDomain).To(Equal("infra-a"))
	g.Expect(other.claimedBy(g)).To(BeEmpty())
}

func TestBareMetalManagerRestartFindsTheClaimedHostAndClaimsNoOther(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	p := newHostPool(t, "infra-a", uniqueName("restart"), metal3sim.Options{Delays: metal3sim.Delays{Provisioning: 3 * time.Second}})
	p.add(3, nil, false)
	cluster, _ := provisionedTenant(t)
	nm := newBareMetalMachines(t, cluster, "infra-a", bareMetalSpec(p.pool), 1)[0]
	var held string
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(nm.Status.Remote).NotTo(BeNil(), "the claim is recorded")
		held = nm.Status.Remote.Name
		g.Expect(p.host(g, held).Status.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioning))
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())

	// While the manager is down, lose the record on the NestMachine too: only the host's consumerRef
	// remembers the claim.
	stopManager()
	g.Expect(mgmt.Status().Patch(ctx, nm, client.RawPatch(types.MergePatchType, []byte(`{"status":{"remote":null}}`)))).To(Succeed())
	g.Expect(startManager(ctx)).To(Succeed())

	waitHostProvisioned(t, nm)
	g.Expect(get(g, nm).(*infrav1.NestMachine).Status.Remote.Name).To(Equal(held), "the machine found its host again")
	g.Expect(p.claimedBy(g)).To(Equal(map[string]string{held: nm.Namespace + "/" + nm.Name}), "and claimed no other")
}

// TestBareMetalUnreachableInfraDuringDeleteReleasesTheHostOnReturn registers an InfraCluster on the
// third Infra API server with a 2 s grace period, loses it while a provisioned machine is deleted,
// and brings it back: the sweeper deprovisions and releases the orphaned host.
func TestBareMetalUnreachableInfraDuringDeleteReleasesTheHostOnReturn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	infraName := uniqueName("infra-m")
	ic := registerInfraCluster(t, infraName, topo.Infras[2], &infrav1.AllowedNamespaces{})
	before := ic.DeepCopy()
	ic.Spec.OrphanGracePeriodSeconds = ptr.To[int32](2)
	g.Expect(mgmt.Patch(ctx, ic, client.MergeFrom(before))).To(Succeed())
	p := startHostPool(t, topo.Infras[2], infraName, uniqueName("orphan"), metal3sim.Options{})
	p.add(1, nil, false)
	cluster, _ := newTenant(t, infraName)
	markInfrastructureProvisioned(t, cluster)
	nm := newBareMetalMachines(t, cluster, infraName, bareMetalSpec(p.pool), 1)[0]
	waitHostProvisioned(t, nm)
	hostName := get(g, nm).(*infrav1.NestMachine).Status.Remote.Name

	restartInfra := stopAPIServer(t, topo.Infras[2])
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsFalse(get(g, ic).(*infrav1.InfraCluster), infrav1.ReadyCondition)).To(BeTrue())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "released after the grace period")
		g.Expect(get(g, ic).(*infrav1.InfraCluster).Status.Orphans).To(ContainElement(And(
			HaveField("Kind", "BareMetalHost"), HaveField("Namespace", p.ns), HaveField("Name", hostName))))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	restartInfra()
	p.expectAllReleased(t)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, ic).(*infrav1.InfraCluster).Status.Orphans).To(BeEmpty(), "the released host is no orphan any more")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}
