package sandbox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// MachineRow is one machine of a tenant cluster, where it landed and how far it got.
type MachineRow struct {
	// Tenant is the namespace/name of its Cluster.
	Tenant string
	// Machine is the Machine's name.
	Machine string
	// Role is control-plane or worker.
	Role string
	// Infra is the Infra cluster (failure domain) it runs on, or is meant for.
	Infra string
	// InfraNode is the Infra cluster node running its VM, or its bare-metal host.
	InfraNode string
	// IP is its address.
	IP string
	// Phase is the Machine's phase (Deleting while it is being deleted).
	Phase string
	// Node is the tenant Node it registered.
	Node string
}

// MachineTime is when the sandbox first saw a Machine, and first saw it Running.
type MachineTime struct {
	Created, Running time.Time
}

// progress watches the management cluster through informers: it prints one line per change, wakes
// whoever waits for a condition on what it watches, records when Machines appear and run, and hands
// every Machine event to the sandbox's KubeadmControlPlane stand-ins (kcp.go).
type progress struct {
	s     *Sandbox
	out   io.Writer
	begin time.Time

	cache  cache.Cache
	cancel context.CancelFunc
	done   chan struct{}
	pokes  chan struct{}

	mu      sync.Mutex
	printed map[string]string
	times   map[string]*MachineTime
	expiry  *certificateExpiry
	// remediation stands in for KCP's remediation where the external etcd stops it.
	remediation *etcdRemediation
	changed     chan struct{}
}

func newProgress(s *Sandbox, out io.Writer) *progress {
	return &progress{
		s: s, out: out, begin: time.Now(), pokes: make(chan struct{}, 1),
		printed: map[string]string{}, times: map[string]*MachineTime{}, changed: make(chan struct{}),
	}
}

// watched are the kinds whose changes are shown and wake waiters.
func watched() []client.Object {
	return []client.Object{
		&clusterv1.Cluster{}, &clusterv1.Machine{}, &clusterv1.MachineDeployment{}, &controlplanev1.KubeadmControlPlane{},
		&infrav1.NestMachine{}, &infrav1.InfraCluster{},
	}
}

// start starts the informers and the printer, and returns once the informers have synced.
func (p *progress) start(ctx context.Context, cfg *rest.Config) error {
	c, err := cache.New(cfg, cache.Options{Scheme: envtest.Scheme(), DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		return fmt.Errorf("creating the progress cache: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p.cache, p.cancel, p.done = c, cancel, make(chan struct{})
	p.expiry = &certificateExpiry{c: p.s.Management.Client, done: map[string]bool{}}
	p.remediation = &etcdRemediation{c: p.s.Management.Client, done: map[types.UID]bool{}}
	for _, obj := range watched() {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			cancel()
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		_, isMachine := obj.(*clusterv1.Machine)
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) {
				if isMachine {
					p.observeMachine(ctx, o)
				}
				p.poke()
			},
			UpdateFunc: func(_, o any) {
				if isMachine {
					p.observeMachine(ctx, o)
				}
				p.poke()
			},
			DeleteFunc: func(any) { p.poke() },
		}); err != nil {
			cancel()
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		cancel()
		return fmt.Errorf("the progress cache did not sync")
	}
	go p.loop(ctx)
	return nil
}

func (p *progress) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// poke asks the printer to look again; pokes coalesce.
func (p *progress) poke() {
	select {
	case p.pokes <- struct{}{}:
	default:
	}
}

func (p *progress) loop(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.pokes:
			p.refresh(ctx)
		}
	}
}

// logf prints a free-form progress line.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "[%7.1fs] %s\n", time.Since(p.begin).Seconds(), fmt.Sprintf(format, args...))
}

