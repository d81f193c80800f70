package kubevirt_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
)

// runningVM creates a VM on selector's nodes and waits for its VMI to run.
func runningVM(t *testing.T, ctx context.Context, vm *kubevirtv1.VirtualMachine) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	g := NewWithT(t)
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	var vmi *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		vmi = getVMI(ctx, vm.Namespace, vm.Name)(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return vmi
}

func migrationTo(ns, vmi, hostname string) *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: vmi + "-migration-"},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmi},
	}
	if hostname != "" {
		m.Spec.AddedNodeSelector = map[string]string{corev1.LabelHostname: hostname}
	}
	return m
}

func getMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) func(Gomega) *kubevirtv1.VirtualMachineInstanceMigration {
	return func(g Gomega) *kubevirtv1.VirtualMachineInstanceMigration {
		got := &kubevirtv1.VirtualMachineInstanceMigration{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(m), got)).To(Succeed())
		return got
	}
}

func phasesOf(m *kubevirtv1.VirtualMachineInstanceMigration) []string {
	var out []string
	for _, t := range m.Status.PhaseTransitionTimestamps {
		out = append(out, string(t.Phase))
	}
	return out
}

// otherNode is the first of nodes that is not name.
func otherNode(nodes []*corev1.Node, not ...string) string {
	for _, n := range nodes {
		skip := false
		for _, x := range not {
			skip = skip || n.Name == x
		}
		if !skip {
			return n.Name
		}
	}
	return ""
}

// vmiRunState records a VMI's UID and phase on every change.
func vmiRunState(o client.Object) string {
	vmi := o.(*kubevirtv1.VirtualMachineInstance)
	return string(vmi.UID) + "/" + string(vmi.Status.Phase)
}

