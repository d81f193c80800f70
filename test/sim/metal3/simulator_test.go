package metal3_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
)

// env is the Infra API server the tests share; each test has its own namespace and simulator.
var env *envtest.Environment

func TestMain(m *testing.M) {
	// SIM_LOG=<verbosity> shows the simulators' logs.
	ctrl.SetLogger(simkit.LoggerFromEnv())
	envtest.Main(m, envtest.Options{CRDs: envtest.Infra}, &env)
}

var simIDs atomic.Int32

const (
	timeout = 30 * time.Second
	poll    = 10 * time.Millisecond
)

func setup(t *testing.T, opts metal3.Options) (context.Context, string) {
	t.Helper()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "m3-"}}
	g.Expect(env.Client.Create(ctx, ns)).To(Succeed())
	opts.Namespaces = []string{ns.Name}
	if opts.ID == 0 {
		opts.ID = uint8(simIDs.Add(1) % 16)
	}
	sim, err := metal3.Run(ctx, env.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		cancel()
		<-sim.Done()
		if err := sim.Err(); err != nil {
			t.Errorf("simulator stopped with an error: %v", err)
		}
	})
	return ctx, ns.Name
}

func getHost(ctx context.Context, ns, name string) func(Gomega) *bmov1alpha1.BareMetalHost {
	return func(g Gomega) *bmov1alpha1.BareMetalHost {
		host := &bmov1alpha1.BareMetalHost{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, host)).To(Succeed())
		return host
	}
}

// stateRecorder records, from a watch, every provisioning state each host of a namespace goes through:
// a watch sees every write, where polling could miss a short state.
type stateRecorder struct {
	mu   sync.Mutex
	seen map[string][]bmov1alpha1.ProvisioningState
}

// recordStates starts recording the hosts of ns until the test ends; start it before creating hosts.
func recordStates(t *testing.T, ctx context.Context, ns string) *stateRecorder {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, &bmov1alpha1.BareMetalHostList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	r := &stateRecorder{seen: map[string][]bmov1alpha1.ProvisioningState{}}
	go func() {
		for ev := range w.ResultChan() {
			host, ok := ev.Object.(*bmov1alpha1.BareMetalHost)
			if !ok {
				continue
			}
			r.mu.Lock()
			states := r.seen[host.Name]
			if state := host.Status.Provisioning.State; len(states) == 0 || states[len(states)-1] != state {
				r.seen[host.Name] = append(states, state)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// until waits for a host to reach last and returns the states it went through (since the last call).
func (r *stateRecorder) until(g Gomega, name string, last bmov1alpha1.ProvisioningState) []bmov1alpha1.ProvisioningState {
	var states []bmov1alpha1.ProvisioningState
	g.Eventually(func(g Gomega) {
		r.mu.Lock()
		states = slices.Clone(r.seen[name])
		r.mu.Unlock()
		g.Expect(states).NotTo(BeEmpty())
		g.Expect(states[len(states)-1]).To(Equal(last))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed(), "host %s reaches %s", name, last)
	r.mu.Lock()
	r.seen[name] = []bmov1alpha1.ProvisioningState{last}
	r.mu.Unlock()
	return states
}

// slow makes every step take some time, as a real one does.
var slow = metal3.Delays{
	Registering: 100 * time.Millisecond, Inspecting: 200 * time.Millisecond, Preparing: 100 * time.Millisecond,
	Provisioning: 200 * time.Millisecond, Deprovisioning: 100 * time.Millisecond, Cleaning: 100 * time.Millisecond,
	PowerChange: 50 * time.Millisecond, Deleting: 100 * time.Millisecond,
}

func TestHostsRegisterInspectAndBecomeAvailableWithHardwareDetails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns := setup(t, metal3.Options{ID: 5, Delays: slow})
	states := recordStates(t, ctx, ns)
	hosts, err := metal3.CreateHosts(ctx, env.Client, metal3.HostsOptions{
		Namespace: ns, Count: 2, Labels: map[string]string{"pool": "workers"}, CPUs: 64, RAMMiB: 262144,
	})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(states.until(g, hosts[0].Name, bmov1alpha1.StateAvailable)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateNone, bmov1alpha1.StateRegistering, bmov1alpha1.StateInspecting, bmov1alpha1.StatePreparing, bmov1alpha1.StateAvailable,
	}), "the host walks through baremetal-operator's states")
	host := getHost(ctx, ns, hosts[0].Name)(g)
	g.Expect(host.Finalizers).To(ContainElement(bmov1alpha1.BareMetalHostFinalizer))
	g.Expect(host.Status.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
	g.Expect(host.Status.PoweredOn).To(BeFalse(), "an offline host stays off")
	g.Expect(host.Status.GoodCredentials.Reference).NotTo(BeNil())
	hw := host.Status.HardwareDetails
	g.Expect(hw).NotTo(BeNil())
	g.Expect(hw.CPU.Count).To(Equal(64))
	g.Expect(hw.RAMMebibytes).To(Equal(262144))
	g.Expect(hw.Hostname).To(Equal(hosts[0].Name))
	g.Expect(hw.NIC).To(HaveLen(2))
	g.Expect(hw.NIC[0].MAC).To(Equal(hosts[0].Spec.BootMACAddress))
	g.Expect(hw.NIC[0].IP).To(MatchRegexp(`^172\.21\.\d+\.\d+$`), "addresses come from the simulator's 172.<16+ID>/16")
	g.Expect(hw.NIC[1].IP).NotTo(Equal(hw.NIC[0].IP))

	data := &bmov1alpha1.HardwareData{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(host), data)).To(Succeed(), "inspection is recorded as HardwareData")
	g.Expect(data.Spec.HardwareDetails.CPU.Count).To(Equal(64))

	g.Eventually(func(g Gomega) {
		other := getHost(ctx, ns, hosts[1].Name)(g)
		g.Expect(other.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
		g.Expect(other.Status.HardwareDetails.NIC[0].IP).NotTo(Equal(hw.NIC[0].IP), "hosts get distinct addresses")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// claim sets what a Metal3 machine provider sets on a host it takes: image, consumerRef, online.
func claim(ctx context.Context, g Gomega, host *bmov1alpha1.BareMetalHost, image string) {
	patch := client.MergeFrom(host.DeepCopy())
	host.Spec.Image = &bmov1alpha1.Image{URL: image, Checksum: "http://images.example/SHA256SUMS", ChecksumType: bmov1alpha1.SHA256, DiskFormat: ptrTo("qcow2")}
	host.Spec.ConsumerRef = &corev1.ObjectReference{APIVersion: "infrastructure.cluster.x-k8s.io/v1alpha1", Kind: "NestMachine", Namespace: "tenant", Name: "worker-0"}
	host.Spec.Online = true
	g.Expect(env.Client.Patch(ctx, host, patch)).To(Succeed())
}

func ptrTo[T any](v T) *T { return &v }

func TestProvisionToProvisionedThenDeprovisionToAvailable(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var mu sync.Mutex
	events := []string{}
	record := func(what string) metal3.HostHook {
		return func(_ context.Context, host *bmov1alpha1.BareMetalHost) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, what+" "+host.Name)
			return nil
		}
	}
	hookCalls := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	ctx, ns := setup(t, metal3.Options{Delays: slow, OnProvisioned: record("provisioned"), OnDeprovisioned: record("deprovisioned")})
	states := recordStates(t, ctx, ns)
	hosts, err := metal3.CreateHosts(ctx, env.Client, metal3.HostsOptions{Namespace: ns})
	g.Expect(err).NotTo(HaveOccurred())
	name := hosts[0].Name
	states.until(g, name, bmov1alpha1.StateAvailable)

	claim(ctx, g, getHost(ctx, ns, name)(g), "http://images.example/rhcos.qcow2")
	g.Expect(states.until(g, name, bmov1alpha1.StateProvisioned)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateAvailable, bmov1alpha1.StateProvisioning, bmov1alpha1.StateProvisioned,
	}))
	host := getHost(ctx, ns, name)(g)
	g.Expect(host.Status.Provisioning.Image.URL).To(Equal("http://images.example/rhcos.qcow2"))
	g.Expect(host.Status.Provisioning.Image.Checksum).To(Equal(host.Spec.Image.Checksum))
	g.Expect(host.Status.PoweredOn).To(BeTrue())
	g.Eventually(hookCalls).WithTimeout(timeout).WithPolling(poll).Should(Equal([]string{"provisioned " + name}))

	patch := client.MergeFrom(host.DeepCopy())
	host.Spec.Image = nil
	g.Expect(env.Client.Patch(ctx, host, patch)).To(Succeed())
	g.Expect(states.until(g, name, bmov1alpha1.StateAvailable)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateProvisioned, bmov1alpha1.StateDeprovisioning, bmov1alpha1.StateAvailable,
	}))
	host = getHost(ctx, ns, name)(g)
	g.Expect(host.Status.Provisioning.Image.URL).To(BeEmpty())
	g.Eventually(hookCalls).WithTimeout(timeout).WithPolling(poll).Should(Equal([]string{"provisioned " + name, "deprovisioned " + name}))
}