// observeMachine records when a Machine was first seen and first seen Running, at the event.
func (p *progress) observeMachine(ctx context.Context, o any) {
	m, ok := o.(*clusterv1.Machine)
	if !ok {
		return
	}
	p.expiry.observe(ctx, m)
	p.remediation.observe(ctx, m)
	now := time.Now()
	key := m.Namespace + "/" + m.Name
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.times[key]
	if !ok {
		t = &MachineTime{Created: now}
		p.times[key] = t
	}
	if t.Running.IsZero() && m.Status.Phase == string(clusterv1.MachinePhaseRunning) {
		t.Running = now
	}
}

func (p *progress) machineTimes() map[string]MachineTime {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]MachineTime, len(p.times))
	for k, v := range p.times {
		out[k] = *v
	}
	return out
}

// refresh prints what changed since the last refresh and wakes the waiters.
func (p *progress) refresh(ctx context.Context) {
	lines := map[string]string{}
	for _, r := range p.rowsCtx(ctx) {
		lines["machine/"+r.Tenant+"/"+r.Machine] = fmt.Sprintf("machine  %-45s %-13s %-9s %-18s %-15s %s",
			r.Tenant+"/"+r.Machine, r.Role, dash(r.Infra), dash(r.InfraNode), dash(r.IP), r.Phase)
	}
	ics := &infrav1.InfraClusterList{}
	if err := p.cache.List(ctx, ics); err == nil {
		for _, ic := range ics.Items {
			lines["infra/"+ic.Name] = "infra    " + ic.Name + " " + conditionSummary(ic.Status.Conditions, infrav1.ReadyCondition)
		}
	}
	clusters := &clusterv1.ClusterList{}
	if err := p.cache.List(ctx, clusters); err == nil {
		for _, c := range clusters.Items {
			phase := c.Status.Phase
			if !c.DeletionTimestamp.IsZero() {
				phase = "Deleting"
			}
			var fds []string
			for _, fd := range c.Status.FailureDomains {
				if ptr.Deref(fd.ControlPlane, false) {
					fds = append(fds, fd.Name)
				}
			}
			lines["cluster/"+c.Namespace+"/"+c.Name] = fmt.Sprintf("cluster  %s/%s phase=%s controlPlaneInitialized=%t failureDomains=[%s]",
				c.Namespace, c.Name, phase, ptr.Deref(c.Status.Initialization.ControlPlaneInitialized, false), strings.Join(fds, ","))
		}
	}
	p.mu.Lock()
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	stamp := fmt.Sprintf("[%7.1fs] ", time.Since(p.begin).Seconds())
	for _, k := range keys {
		if p.printed[k] != lines[k] {
			fmt.Fprintln(p.out, stamp+lines[k])
			p.printed[k] = lines[k]
		}
	}
	for k, old := range p.printed {
		if _, ok := lines[k]; !ok {
			fmt.Fprintln(p.out, stamp+strings.Replace(old, "  ", "  (deleted) ", 1))
			delete(p.printed, k)
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// conditionSummary is "Ready=True", or "Ready=False (Reason: message)".
func conditionSummary(conds []metav1.Condition, t string) string {
	c := meta.FindStatusCondition(conds, t)
	if c == nil {
		return t + "=Unknown"
	}
	if c.Status == metav1.ConditionTrue {
		return t + "=True"
	}
	return fmt.Sprintf("%s=%s (%s: %s)", t, c.Status, c.Reason, c.Message)
}

// waitFor waits until cond holds, evaluating it again after every refresh.
func (p *progress) waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("not done after %s: %s", timeout, why)
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting: %s", ctx.Err(), why)
		}
	}
}

func (p *progress) rows() []MachineRow { return p.rowsCtx(context.Background()) }

// rowsCtx lists every machine with where it runs, sorted by tenant, role and name.
func (p *progress) rowsCtx(ctx context.Context) []MachineRow {
	machines := &clusterv1.MachineList{}
	if err := p.cache.List(ctx, machines); err != nil {
		return nil
	}
	var rows []MachineRow
	for i := range machines.Items {
		rows = append(rows, p.row(ctx, &machines.Items[i]))
	}
	slices.SortFunc(rows, func(a, b MachineRow) int {
		return strings.Compare(a.Tenant+"\x00"+a.Role+"\x00"+a.Machine, b.Tenant+"\x00"+b.Role+"\x00"+b.Machine)
	})
	return rows
}

