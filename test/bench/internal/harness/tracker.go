package harness

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// Step is one moment of a machine's life that the benchmarks time.
type Step int

// The steps, in the order a machine goes through them. Those the benchmark causes (Created,
// NodeRegistered, Deleted) are stamped when its request returned; the others when its informers first
// saw them, so that both ends of a reaction carry at most one watch delay.
const (
	// Created: the Machine, its bootstrap data and the NestMachine exist (the last create returned).
	Created Step = iota
	// VMCreated: the VirtualMachine was first seen in its Infra cluster.
	VMCreated
	// VMIRunning: the VirtualMachineInstance was first seen Running.
	VMIRunning
	// Provisioned: the NestMachine was first seen with status.initialization.provisioned.
	Provisioned
	// NodeRegistered: the tenant Node was registered (without a providerID).
	NodeRegistered
	// ProviderIDSet: the tenant Node was first seen with a providerID.
	ProviderIDSet
	// Deleted: the delete of the NestMachine returned.
	Deleted
	// VMDeleting: the VirtualMachine was first seen being deleted (or gone).
	VMDeleting
	numSteps
)

// Reaction is the provider's part between two steps.
type Reaction struct {
	Name     string
	From, To Step
}

// Reactions are what the provider reacts to, and with what.
var Reactions = []Reaction{
	{"create", Created, VMCreated},
	{"ready", VMIRunning, Provisioned},
	{"providerID", NodeRegistered, ProviderIDSet},
	{"delete", Deleted, VMDeleting},
}

// Tracker records, per NestMachine (by UID), when each Step of its life happened. It counts
// NestMachines seen provisioned so that a benchmark can wait for n of them.
type Tracker struct {
	mu          sync.Mutex
	times       map[types.UID]*[numSteps]time.Time
	nodes       map[string]types.UID
	forgotten   map[types.UID]bool
	provisioned int
	last        time.Time
	waiters     []waiter
}

type waiter struct {
	n    int
	done chan struct{}
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{times: map[types.UID]*[numSteps]time.Time{}, nodes: map[string]types.UID{}, forgotten: map[types.UID]bool{}}
}

// Watch starts informers on the NestMachines of namespace in the management cluster and on the VMs
// and VMIs this provider manages in each Infra cluster, until ctx ends.
func (t *Tracker) Watch(ctx context.Context, mgmt *rest.Config, namespace string, infras []*rest.Config) error {
	if err := startInformer(ctx, mgmt, cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		&infrav1.NestMachine{}, t.observeNestMachine, nil); err != nil {
		return fmt.Errorf("watching NestMachines: %w", err)
	}
	managed := labels.SelectorFromSet(labels.Set{infrav1.ManagedByLabel: infrav1.ManagedByValue})
	for _, cfg := range infras {
		if err := startInformer(ctx, cfg, cache.Options{DefaultLabelSelector: managed},
			&kubevirtv1.VirtualMachineInstance{}, t.observeVMI, nil); err != nil {
			return fmt.Errorf("watching VMIs in %s: %w", cfg.Host, err)
		}
		if err := startInformer(ctx, cfg, cache.Options{DefaultLabelSelector: managed},
			&kubevirtv1.VirtualMachine{}, t.observeVM, t.observeVMGone); err != nil {
			return fmt.Errorf("watching VMs in %s: %w", cfg.Host, err)
		}
	}
	return nil
}

// WatchNodes starts an informer on the Nodes of a tenant cluster, until ctx ends.
func (t *Tracker) WatchNodes(ctx context.Context, tenant *rest.Config) error {
	if err := startInformer(ctx, tenant, cache.Options{}, &corev1.Node{}, t.observeNode, nil); err != nil {
		return fmt.Errorf("watching tenant Nodes: %w", err)
	}
	return nil
}

func startInformer(ctx context.Context, cfg *rest.Config, opts cache.Options, obj client.Object, observe, gone func(any)) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = -1
	opts.Scheme = envtest.Scheme()
	opts.DefaultTransform = cache.TransformStripManagedFields()
	c, err := cache.New(cfg, opts)
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	handlers := toolscache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, obj any) { observe(obj) }}
	if gone != nil {
		handlers.DeleteFunc = gone
	}
	if _, err := inf.AddEventHandler(handlers); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("the informer did not sync: %w", ctx.Err())
	}
	return nil
}

// Stamp records step of the NestMachine uid now, unless it was recorded before.
func (t *Tracker) Stamp(uid types.UID, step Step) {
	t.stampAt(uid, step, time.Now())
}

