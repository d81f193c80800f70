package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	kvsim "github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// The tenant labels nest-scheduler and nest-consolidator recognise control-plane VMs by
// (pkg/nestpacking's defaults, which the provider puts on its VMs).
const (
	clusterNameLabel = "cluster.x-k8s.io/cluster-name"
	roleLabel        = "cluster.x-k8s.io/role"
	controlPlaneRole = "control-plane"
)

const (
	consolidateNamespace = "consolidate"
	consolidateNodes     = 6
	// consolidateMaxInFlight is the consolidator's --max-in-flight.
	consolidateMaxInFlight = 2
	// consolidateDeadline bounds each wait: generous, for a loaded two-core machine.
	consolidateDeadline = 3 * time.Minute
)

var (
	nodeMemory = resource.MustParse("192Gi")
	// workerMemory fits six VMs on a node (with KubeVirt's overhead), not seven.
	workerMemory       = resource.MustParse("30Gi")
	controlPlaneMemory = resource.MustParse("16Gi")
)

// TestConsolidatorEmptiesNodesByLiveMigration runs what consolidation takes end to end: one Infra API
// server, the KubeVirt simulator (live migration included, no stand-in scheduler), the real
// nest-scheduler and nest-consolidator processes. nest-scheduler places VMs on six nodes; deleting
// most workers leaves every node partly used; nest-consolidator then empties the nodes it can. The
// VMs must survive it untouched: same VMI, Running throughout, tenants' control-plane VMs never
// sharing a node, never more migrations under way than --max-in-flight, and a VM that may not
// migrate (evictionStrategy None) left where it is.
//
// With --cordon the nodes it empties must end cordoned too.
func TestConsolidatorEmptiesNodesByLiveMigration(t *testing.T) {
	// The simulator's logs would drown the test's; its errors show in what the test sees.
	ctrl.SetLogger(logr.Discard())
	t.Run("without cordoning", func(t *testing.T) { consolidate(t, false) })
	t.Run("cordoning the nodes it empties", func(t *testing.T) { consolidate(t, true) })
}

