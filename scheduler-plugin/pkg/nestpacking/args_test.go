package nestpacking

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	configv1 "k8s.io/kube-scheduler/config/v1"
)

func TestSetDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Args
		want Args
	}{
		{
			name: "empty args get CPU and memory at weight 1 and KubeVirt's virt-launcher label",
			want: Args{
				Resources:    []configv1.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
				VMLabelKey:   "kubevirt.io",
				VMLabelValue: "virt-launcher",
			},
		},
		{
			name: "set fields are kept; a resource without weight gets 1",
			in: Args{
				Resources:    []configv1.ResourceSpec{{Name: "memory", Weight: 3}, {Name: "nvidia.com/gpu"}},
				VMLabelKey:   "example.com/vm",
				VMLabelValue: "yes",
			},
			want: Args{
				Resources:    []configv1.ResourceSpec{{Name: "memory", Weight: 3}, {Name: "nvidia.com/gpu", Weight: 1}},
				VMLabelKey:   "example.com/vm",
				VMLabelValue: "yes",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			SetDefaults(&got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SetDefaults (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestValidateArgs(t *testing.T) {
	valid := func(mutate func(*Args)) *Args {
		a := &Args{}
		SetDefaults(a)
		mutate(a)
		return a
	}
	tests := []struct {
		name string
		args *Args
		want field.ErrorList
	}{
		{name: "defaults are valid", args: valid(func(*Args) {})},
		{
			name: "extended and ephemeral-storage resources are accepted",
			args: valid(func(a *Args) {
				a.Resources = append(a.Resources, configv1.ResourceSpec{Name: "nvidia.com/gpu", Weight: 2}, configv1.ResourceSpec{Name: "ephemeral-storage", Weight: 1})
			}),
		},
		{
			name: "unknown, duplicate and out-of-range resources are each reported",
			args: valid(func(a *Args) {
				a.Resources = []configv1.ResourceSpec{{Name: "gpu", Weight: 1}, {Name: "cpu", Weight: 0}, {Name: "cpu", Weight: 101}}
			}),
			want: field.ErrorList{
				field.NotSupported(field.NewPath("args", "resources").Index(0).Child("name"), "gpu", []string{"cpu", "memory", "ephemeral-storage", "<extended resource>"}),
				field.Invalid(field.NewPath("args", "resources").Index(1).Child("weight"), int64(0), "must be in the range [1, 100]"),
				field.Duplicate(field.NewPath("args", "resources").Index(2).Child("name"), "cpu"),
				field.Invalid(field.NewPath("args", "resources").Index(2).Child("weight"), int64(101), "must be in the range [1, 100]"),
			},
		},
		{
			name: "the label key must be a qualified name and the value a label value",
			args: valid(func(a *Args) {
				a.VMLabelKey = "not a key"
				a.VMLabelValue = "virt launcher"
			}),
			want: field.ErrorList{
				field.Invalid(field.NewPath("args", "vmLabelKey"), "not a key", ""),
				field.Invalid(field.NewPath("args", "vmLabelValue"), "virt launcher", ""),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateArgs(field.NewPath("args"), tt.args)
			if diff := cmp.Diff(tt.want.ToAggregate(), err, ignoreDetail); diff != "" {
				t.Errorf("ValidateArgs (-want,+got):\n%s", diff)
			}
		})
	}
}

// ignoreDetail compares field errors by type, path and value: the wording of a detail comes from
// apimachinery's validators.
var ignoreDetail = cmp.Comparer(func(a, b *field.Error) bool {
	return a.Type == b.Type && a.Field == b.Field && cmp.Equal(a.BadValue, b.BadValue)
})