// NodeNamed tells the tracker that the tenant Node name is the NestMachine uid's. Call it before
// registering the Node: its providerID can be set before the registration's request returns.
func (t *Tracker) NodeNamed(uid types.UID, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes[name] = uid
}

func (t *Tracker) stampAt(uid types.UID, step Step, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if uid == "" || t.forgotten[uid] {
		return
	}
	times, ok := t.times[uid]
	if !ok {
		times = &[numSteps]time.Time{}
		t.times[uid] = times
	}
	if !times[step].IsZero() {
		return
	}
	times[step] = at
	if step != Provisioned {
		return
	}
	t.provisioned++
	t.last = at
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if t.provisioned >= w.n {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	t.waiters = kept
}

func (t *Tracker) observeVMI(obj any) {
	if vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance); ok && vmi.Status.Phase == kubevirtv1.Running {
		t.Stamp(types.UID(vmi.Labels[infrav1.NestMachineUIDLabel]), VMIRunning)
	}
}

func (t *Tracker) observeVM(obj any) {
	vm, ok := obj.(*kubevirtv1.VirtualMachine)
	if !ok {
		return
	}
	uid := types.UID(vm.Labels[infrav1.NestMachineUIDLabel])
	t.Stamp(uid, VMCreated)
	if !vm.DeletionTimestamp.IsZero() {
		t.Stamp(uid, VMDeleting)
	}
}

func (t *Tracker) observeVMGone(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if vm, ok := obj.(*kubevirtv1.VirtualMachine); ok {
		t.Stamp(types.UID(vm.Labels[infrav1.NestMachineUIDLabel]), VMDeleting)
	}
}

func (t *Tracker) observeNestMachine(obj any) {
	if nm, ok := obj.(*infrav1.NestMachine); ok && ptr.Deref(nm.Status.Initialization.Provisioned, false) {
		t.Stamp(nm.UID, Provisioned)
	}
}

func (t *Tracker) observeNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok || node.Spec.ProviderID == "" {
		return
	}
	t.mu.Lock()
	uid := t.nodes[node.Name]
	t.mu.Unlock()
	t.Stamp(uid, ProviderIDSet)
}

// Forget drops what was recorded of the NestMachine uid and ignores it from now on, e.g. a warm-up
// machine that the figures leave out.
func (t *Tracker) Forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if times, ok := t.times[uid]; ok && !times[Provisioned].IsZero() {
		t.provisioned--
	}
	delete(t.times, uid)
	t.forgotten[uid] = true
}

// Provisioned is closed once n NestMachines were seen provisioned.
func (t *Tracker) Provisioned(n int) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	done := make(chan struct{})
	if t.provisioned >= n {
		close(done)
		return done
	}
	t.waiters = append(t.waiters, waiter{n: n, done: done})
	return done
}

// Count is how many NestMachines reached step so far.
func (t *Tracker) Count(step Step) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, times := range t.times {
		if !times[step].IsZero() {
			n++
		}
	}
	return n
}

// LastProvisioned is when the last NestMachine was first seen provisioned.
func (t *Tracker) LastProvisioned() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Latencies are, per NestMachine that went through both steps of r, the time between them, sorted.
// early counts NestMachines whose r.To was seen before r.From (one watch was behind another); they
// count as zero. missing counts NestMachines that reached r.To with r.From never seen.
func (t *Tracker) Latencies(r Reaction) (latencies []time.Duration, early, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, times := range t.times {
		from, to := times[r.From], times[r.To]
		switch {
		case to.IsZero():
		case from.IsZero():
			missing++
		case to.Before(from):
			early++
			latencies = append(latencies, 0)
		default:
			latencies = append(latencies, to.Sub(from))
		}
	}
	slices.Sort(latencies)
	return latencies, early, missing
}

// Percentile is the q-quantile of sorted latencies (nearest rank); 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// WaitProvisioned waits until tr saw n NestMachines provisioned, logging progress every 10 s, or
// fails after timeout.
func (e *Env) WaitProvisioned(ctx context.Context, tr *Tracker, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	done := tr.Provisioned(n)
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			e.Logf("%d VMIs running, %d/%d NestMachines provisioned", tr.Count(VMIRunning), tr.Count(Provisioned), n)
		case <-deadline.C:
			return fmt.Errorf("timed out: %d VMIs running, %d/%d NestMachines provisioned", tr.Count(VMIRunning), tr.Count(Provisioned), n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
