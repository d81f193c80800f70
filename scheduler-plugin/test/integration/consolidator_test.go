package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/consolidation"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// kubeVirtCRDs are the provider's test copies of KubeVirt's CRDs that the consolidator reads and
// writes.
var kubeVirtCRDs = []string{
	"../../../test/crd/kubevirt/kubevirt.io_virtualmachineinstances.yaml",
	"../../../test/crd/kubevirt/kubevirt.io_virtualmachineinstancemigrations.yaml",
}

// TestConsolidatorCreatesMigrations runs one consolidation round against a real API server: VMIs
// and their virt-launcher pods as KubeVirt reports them, nodes, a PodDisruptionBudget. It checks
// the migrations the consolidator creates, and that a second round, with them in flight, creates
// none. KubeVirt's side — the target launcher, the VMI moving — is not simulated here.
func TestConsolidatorCreatesMigrations(t *testing.T) {
	ctx := t.Context()
	c, clientset, _ := consolidatorAPIServer(t)
	const suite, ns = "consolidate", "consolidate"
	createNamespace(ctx, t, clientset, ns)
	createNodes(ctx, t, clientset, suite, "cons-1", "cons-2", "cons-3", "cons-4")

	// cons-1 runs three VMs and is the fullest; cons-2, cons-3 and cons-4 run one each. cons-2's
	// VM may live-migrate; cons-3's has evictionStrategy None; cons-4's is in a budget that
	// allows no disruption. Only cons-2 can be emptied, onto cons-1.
	vm := func(name, node string, strategy kubevirtv1.EvictionStrategy, labels map[string]string) {
		t.Helper()
		vmi := createRunningVMI(ctx, t, c, ns, name, node, strategy)
		l := map[string]string{kubevirtv1.CreatedByLabel: string(vmi.UID)}
		for k, v := range labels {
			l[k] = v
		}
		createPod(ctx, t, clientset, vmPod(ns, "virt-launcher-"+name, suite, node, "8", "32Gi", l))
	}
	vm("full-a", "cons-1", kubevirtv1.EvictionStrategyLiveMigrate, nil)
	vm("full-b", "cons-1", kubevirtv1.EvictionStrategyLiveMigrate, nil)
	vm("full-c", "cons-1", kubevirtv1.EvictionStrategyLiveMigrate, nil)
	vm("movable", "cons-2", kubevirtv1.EvictionStrategyLiveMigrate, nil)
	vm("pinned", "cons-3", kubevirtv1.EvictionStrategyNone, nil)
	vm("budgeted", "cons-4", kubevirtv1.EvictionStrategyLiveMigrate, map[string]string{"app": "budgeted"})
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "budgeted"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "budgeted"}},
		},
	}
	if err := c.Create(ctx, pdb); err != nil {
		t.Fatalf("creating the PodDisruptionBudget: %v", err)
	}

	consolidator := &consolidation.Consolidator{Client: c, Options: consolidation.ConsolidatorOptions{
		MaxInFlight:   5,
		SchedulerName: schedulerName,
		Labels: consolidation.Labels{
			ClusterName: nestpacking.DefaultClusterNameLabelKey, Role: nestpacking.DefaultRoleLabelKey, ControlPlaneRole: nestpacking.DefaultControlPlaneRoleValue,
		},
	}}
	plan, err := consolidator.RunOnce(ctx)
	if err != nil {
		t.Fatalf("consolidation round: %v", err)
	}
	want := []consolidation.Migration{{VM: ns + "/movable", From: "cons-2", To: "cons-1"}}
	if len(plan.Migrations) != 1 || plan.Migrations[0] != want[0] {
		t.Fatalf("planned %+v, want %+v", plan.Migrations, want)
	}
	migrations := listMigrations(ctx, t, c, ns)
	if len(migrations) != 1 {
		t.Fatalf("%d migrations created, want 1", len(migrations))
	}
	if m := migrations[0]; m.Spec.VMIName != "movable" || m.Spec.AddedNodeSelector[v1.LabelHostname] != "cons-1" {
		t.Errorf("migration of %q restricted to %v, want movable pinned to cons-1", m.Spec.VMIName, m.Spec.AddedNodeSelector)
	}

	// The migration is in flight (KubeVirt has not picked it up): its VM stays put and the next
	// round creates nothing.
	plan, err = consolidator.RunOnce(ctx)
	if err != nil {
		t.Fatalf("second consolidation round: %v", err)
	}
	if len(plan.Migrations) != 0 {
		t.Errorf("second round planned %+v while the first round's migration is in flight", plan.Migrations)
	}
	if got := len(listMigrations(ctx, t, c, ns)); got != 1 {
		t.Errorf("%d migrations after the second round, want still 1", got)
	}
}