func TestInjectedFailuresShowInStatusAndClear(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns := setup(t, metal3.Options{Fail: func(h *bmov1alpha1.BareMetalHost) bmov1alpha1.ErrorType {
		if h.Name == "flaky-0" {
			return bmov1alpha1.PowerManagementError
		}
		return ""
	}})
	states := recordStates(t, ctx, ns)
	hosts, err := metal3.CreateHosts(ctx, env.Client, metal3.HostsOptions{Namespace: ns, Count: 1})
	g.Expect(err).NotTo(HaveOccurred())
	name := hosts[0].Name
	states.until(g, name, bmov1alpha1.StateAvailable)

	annotate := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, metal3.FailAnnotation, bmov1alpha1.ProvisioningError)))
	g.Expect(env.Client.Patch(ctx, getHost(ctx, ns, name)(g), annotate)).To(Succeed())
	claim(ctx, g, getHost(ctx, ns, name)(g), "http://images.example/broken.qcow2")
	g.Eventually(func(g Gomega) {
		st := getHost(ctx, ns, name)(g).Status
		g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioning))
		g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusError))
		g.Expect(st.ErrorType).To(Equal(bmov1alpha1.ProvisioningError))
		g.Expect(st.ErrorMessage).To(ContainSubstring("broken.qcow2"))
		g.Expect(st.ErrorCount).To(Equal(1))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	clear := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, metal3.FailAnnotation)))
	g.Expect(env.Client.Patch(ctx, getHost(ctx, ns, name)(g), clear)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := getHost(ctx, ns, name)(g).Status
		g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioned))
		g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
		g.Expect(st.ErrorType).To(BeEmpty())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	// Options.Fail: a host whose BMC cannot power it.
	flaky, err := metal3.CreateHosts(ctx, env.Client, metal3.HostsOptions{Namespace: ns, Prefix: "flaky", Online: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		st := getHost(ctx, ns, flaky[0].Name)(g).Status
		g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
		g.Expect(st.ErrorType).To(Equal(bmov1alpha1.PowerManagementError))
		g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusError))
		g.Expect(st.PoweredOn).To(BeFalse(), "the BMC never powered it on")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestRegistrationWaitsForTheBMCCredentials(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns := setup(t, metal3.Options{})
	host, secret := metal3.NewHost(0, metal3.HostsOptions{Namespace: ns})
	g.Expect(env.Client.Create(ctx, host)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := getHost(ctx, ns, host.Name)(g).Status
		g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateRegistering))
		g.Expect(st.ErrorType).To(Equal(bmov1alpha1.RegistrationError))
		g.Expect(st.ErrorMessage).To(ContainSubstring(secret.Name))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := getHost(ctx, ns, host.Name)(g).Status
		g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
		g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed(), "the Secret's arrival lets registration finish")
}

func TestDeletingAProvisionedHostDeprovisionsItFirst(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns := setup(t, metal3.Options{Delays: slow})
	states := recordStates(t, ctx, ns)
	hosts, err := metal3.CreateHosts(ctx, env.Client, metal3.HostsOptions{Namespace: ns})
	g.Expect(err).NotTo(HaveOccurred())
	name := hosts[0].Name
	states.until(g, name, bmov1alpha1.StateAvailable)
	claim(ctx, g, getHost(ctx, ns, name)(g), "http://images.example/rhcos.qcow2")
	states.until(g, name, bmov1alpha1.StateProvisioned)

	g.Expect(env.Client.Delete(ctx, getHost(ctx, ns, name)(g))).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &bmov1alpha1.BareMetalHost{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the host is gone, got %v", err)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(states.until(g, name, bmov1alpha1.StateDeleting)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateProvisioned, bmov1alpha1.StateDeprovisioning, bmov1alpha1.StatePoweringOffBeforeDelete, bmov1alpha1.StateDeleting,
	}), "a provisioned host is deprovisioned and powered off before it goes")
	err = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &bmov1alpha1.HardwareData{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "its HardwareData is gone too, got %v", err)
}