func (p *progress) row(ctx context.Context, m *clusterv1.Machine) MachineRow {
	r := MachineRow{Tenant: m.Namespace + "/" + m.Spec.ClusterName, Machine: m.Name, Role: "worker", Infra: m.Spec.FailureDomain, Phase: m.Status.Phase}
	if _, ok := m.Labels[clusterv1.MachineControlPlaneLabel]; ok {
		r.Role = "control-plane"
	}
	if !m.DeletionTimestamp.IsZero() {
		r.Phase = "Deleting"
	}
	if m.Status.NodeRef.IsDefined() {
		r.Node = m.Status.NodeRef.Name
	}
	nm := &infrav1.NestMachine{}
	if err := p.cache.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.InfrastructureRef.Name}, nm); err != nil {
		return r
	}
	if nm.Status.FailureDomain != "" {
		r.Infra = nm.Status.FailureDomain
	}
	for _, a := range nm.Status.Addresses {
		if a.Type == clusterv1.MachineInternalIP && r.IP == "" {
			r.IP = a.Address
		}
	}
	if remote := nm.Status.Remote; remote != nil {
		if pl, ok := p.s.guest.placement(remote.InfraCluster, remote.Namespace, remote.Name); ok {
			r.InfraNode, r.Infra = pl.InfraNode, pl.Infra
			if pl.IP != "" {
				r.IP = pl.IP
			}
		}
	}
	return r
}

// infraReady reports whether the provider sees the InfraCluster Ready.
func (p *progress) infraReady(name string) (bool, string) {
	ic := &infrav1.InfraCluster{}
	if err := p.cache.Get(context.Background(), client.ObjectKey{Name: name}, ic); err != nil {
		return false, fmt.Sprintf("InfraCluster %s: %v", name, err)
	}
	if !meta.IsStatusConditionTrue(ic.Status.Conditions, infrav1.ReadyCondition) {
		return false, "InfraCluster " + name + " " + conditionSummary(ic.Status.Conditions, infrav1.ReadyCondition)
	}
	return true, ""
}

