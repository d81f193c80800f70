package webhooks

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// mutableNestMachineFields may change on a NestMachine: the controller reconciles them onto the
// running VM. Everything else describes how the machine was built; changing it needs a new machine.
var mutableNestMachineFields = []string{"spec.kubevirt.runStrategy", "spec.kubevirt.evictionStrategy", "spec.kubevirt.placement"}

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachine,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachines,versions=v1alpha1,name=default.nestmachine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachine,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachines,versions=v1alpha1,name=validation.nestmachine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestMachine defaults and validates NestMachines. It reads nothing.
type NestMachine struct{}

var (
	_ admission.Defaulter[*infrav1.NestMachine] = &NestMachine{}
	_ admission.Validator[*infrav1.NestMachine] = &NestMachine{}
)

// SetupWebhookWithManager registers the defaulting and validating webhooks.
func (w *NestMachine) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &infrav1.NestMachine{}).WithDefaulter(w).WithValidator(w).Complete()
}

// Default fills run and eviction strategy, networks, CPU topology, instancetype and preference
// kinds, and the bare-metal checksum type and cleaning mode.
func (w *NestMachine) Default(_ context.Context, m *infrav1.NestMachine) error {
	defaultNestMachineSpec(&m.Spec)
	return nil
}

// ValidateCreate checks the spec's consistency.
func (w *NestMachine) ValidateCreate(_ context.Context, m *infrav1.NestMachine) (admission.Warnings, error) {
	errs, warnings := validateNestMachineSpec(&m.Spec, field.NewPath("spec"))
	return warnings, invalid("NestMachine", m.Name, errs)
}

// ValidateUpdate lets only providerID (once), runStrategy, evictionStrategy and placement change,
// and checks the new spec when it changed. A NestMachine being deleted passes: its finalizer must
// be removable whatever rules were added since it was created.
func (w *NestMachine) ValidateUpdate(_ context.Context, oldM, newM *infrav1.NestMachine) (admission.Warnings, error) {
	if newM.DeletionTimestamp != nil {
		return nil, nil
	}
	oldSpec := oldM.Spec.DeepCopy()
	defaultNestMachineSpec(oldSpec) // an object stored before a default existed is not "changed" by it
	if equality.Semantic.DeepEqual(*oldSpec, newM.Spec) {
		return nil, nil
	}
	changed, err := changedFields(field.NewPath("spec"), oldSpec, &newM.Spec)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var errs field.ErrorList
	for _, p := range changed {
		switch {
		case p.String() == "spec.providerID":
			if oldSpec.ProviderID != "" {
				errs = append(errs, field.Forbidden(p, fmt.Sprintf("providerID is set once, by the provider; it is %q", oldSpec.ProviderID)))
			}
		case !within(p, mutableNestMachineFields...):
			errs = append(errs, field.Forbidden(p, "immutable: a NestMachine may change only spec.kubevirt.runStrategy, spec.kubevirt.evictionStrategy and spec.kubevirt.placement (and spec.providerID once); "+
				"to change anything else, change the machine template so that a new machine replaces this one"))
		}
	}
	specErrs, warnings := validateNestMachineSpec(&newM.Spec, field.NewPath("spec"))
	return warnings, invalid("NestMachine", newM.Name, append(errs, specErrs...))
}

// ValidateDelete allows every deletion.
func (w *NestMachine) ValidateDelete(context.Context, *infrav1.NestMachine) (admission.Warnings, error) {
	return nil, nil
}

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachinetemplate,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates,versions=v1alpha1,name=default.nestmachinetemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachinetemplate,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates,versions=v1alpha1,name=validation.nestmachinetemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestMachineTemplate defaults and validates NestMachineTemplates. It reads nothing.
type NestMachineTemplate struct{}

var (
	_ admission.Defaulter[*infrav1.NestMachineTemplate] = &NestMachineTemplate{}
	_ admission.Validator[*infrav1.NestMachineTemplate] = &NestMachineTemplate{}
)

// SetupWebhookWithManager registers the defaulting and validating webhooks.
func (w *NestMachineTemplate) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &infrav1.NestMachineTemplate{}).WithDefaulter(w).WithValidator(w).Complete()
}

// Default fills spec.template.spec like a NestMachine's, so machines stamped out of the template
// and the template itself agree on what they ask for.
func (w *NestMachineTemplate) Default(_ context.Context, t *infrav1.NestMachineTemplate) error {
	defaultNestMachineSpec(&t.Spec.Template.Spec)
	return nil
}

// ValidateCreate checks the template's spec like a NestMachine's, and its metadata.
func (w *NestMachineTemplate) ValidateCreate(_ context.Context, t *infrav1.NestMachineTemplate) (admission.Warnings, error) {
	errs, warnings := validateNestMachineTemplate(t)
	return warnings, invalid("NestMachineTemplate", t.Name, errs)
}

// ValidateUpdate keeps spec.template.spec immutable — machines already stamped out would silently
// differ from it — except for ClusterClass topology dry runs, which compute a change without making
// it.
func (w *NestMachineTemplate) ValidateUpdate(ctx context.Context, oldT, newT *infrav1.NestMachineTemplate) (admission.Warnings, error) {
	if newT.DeletionTimestamp != nil {
		return nil, nil
	}
	specPath := field.NewPath("spec", "template", "spec")
	oldSpec := oldT.Spec.Template.Spec.DeepCopy()
	defaultNestMachineSpec(oldSpec)
	changed, err := changedFields(specPath, oldSpec, &newT.Spec.Template.Spec)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(changed) == 0 {
		return nil, invalid("NestMachineTemplate", newT.Name, newT.Spec.Template.ObjectMeta.Validate(field.NewPath("spec", "template", "metadata")))
	}
	errs, warnings := validateNestMachineTemplate(newT)
	if !isTopologyDryRun(ctx, newT) {
		errs = append(errs, field.Forbidden(specPath,
			fmt.Sprintf("immutable (changed: %s): create a new NestMachineTemplate and point the MachineDeployment, KubeadmControlPlane or ClusterClass at it", joinPaths(changed))))
	}
	return warnings, invalid("NestMachineTemplate", newT.Name, errs)
}

// ValidateDelete allows every deletion.
func (w *NestMachineTemplate) ValidateDelete(context.Context, *infrav1.NestMachineTemplate) (admission.Warnings, error) {
	return nil, nil
}

func validateNestMachineTemplate(t *infrav1.NestMachineTemplate) (field.ErrorList, admission.Warnings) {
	specPath := field.NewPath("spec", "template", "spec")
	errs, warnings := validateNestMachineSpec(&t.Spec.Template.Spec, specPath)
	if t.Spec.Template.Spec.ProviderID != "" {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "a template cannot carry a providerID: the provider sets one per machine"))
	}
	errs = append(errs, t.Spec.Template.ObjectMeta.Validate(field.NewPath("spec", "template", "metadata"))...)
	return errs, warnings
}
