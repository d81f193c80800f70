package webhooks_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks"
)

// holdFinalizer keeps a deleted Machine around, being deleted, until the test lets it go — the way
// CAPI's finalizer does while the machine drains and its infrastructure goes.
const holdFinalizer = "test.nest.infrastructure.cluster.x-k8s.io/hold"

// tenant is a tenant cluster with three Infra clusters (<namespace>-a, -b, -c, in name order), its
// NestCluster with all three healthy, and its Cluster.
type tenant struct {
	t        *testing.T
	ns       string
	nc       *infrav1.NestCluster
	cluster  *clusterv1.Cluster
	machines map[string]*clusterv1.Machine
}

func newTenant(t *testing.T) *tenant {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	tn := &tenant{t: t, ns: ns, machines: map[string]*clusterv1.Machine{}}
	var names []string
	for _, suffix := range []string{"a", "b", "c"} {
		ic := infraCluster(&infrav1.AllowedNamespaces{List: []string{ns}})
		ic.Name = ns + "-" + suffix
		g.Expect(k8sClient.Create(ctx, ic)).To(Succeed())
		waitCached(t, ic)
		names = append(names, ic.Name)
	}
	tn.nc = nestCluster(ns, names...)
	g.Expect(k8sClient.Create(ctx, tn.nc)).To(Succeed())
	tn.setHealthy("a", "b", "c")
	tn.cluster = &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("cluster")},
		Spec: clusterv1.ClusterSpec{InfrastructureRef: clusterv1.ContractVersionedObjectReference{
			APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: tn.nc.Name,
		}},
	}
	g.Expect(k8sClient.Create(ctx, tn.cluster)).To(Succeed())
	waitCached(t, tn.cluster)
	return tn
}

func (tn *tenant) infra(letter string) string {
	if letter == "" {
		return ""
	}
	return tn.ns + "-" + letter
}

// setHealthy publishes the Infra clusters with these letters as the NestCluster's failure domains,
// as the NestCluster controller does for the healthy ones.
func (tn *tenant) setHealthy(letters ...string) {
	tn.t.Helper()
	tn.nc.Status.FailureDomains, tn.nc.Status.InfraClusters = nil, nil
	for _, l := range letters {
		tn.nc.Status.FailureDomains = append(tn.nc.Status.FailureDomains, clusterv1.FailureDomain{Name: tn.infra(l), ControlPlane: ptr.To(true)})
	}
	for _, use := range tn.nc.Spec.InfraClusters {
		tn.nc.Status.InfraClusters = append(tn.nc.Status.InfraClusters, infrav1.InfraClusterUseStatus{Name: use.Name,
			Usable: slices.ContainsFunc(tn.nc.Status.FailureDomains, func(fd clusterv1.FailureDomain) bool { return fd.Name == use.Name })})
	}
	NewWithT(tn.t).Expect(k8sClient.Status().Update(context.Background(), tn.nc)).To(Succeed())
	waitCached(tn.t, tn.nc)
}

// controlPlaneMachine is a Machine as KubeadmControlPlane creates it, on a NestMachine.
func (tn *tenant) controlPlaneMachine(name, failureDomain string) *clusterv1.Machine {
	return &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: tn.ns, Name: name, Finalizers: []string{holdFinalizer},
			Labels: map[string]string{clusterv1.ClusterNameLabel: tn.cluster.Name, clusterv1.MachineControlPlaneLabel: ""},
		},
		Spec: clusterv1.MachineSpec{
			ClusterName:       tn.cluster.Name,
			Bootstrap:         clusterv1.Bootstrap{DataSecretName: ptr.To(name + "-bootstrap")},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachine", Name: name},
			FailureDomain:     failureDomain,
		},
	}
}

// create creates a control-plane Machine and, when admitted, waits until the webhooks see it.
func (tn *tenant) create(m *clusterv1.Machine) error {
	tn.t.Helper()
	if err := k8sClient.Create(context.Background(), m); err != nil {
		return err
	}
	waitCached(tn.t, m)
	tn.machines[m.Name] = m
	return nil
}

// startDelete deletes a Machine that stays, being deleted, until finishDelete.
func (tn *tenant) startDelete(name string) {
	tn.t.Helper()
	g := NewWithT(tn.t)
	m := tn.machines[name]
	g.Expect(k8sClient.Delete(context.Background(), m)).To(Succeed())
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(m), m)).To(Succeed())
	waitCached(tn.t, m)
}

func (tn *tenant) finishDelete(name string) {
	tn.t.Helper()
	g := NewWithT(tn.t)
	m := tn.machines[name]
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(m), m)).To(Succeed())
	m.Finalizers = nil
	g.Expect(k8sClient.Update(context.Background(), m)).To(Succeed())
	waitGone(tn.t, m)
	delete(tn.machines, name)
}

// spreadStep is one step of a KubeadmControlPlane-like script.
type spreadStep struct {
	op   string // create, bootstrap (create the installer's bootstrap machine), startDelete, finishDelete, delete, health
	name string // machine
	fd   string // create: the Infra cluster letter asked for ("" = none); health: the healthy letters
	want string // create: the letter it lands in, or "reject"
	msg  []string
}

func (tn *tenant) run(script []spreadStep) {
	tn.t.Helper()
	for i, s := range script {
		desc := fmt.Sprintf("step %d: %s %s %q", i, s.op, s.name, s.fd)
		switch s.op {
		case "create", "bootstrap":
			m := tn.controlPlaneMachine(s.name, tn.infra(s.fd))
			if s.op == "bootstrap" {
				m.Labels[infrav1.BootstrapMachineLabel] = ""
			}
			err := tn.create(m)
			if s.want == "reject" {
				if err == nil {
					tn.t.Fatalf("%s: admitted into %q, want a rejection", desc, m.Spec.FailureDomain)
				}
				g := NewWithT(tn.t)
				expectInvalid(g, err, append([]string{"spec.failureDomain: Invalid value"}, tn.expand(s.msg)...)...)
				continue
			}
			if err != nil {
				tn.t.Fatalf("%s: rejected: %v", desc, err)
			}
			if m.Spec.FailureDomain != tn.infra(s.want) {
				tn.t.Fatalf("%s: landed in %q, want %q", desc, m.Spec.FailureDomain, tn.infra(s.want))
			}
		case "startDelete":
			tn.startDelete(s.name)
		case "finishDelete":
			tn.finishDelete(s.name)
		case "delete":
			tn.startDelete(s.name)
			tn.finishDelete(s.name)
		case "health":
			tn.setHealthy(strings.Split(s.fd, ",")...)
		default:
			tn.t.Fatalf("%s: unknown op", desc)
		}
	}
}

// expand writes "<a>" as the name of Infra cluster a in expected messages.
func (tn *tenant) expand(msgs []string) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		for _, l := range []string{"a", "b", "c"} {
			m = strings.ReplaceAll(m, "<"+l+">", tn.infra(l))
		}
		out = append(out, m)
	}
	return out
}

