package consolidation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// cordonedNode is a Ready, cordoned node whose cordon mark names by ("" for no mark).
func cordonedNode(name, by string) corev1.Node {
	n := readyNode(name)
	n.Spec.Unschedulable = true
	if by != "" {
		n.Annotations = map[string]string{CordonedByAnnotation: by}
	}
	return n
}

// markedNode carries the consolidator's mark but is schedulable: someone uncordoned it.
func markedNode(name string) corev1.Node {
	return markedBy(name, CordonedByValue)
}

// markedBy is a schedulable node whose cordon mark names by.
func markedBy(name, by string) corev1.Node {
	n := readyNode(name)
	n.Annotations = map[string]string{CordonedByAnnotation: by}
	return n
}

func TestCordonDecisions(t *testing.T) {
	nodes := []corev1.Node{
		readyNode("free"), readyNode("emptied"),
		cordonedNode("ours", CordonedByValue), cordonedNode("operators", ""), cordonedNode("other-tool", "drain-bot"),
		markedNode("uncordoned-by-someone"), markedBy("uncordoned-other-tool", "drain-bot"),
	}
	tests := []struct {
		name string
		got  func() []string
		want []string
	}{
		{
			name: "the nodes a plan empties are cordoned unless someone already has",
			got: func() []string {
				return NodesToCordon(nodes, []string{"emptied", "ours", "operators", "other-tool", "uncordoned-by-someone", "uncordoned-other-tool"})
			},
			want: []string{"emptied", "uncordoned-by-someone", "uncordoned-other-tool"},
		},
		{
			name: "nodes no plan empties are not cordoned",
			got:  func() []string { return NodesToCordon(nodes, nil) },
		},
		{
			name: "only the nodes the consolidator cordoned are given back",
			got:  func() []string { return NodesToUncordon(nodes) },
			want: []string{"ours"},
		},
		{
			name: "the consolidator's mark on a node someone uncordoned is stale; another's is not its to remove",
			got:  func() []string { return StaleCordonMarks(nodes) },
			want: []string{"uncordoned-by-someone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got()); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCordonsToRelease(t *testing.T) {
	nodes := []corev1.Node{
		cordonedNode("emptied-earlier", CordonedByValue), cordonedNode("failed", CordonedByValue),
		cordonedNode("draining", CordonedByValue), cordonedNode("planned-again", CordonedByValue),
		cordonedNode("operators", ""), readyNode("free"),
	}
	s := State{
		Nodes: []Node{{Name: "emptied-earlier"}, {Name: "failed"}, {Name: "draining", Draining: true}, {Name: "planned-again"}, {Name: "operators"}, {Name: "free"}},
		VMs: []VM{
			{Name: "ns/a", Node: "failed"}, {Name: "ns/b", Node: "draining"}, {Name: "ns/c", Node: "planned-again"},
			{Name: "ns/d", Node: "operators"}, {Name: "ns/e", Node: "free"},
		},
	}
	got := CordonsToRelease(nodes, s, []string{"planned-again"})
	// The node it emptied stays cordoned, as do the one its migrations are emptying, the one this
	// round empties again, and the operator's.
	if diff := cmp.Diff([]string{"failed"}, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestVMsWaitingForRoom(t *testing.T) {
	// pending is a virt-launcher pod of nest-scheduler that is not bound, with PodScheduled as
	// given (nil: no condition yet).
	pending := func(name string, scheduled *corev1.PodCondition) corev1.Pod {
		p := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: name, Labels: map[string]string{kubevirtv1.AppLabel: "virt-launcher"}},
			Spec:       corev1.PodSpec{SchedulerName: "nest-scheduler"},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		}
		if scheduled != nil {
			p.Status.Conditions = []corev1.PodCondition{*scheduled}
		}
		return p
	}
	unschedulableCond := &corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}
	waiting := pending("waiting", unschedulableCond)

	otherScheduler := pending("other-scheduler", unschedulableCond)
	otherScheduler.Spec.SchedulerName = "default-scheduler"
	notAVM := pending("not-a-vm", unschedulableCond)
	notAVM.Labels = nil
	bound := pending("bound", unschedulableCond)
	bound.Spec.NodeName = "n1"
	deleted := pending("deleted", unschedulableCond)
	deleted.DeletionTimestamp = &metav1.Time{}
	gated := pending("gated", &corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated})
	fresh := pending("fresh", nil)

	ourMigration := kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "m1", UID: types.UID("ours"), Labels: map[string]string{MigrationLabel: "n1"}}}
	theirMigration := kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "m2", UID: types.UID("theirs")}}
	ourTarget := pending("our-target", unschedulableCond)
	ourTarget.Labels[kubevirtv1.MigrationJobLabel] = "ours"
	theirTarget := pending("their-target", unschedulableCond)
	theirTarget.Labels[kubevirtv1.MigrationJobLabel] = "theirs"

	tests := []struct {
		name string
		in   Observed
		want []string
	}{
		{
			name: "a VM of the scheduler that it could not place waits for room",
			in:   Observed{SchedulerName: "nest-scheduler", Pods: []corev1.Pod{waiting}},
			want: []string{"vms/waiting"},
		},
		{
			name: "other schedulers' pods, pods that are not VMs, bound, deleted, gated and not yet tried pods do not",
			in:   Observed{SchedulerName: "nest-scheduler", Pods: []corev1.Pod{otherScheduler, notAVM, bound, deleted, gated, fresh}},
		},
		{
			name: "the target of the consolidator's own migration does not; that of someone else's (a drain) does",
			in: Observed{
				SchedulerName: "nest-scheduler", Pods: []corev1.Pod{ourTarget, theirTarget},
				Migrations: []kubevirtv1.VirtualMachineInstanceMigration{ourMigration, theirMigration},
			},
			want: []string{"vms/their-target"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, VMsWaitingForRoom(tt.in)); diff != "" {
				t.Errorf("VMsWaitingForRoom() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestANodeTheConsolidatorCordonedIsStillEmptied follows a node through the planner after the
// consolidator cordoned it and a migration failed: it still loses its VMs, receives none, and is
// not cordoned again.
func TestANodeTheConsolidatorCordonedIsStillEmptied(t *testing.T) {
	vmis := []kubevirtv1.VirtualMachineInstance{running("a1", "full"), running("a2", "full"), running("left", "ours"), running("b1", "emptiest")}
	pods := make([]corev1.Pod, len(vmis))
	for i, vmi := range vmis {
		pods[i] = launcher(vmi, nil)
	}
	o := Observed{Nodes: []corev1.Node{readyNode("full"), cordonedNode("ours", CordonedByValue), readyNode("emptiest")}, VMIs: vmis, Pods: pods}
	for i := range o.Nodes {
		o.Nodes[i].Status.Allocatable[corev1.ResourcePods] = resource.MustParse("110")
	}
	plan := PlanMigrations(StateOf(o, testLabels), Options{MaxInFlight: 5})
	// ours and emptiest run one VM each; ours, cordoned, cannot take emptiest's VM: both go to
	// full.
	want := Plan{
		Migrations: []Migration{{VM: "vms/left", From: "ours", To: "full"}, {VM: "vms/b1", From: "emptiest", To: "full"}},
		Emptied:    []string{"ours", "emptiest"},
	}
	if diff := cmp.Diff(want, plan); diff != "" {
		t.Fatalf("PlanMigrations() mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"emptiest"}, NodesToCordon(o.Nodes, plan.Emptied)); diff != "" {
		t.Errorf("NodesToCordon() mismatch (-want +got):\n%s", diff)
	}
}
