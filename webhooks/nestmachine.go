package webhooks

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// mutableNestMachineFields may change on a NestMachine: the controller reconciles them onto the
// running VM. Everything else describes how the machine was built; changing it needs a new machine.
var mutableNestMachineFields = []string{"spec.kubevirt.runStrategy", "spec.kubevirt.evictionStrategy", "spec.kubevirt.placement"}

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachine,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachines,versions=v1alpha1,name=default.nestmachine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachine,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachines,versions=v1alpha1,name=validation.nestmachine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestMachine defaults and validates NestMachines. It reads Clusters, NestClusters and InfraClusters
// only to check a spec.providerID given at create time (clusterctl move and restores give one).
type NestMachine struct {
	// Client reads from the manager's cache; nil skips the checks that need it.
	Client client.Reader
}

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

// ValidateCreate checks the spec's consistency, and that a providerID given at create time is the one
// the provider would give this NestMachine.
func (w *NestMachine) ValidateCreate(ctx context.Context, m *infrav1.NestMachine) (admission.Warnings, error) {
	allow, err := patchAllowance(ctx, w.Client, m.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs, warnings := validateNestMachineSpec(&m.Spec, allow, field.NewPath("spec"))
	providerIDErrs, err := w.validateProviderID(ctx, m)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return warnings, invalid("NestMachine", m.Name, append(errs, providerIDErrs...))
}

// validateProviderID refuses a spec.providerID that is not what the provider would derive for this
// NestMachine: nest://<one of its NestCluster's Infra clusters>/<its tenant namespace there>/<its VM
// name> (for a bare-metal machine, any host name in that Infra cluster). A NestMachine that names
// someone else's VM or host could otherwise be handed it.
func (w *NestMachine) validateProviderID(ctx context.Context, m *infrav1.NestMachine) (field.ErrorList, error) {
	if m.Spec.ProviderID == "" {
		return nil, nil
	}
	path := field.NewPath("spec", "providerID")
	infraName, ns, name, err := infrav1.ParseProviderID(m.Spec.ProviderID)
	if err != nil {
		return field.ErrorList{field.Invalid(path, m.Spec.ProviderID, err.Error())}, nil
	}
	if m.Spec.KubeVirt != nil && name != kubevirt.VMName(m) {
		return field.ErrorList{field.Invalid(path, m.Spec.ProviderID, fmt.Sprintf("the VM of this NestMachine is named %q", kubevirt.VMName(m)))}, nil
	}
	clusterName := m.Labels[clusterv1.ClusterNameLabel]
	if w.Client == nil || clusterName == "" {
		return nil, nil
	}
	cluster := &clusterv1.Cluster{}
	// Objects created together (clusterctl move, a restore) may not be in the cache yet: what cannot
	// be read is not checked here; the controller adopts only an object made for this NestMachine's
	// namespace and name (ownership.Claim).
	if err := w.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: clusterName}, cluster); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	nc := &infrav1.NestCluster{}
	if err := w.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: cluster.Spec.InfrastructureRef.Name}, nc); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !slices.ContainsFunc(nc.Spec.InfraClusters, func(u infrav1.InfraClusterUse) bool { return u.Name == infraName }) {
		return field.ErrorList{field.Invalid(path, m.Spec.ProviderID, fmt.Sprintf("Infra cluster %q is not one of NestCluster %s's", infraName, nc.Name))}, nil
	}
	if m.Spec.BareMetal != nil {
		return nil, nil
	}
	ic := &infrav1.InfraCluster{}
	if err := w.Client.Get(ctx, client.ObjectKey{Name: infraName}, ic); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if want := ownership.TenantNamespace(ic.Spec.TenantNamespacePrefix, m.Namespace, clusterName); ns != want {
		return field.ErrorList{field.Invalid(path, m.Spec.ProviderID, fmt.Sprintf("the tenant namespace of this NestMachine in Infra cluster %s is %q", infraName, want))}, nil
	}
	return nil, nil
}

// ValidateUpdate lets only providerID (once), runStrategy, evictionStrategy and placement change,
// and checks the new spec when it changed. A NestMachine being deleted passes: its finalizer must
// be removable whatever rules were added since it was created.
func (w *NestMachine) ValidateUpdate(ctx context.Context, oldM, newM *infrav1.NestMachine) (admission.Warnings, error) {
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
	allow, err := patchAllowance(ctx, w.Client, newM.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	specErrs, warnings := validateNestMachineSpec(&newM.Spec, allow, field.NewPath("spec"))
	return warnings, invalid("NestMachine", newM.Name, append(errs, specErrs...))
}

// ValidateDelete allows every deletion.
func (w *NestMachine) ValidateDelete(context.Context, *infrav1.NestMachine) (admission.Warnings, error) {
	return nil, nil
}

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachinetemplate,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates,versions=v1alpha1,name=default.nestmachinetemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestmachinetemplate,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates,versions=v1alpha1,name=validation.nestmachinetemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestMachineTemplate defaults and validates NestMachineTemplates. It reads only the VM patch
// policies of the InfraClusters its namespace may use.
type NestMachineTemplate struct {
	// Client reads InfraClusters and Namespaces (their VM patch policies), from the manager's cache;
	// nil allows no governed patch feature.
	Client client.Reader
}

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
func (w *NestMachineTemplate) ValidateCreate(ctx context.Context, t *infrav1.NestMachineTemplate) (admission.Warnings, error) {
	allow, err := patchAllowance(ctx, w.Client, t.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs, warnings := validateNestMachineTemplate(t, allow)
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
	allow, err := patchAllowance(ctx, w.Client, newT.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs, warnings := validateNestMachineTemplate(newT, allow)
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

func validateNestMachineTemplate(t *infrav1.NestMachineTemplate, allow []infrav1.VMPatchFeature) (field.ErrorList, admission.Warnings) {
	specPath := field.NewPath("spec", "template", "spec")
	errs, warnings := validateNestMachineSpec(&t.Spec.Template.Spec, allow, specPath)
	if t.Spec.Template.Spec.ProviderID != "" {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "a template cannot carry a providerID: the provider sets one per machine"))
	}
	errs = append(errs, t.Spec.Template.ObjectMeta.Validate(field.NewPath("spec", "template", "metadata"))...)
	return errs, warnings
}
