package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/event"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/scheme"
)

func testNestMachine() *infrav1.NestMachine {
	return &infrav1.NestMachine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "tenant", Name: "m-0", ResourceVersion: "10", Generation: 1,
			Labels:          map[string]string{clusterv1.ClusterNameLabel: "c"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Machine", Name: "m-0", UID: "u"}},
		},
		Spec: infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{CPU: &infrav1.CPU{Cores: 1}}},
	}
}

// Each case changes a copy of the same NestMachine: what the patcher writes for it, and whether the
// update would wake the NestMachine controller again.
func TestPatcherWritesOnlyWhatChangedAndOwnWritesDoNotWakeTheController(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		change               func(*infrav1.NestMachine)
		wantMain, wantStatus bool
		wantWake             bool
	}{
		{name: "nothing", change: func(*infrav1.NestMachine) {}},
		{name: "a condition", change: func(nm *infrav1.NestMachine) {
			nm.Status.Conditions = []metav1.Condition{{Type: infrav1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Running"}}
		}, wantStatus: true},
		{name: "provisioned", change: func(nm *infrav1.NestMachine) { nm.Status.Initialization.Provisioned = ptr.To(true) }, wantStatus: true},
		{name: "the finalizer", change: func(nm *infrav1.NestMachine) { nm.Finalizers = []string{infrav1.NestMachineFinalizer} }, wantMain: true},
		{name: "spec.providerID", change: func(nm *infrav1.NestMachine) { nm.Spec.ProviderID = "nest://infra-a/ns/m-0" }, wantMain: true},
		{name: "providerID and status", change: func(nm *infrav1.NestMachine) {
			nm.Spec.ProviderID = "nest://infra-a/ns/m-0"
			nm.Status.FailureDomain = "infra-a"
		}, wantMain: true, wantStatus: true},
		{name: "a resourceVersion and generation only", change: func(nm *infrav1.NestMachine) {
			nm.ResourceVersion, nm.Generation = "11", 2
		}},
		{name: "the spec by a user", change: func(nm *infrav1.NestMachine) { nm.Spec.KubeVirt.CPU.Cores = 2 }, wantMain: true, wantWake: true},
		{name: "the paused annotation", change: func(nm *infrav1.NestMachine) {
			nm.Annotations = map[string]string{clusterv1.PausedAnnotation: ""}
		}, wantMain: true, wantWake: true},
		{name: "a label", change: func(nm *infrav1.NestMachine) { nm.Labels["team"] = "x" }, wantMain: true, wantWake: true},
		{name: "the owner", change: func(nm *infrav1.NestMachine) { nm.OwnerReferences = nil }, wantMain: true, wantWake: true},
		{name: "deletion", change: func(nm *infrav1.NestMachine) { nm.DeletionTimestamp = ptr.To(metav1.Now()) }, wantMain: true, wantWake: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testNestMachine()
			after := before.DeepCopy()
			tc.change(after)
			main, status, err := changes(before, after)
			if err != nil {
				t.Fatal(err)
			}
			if main != tc.wantMain || status != tc.wantStatus {
				t.Errorf("changes: main %v, status %v; want %v, %v", main, status, tc.wantMain, tc.wantStatus)
			}
			wake := notOwnWrite(func(nm *infrav1.NestMachine) { nm.Spec.ProviderID = "" }).Update(event.UpdateEvent{ObjectOld: before, ObjectNew: after})
			if wake != tc.wantWake {
				t.Errorf("the update wakes the controller: %v, want %v", wake, tc.wantWake)
			}
		})
	}
}

func TestSetPausedFollowsTheClusterAndTheAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name          string
		clusterPaused bool
		annotated     bool
		wantPaused    bool
		wantMessage   string
	}{
		{name: "neither"},
		{name: "Cluster paused", clusterPaused: true, wantPaused: true, wantMessage: "Cluster spec.paused is set to true"},
		{name: "annotation", annotated: true, wantPaused: true, wantMessage: "NestMachine has the cluster.x-k8s.io/paused annotation"},
		{name: "both", clusterPaused: true, annotated: true, wantPaused: true,
			wantMessage: "Cluster spec.paused is set to true, NestMachine has the cluster.x-k8s.io/paused annotation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := &clusterv1.Cluster{}
			if tc.clusterPaused {
				cluster.Spec.Paused = ptr.To(true)
			}
			nm := testNestMachine()
			if tc.annotated {
				nm.Annotations = map[string]string{clusterv1.PausedAnnotation: ""}
			}
			if got := setPaused(scheme.New(), cluster, nm); got != tc.wantPaused {
				t.Errorf("paused %v, want %v", got, tc.wantPaused)
			}
			c := conditions.Get(nm, clusterv1.PausedCondition)
			if c == nil {
				t.Fatal("no Paused condition")
			}
			wantStatus, wantReason := metav1.ConditionFalse, clusterv1.NotPausedReason
			if tc.wantPaused {
				wantStatus, wantReason = metav1.ConditionTrue, clusterv1.PausedReason
			}
			if c.Status != wantStatus || c.Reason != wantReason || c.Message != tc.wantMessage || c.ObservedGeneration != nm.Generation {
				t.Errorf("Paused condition %+v, want %s %s %q at generation %d", c, wantStatus, wantReason, tc.wantMessage, nm.Generation)
			}
		})
	}
}