// TestConsolidatorMovesAVMOnlyWhereItsNodeSelectorAllows runs a round in which the node that
// would fit a VM best is one its virt-launcher pod's nodeSelector excludes: the VM migrates to
// the node that matches, where the scheduler can place its target launcher.
func TestConsolidatorMovesAVMOnlyWhereItsNodeSelectorAllows(t *testing.T) {
	ctx := t.Context()
	c, clientset, _ := consolidatorAPIServer(t)
	// The namespace, the suite of the nodes and the scheduler share a name: no other test's VMs
	// count (createVM).
	const p, diskLabel = "nodeselector", "nest.test/disk"
	createNamespace(ctx, t, clientset, p)
	createNodes(ctx, t, clientset, p, p+"-full", p+"-ssd", p+"-picky")
	labelNode(ctx, t, clientset, p+"-ssd", diskLabel, "ssd")
	labelNode(ctx, t, clientset, p+"-picky", diskLabel, "ssd")

	// p-full runs three VMs and p-ssd one, none of which may move; p-picky runs the one VM that
	// may, whose launcher selects the ssd nodes. p-full, the fullest, would fit it best.
	for _, name := range []string{"full-a", "full-b", "full-c"} {
		createVM(ctx, t, c, clientset, p, p, name, p+"-full", kubevirtv1.EvictionStrategyNone)
	}
	createVM(ctx, t, c, clientset, p, p, "ssd", p+"-ssd", kubevirtv1.EvictionStrategyNone)
	vmi := createRunningVMI(ctx, t, c, p, "picky", p+"-picky", kubevirtv1.EvictionStrategyLiveMigrate)
	pod := vmPod(p, "virt-launcher-picky", p, p+"-picky", "8", "32Gi", map[string]string{kubevirtv1.CreatedByLabel: string(vmi.UID)})
	pod.Spec.SchedulerName = p
	pod.Spec.NodeSelector[diskLabel] = "ssd"
	createPod(ctx, t, clientset, pod)

	plan, err := consolidatorFor(c, p).RunOnce(ctx)
	if err != nil {
		t.Fatalf("consolidation round: %v", err)
	}
	if want := (consolidation.Migration{VM: p + "/picky", From: p + "-picky", To: p + "-ssd"}); len(plan.Migrations) != 1 || plan.Migrations[0] != want {
		t.Fatalf("planned %+v, want [%+v]", plan.Migrations, want)
	}
	if got := listMigrations(ctx, t, c, p); len(got) != 1 || got[0].Spec.AddedNodeSelector[v1.LabelHostname] != p+"-ssd" {
		t.Errorf("migrations %+v, want one pinned to %s", got, p+"-ssd")
	}
}

// TestConsolidatorDoesNotReplanAFailedMoveAtOnce runs a round after a consolidation migration
// to the node that fits a VM best failed, as KubeVirt keeps it: the round moves the VM to the
// next best node instead of planning the failed move again.
func TestConsolidatorDoesNotReplanAFailedMoveAtOnce(t *testing.T) {
	ctx := t.Context()
	c, clientset, _ := consolidatorAPIServer(t)
	// The namespace, the suite of the nodes and the scheduler share a name (createVM).
	const p = "failedmove"
	createNamespace(ctx, t, clientset, p)
	createNodes(ctx, t, clientset, p, p+"-full", p+"-other", p+"-src")

	// p-full runs three VMs and p-other one, none of which may move; p-src runs the one VM that
	// may. p-full, the fullest, would fit it best, but the last move there failed.
	for _, name := range []string{"full-a", "full-b", "full-c"} {
		createVM(ctx, t, c, clientset, p, p, name, p+"-full", kubevirtv1.EvictionStrategyNone)
	}
	createVM(ctx, t, c, clientset, p, p, "other", p+"-other", kubevirtv1.EvictionStrategyNone)
	createVM(ctx, t, c, clientset, p, p, "movable", p+"-src", kubevirtv1.EvictionStrategyLiveMigrate)

	failed := consolidation.MigrationFor(consolidation.Migration{VM: p + "/movable", From: p + "-src", To: p + "-full"}, p+"-full")
	if err := c.Create(ctx, failed); err != nil {
		t.Fatalf("creating the migration to %s: %v", p+"-full", err)
	}
	// The CRD has no status subresource: status is written with the object, as KubeVirt's
	// virt-controller would report the target launcher that never started.
	now := metav1.Now()
	failed.Status = kubevirtv1.VirtualMachineInstanceMigrationStatus{
		Phase: kubevirtv1.MigrationFailed,
		PhaseTransitionTimestamps: []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
			{Phase: kubevirtv1.MigrationPending, PhaseTransitionTimestamp: now},
			{Phase: kubevirtv1.MigrationFailed, PhaseTransitionTimestamp: now},
		},
	}
	if err := c.Update(ctx, failed); err != nil {
		t.Fatalf("reporting the migration to %s failed: %v", p+"-full", err)
	}

	// The round that created the failed migration cordoned p-src (consolidatorFor cordons).
	setCordon(ctx, t, clientset, p+"-src", true, map[string]string{consolidation.CordonedByAnnotation: consolidation.CordonedByValue})

	consolidator := consolidatorFor(c, p)
	consolidator.Options.FailedMoveBackoff = time.Hour
	metric := consolidatorMetrics(t)
	plan, err := consolidator.RunOnce(ctx)
	if err != nil {
		t.Fatalf("consolidation round: %v", err)
	}
	if want := (consolidation.Migration{VM: p + "/movable", From: p + "-src", To: p + "-other"}); len(plan.Migrations) != 1 || plan.Migrations[0] != want {
		t.Fatalf("planned %+v, want [%+v]", plan.Migrations, want)
	}
	var pinned []string
	for _, m := range listMigrations(ctx, t, c, p) {
		if m.Status.Phase != kubevirtv1.MigrationFailed {
			pinned = append(pinned, m.Spec.AddedNodeSelector[v1.LabelHostname])
		}
	}
	if len(pinned) != 1 || pinned[0] != p+"-other" {
		t.Errorf("new migrations pinned to %v, want one to %s", pinned, p+"-other")
	}
	// Still cordoned: the consolidator is emptying it.
	expectCordon(ctx, t, c, p+"-src", true, consolidation.CordonedByValue)
	metric.expect(map[string]float64{
		`nest_consolidator_rounds_total{result="planned"}`: 1, "nest_consolidator_migrations_created_total": 1,
		`nest_consolidator_cordon_changes_total{change="cordoned"}`: 0,
	})
	if got := metric.value("nest_consolidator_nodes_running_vms"); got != 3 {
		t.Errorf("nest_consolidator_nodes_running_vms = %v, want 3", got)
	}

	// The move to p-other fails too: no target is left for a while, and the node the consolidator
	// cordoned to empty keeps its VM. It is given back rather than held from new VMs.
	for _, m := range listMigrations(ctx, t, c, p) {
		if m.Status.Phase != kubevirtv1.MigrationFailed {
			m.Status = failed.Status
			if err := c.Update(ctx, &m); err != nil {
				t.Fatalf("reporting the migration to %s failed: %v", p+"-other", err)
			}
		}
	}
	if plan, err := consolidator.RunOnce(ctx); err != nil || len(plan.Migrations) != 0 {
		t.Fatalf("third round: planned %+v (%v), want nothing", plan.Migrations, err)
	}
	expectCordon(ctx, t, c, p+"-src", false, "")
	metric.expect(map[string]float64{
		`nest_consolidator_rounds_total{result="planned"}`: 1, `nest_consolidator_rounds_total{result="idle"}`: 1,
		"nest_consolidator_migrations_created_total": 1, `nest_consolidator_cordon_changes_total{change="released"}`: 1,
	})
}

// metricsSince reads the consolidator's metrics from controller-runtime's registry, which the
// binary serves, and checks how far counters moved since it was made. The tests of this package
// do not run in parallel, so the differences are this test's.
type metricsSince struct {
	t      *testing.T
	before map[string]float64
}

func consolidatorMetrics(t *testing.T) *metricsSince {
	return &metricsSince{t: t, before: gatherConsolidatorMetrics(t)}
}

func (m *metricsSince) value(name string) float64 {
	return gatherConsolidatorMetrics(m.t)[name]
}

// expect checks that each counter (name{label="value"}) moved by exactly its amount.
func (m *metricsSince) expect(moved map[string]float64) {
	m.t.Helper()
	now := gatherConsolidatorMetrics(m.t)
	for name, want := range moved {
		if got := now[name] - m.before[name]; got != want {
			m.t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
}

// gatherConsolidatorMetrics is every nest_consolidator_ metric by name and label, as Prometheus
// would spell the series.
func gatherConsolidatorMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "nest_consolidator_") {
			continue
		}
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// setCordon cordons or uncordons a node and sets annotations on it, as an operator or an earlier
// round of the consolidator would.
func setCordon(ctx context.Context, t *testing.T, clientset kubernetes.Interface, name string, unschedulable bool, annotations map[string]string) {
	t.Helper()
	n, err := clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = unschedulable
	n.Annotations = annotations
	if _, err := clientset.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("cordoning node %s: %v", name, err)
	}
}

// createRunningVMI creates, in namespace, a VMI that KubeVirt reports running on node; its
// virt-launcher pod is the caller's to create.
func createRunningVMI(ctx context.Context, t *testing.T, c client.Client, namespace, name, node string, strategy kubevirtv1.EvictionStrategy) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			EvictionStrategy: ptr.To(strategy),
			Domain:           kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{}},
		},
	}
	if err := c.Create(ctx, vmi); err != nil {
		t.Fatalf("creating VMI %s: %v", name, err)
	}
	// The CRD has no status subresource: status is written with the object, as KubeVirt's
	// virt-handler would report it.
	vmi.Status = kubevirtv1.VirtualMachineInstanceStatus{
		Phase:      kubevirtv1.Running,
		NodeName:   node,
		Conditions: []kubevirtv1.VirtualMachineInstanceCondition{{Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: v1.ConditionTrue}},
	}
	if err := c.Update(ctx, vmi); err != nil {
		t.Fatalf("reporting VMI %s running on %s: %v", name, node, err)
	}
	return vmi
}

// labelNode adds a label to a node, as an operator marks a pool of nodes.
func labelNode(ctx context.Context, t *testing.T, clientset kubernetes.Interface, name, key, value string) {
	t.Helper()
	n, err := clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels[key] = value
	if _, err := clientset.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("labelling node %s %s=%s: %v", name, key, value, err)
	}
}

// consolidatorAPIServer is the suite's API server with KubeVirt's CRDs, a client with the kinds the
// consolidator reads and writes, and a clientset.
func consolidatorAPIServer(t *testing.T) (client.Client, kubernetes.Interface, *rest.Config) {
	t.Helper()
	restConfig := apiServer(t)
	installKubeVirtCRDs(t, restConfig)
	c, err := client.New(restConfig, client.Options{Scheme: consolidatorScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, kubernetes.NewForConfigOrDie(restConfig), restConfig
}

// installKubeVirtCRDs installs kubeVirtCRDs (again, if another test did: they are updated).
func installKubeVirtCRDs(t *testing.T, restConfig *rest.Config) {
	t.Helper()
	paths := make([]string, len(kubeVirtCRDs))
	for i, p := range kubeVirtCRDs {
		paths[i] = filepath.FromSlash(p)
	}
	if _, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing KubeVirt's CRDs: %v", err)
	}
}

// consolidatorScheme has the kinds the consolidator reads and writes.
func consolidatorScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := kubevirtv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

func listMigrations(ctx context.Context, t *testing.T, c client.Client, namespace string) []kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	var list kubevirtv1.VirtualMachineInstanceMigrationList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		t.Fatalf("listing migrations: %v", err)
	}
	return list.Items
}