// consolidate runs the scenario on an Infra API server of its own, nest-consolidator with --cordon
// when cordon is set.
func consolidate(t *testing.T, cordon bool) {
	root := envtest.RepoRoot()
	schedulerBinary := filepath.Join(root, "bin", "nest-scheduler")
	consolidatorBinary := filepath.Join(root, "bin", "nest-consolidator")
	for _, b := range []string{schedulerBinary, consolidatorBinary} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%s is missing: run 'make -C scheduler-plugin build': %v", b, err)
		}
	}

	env, err := envtest.Start(envtest.Options{CRDs: envtest.Infra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "infra.kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := nodes.Create(ctx, env.Client, nodes.Options{
		Prefix:   "infra-node",
		Count:    consolidateNodes,
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("48"), corev1.ResourceMemory: nodeMemory, corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("500Gi")},
		KubeVirt: true,
	}); err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	sim, err := kvsim.Run(simCtx, env.Config, kvsim.Options{ID: 1, MigrationDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopSim()
		<-sim.Done()
	})
	schedulerLog := &syncBuffer{}
	scheduler, err := startScheduler(schedulerBinary, dir, kubeconfig, schedulerLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := scheduler.stop(); err != nil {
			t.Error(err)
		}
	})
	consolidatorLog := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nest-scheduler:\n%s", schedulerLog.tail(30))
			t.Logf("nest-consolidator:\n%s", consolidatorLog.tail(60))
		}
	})

	w := watchCluster(t, ctx, env.Config)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: consolidateNamespace}}); err != nil {
		t.Fatal(err)
	}
	// The VM that may not migrate goes first, then a tenant's control plane (one per node), then
	// the workers.
	vms := []*kubevirtv1.VirtualMachine{consolidateVM("pinned", workerMemory, kubevirtv1.EvictionStrategyNone)}
	for i := range 3 {
		vm := consolidateVM(fmt.Sprintf("acme-cp-%d", i), controlPlaneMemory, kubevirtv1.EvictionStrategyLiveMigrate)
		tenant := map[string]string{clusterNameLabel: "acme", roleLabel: controlPlaneRole}
		for k, v := range tenant {
			vm.Spec.Template.ObjectMeta.Labels[k] = v
		}
		// The provider's required anti-affinity of a control plane.
		vm.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: tenant}, TopologyKey: corev1.LabelHostname,
			}},
		}}
		vms = append(vms, vm)
	}
	// 31 VMs of 30Gi and three of 16Gi take all six nodes (five would hold 960Gi).
	for i := range 30 {
		vms = append(vms, consolidateVM(fmt.Sprintf("worker-%02d", i), workerMemory, kubevirtv1.EvictionStrategyLiveMigrate))
	}
	for _, vm := range vms {
		if err := env.Client.Create(ctx, vm); err != nil {
			t.Fatal(err)
		}
	}
	w.waitFor(t, "nest-scheduler to place every VM and the VMs to run", func(s *clusterState) (bool, string) {
		running, why := 0, ""
		for _, vmi := range s.vmis {
			if vmi.Status.Phase == kubevirtv1.Running {
				running++
			}
		}
		for _, p := range s.pods {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					why = fmt.Sprintf(" (pod %s: %s)", p.Name, c.Message)
				}
			}
		}
		return running == len(vms), fmt.Sprintf("%d of %d VMIs running%s", running, len(vms), why)
	})

	// Holes everywhere: keep six workers, spread over as many nodes as possible.
	keep, drop := spreadWorkers(w.snapshot(), 6)
	for _, name := range drop {
		vm := &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: consolidateNamespace, Name: name}}
		if err := env.Client.Delete(ctx, vm); err != nil {
			t.Fatal(err)
		}
	}
	w.waitFor(t, "the deleted VMs' VMIs and launcher pods to go", func(s *clusterState) (bool, string) {
		left := 0
		for _, name := range drop {
			if _, ok := s.vmis[name]; ok {
				left++
			}
		}
		for _, p := range s.pods {
			if slices.Contains(drop, p.Labels[kubevirtv1.DeprecatedVirtualMachineNameLabel]) {
				left++
			}
		}
		return left == 0, fmt.Sprintf("%d VMIs and pods of deleted VMs left", left)
	})

	before := w.snapshot()
	survivors := append([]string{"pinned", "acme-cp-0", "acme-cp-1", "acme-cp-2"}, keep...)
	pinnedNode := before.vmis["pinned"].Status.NodeName
	want := nodesNeeded(before, survivors)
	used := before.usedNodes()
	t.Logf("Before consolidation: %d nodes used %v; the %d surviving VMs need %d", len(used), used, len(survivors), want)
	if len(used) <= want {
		t.Fatalf("nothing to consolidate: %d nodes used, %d needed; the scenario must leave holes", len(used), want)
	}
	w.guard(survivors, "pinned")

	consolidator, err := startConsolidator(kubeconfig, ConsolidatorOptions{
		Binary: consolidatorBinary, Interval: 2 * time.Second, MaxInFlight: consolidateMaxInFlight, Cordon: cordon,
	}, consolidatorLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := consolidator.stop(); err != nil {
			t.Error(err)
		}
	})
	w.waitFor(t, "nest-consolidator to empty the nodes it can", func(s *clusterState) (bool, string) {
		select {
		case <-consolidator.Exited():
			t.Fatalf("nest-consolidator exited: %v", consolidator.err)
		default:
		}
		used := s.usedNodes()
		unfinished := s.unfinishedMigrations()
		return len(used) == want && unfinished == 0,
			fmt.Sprintf("%d nodes used %v (want %d), %d migrations unfinished, %d succeeded", len(used), used, want, unfinished, s.succeededMigrations())
	})

	after := w.snapshot()
	if v := after.violations; len(v) > 0 {
		t.Errorf("%d violations while consolidating:\n%s", len(v), strings.Join(v, "\n"))
	}
	if after.maxInFlight > consolidateMaxInFlight {
		t.Errorf("%d migrations were unfinished at once; --max-in-flight is %d", after.maxInFlight, consolidateMaxInFlight)
	}
	if after.succeededMigrations() == 0 {
		t.Error("no migration succeeded")
	}
	if got := after.vmis["pinned"].Status.NodeName; got != pinnedNode {
		t.Errorf("the VM with evictionStrategy None moved from %s to %s", pinnedNode, got)
	}
	for _, name := range survivors {
		vmi := after.vmis[name]
		pod := after.currentPod(vmi)
		if pod == nil || pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName != vmi.Status.NodeName {
			t.Errorf("VMI %s on %s has no running launcher pod there (%v)", name, vmi.Status.NodeName, pod != nil)
		}
	}
	if cordon {
		for _, name := range used {
			if slices.Contains(after.usedNodes(), name) {
				continue
			}
			node := &corev1.Node{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
				t.Fatal(err)
			}
			if !node.Spec.Unschedulable {
				t.Errorf("node %s was emptied but not cordoned", name)
			}
		}
	}
	t.Logf("After consolidation: %d nodes used %v, %d migrations succeeded, at most %d at once",
		len(after.usedNodes()), after.usedNodes(), after.succeededMigrations(), after.maxInFlight)
}