// TestControlPlaneSpreadThroughTheAPIServer plays what KubeadmControlPlane does to a three-replica
// control plane over three Infra clusters — scale up, a maxSurge=1 rollout, a remediation, the loss
// of an Infra cluster and its return with the restore — and checks each Machine is admitted,
// defaulted or rejected as the rule says.
func TestControlPlaneSpreadThroughTheAPIServer(t *testing.T) {
	tn := newTenant(t)
	unbalanced := "would unbalance the control plane"
	tn.run([]spreadStep{
		// Scale up: KCP names failure domains; a Machine without one gets the least-loaded.
		{op: "create", name: "cp-1", want: "a"},
		{op: "create", name: "cp-2", fd: "a", want: "reject", msg: []string{unbalanced, "<a>=1, <b>=0, <c>=0", "allowed: <b>, <c>"}},
		{op: "create", name: "cp-2", fd: "b", want: "b"},
		{op: "create", name: "cp-3", want: "c"},

		// Rollout, maxSurge 1: 2/1/1 for a moment, never a third machine where another has none.
		{op: "create", name: "cp-4", fd: "a", want: "a"},
		{op: "create", name: "extra", fd: "a", want: "reject", msg: []string{unbalanced, "<a>=2, <b>=1, <c>=1", "allowed: <b>, <c>"}},
		{op: "startDelete", name: "cp-1"},
		{op: "finishDelete", name: "cp-1"},
		{op: "create", name: "cp-5", fd: "b", want: "b"},
		{op: "delete", name: "cp-2"},
		{op: "create", name: "cp-6", fd: "c", want: "c"},
		{op: "delete", name: "cp-3"},

		// Remediation: delete first, then the replacement goes where the hole is.
		{op: "startDelete", name: "cp-5"},
		{op: "create", name: "cp-7", fd: "a", want: "reject", msg: []string{unbalanced, "<a>=1, <b>=0, <c>=1", "allowed: <b>"}},
		{op: "create", name: "cp-7", want: "b"},
		{op: "finishDelete", name: "cp-5"},

		// Infra cluster c is lost: the NestCluster controller drops it from status.failureDomains.
		{op: "health", fd: "a,b"},
		{op: "create", name: "cp-8", fd: "c", want: "reject", msg: []string{"Infra cluster \"<c>\" is not healthy now", "allowed: <a>, <b>"}},
		{op: "startDelete", name: "cp-6"}, // MachineHealthCheck + KCP remediate the lost machine
		{op: "create", name: "cp-8", want: "a"},
		{op: "finishDelete", name: "cp-6"},
		{op: "create", name: "extra", fd: "a", want: "reject", msg: []string{unbalanced, "<a>=2, <b>=1", "allowed: <b>"}},

		// c is back, empty: 2/1/0. The restore rollout must put the next machine there.
		{op: "health", fd: "a,b,c"},
		{op: "create", name: "cp-9", fd: "b", want: "reject", msg: []string{unbalanced, "<a>=2, <b>=1, <c>=0", "allowed: <c>"}},
		{op: "create", name: "cp-9", fd: "c", want: "c"},
		{op: "delete", name: "cp-4"},
		{op: "create", name: "cp-10", fd: "a", want: "a"},
		{op: "delete", name: "cp-8"},
	})
	got := map[string]int{}
	for _, m := range tn.machines {
		got[m.Spec.FailureDomain]++
	}
	NewWithT(t).Expect(got).To(Equal(map[string]int{tn.infra("a"): 1, tn.infra("b"): 1, tn.infra("c"): 1}), "one control-plane machine per Infra cluster again")
}

// TestTheOpenShiftBootstrapMachineIsNotCountedInTheSpread creates the installer's bootstrap machine
// (a control-plane Machine labelled install.openshift.io/bootstrap, deleted once the masters run)
// among the masters, in the orders openshift-install and a GitOps apply create them. The masters
// must end one per Infra cluster whatever the order, and none is refused for the bootstrap
// machine's sake: it is not part of the control plane that has to survive an Infra cluster.
func TestTheOpenShiftBootstrapMachineIsNotCountedInTheSpread(t *testing.T) {
	unbalanced := "would unbalance the control plane"
	t.Run("failure domains defaulted, the bootstrap machine between the masters", func(t *testing.T) {
		tn := newTenant(t)
		tn.run([]spreadStep{
			{op: "create", name: "master-0", want: "a"},
			{op: "bootstrap", name: "bootstrap", want: "b"},
			// Counted, the bootstrap machine would send master-1 to c and master-2 back to a.
			{op: "create", name: "master-1", want: "b"},
			{op: "create", name: "master-2", want: "c"},
			{op: "delete", name: "bootstrap"},
		})
	})
	t.Run("failure domains named, the bootstrap machine first", func(t *testing.T) {
		tn := newTenant(t)
		tn.run([]spreadStep{
			{op: "bootstrap", name: "bootstrap", fd: "a", want: "a"},
			{op: "create", name: "master-0", fd: "a", want: "a"},
			{op: "create", name: "master-1", fd: "b", want: "b"},
			{op: "create", name: "master-2", fd: "c", want: "c"},
			{op: "create", name: "surge", fd: "a", want: "a"},
			{op: "create", name: "extra", fd: "a", want: "reject", msg: []string{unbalanced, "<a>=2, <b>=1, <c>=1", "allowed: <b>, <c>"}},
		})
	})
	t.Run("the bootstrap machine goes to any healthy Infra cluster that takes control planes", func(t *testing.T) {
		tn := newTenant(t)
		tn.run([]spreadStep{
			{op: "create", name: "master-0", fd: "a", want: "a"},
			{op: "create", name: "master-1", fd: "a", want: "reject", msg: []string{unbalanced}},
			{op: "bootstrap", name: "bootstrap", fd: "a", want: "a"},
			{op: "health", fd: "a,b"},
			{op: "bootstrap", name: "bootstrap-2", fd: "c", want: "reject", msg: []string{"Infra cluster \"<c>\" is not healthy now", "allowed: <a>, <b>"}},
		})
	})
}

