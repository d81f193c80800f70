package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

func TestControlPlaneSpreadUnbalanced(t *testing.T) {
	abc := []string{"a", "b", "c"}
	cases := []struct {
		name    string
		counts  map[string]int
		healthy []string
		want    bool
	}{
		{"one per infra", map[string]int{"a": 1, "b": 1, "c": 1}, abc, false},
		{"surge during rollout 2/1/1", map[string]int{"a": 2, "b": 1, "c": 1}, abc, false},
		{"after loss and recovery 2/1/0", map[string]int{"a": 2, "b": 1}, abc, true},
		{"all in one 3/0/0", map[string]int{"a": 3}, abc, true},
		{"two infra clusters healthy 2/1", map[string]int{"a": 2, "b": 1}, []string{"a", "b"}, false},
		{"single infra cluster never unbalanced", map[string]int{"a": 3}, []string{"a"}, false},
		{"five replicas 2/2/1", map[string]int{"a": 2, "b": 2, "c": 1}, abc, false},
		{"five replicas 3/2/0", map[string]int{"a": 3, "b": 2}, abc, true},
		{"one replica 1/0/0", map[string]int{"a": 1}, abc, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (controlPlaneSpread{counts: tc.counts, healthy: tc.healthy}).unbalanced(); got != tc.want {
				t.Fatalf("unbalanced = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecideRestoreTriggersOncePerRecovery(t *testing.T) {
	unbalanced := controlPlaneSpread{counts: map[string]int{"a": 2, "b": 1}, healthy: []string{"a", "b", "c"}}
	balanced := controlPlaneSpread{counts: map[string]int{"a": 1, "b": 1, "c": 1}, healthy: []string{"a", "b", "c"}}
	t0 := metav1.NewTime(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	t2 := metav1.NewTime(t0.Add(2 * time.Minute))
	cases := []struct {
		name                      string
		spread                    controlPlaneSpread
		rollingOut                bool
		lastRecovery, lastRestore *metav1.Time
		want                      bool
	}{
		{"balanced: nothing to do", balanced, false, &t1, nil, false},
		{"unbalanced, never restored: trigger", unbalanced, false, &t1, nil, true},
		{"unbalanced while rolling out: wait", unbalanced, true, &t1, nil, false},
		{"restored after the recovery: do not loop", unbalanced, false, &t1, &t2, false},
		{"restored before a newer recovery: trigger again", unbalanced, false, &t2, &t1, true},
		{"restored, no recovery known: do not loop", unbalanced, false, nil, &t0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decideRestore(tc.spread, tc.rollingOut, tc.lastRecovery, tc.lastRestore)
			if d.trigger != tc.want {
				t.Fatalf("trigger = %v (%s), want %v", d.trigger, d.reason, tc.want)
			}
			if d.reason == "" {
				t.Fatal("a decision must say why")
			}
		})
	}
}

func TestOperatorRestoreSaysWhatToDo(t *testing.T) {
	spread := controlPlaneSpread{counts: map[string]int{"a": 2, "b": 1}, healthy: []string{"a", "b", "c"}}
	cases := []struct {
		name string
		ref  clusterv1.ContractVersionedObjectReference
		want []string
	}{
		{"plain Machines", clusterv1.ContractVersionedObjectReference{},
			[]string{"a=2 b=1 c=0", "create a control-plane Machine with spec.failureDomain c", "delete one of the control-plane Machines in a"}},
		{"Assisted control plane", clusterv1.ContractVersionedObjectReference{APIGroup: "controlplane.cluster.x-k8s.io", Kind: "OpenshiftAssistedControlPlane", Name: "ocp"},
			[]string{"a=2 b=1 c=0", "delete one control-plane Machine in a", "OpenshiftAssistedControlPlane ocp replaces it", "(c)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := operatorRestore(tc.ref, spread)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("message %q lacks %q", got, w)
				}
			}
		})
	}
}
