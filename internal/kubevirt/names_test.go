package kubevirt

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func machineNamed(name string) *infrav1.NestMachine {
	return &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func TestVMName(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		name    string
		machine string
		want    string
	}{
		{name: "a short DNS label is kept as is", machine: "tenant1-md-0-abcde", want: "tenant1-md-0-abcde"},
		{name: "a name of exactly MaxVMNameLength is kept", machine: strings.Repeat("b", MaxVMNameLength), want: strings.Repeat("b", MaxVMNameLength)},
		{name: "a name one past MaxVMNameLength is cut and hashed", machine: strings.Repeat("b", MaxVMNameLength+1), want: strings.Repeat("b", 47) + "-793594471f"},
		{name: "dots become dashes and the hash keeps a.b apart from a-b", machine: "web.tenant1", want: "web-tenant1-2cfa56dac4"},
		{name: "a long name is cut to MaxVMNameLength with a hash", machine: long, want: strings.Repeat("a", 47) + "-2816597888"},
		{name: "a cut that ends on a dash does not leave a double dash", machine: strings.Repeat("c", 46) + "-" + strings.Repeat("d", 20), want: strings.Repeat("c", 46) + "-f4d695af5a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := VMName(machineNamed(tt.machine))
			g.Expect(got).To(Equal(tt.want))
			g.Expect(len(got)).To(BeNumerically("<=", MaxVMNameLength))
			g.Expect(validation.IsDNS1123Label(got)).To(BeEmpty())
			g.Expect(validation.IsDNS1123Label(RootDataVolumeName(got))).To(BeEmpty(), "the root DataVolume name must stay a DNS label")
		})
	}
}

func TestVMNameIsDeterministicAndUniqueForLongNames(t *testing.T) {
	g := NewWithT(t)
	prefix := strings.Repeat("tenant-with-a-very-long-name-", 4)
	seen := map[string]string{}
	for _, suffix := range []string{"a", "b", "c", "md-0-abcde", "md-0-abcdf", "control-plane-1", "control-plane-2"} {
		name := prefix + suffix
		vm := VMName(machineNamed(name))
		g.Expect(VMName(machineNamed(name))).To(Equal(vm), "the same name must always give the same VM name")
		g.Expect(len(vm)).To(BeNumerically("<=", MaxVMNameLength))
		g.Expect(seen).NotTo(HaveKey(vm), "%s and %s share VM name %s", name, seen[vm], vm)
		seen[vm] = name
	}
	g.Expect(VMName(machineNamed("a.b"))).NotTo(Equal(VMName(machineNamed("a-b"))))
}

func TestDerivedNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(RootDataVolumeName("vm-1")).To(Equal("vm-1-root"))
	g.Expect(BootstrapSecretName("vm-1")).To(Equal("vm-1-bootstrap"))
}
