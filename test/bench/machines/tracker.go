package main

import (
	"context"
	"fmt"
	"sync"
	"time"

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

// tracker records, per NestMachine (by UID), when the benchmark first saw its VMI Running in an Infra
// cluster and when it first saw the NestMachine provisioned in the management cluster. Both come from
// informers, so both instants carry the same kind of watch delay.
type tracker struct {
	want int

	mu          sync.Mutex
	running     map[types.UID]time.Time
	provisioned map[types.UID]time.Time
	last        time.Time
	allDone     chan struct{}
}

func newTracker(want int) *tracker {
	return &tracker{want: want, running: map[types.UID]time.Time{}, provisioned: map[types.UID]time.Time{}, allDone: make(chan struct{})}
}

// watch starts informers on the NestMachines of namespace in the management cluster and on the VMIs
// this provider manages in each Infra cluster, until ctx ends.
func (t *tracker) watch(ctx context.Context, mgmt *rest.Config, namespace string, infras []*rest.Config) error {
	if err := startInformer(ctx, mgmt, cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		&infrav1.NestMachine{}, t.observeNestMachine); err != nil {
		return fmt.Errorf("watching NestMachines: %w", err)
	}
	managed := labels.SelectorFromSet(labels.Set{infrav1.ManagedByLabel: infrav1.ManagedByValue})
	for _, cfg := range infras {
		if err := startInformer(ctx, cfg, cache.Options{DefaultLabelSelector: managed},
			&kubevirtv1.VirtualMachineInstance{}, t.observeVMI); err != nil {
			return fmt.Errorf("watching VMIs in %s: %w", cfg.Host, err)
		}
	}
	return nil
}

func startInformer(ctx context.Context, cfg *rest.Config, opts cache.Options, obj client.Object, observe func(any)) error {
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
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("the informer did not sync: %w", ctx.Err())
	}
	return nil
}

func (t *tracker) observeVMI(obj any) {
	vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance)
	if !ok || vmi.Status.Phase != kubevirtv1.Running {
		return
	}
	uid := types.UID(vmi.Labels[infrav1.NestMachineUIDLabel])
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.running[uid]; !seen {
		t.running[uid] = now
	}
}

func (t *tracker) observeNestMachine(obj any) {
	nm, ok := obj.(*infrav1.NestMachine)
	if !ok || !ptr.Deref(nm.Status.Initialization.Provisioned, false) {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.provisioned[nm.UID]; seen {
		return
	}
	t.provisioned[nm.UID] = now
	t.last = now
	if len(t.provisioned) == t.want {
		close(t.allDone)
	}
}

// done is closed once every NestMachine was seen provisioned.
func (t *tracker) done() <-chan struct{} { return t.allDone }

// progress is how many VMIs were seen running and NestMachines provisioned so far.
func (t *tracker) progress() (running, provisioned int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.running), len(t.provisioned)
}

// lastProvisioned is when the last NestMachine was first seen provisioned.
func (t *tracker) lastProvisioned() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// readyLatencies are, per NestMachine seen both ways, the time from its VMI running to it being
// provisioned. early counts NestMachines seen provisioned before their VMI was seen running (the
// Infra watch was behind the management watch); they count as zero. missing counts NestMachines whose
// running VMI was never seen.
func (t *tracker) readyLatencies() (latencies []time.Duration, early, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid, p := range t.provisioned {
		r, ok := t.running[uid]
		switch {
		case !ok:
			missing++
		case p.Before(r):
			early++
			latencies = append(latencies, 0)
		default:
			latencies = append(latencies, p.Sub(r))
		}
	}
	return latencies, early, missing
}