func TestControlPlaneSpreadRejectsUnknownAndWorkerOnlyInfraClusters(t *testing.T) {
	g := NewWithT(t)
	tn := newTenant(t)
	tn.nc.Spec.InfraClusters[2].ControlPlane = ptr.To(false)
	g.Expect(k8sClient.Update(context.Background(), tn.nc)).To(Succeed())
	waitCached(t, tn.nc)
	before := map[string]float64{}
	for _, reason := range []string{"Unknown", "NotControlPlane", "NoHealthyDomain"} {
		before[reason] = spreadRejections(reason)
	}

	err := tn.create(tn.controlPlaneMachine("cp-1", "infra-elsewhere"))
	expectInvalid(g, err, `spec.failureDomain: Invalid value: "infra-elsewhere"`, "is not one of the tenant's Infra clusters",
		tn.expand([]string{"spec.infraClusters: <a>, <b>, <c>", "allowed: <a>, <b>"})[0])
	err = tn.create(tn.controlPlaneMachine("cp-1", tn.infra("c")))
	expectInvalid(g, err, "does not take control-plane machines", "controlPlane is false")

	tn.setHealthy()
	err = tn.create(tn.controlPlaneMachine("cp-1", ""))
	expectInvalid(g, err, "spec.failureDomain", "no healthy Infra cluster takes control-plane machines now")

	// Other tests run alongside and may reject too: at least this test's rejections are counted.
	for reason, n := range before {
		g.Expect(spreadRejections(reason)).To(BeNumerically(">=", n+1), "capnest_controlplane_spread_rejections_total{reason=%q}", reason)
	}
}

// A flavor of plain control-plane Machines (OpenShift's installer ignition) is applied in one go:
// its Machines reach the webhook before the NestCluster controller has reported which Infra clusters
// are healthy. They are placed by the NestCluster's spec, still one per Infra cluster.
func TestControlPlaneMachinesBeforeTheNestClusterReportsArePlacedBySpec(t *testing.T) {
	g := NewWithT(t)
	tn := newTenant(t)
	tn.nc.Status = infrav1.NestClusterStatus{}
	g.Expect(k8sClient.Status().Update(context.Background(), tn.nc)).To(Succeed())
	waitCached(t, tn.nc)

	g.Expect(tn.create(tn.controlPlaneMachine("master-0", tn.infra("a")))).To(Succeed())
	g.Expect(tn.create(tn.controlPlaneMachine("master-1", tn.infra("b")))).To(Succeed())
	err := tn.create(tn.controlPlaneMachine("master-2", tn.infra("a")))
	expectInvalid(g, err, "spec.failureDomain", "would unbalance the control plane")
	g.Expect(tn.create(tn.controlPlaneMachine("master-2", tn.infra("c")))).To(Succeed())
	bootstrap := tn.controlPlaneMachine("bootstrap", "")
	g.Expect(tn.create(bootstrap)).To(Succeed())
	g.Expect(bootstrap.Spec.FailureDomain).To(Equal(tn.infra("a")), "no failure domain: the least-loaded by spec, first by name")
}

