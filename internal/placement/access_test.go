package placement_test

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

func TestNamespaceAllowed(t *testing.T) {
	tenantSelector := &metav1.LabelSelector{MatchLabels: map[string]string{"nest.io/tenant": "true"}}
	cases := []struct {
		name      string
		allowed   *infrav1.AllowedNamespaces
		namespace string
		labels    map[string]string
		want      bool
		wantErr   bool
		describe  string
	}{
		{"nil admits none", nil, "default", nil, false, false, "admits no namespace"},
		{"empty admits all", &infrav1.AllowedNamespaces{}, "anything", nil, true, false, "admits every namespace"},
		{"empty selector admits all", &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}, "anything", nil, true, false, "labelled <none>"},
		{"listed", &infrav1.AllowedNamespaces{List: []string{"team-a", "team-b"}}, "team-b", nil, true, false, "[team-a team-b]"},
		{"not listed", &infrav1.AllowedNamespaces{List: []string{"team-a"}}, "team-b", nil, false, false, "[team-a]"},
		{"selector matches", &infrav1.AllowedNamespaces{Selector: tenantSelector}, "x", map[string]string{"nest.io/tenant": "true"}, true, false, "nest.io/tenant=true"},
		{"selector does not match", &infrav1.AllowedNamespaces{Selector: tenantSelector}, "x", map[string]string{"nest.io/tenant": "false"}, false, false, "nest.io/tenant=true"},
		{"listed or selected: listed", &infrav1.AllowedNamespaces{List: []string{"x"}, Selector: tenantSelector}, "x", nil, true, false, "[x] and namespaces labelled"},
		{"listed or selected: selected", &infrav1.AllowedNamespaces{List: []string{"y"}, Selector: tenantSelector}, "x", map[string]string{"nest.io/tenant": "true"}, true, false, "[y] and namespaces labelled"},
		{"listed or selected: neither", &infrav1.AllowedNamespaces{List: []string{"y"}, Selector: tenantSelector}, "x", nil, false, false, "[y] and namespaces labelled"},
		{"invalid selector is an error", &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}}, "x", nil, false, true, "selector"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := placement.NamespaceAllowed(tc.allowed, tc.namespace, tc.labels)
			if tc.wantErr {
				g.Expect(err).To(HaveOccurred())
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
			g.Expect(got).To(Equal(tc.want))
			g.Expect(placement.DescribeAllowedNamespaces(tc.allowed)).To(ContainSubstring(tc.describe))
		})
	}
}
