package nestpacking

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	configv1 "k8s.io/kube-scheduler/config/v1"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
)

// The label by which the plugin recognises VMs by default: KubeVirt stamps it on every VM pod.
const (
	DefaultVMLabelKey   = "kubevirt.io"
	DefaultVMLabelValue = "virt-launcher"
)

// The Cluster API labels the provider stamps on every VirtualMachine it renders, by which the
// consolidator (pkg/consolidation) tells a tenant's control-plane VMs. The plugin does not read
// them: the provider's required pod anti-affinity keeps those VMs apart (see the package doc).
const (
	DefaultClusterNameLabelKey   = "cluster.x-k8s.io/cluster-name"
	DefaultRoleLabelKey          = "cluster.x-k8s.io/role"
	DefaultControlPlaneRoleValue = "control-plane"
	// DefaultBootstrapMachineLabelKey marks the OpenShift installer's temporary bootstrap VM, a
	// control-plane VM that the provider's anti-affinity leaves out (the provider's api/v1alpha1
	// BootstrapMachineLabel).
	DefaultBootstrapMachineLabelKey = "install.openshift.io/bootstrap"
)

// maxResourceWeight bounds a weight so that a weighted sum of per-resource fractions cannot
// overflow and no single resource drowns the others by accident; it matches NodeResourcesFit.
const maxResourceWeight = 100

// Args configures NestPacking. It is decoded from the profile's pluginConfig; every field is
// optional and SetDefaults fills what is left out. Args decode leniently, as kube-scheduler's
// own plugin args do: clusterNameLabelKey, roleLabelKey and controlPlaneRoleValue, read by the
// control-plane filter this plugin had until the anti-affinity alone kept the rule, are ignored.
type Args struct {
	// Resources lists the resources the score packs on, with their weights. Extended resources a
	// pod requests are packed on too even when not listed, with weight 1, so that a GPU VM lands
	// where GPUs are already in use.
	Resources []configv1.ResourceSpec `json:"resources,omitempty"`
	// VMLabelKey and VMLabelValue select the pods that are VMs (virt-launcher pods); a node that
	// runs at least one of them is preferred over a node that runs none.
	VMLabelKey   string `json:"vmLabelKey,omitempty"`
	VMLabelValue string `json:"vmLabelValue,omitempty"`
}

// SetDefaults fills the fields of args that were left empty.
func SetDefaults(args *Args) {
	if len(args.Resources) == 0 {
		args.Resources = []configv1.ResourceSpec{
			{Name: string(v1.ResourceCPU), Weight: 1},
			{Name: string(v1.ResourceMemory), Weight: 1},
		}
	}
	for i := range args.Resources {
		if args.Resources[i].Weight == 0 {
			args.Resources[i].Weight = 1
		}
	}
	setIfEmpty(&args.VMLabelKey, DefaultVMLabelKey)
	setIfEmpty(&args.VMLabelValue, DefaultVMLabelValue)
}

func setIfEmpty(s *string, value string) {
	if *s == "" {
		*s = value
	}
}

// ValidateArgs reports every invalid field of defaulted args, each with its path.
func ValidateArgs(path *field.Path, args *Args) error {
	var errs field.ErrorList
	seen := sets.New[string]()
	resPath := path.Child("resources")
	for i, r := range args.Resources {
		p := resPath.Index(i)
		name := v1.ResourceName(r.Name)
		switch {
		case name == v1.ResourceCPU || name == v1.ResourceMemory || name == v1.ResourceEphemeralStorage:
		case schedutil.IsScalarResourceName(name):
		default:
			errs = append(errs, field.NotSupported(p.Child("name"), r.Name,
				[]string{string(v1.ResourceCPU), string(v1.ResourceMemory), string(v1.ResourceEphemeralStorage), "<extended resource>"}))
		}
		if seen.Has(r.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), r.Name))
		}
		seen.Insert(r.Name)
		if r.Weight < 1 || r.Weight > maxResourceWeight {
			errs = append(errs, field.Invalid(p.Child("weight"), r.Weight, fmt.Sprintf("must be in the range [1, %d]", maxResourceWeight)))
		}
	}
	for _, msg := range validation.IsQualifiedName(args.VMLabelKey) {
		errs = append(errs, field.Invalid(path.Child("vmLabelKey"), args.VMLabelKey, msg))
	}
	if args.VMLabelValue == "" {
		errs = append(errs, field.Required(path.Child("vmLabelValue"), "a label value is needed to select pods"))
	}
	for _, msg := range validation.IsValidLabelValue(args.VMLabelValue) {
		errs = append(errs, field.Invalid(path.Child("vmLabelValue"), args.VMLabelValue, msg))
	}
	return errs.ToAggregate()
}

// DecodeArgs turns the profile's pluginConfig entry into defaulted, validated Args. Out-of-tree
// plugin args reach the factory undecoded (runtime.Unknown), or nil when the profile has none.
func DecodeArgs(obj runtime.Object) (*Args, error) {
	args := &Args{}
	if err := frameworkruntime.DecodeInto(obj, args); err != nil {
		return nil, fmt.Errorf("decoding %s args: %w", Name, err)
	}
	SetDefaults(args)
	if err := ValidateArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	return args, nil
}
