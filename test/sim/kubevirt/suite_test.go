package kubevirt_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// env is the Infra API server every test of this package shares; tests isolate themselves by namespace
// (each simulator watches only its test's namespace) and by node labels.
var env *envtest.Environment

func TestMain(m *testing.M) {
	// SIM_LOG=<verbosity> shows the simulators' logs.
	ctrl.SetLogger(simkit.LoggerFromEnv())
	envtest.Main(m, envtest.Options{CRDs: envtest.Infra}, &env)
}

var simIDs atomic.Int32

// testLabel is the node label that keeps a test's VMs on its own nodes.
const testLabel = "sim.nest.dev/test"

// setup creates a namespace for t and starts a simulator restricted to it with opts (and a unique ID).
func setup(t *testing.T, opts kubevirt.Options) (context.Context, string, *kubevirt.Simulator) {
	return start(t, opts, true)
}

// setupAllNamespaces is setup with a simulator that watches every namespace, as a benchmark's does; only
// for tests that do not run in parallel with others.
func setupAllNamespaces(t *testing.T, opts kubevirt.Options) (context.Context, string, *kubevirt.Simulator) {
	return start(t, opts, false)
}

func start(t *testing.T, opts kubevirt.Options, restrict bool) (context.Context, string, *kubevirt.Simulator) {
	t.Helper()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kv-"}}
	g.Expect(env.Client.Create(ctx, ns)).To(Succeed())
	if restrict {
		opts.Namespaces = []string{ns.Name}
	}
	if opts.ID == 0 {
		opts.ID = uint8(simIDs.Add(1))
	}
	sim, err := kubevirt.Run(ctx, env.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		cancel()
		<-sim.Done()
		if err := sim.Err(); err != nil {
			t.Errorf("simulator stopped with an error: %v", err)
		}
	})
	return ctx, ns.Name, sim
}

// infraNodes creates count KubeVirt-ready nodes that only t's VMs select.
func infraNodes(t *testing.T, count int, capacity corev1.ResourceList) []*corev1.Node {
	t.Helper()
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = strings.Trim(name, "-")
	created, err := nodes.Create(context.Background(), env.Client, nodes.Options{
		Prefix: name, Count: count, Capacity: capacity, KubeVirt: true, Labels: map[string]string{testLabel: name},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range created {
			if err := nodes.Remove(context.Background(), env.Client, n.Name); err != nil {
				t.Error(err)
			}
		}
	})
	return created
}

// extraNode creates one more node with a test's selector label.
func extraNode(t *testing.T, selector string) string {
	t.Helper()
	created, err := nodes.Create(context.Background(), env.Client, nodes.Options{
		Prefix: selector + "-extra", KubeVirt: true, Labels: map[string]string{testLabel: selector},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nodes.Remove(context.Background(), env.Client, created[0].Name); err != nil {
			t.Error(err)
		}
	})
	return created[0].Name
}

// newVM is a VM as the provider renders one: container disk, masquerade on the pod network, LiveMigrate,
// placed on the nodes labelled for selector.
func newVM(ns, name, selector string) *kubevirtv1.VirtualMachine {
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					Domain: kubevirtv1.DomainSpec{
						CPU:    &kubevirtv1.CPU{Cores: 2},
						Memory: &kubevirtv1.Memory{Guest: ptr.To(resource.MustParse("4Gi"))},
						Devices: kubevirtv1.Devices{
							Disks: []kubevirtv1.Disk{{Name: "root", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}}},
							Interfaces: []kubevirtv1.Interface{{
								Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}},
							}},
						},
					},
					Networks:         []kubevirtv1.Network{*kubevirtv1.DefaultPodNetwork()},
					Volumes:          []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/containerdisks/ubuntu:24.04"}}}},
					NodeSelector:     map[string]string{testLabel: selector},
					EvictionStrategy: ptr.To(kubevirtv1.EvictionStrategyLiveMigrate),
				},
			},
		},
	}
}

// selectorOf is the node label value of t's nodes.
func selectorOf(created []*corev1.Node) string { return created[0].Labels[testLabel] }

func getVMI(ctx context.Context, ns, name string) func(Gomega) *kubevirtv1.VirtualMachineInstance {
	return func(g Gomega) *kubevirtv1.VirtualMachineInstance {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vmi)).To(Succeed())
		return vmi
	}
}

func getVM(ctx context.Context, ns, name string) func(Gomega) *kubevirtv1.VirtualMachine {
	return func(g Gomega) *kubevirtv1.VirtualMachine {
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vm)).To(Succeed())
		return vm
	}
}

func launcherPods(ctx context.Context, g Gomega, ns string, vmi *kubevirtv1.VirtualMachineInstance) []corev1.Pod {
	pods := &corev1.PodList{}
	g.Expect(env.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{kubevirtv1.CreatedByLabel: string(vmi.UID)})).To(Succeed())
	return pods.Items
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) *kubevirtv1.VirtualMachineInstanceCondition {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == t {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

const (
	timeout = 30 * time.Second
	poll    = 20 * time.Millisecond
)

// recorder records, from a watch, a value of every object of a namespace each time it changes: a watch
// sees every write, where polling could miss a short-lived state.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]string
}

// record starts recording what value returns for the objects of list's kind in ns, until the test ends;
// start it before the objects change.
func record(t *testing.T, ctx context.Context, list client.ObjectList, ns string, value func(client.Object) string) *recorder {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, list, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	r := &recorder{seen: map[string][]string{}}
	go func() {
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(client.Object)
			if !ok {
				continue
			}
			v := value(obj)
			r.mu.Lock()
			if vs := r.seen[obj.GetName()]; len(vs) == 0 || vs[len(vs)-1] != v {
				r.seen[obj.GetName()] = append(vs, v)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// values are the values recorded for an object so far.
func (r *recorder) values(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen[name])
}

// inOrder reports whether want appears in seq in that order (not necessarily next to each other).
func inOrder(seq []string, want ...string) bool {
	i := 0
	for _, v := range seq {
		if i < len(want) && v == want[i] {
			i++
		}
	}
	return i == len(want)
}
