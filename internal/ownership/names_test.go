package ownership

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestLabelValue(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{name: "a valid value is kept", value: "tenant1-md-0-abcde", want: "tenant1-md-0-abcde"},
		{name: "dots are valid in a label value and kept", value: "web.tenant1", want: "web.tenant1"},
		{name: "a 63-character value is kept", value: strings.Repeat("x", 63), want: strings.Repeat("x", 63)},
		{name: "a 64-character value is cut and hashed", value: strings.Repeat("x", 64), want: strings.Repeat("x", 52) + "-7ce100971f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := LabelValue(tt.value)
			g.Expect(got).To(Equal(tt.want))
			g.Expect(validation.IsValidLabelValue(got)).To(BeEmpty())
		})
	}
}

func TestTenantNamespace(t *testing.T) {
	long := func(n string) string {
		return TenantNamespace("nest-", "a-very-long-namespace-name-for-a-team", "a-very-long-cluster-name-number-"+n)
	}
	tests := []struct {
		name, prefix, ns, cluster, want string
	}{
		{name: "short names are joined", prefix: "nest-", ns: "default", cluster: "tenant-a", want: "nest-default-tenant-a"},
		{name: "no prefix", ns: "team", cluster: "c1", want: "team-c1"},
		{name: "a dotted cluster name becomes a DNS label", prefix: "nest-", ns: "team", cluster: "web.prod", want: "nest-team-web-prod-6ec5f79172"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := TenantNamespace(tt.prefix, tt.ns, tt.cluster)
			g.Expect(got).To(Equal(tt.want))
			g.Expect(validation.IsDNS1123Label(got)).To(BeEmpty())
		})
	}
	t.Run("long names are shortened and stay distinct", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(len(long("1"))).To(BeNumerically("<=", 63))
		g.Expect(validation.IsDNS1123Label(long("1"))).To(BeEmpty())
		g.Expect(long("1")).NotTo(Equal(long("2")))
		g.Expect(long("1")).To(Equal(long("1")))
	})
}
