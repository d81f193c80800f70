package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestTemplateCapacity(t *testing.T) {
	mem := resource.MustParse("8Gi")
	cases := []struct {
		name       string
		spec       infrav1.NestMachineSpec
		cpu, mem   string
		wantNoCapa bool
	}{
		{"cores only", infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{CPU: &infrav1.CPU{Cores: 4}, Memory: &mem}}, "4", "8Gi", false},
		{"sockets and threads multiply", infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{CPU: &infrav1.CPU{Cores: 2, Sockets: 2, Threads: 2}, Memory: &mem}}, "8", "8Gi", false},
		{"instancetype is not derivable", infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{Instancetype: &infrav1.InstancetypeReference{Name: "u1.large"}}}, "", "", true},
		{"bare metal is not derivable", infrav1.NestMachineSpec{BareMetal: &infrav1.BareMetalMachineSpec{}}, "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := TemplateCapacity(&tc.spec)
			if tc.wantNoCapa {
				if got != nil || why == "" {
					t.Fatalf("want no capacity and a reason, got %v %q", got, why)
				}
				return
			}
			if c := got[corev1.ResourceCPU]; c.String() != tc.cpu {
				t.Errorf("cpu = %s, want %s", c.String(), tc.cpu)
			}
			if m := got[corev1.ResourceMemory]; m.String() != tc.mem {
				t.Errorf("memory = %s, want %s", m.String(), tc.mem)
			}
		})
	}
}