func TestLiveMigrationMovesTheVMIToTheNamedNodeWithoutRestartingIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, MigrationDelay: 300 * time.Millisecond})
	infra := infraNodes(t, 3, nil)
	vmi := runningVM(t, ctx, newVM(ns, "web", selectorOf(infra)))
	source := vmi.Status.NodeName
	sourcePod := launcherPods(ctx, g, ns, vmi)[0]
	// Not the node first fit would pick: the addedNodeSelector decides.
	target := infra[2].Name
	if target == source {
		target = infra[1].Name
	}
	states := record(t, ctx, &kubevirtv1.VirtualMachineInstanceList{}, ns, vmiRunState)
	printable := record(t, ctx, &kubevirtv1.VirtualMachineList{}, ns, func(o client.Object) string {
		return string(o.(*kubevirtv1.VirtualMachine).Status.PrintableStatus)
	})

	m := migrationTo(ns, vmi.Name, target)
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, m)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationSucceeded))
		g.Expect(inOrder(phasesOf(got), "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded")).
			To(BeTrue(), "phases %v", phasesOf(got))
		g.Expect(got.Finalizers).To(BeEmpty(), "a finished migration keeps no finalizer")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	moved := getVMI(ctx, ns, vmi.Name)(g)
	g.Expect(moved.UID).To(Equal(vmi.UID))
	g.Expect(moved.Status.Phase).To(Equal(kubevirtv1.Running))
	g.Expect(moved.Status.NodeName).To(Equal(target))
	g.Expect(moved.Labels).To(HaveKeyWithValue(kubevirtv1.NodeNameLabel, target))
	g.Expect(moved.Labels).NotTo(HaveKey(kubevirtv1.MigrationTargetNodeNameLabel))
	st := moved.Status.MigrationState
	g.Expect(st).NotTo(BeNil())
	g.Expect(st.Completed).To(BeTrue())
	g.Expect(st.Failed).To(BeFalse())
	g.Expect(st.MigrationUID).To(Equal(getMigration(ctx, m)(g).UID))
	g.Expect(st.SourceNode).To(Equal(source))
	g.Expect(st.TargetNode).To(Equal(target))
	g.Expect(st.SourcePod).To(Equal(sourcePod.Name))
	g.Expect(st.StartTimestamp).NotTo(BeNil())
	g.Expect(st.EndTimestamp).NotTo(BeNil())

	pods := map[string]corev1.Pod{}
	for _, p := range launcherPods(ctx, g, ns, moved) {
		pods[p.Name] = p
	}
	g.Expect(pods).To(HaveLen(2))
	g.Expect(pods[sourcePod.Name].Status.Phase).To(Equal(corev1.PodSucceeded), "the source virt-launcher exits")
	targetPod := pods[st.TargetPod]
	g.Expect(targetPod.Status.Phase).To(Equal(corev1.PodRunning))
	g.Expect(targetPod.Spec.NodeName).To(Equal(target))
	g.Expect(targetPod.Labels).To(HaveKeyWithValue(kubevirtv1.MigrationJobLabel, string(st.MigrationUID)))
	g.Expect(targetPod.Spec.NodeSelector).To(HaveKeyWithValue(corev1.LabelHostname, target))
	g.Expect(metav1.IsControlledBy(&targetPod, moved)).To(BeTrue())
	g.Expect(moved.Status.ActivePods).To(Equal(map[types.UID]string{targetPod.UID: target}))
	g.Expect(moved.Status.Interfaces[0].IP).To(Equal(targetPod.Status.PodIP), "the pod network address is the target pod's")
	g.Expect(kubevirt.CurrentLauncherPodName(moved)).To(Equal(targetPod.Name))

	// Running from start to end, one UID.
	g.Consistently(func(g Gomega) {
		g.Expect(getVMI(ctx, ns, vmi.Name)(g).Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	for _, v := range states.values(vmi.Name) {
		g.Expect(v).To(Equal(string(vmi.UID)+"/Running"), "the VMI never left Running: %v", states.values(vmi.Name))
	}
	g.Eventually(func(g Gomega) {
		g.Expect(getVM(ctx, ns, "web")(g).Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusRunning))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(inOrder(printable.values("web"), "Running", "Migrating", "Running")).To(BeTrue(), "printableStatus %v", printable.values("web"))
}

func TestMigrationOfANonMigratableVMIFails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 2, nil)
	vm := newVM(ns, "bridged", selectorOf(infra))
	vm.Spec.Template.Spec.Domain.Devices.Interfaces[0].InterfaceBindingMethod = kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}
	vmi := runningVM(t, ctx, vm)
	g.Expect(vmi.IsMigratable()).To(BeFalse())

	m := migrationTo(ns, vmi.Name, "")
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, m)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationFailed))
		g.Expect(got.Status.MigrationState).NotTo(BeNil())
		g.Expect(got.Status.MigrationState.FailureReason).To(ContainSubstring("not live migratable"))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	after := getVMI(ctx, ns, vmi.Name)(g)
	g.Expect(after.Status.NodeName).To(Equal(vmi.Status.NodeName))
	g.Expect(after.Status.Phase).To(Equal(kubevirtv1.Running))
	g.Expect(launcherPods(ctx, g, ns, after)).To(HaveLen(1), "no target pod")

	// A migration of a VMI that does not exist fails too.
	ghost := migrationTo(ns, "ghost", "")
	g.Expect(env.Client.Create(ctx, ghost)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getMigration(ctx, ghost)(g).Status.Phase).To(Equal(kubevirtv1.MigrationFailed))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestUnschedulableTargetFailsTheMigrationAfterThePendingTimeout(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, MigrationPendingTimeout: 2 * time.Second})
	infra := infraNodes(t, 1, nil)
	vmi := runningVM(t, ctx, newVM(ns, "alone", selectorOf(infra)))

	// The only node runs the VM: the target's anti-affinity keeps it off.
	m := migrationTo(ns, vmi.Name, "")
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	var targetPod string
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, m)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationScheduling))
		g.Expect(got.Status.MigrationState).NotTo(BeNil())
		targetPod = got.Status.MigrationState.TargetPod
		pod := &corev1.Pod{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: targetPod}, pod)).To(Succeed())
		c := podCondition(pod, corev1.PodScheduled)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(corev1.PodReasonUnschedulable))
		g.Expect(c.Message).To(ContainSubstring("didn't match pod anti-affinity rules"))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, m)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationFailed))
		g.Expect(got.Status.MigrationState.FailureReason).To(ContainSubstring("unschedulable"))
		var scheduling, failed time.Time
		for _, tr := range got.Status.PhaseTransitionTimestamps {
			switch tr.Phase {
			case kubevirtv1.MigrationScheduling:
				scheduling = tr.PhaseTransitionTimestamp.Time
			case kubevirtv1.MigrationFailed:
				failed = tr.PhaseTransitionTimestamp.Time
			}
		}
		// Timestamps have second precision: 2s of timeout is at least 1s between them.
		g.Expect(failed.Sub(scheduling)).To(BeNumerically(">=", time.Second))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Eventually(func() bool {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: targetPod}, &corev1.Pod{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue(), "the target pod goes")
	after := getVMI(ctx, ns, vmi.Name)(g)
	g.Expect(after.UID).To(Equal(vmi.UID))
	g.Expect(after.Status.Phase).To(Equal(kubevirtv1.Running))
	g.Expect(after.Status.NodeName).To(Equal(vmi.Status.NodeName))
	g.Expect(after.Status.MigrationState.Failed).To(BeTrue())
	g.Expect(after.Labels).NotTo(HaveKey(kubevirtv1.MigrationTargetNodeNameLabel))
}