// clusterGone reports whether a Cluster and all its Machines are gone.
func (p *progress) clusterGone(key client.ObjectKey) (bool, string) {
	ctx := context.Background()
	var why []string
	c := &clusterv1.Cluster{}
	if err := p.cache.Get(ctx, key, c); err == nil {
		why = append(why, fmt.Sprintf("Cluster %s still exists (phase %s)", key, c.Status.Phase))
	}
	machines := &clusterv1.MachineList{}
	if err := p.cache.List(ctx, machines, client.InNamespace(key.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: key.Name}); err != nil {
		return false, err.Error()
	}
	if n := len(machines.Items); n > 0 {
		why = append(why, fmt.Sprintf("%d Machines left", n))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// tenantReady reports whether a tenant cluster is fully up, else what it is waiting for.
func (p *progress) tenantReady(key client.ObjectKey) (bool, string) {
	ctx := context.Background()
	c := &clusterv1.Cluster{}
	if err := p.cache.Get(ctx, key, c); err != nil {
		return false, fmt.Sprintf("Cluster %s: %v", key, err)
	}
	var why []string
	if c.Status.Phase != string(clusterv1.ClusterPhaseProvisioned) {
		why = append(why, "Cluster phase "+dash(c.Status.Phase))
	}
	// A control-plane provider reports status.initialization; a control plane of plain Machines
	// (installer ignition) has only CAPI's condition, true once one of them has a Node.
	if !ptr.Deref(c.Status.Initialization.ControlPlaneInitialized, false) && !conditions.IsTrue(c, clusterv1.ClusterControlPlaneInitializedCondition) {
		why = append(why, "control plane not initialized")
	}
	want := 0
	kcp := &controlplanev1.KubeadmControlPlane{}
	if ref := c.Spec.ControlPlaneRef; ref.IsDefined() {
		if err := p.cache.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: ref.Name}, kcp); err != nil {
			why = append(why, fmt.Sprintf("KubeadmControlPlane %s: %v", ref.Name, err))
		} else {
			desired := ptr.Deref(kcp.Spec.Replicas, 1)
			want += int(desired)
			if kcp.Status.ObservedGeneration != kcp.Generation {
				why = append(why, "KubeadmControlPlane has not observed its latest spec")
			}
			if ptr.Deref(kcp.Status.ReadyReplicas, 0) != desired || ptr.Deref(kcp.Status.Replicas, 0) != desired || ptr.Deref(kcp.Status.UpToDateReplicas, 0) != desired {
				why = append(why, fmt.Sprintf("KubeadmControlPlane %d/%d ready, %d replicas, %d up to date", ptr.Deref(kcp.Status.ReadyReplicas, 0), desired, ptr.Deref(kcp.Status.Replicas, 0), ptr.Deref(kcp.Status.UpToDateReplicas, 0)))
			}
		}
	}
	mds := &clusterv1.MachineDeploymentList{}
	if err := p.cache.List(ctx, mds, client.InNamespace(key.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: key.Name}); err != nil {
		return false, err.Error()
	}
	for _, md := range mds.Items {
		desired := ptr.Deref(md.Spec.Replicas, 0)
		want += int(desired)
		if md.Status.ObservedGeneration != md.Generation {
			why = append(why, fmt.Sprintf("MachineDeployment %s has not observed its latest spec", md.Name))
		}
		if ptr.Deref(md.Status.ReadyReplicas, 0) != desired || ptr.Deref(md.Status.Replicas, 0) != desired {
			why = append(why, fmt.Sprintf("MachineDeployment %s %d/%d ready", md.Name, ptr.Deref(md.Status.ReadyReplicas, 0), desired))
		}
	}
	machines := &clusterv1.MachineList{}
	if err := p.cache.List(ctx, machines, client.InNamespace(key.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: key.Name}); err != nil {
		return false, err.Error()
	}
	for _, m := range machines.Items {
		// A Machine no controller owns (the control plane of installer ignition) wants itself.
		if metav1.GetControllerOf(&m) == nil {
			want++
		}
	}
	if len(machines.Items) != want {
		why = append(why, fmt.Sprintf("%d Machines, want %d", len(machines.Items), want))
	}
	for i := range machines.Items {
		m := &machines.Items[i]
		if m.Status.Phase != string(clusterv1.MachinePhaseRunning) || !m.DeletionTimestamp.IsZero() {
			why = append(why, p.machineWhy(ctx, m))
		} else if c := meta.FindStatusCondition(m.Status.Conditions, clusterv1.MachineReadyCondition); c == nil || c.Status != metav1.ConditionTrue {
			msg := "no Ready condition"
			if c != nil {
				msg = fmt.Sprintf("%s: %s", c.Reason, c.Message)
			}
			why = append(why, fmt.Sprintf("Machine %s not Ready (%s)", m.Name, msg))
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// machineWhy says what a Machine that is not running waits for, from its NestMachine.
func (p *progress) machineWhy(ctx context.Context, m *clusterv1.Machine) string {
	s := fmt.Sprintf("Machine %s %s", m.Name, dash(m.Status.Phase))
	if !m.DeletionTimestamp.IsZero() {
		s += " (deleting)"
	}
	nm := &infrav1.NestMachine{}
	if err := p.cache.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.InfrastructureRef.Name}, nm); err == nil {
		if c := meta.FindStatusCondition(nm.Status.Conditions, infrav1.ReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
			s += fmt.Sprintf(" (NestMachine %s: %s)", c.Reason, c.Message)
		}
	}
	return s
}