// spreadRejections reads capnest_controlplane_spread_rejections_total of a reason from the registry
// the manager's /metrics serves.
func spreadRejections(reason string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != "capnest_controlplane_spread_rejections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// spreadCalls counts the requests the webhook server has answered on the spread webhooks' paths.
func spreadCalls() float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && (l.GetValue() == webhooks.ControlPlaneSpreadDefaultPath || l.GetValue() == webhooks.ControlPlaneSpreadValidatePath) {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// expectOnlyTheFence checks that nothing since before reached the spread webhooks but a fence: a
// control-plane Machine that does, sent (dry run) after the request under test. The server counts a
// request after answering it, so a count read at once could miss the request under test; once the
// fence's two calls are counted, a call of the earlier request would be too.
func expectOnlyTheFence(g Gomega, tn *tenant, before float64, why string) {
	fence := tn.controlPlaneMachine(uniqueName("fence"), "")
	g.Expect(k8sClient.Create(context.Background(), fence, client.DryRunAll)).To(Succeed())
	g.Eventually(spreadCalls).Should(BeNumerically(">=", before+2), "the fence goes through both spread webhooks")
	g.Consistently(spreadCalls, 2*time.Second, 100*time.Millisecond).Should(Equal(before+2), why)
}

func TestControlPlaneSpreadLeavesOtherMachinesAlone(t *testing.T) {
	ctx := context.Background()
	tn := newTenant(t)
	before := spreadCalls()
	NewWithT(t).Expect(tn.create(tn.controlPlaneMachine(uniqueName("cp"), tn.infra("a")))).To(Succeed())
	NewWithT(t).Eventually(spreadCalls).Should(Equal(before+2),
		"a control-plane NestMachine Machine goes through both spread webhooks (the server counts a request after answering it)")

	t.Run("worker machines never reach the webhook", func(t *testing.T) {
		g := NewWithT(t)
		before := spreadCalls()
		m := tn.controlPlaneMachine(uniqueName("worker"), tn.infra("a"))
		delete(m.Labels, clusterv1.MachineControlPlaneLabel)
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		expectOnlyTheFence(g, tn, before, "the objectSelector keeps them away")
	})

	t.Run("other providers' control-plane machines never reach the webhook", func(t *testing.T) {
		g := NewWithT(t)
		before := spreadCalls()
		ns := namespace(t, nil) // no Cluster, no NestCluster
		m := tn.controlPlaneMachine(uniqueName("docker"), "")
		m.Namespace = ns
		m.Spec.InfrastructureRef = clusterv1.ContractVersionedObjectReference{APIGroup: "infrastructure.cluster.x-k8s.io", Kind: "DockerMachine", Name: "d"}
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		g.Expect(m.Spec.FailureDomain).To(BeEmpty(), "not defaulted")
		expectOnlyTheFence(g, tn, before, "the matchConditions keep them away")
	})

	t.Run("a Machine of a missing Cluster is rejected", func(t *testing.T) {
		m := tn.controlPlaneMachine(uniqueName("orphan"), "")
		m.Spec.ClusterName = "no-such-cluster"
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, m), `spec.clusterName: Invalid value: "no-such-cluster"`, "Cluster not found")
	})

	t.Run("the failure domain cannot change", func(t *testing.T) {
		g := NewWithT(t)
		m := tn.controlPlaneMachine(uniqueName("cp"), tn.infra("b"))
		g.Expect(tn.create(m)).To(Succeed())
		m.Spec.FailureDomain = tn.infra("c")
		expectInvalid(g, k8sClient.Update(ctx, m), "spec.failureDomain: Forbidden", "does not move between Infra clusters")
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		m.Labels["x"] = "y"
		g.Expect(k8sClient.Update(ctx, m)).To(Succeed(), "other changes pass")
	})

	t.Run("a paused Cluster's machines are taken as they are (clusterctl move)", func(t *testing.T) {
		g := NewWithT(t)
		tn.cluster.Spec.Paused = ptr.To(true)
		g.Expect(k8sClient.Update(ctx, tn.cluster)).To(Succeed())
		waitCached(t, tn.cluster)
		g.Expect(tn.create(tn.controlPlaneMachine(uniqueName("moved"), tn.infra("a")))).To(Succeed())
		g.Expect(tn.create(tn.controlPlaneMachine(uniqueName("moved"), tn.infra("a")))).To(Succeed())
	})
}

// Twenty control-plane Machines of one tenant created at the same moment (by hand or a GitOps sync:
// no KubeadmControlPlane between them) end balanced: admissions of one tenant see each other, so
// the ones that would unbalance the control plane are refused and may be retried.
func TestConcurrentControlPlaneMachinesEndBalanced(t *testing.T) {
	env(t)
	g := NewWithT(t)
	ctx := context.Background()
	tn := newTenant(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := tn.controlPlaneMachine(fmt.Sprintf("cp-%02d", i), "")
			m.Finalizers = nil
			errs[i] = k8sClient.Create(ctx, m)
		}()
	}
	wg.Wait()
	admitted := 0
	for _, err := range errs {
		if err == nil {
			admitted++
			continue
		}
		g.Expect(err.Error()).To(ContainSubstring("spec.failureDomain"), "a refusal names the field")
	}
	g.Expect(admitted).To(BeNumerically(">=", 3), "at least one machine per Infra cluster is admitted")
	machines := &clusterv1.MachineList{}
	g.Expect(k8sClient.List(ctx, machines, client.InNamespace(tn.ns))).To(Succeed())
	g.Expect(machines.Items).To(HaveLen(admitted))
	counts := map[string]int{tn.infra("a"): 0, tn.infra("b"): 0, tn.infra("c"): 0}
	for _, m := range machines.Items {
		counts[m.Spec.FailureDomain]++
	}
	lo, hi := n, 0
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	g.Expect(hi-lo).To(BeNumerically("<=", 1), "control-plane Machines per Infra cluster: %v", counts)
}

// A spec.providerID given at create time (clusterctl move, a restore) must be the one the provider
// derives for the NestMachine: otherwise a NestMachine could claim another tenant's VM.
func TestProviderIDGivenAtCreateMustBeTheMachinesOwn(t *testing.T) {
	env(t)
	ctx := context.Background()
	tn := newTenant(t)
	ic := &infrav1.InfraCluster{}
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKey{Name: tn.infra("a")}, ic)).To(Succeed())
	ns := ownership.TenantNamespace(ic.Spec.TenantNamespacePrefix, tn.ns, tn.cluster.Name)
	machine := func(providerID string) *infrav1.NestMachine {
		nm := nestMachine(tn.ns, kubevirtSpec())
		nm.Name = uniqueName("moved")
		nm.Labels = map[string]string{clusterv1.ClusterNameLabel: tn.cluster.Name}
		nm.Spec.ProviderID = strings.ReplaceAll(providerID, "NAME", nm.Name)
		return nm
	}
	for _, tc := range []struct{ name, providerID, want string }{
		{"not a nest providerID", "kubevirt://" + tn.infra("a") + "/" + ns + "/NAME", "is not nest://"},
		{"another VM name", infrav1.ProviderID(tn.infra("a"), ns, "someone-else"), "the VM of this NestMachine is named"},
		{"an Infra cluster the tenant does not use", infrav1.ProviderID("elsewhere", ns, "NAME"), "is not one of NestCluster"},
		{"another tenant's namespace", infrav1.ProviderID(tn.infra("a"), "nest-other-tenant", "NAME"), "the tenant namespace of this NestMachine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectInvalid(NewWithT(t), k8sClient.Create(ctx, machine(tc.providerID)), "spec.providerID", tc.want)
		})
	}
	t.Run("its own", func(t *testing.T) {
		NewWithT(t).Expect(k8sClient.Create(ctx, machine(infrav1.ProviderID(tn.infra("a"), ns, "NAME")))).To(Succeed())
	})
}