func TestAbortedOrFailedMigrationsRemoveTheirTargetPod(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, MigrationDelay: time.Hour})
	infra := infraNodes(t, 2, nil)
	vmi := runningVM(t, ctx, newVM(ns, "stay", selectorOf(infra)))
	source := vmi.Status.NodeName

	m := migrationTo(ns, vmi.Name, otherNode(infra, source))
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	var targetPod string
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, m)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationRunning))
		targetPod = got.Status.MigrationState.TargetPod
		vmi := getVMI(ctx, ns, vmi.Name)(g)
		g.Expect(vmi.Labels).To(HaveKeyWithValue(kubevirtv1.MigrationTargetNodeNameLabel, otherNode(infra, source)))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	g.Expect(env.Client.Delete(ctx, getMigration(ctx, m)(g))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(m), &kubevirtv1.VirtualMachineInstanceMigration{})) &&
			apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: targetPod}, &corev1.Pod{}))
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue(), "the migration and its target pod go")
	after := getVMI(ctx, ns, vmi.Name)(g)
	g.Expect(after.Status.Phase).To(Equal(kubevirtv1.Running))
	g.Expect(after.Status.NodeName).To(Equal(source))
	g.Expect(after.Status.MigrationState.AbortStatus).To(Equal(kubevirtv1.MigrationAbortSucceeded))
	g.Expect(after.Status.MigrationState.Failed).To(BeTrue())
	pods := launcherPods(ctx, g, ns, after)
	g.Expect(pods).To(HaveLen(1))
	g.Expect(pods[0].Status.Phase).To(Equal(corev1.PodRunning))

	failing := migrationTo(ns, vmi.Name, "")
	failing.Annotations = map[string]string{kubevirt.FailAnnotation: kubevirt.FailMigration}
	g.Expect(env.Client.Create(ctx, failing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, failing)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationFailed))
		g.Expect(phasesOf(got)).To(ContainElement("Running"), "the injected failure strikes a running migration")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(launcherPods(ctx, g, ns, after)).To(HaveLen(1), "the target pod goes")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(getVMI(ctx, ns, vmi.Name)(g).Status.NodeName).To(Equal(source))

	// Deleting the VM (and so the VMI) fails the migration under way.
	last := migrationTo(ns, vmi.Name, "")
	g.Expect(env.Client.Create(ctx, last)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getMigration(ctx, last)(g).Status.Phase).To(Equal(kubevirtv1.MigrationRunning))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(env.Client.Delete(ctx, getVM(ctx, ns, "stay")(g))).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMigration(ctx, last)(g)
		g.Expect(got.Status.Phase).To(Equal(kubevirtv1.MigrationFailed))
		g.Expect(got.Status.MigrationState.FailureReason).To(ContainSubstring("shutting down"))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestASecondMigrationOfTheSameVMIWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, MigrationDelay: time.Second})
	infra := infraNodes(t, 3, nil)
	vmi := runningVM(t, ctx, newVM(ns, "twice", selectorOf(infra)))
	first, second := otherNode(infra, vmi.Status.NodeName), ""
	second = otherNode(infra, vmi.Status.NodeName, first)

	// Every migration phase change, in the order the API server sent them.
	var mu sync.Mutex
	var log []string
	record(t, ctx, &kubevirtv1.VirtualMachineInstanceMigrationList{}, ns, func(o client.Object) string {
		m := o.(*kubevirtv1.VirtualMachineInstanceMigration)
		mu.Lock()
		log = append(log, fmt.Sprintf("%s:%s", m.Name, m.Status.Phase))
		mu.Unlock()
		return ""
	})

	m1 := migrationTo(ns, vmi.Name, first)
	m1.GenerateName, m1.Name = "", "first"
	m2 := migrationTo(ns, vmi.Name, second)
	m2.GenerateName, m2.Name = "", "second"
	g.Expect(env.Client.Create(ctx, m1)).To(Succeed())
	g.Expect(env.Client.Create(ctx, m2)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(getMigration(ctx, m1)(g).Status.Phase).To(Equal(kubevirtv1.MigrationSucceeded))
		g.Expect(getMigration(ctx, m2)(g).Status.Phase).To(Equal(kubevirtv1.MigrationSucceeded))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	after := getVMI(ctx, ns, vmi.Name)(g)
	g.Expect(after.UID).To(Equal(vmi.UID))
	g.Expect(after.Status.NodeName).To(Equal(second))

	mu.Lock()
	defer mu.Unlock()
	firstDone, secondStarted := -1, -1
	for i, e := range log {
		if e == "first:Succeeded" && firstDone < 0 {
			firstDone = i
		}
		if e == "second:Scheduling" && secondStarted < 0 {
			secondStarted = i
		}
	}
	g.Expect(firstDone).To(BeNumerically(">=", 0))
	g.Expect(secondStarted).To(BeNumerically(">", firstDone), "the second migration waits Pending: %v", log)
	g.Expect(log).To(ContainElement("second:Pending"))
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