// consolidateVM is a VM as the provider renders one for nest-scheduler: a container disk (which
// migrates), masquerade on the pod network, the given eviction strategy.
func consolidateVM(name string, memory resource.Quantity, eviction kubevirtv1.EvictionStrategy) *kubevirtv1.VirtualMachine {
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consolidateNamespace},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					SchedulerName: SchedulerName,
					Domain: kubevirtv1.DomainSpec{
						CPU:       &kubevirtv1.CPU{Cores: 4},
						Memory:    &kubevirtv1.Memory{Guest: ptr.To(memory)},
						Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: memory}},
						Devices: kubevirtv1.Devices{
							Disks: []kubevirtv1.Disk{{Name: "root", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}}},
							Interfaces: []kubevirtv1.Interface{{
								Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}},
							}},
						},
					},
					Networks:         []kubevirtv1.Network{*kubevirtv1.DefaultPodNetwork()},
					Volumes:          []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/containerdisks/ubuntu:24.04"}}}},
					EvictionStrategy: ptr.To(eviction),
				},
			},
		},
	}
}

// spreadWorkers picks n workers to keep, one node after the other so that as many nodes as possible
// keep some, and returns them and the workers to delete.
func spreadWorkers(s *clusterState, n int) (keep, drop []string) {
	byNode := map[string][]string{}
	for name, vmi := range s.vmis {
		if strings.HasPrefix(name, "worker-") {
			byNode[vmi.Status.NodeName] = append(byNode[vmi.Status.NodeName], name)
		}
	}
	var nodeNames []string
	for node, names := range byNode {
		sort.Strings(names)
		nodeNames = append(nodeNames, node)
	}
	sort.Strings(nodeNames)
	for round := 0; len(keep) < n; round++ {
		took := false
		for _, node := range nodeNames {
			if round < len(byNode[node]) && len(keep) < n {
				keep = append(keep, byNode[node][round])
				took = true
			}
		}
		if !took {
			break
		}
	}
	for _, names := range byNode {
		for _, name := range names {
			if !slices.Contains(keep, name) {
				drop = append(drop, name)
			}
		}
	}
	sort.Strings(drop)
	return keep, drop
}

// nodesNeeded is what packing the survivors from scratch takes: enough nodes for their launchers'
// memory, and one per control-plane VM of a tenant. Both are lower bounds; the scenario leaves
// room to meet them (three nodes of 192Gi hold the 261Gi of survivors, one control-plane VM each,
// whichever of them runs the pinned VM), so the consolidator must reach it.
func nodesNeeded(s *clusterState, survivors []string) int {
	var memory int64
	controlPlanes := map[string]int{}
	for _, name := range survivors {
		pod := s.currentPod(s.vmis[name])
		if pod == nil {
			continue
		}
		for _, c := range pod.Spec.Containers {
			memory += c.Resources.Requests.Memory().Value()
		}
		if pod.Labels[roleLabel] == controlPlaneRole {
			controlPlanes[pod.Labels[clusterNameLabel]]++
		}
	}
	need := int((memory + nodeMemory.Value() - 1) / nodeMemory.Value())
	for _, n := range controlPlanes {
		need = max(need, n)
	}
	return need
}

// clusterState is what the watches saw last, and what they found wrong on the way.
type clusterState struct {
	vmis       map[string]*kubevirtv1.VirtualMachineInstance
	pods       map[string]*corev1.Pod
	migrations map[string]*kubevirtv1.VirtualMachineInstanceMigration

	// guarded are the VMIs (name → UID) that must stay Running, pinned the one that must not move.
	guarded map[string]types.UID
	pinned  string
	// violations are the broken rules, as they happened; maxInFlight is the most migrations that
	// were unfinished at once.
	violations  []string
	maxInFlight int
}

// usedNodes are the nodes that run launcher pods (a migration's source and target both count).
func (s *clusterState) usedNodes() []string {
	set := map[string]bool{}
	for _, p := range s.pods {
		if p.Spec.NodeName != "" && !podFinished(p) {
			set[p.Spec.NodeName] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *clusterState) unfinishedMigrations() int {
	n := 0
	for _, m := range s.migrations {
		if !m.IsFinal() {
			n++
		}
	}
	return n
}

func (s *clusterState) succeededMigrations() int {
	n := 0
	for _, m := range s.migrations {
		if m.Status.Phase == kubevirtv1.MigrationSucceeded {
			n++
		}
	}
	return n
}

// currentPod is the launcher pod vmi runs in, or nil.
func (s *clusterState) currentPod(vmi *kubevirtv1.VirtualMachineInstance) *corev1.Pod {
	if vmi == nil {
		return nil
	}
	return s.pods[kvsim.CurrentLauncherPodName(vmi)]
}

func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// check records what an event broke.
func (s *clusterState) check(event string) {
	for name, uid := range s.guarded {
		vmi, ok := s.vmis[name]
		switch {
		case !ok:
			s.violations = append(s.violations, fmt.Sprintf("%s: VMI %s is gone", event, name))
		case vmi.UID != uid:
			s.violations = append(s.violations, fmt.Sprintf("%s: VMI %s was replaced (UID %s, was %s)", event, name, vmi.UID, uid))
		case vmi.Status.Phase != kubevirtv1.Running:
			s.violations = append(s.violations, fmt.Sprintf("%s: VMI %s is %s", event, name, vmi.Status.Phase))
		}
	}
	controlPlanes := map[string]int{}
	for _, p := range s.pods {
		if p.Spec.NodeName != "" && !podFinished(p) && p.Labels[roleLabel] == controlPlaneRole {
			key := p.Spec.NodeName + " runs control-plane VMs of " + p.Labels[clusterNameLabel]
			if controlPlanes[key]++; controlPlanes[key] == 2 {
				s.violations = append(s.violations, fmt.Sprintf("%s: node %s", event, key))
			}
		}
	}
	for _, m := range s.migrations {
		if m.Spec.VMIName == s.pinned && s.pinned != "" {
			s.violations = append(s.violations, fmt.Sprintf("%s: migration %s moves VM %s, whose evictionStrategy is None", event, m.Name, s.pinned))
		}
	}
	s.maxInFlight = max(s.maxInFlight, s.unfinishedMigrations())
}

// clusterWatch keeps a clusterState from watches of the test namespace's VMIs, launcher pods and
// migrations, checking the rules on every event, and wakes waiters when it changes.
type clusterWatch struct {
	mu      sync.Mutex
	state   clusterState
	changed chan struct{}
}

func watchCluster(t *testing.T, ctx context.Context, cfg *rest.Config) *clusterWatch {
	t.Helper()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w := &clusterWatch{
		state: clusterState{
			vmis: map[string]*kubevirtv1.VirtualMachineInstance{}, pods: map[string]*corev1.Pod{},
			migrations: map[string]*kubevirtv1.VirtualMachineInstanceMigration{},
		},
		changed: make(chan struct{}, 1),
	}
	for _, list := range []client.ObjectList{
		&kubevirtv1.VirtualMachineInstanceList{}, &corev1.PodList{}, &kubevirtv1.VirtualMachineInstanceMigrationList{},
	} {
		wi, err := c.Watch(ctx, list, client.InNamespace(consolidateNamespace))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(wi.Stop)
		go func() {
			for ev := range wi.ResultChan() {
				w.apply(ev)
			}
			if ctx.Err() == nil {
				w.mu.Lock()
				w.state.violations = append(w.state.violations, fmt.Sprintf("the watch of %T ended early", list))
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *clusterWatch) apply(ev watch.Event) {
	obj, ok := ev.Object.(client.Object)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.state
	name := obj.GetName()
	deleted := ev.Type == watch.Deleted
	switch o := obj.(type) {
	case *kubevirtv1.VirtualMachineInstance:
		if deleted {
			delete(s.vmis, name)
		} else {
			s.vmis[name] = o
		}
	case *corev1.Pod:
		if deleted {
			delete(s.pods, name)
		} else {
			s.pods[name] = o
		}
	case *kubevirtv1.VirtualMachineInstanceMigration:
		if deleted {
			delete(s.migrations, name)
		} else {
			s.migrations[name] = o
		}
	default:
		return
	}
	s.check(fmt.Sprintf("%s %T %s", ev.Type, obj, name))
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// guard starts checking that the VMIs named stay Running with their current UIDs, and that no
// migration moves pinned.
func (w *clusterWatch) guard(names []string, pinned string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state.guarded = map[string]types.UID{}
	for _, n := range names {
		if vmi, ok := w.state.vmis[n]; ok {
			w.state.guarded[n] = vmi.UID
		}
	}
	w.state.pinned = pinned
	w.state.check("start of consolidation")
}

// snapshot is a copy of the state (the objects are shared: read only).
func (w *clusterWatch) snapshot() *clusterState {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.state
	s.vmis = maps.Clone(w.state.vmis)
	s.pods = maps.Clone(w.state.pods)
	s.migrations = maps.Clone(w.state.migrations)
	s.violations = slices.Clone(w.state.violations)
	return &s
}

// waitFor waits, event by event, until done holds of the watched state, and fails the test after
// consolidateDeadline with done's last word.
func (w *clusterWatch) waitFor(t *testing.T, what string, done func(*clusterState) (bool, string)) {
	t.Helper()
	deadline := time.NewTimer(consolidateDeadline)
	defer deadline.Stop()
	for {
		ok, msg := done(w.snapshot())
		if ok {
			t.Logf("Done waiting for %s: %s", what, msg)
			return
		}
		select {
		case <-w.changed:
		case <-deadline.C:
			t.Fatalf("waited %s for %s: %s", consolidateDeadline, what, msg)
		}
	}
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail is the last n lines written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// TestConsolidatorArgsAreFlagsOfTheBinary keeps the sandbox's command line of nest-consolidator in
// step with the binary: an unknown flag would stop it at start.
func TestConsolidatorArgsAreFlagsOfTheBinary(t *testing.T) {
	o := ConsolidatorOptions{Cordon: true}.withDefaults()
	if _, err := os.Stat(o.Binary); err != nil {
		t.Fatalf("%s is missing: run 'make -C scheduler-plugin build': %v", o.Binary, err)
	}
	// The flag package prints the usage on stderr and exits 0 for --help.
	out, err := exec.Command(o.Binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", o.Binary, err, out)
	}
	for _, arg := range consolidatorArgs("/dev/null", o) {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !bytes.Contains(out, []byte("  -"+name+" ")) && !bytes.Contains(out, []byte("  -"+name+"\n")) {
			t.Errorf("%s has no flag --%s", o.Binary, name)
		}
	}
}
