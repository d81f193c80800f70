package infra

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestAllows(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"tenant": "yes"}}}
	cases := []struct {
		name    string
		allowed *infrav1.AllowedNamespaces
		want    bool
		wantErr bool
	}{
		{"nil admits none", nil, false, false},
		{"empty object admits all", &infrav1.AllowedNamespaces{}, true, false},
		{"listed", &infrav1.AllowedNamespaces{List: []string{"team-b", "team-a"}}, true, false},
		{"not listed", &infrav1.AllowedNamespaces{List: []string{"team-b"}}, false, false},
		{"selector matches", &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}}, true, false},
		{"selector does not match", &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "no"}}}, false, false},
		{"list or selector", &infrav1.AllowedNamespaces{List: []string{"x"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}}, true, false},
		{"invalid selector", &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-a"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: tc.allowed}}
			got, why, err := Allows(ic, ns)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("Allows = %v, want %v", got, tc.want)
			}
			if !got && !tc.wantErr && why == "" {
				t.Fatal("a refusal must say why")
			}
		})
	}
}

func TestSummariseNodesCountsOnlySchedulableReadyNodes(t *testing.T) {
	node := func(name string, ready, cordoned bool, cpu string) corev1.Node {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		n.Spec.Unschedulable = cordoned
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resourceMust(cpu)}
		return n
	}
	got := SummariseNodes([]corev1.Node{node("a", true, false, "16"), node("b", true, false, "32"), node("c", false, false, "8"), node("d", true, true, "8")})
	if got.Nodes != 4 || got.SchedulableNodes != 2 {
		t.Fatalf("nodes=%d schedulable=%d, want 4 and 2", got.Nodes, got.SchedulableNodes)
	}
	if cpu := got.Allocatable[corev1.ResourceCPU]; cpu.String() != "48" {
		t.Fatalf("allocatable cpu = %s, want 48", cpu.String())
	}
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }
