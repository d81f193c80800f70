package webhooks

import (
	"context"
	"fmt"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestcluster,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestclusters,versions=v1alpha1,name=default.nestcluster.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestcluster,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestclusters,versions=v1alpha1,name=validation.nestcluster.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestCluster defaults and validates NestClusters.
type NestCluster struct {
	// Client reads InfraClusters and Namespaces, from the manager's cache.
	Client client.Reader
}

var (
	_ admission.Defaulter[*infrav1.NestCluster] = &NestCluster{}
	_ admission.Validator[*infrav1.NestCluster] = &NestCluster{}
)

// SetupWebhookWithManager registers the defaulting and validating webhooks.
func (w *NestCluster) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &infrav1.NestCluster{}).WithDefaulter(w).WithValidator(w).Complete()
}

// Default makes each Infra cluster's controlPlane explicit, so the spec says where control-plane
// machines may go.
func (w *NestCluster) Default(_ context.Context, c *infrav1.NestCluster) error {
	defaultNestClusterSpec(&c.Spec)
	return nil
}

// ValidateCreate checks the spec and that every listed InfraCluster exists and admits the
// NestCluster's namespace.
func (w *NestCluster) ValidateCreate(ctx context.Context, c *infrav1.NestCluster) (admission.Warnings, error) {
	path := field.NewPath("spec")
	errs := validateNestClusterSpec(&c.Spec, path)
	accessErrs, err := checkInfraClusterUses(ctx, newAccess(w.Client, c.Namespace), c.Spec.InfraClusters, nil, path.Child("infraClusters"))
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return nestClusterWarnings(&c.Spec), invalid("NestCluster", c.Name, append(errs, accessErrs...))
}

// ValidateUpdate lets Infra clusters be added and removed — an added one must exist and admit the
// namespace; one that stopped admitting it since is the NestCluster controller's to report, not a
// reason to refuse unrelated changes — keeps controlPlaneService as it was created, and keeps openshiftEndpoints once set. A
// NestCluster being deleted passes, so its finalizer can go whatever happened to its InfraClusters.
func (w *NestCluster) ValidateUpdate(ctx context.Context, oldC, newC *infrav1.NestCluster) (admission.Warnings, error) {
	if newC.DeletionTimestamp != nil {
		return nil, nil
	}
	path := field.NewPath("spec")
	errs := validateNestClusterSpec(&newC.Spec, path)
	if (oldC.Spec.ControlPlaneService == nil) != (newC.Spec.ControlPlaneService == nil) {
		errs = append(errs, field.Forbidden(path.Child("controlPlaneService"),
			"controlPlaneService is immutable: it can be neither added nor removed after creation, because the control-plane endpoint is derived from it"))
	}
	if oldC.Spec.OpenShiftEndpoints != nil && newC.Spec.OpenShiftEndpoints == nil {
		errs = append(errs, field.Forbidden(path.Child("openshiftEndpoints"),
			"openshiftEndpoints cannot be removed once set: DNS records and the control-plane endpoint point at the Services it publishes"))
	}
	added := map[string]bool{}
	for _, use := range newC.Spec.InfraClusters {
		added[use.Name] = true
	}
	for _, use := range oldC.Spec.InfraClusters {
		delete(added, use.Name)
	}
	if len(added) > 0 {
		accessErrs, err := checkInfraClusterUses(ctx, newAccess(w.Client, newC.Namespace), newC.Spec.InfraClusters, added, path.Child("infraClusters"))
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		errs = append(errs, accessErrs...)
	}
	return nestClusterWarnings(&newC.Spec), invalid("NestCluster", newC.Name, errs)
}

// ValidateDelete allows every deletion.
func (w *NestCluster) ValidateDelete(context.Context, *infrav1.NestCluster) (admission.Warnings, error) {
	return nil, nil
}

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-nestclustertemplate,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestclustertemplates,versions=v1alpha1,name=default.nestclustertemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-nestclustertemplate,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=nestclustertemplates,versions=v1alpha1,name=validation.nestclustertemplate.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// NestClusterTemplate defaults and validates NestClusterTemplates.
type NestClusterTemplate struct {
	// Client reads InfraClusters and Namespaces, from the manager's cache.
	Client client.Reader
}

var (
	_ admission.Defaulter[*infrav1.NestClusterTemplate] = &NestClusterTemplate{}
	_ admission.Validator[*infrav1.NestClusterTemplate] = &NestClusterTemplate{}
)

// SetupWebhookWithManager registers the defaulting and validating webhooks.
func (w *NestClusterTemplate) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &infrav1.NestClusterTemplate{}).WithDefaulter(w).WithValidator(w).Complete()
}

// Default fills spec.template.spec like a NestCluster's.
func (w *NestClusterTemplate) Default(_ context.Context, t *infrav1.NestClusterTemplate) error {
	defaultNestClusterSpec(&t.Spec.Template.Spec)
	return nil
}

// ValidateCreate checks the template's spec and metadata. Missing or inaccessible InfraClusters are
// warnings here, not errors: a template may be written before its InfraClusters are registered, and
// the NestClusters cloned from it — possibly in other namespaces — are checked when created.
func (w *NestClusterTemplate) ValidateCreate(ctx context.Context, t *infrav1.NestClusterTemplate) (admission.Warnings, error) {
	errs := validateNestClusterTemplate(t)
	warnings, err := w.accessWarnings(ctx, t)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return warnings, invalid("NestClusterTemplate", t.Name, errs)
}

// ValidateUpdate keeps spec.template.spec immutable, except for ClusterClass topology dry runs.
func (w *NestClusterTemplate) ValidateUpdate(ctx context.Context, oldT, newT *infrav1.NestClusterTemplate) (admission.Warnings, error) {
	if newT.DeletionTimestamp != nil {
		return nil, nil
	}
	specPath := field.NewPath("spec", "template", "spec")
	oldSpec := oldT.Spec.Template.Spec.DeepCopy()
	defaultNestClusterSpec(oldSpec)
	changed, err := changedFields(specPath, oldSpec, &newT.Spec.Template.Spec)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(changed) == 0 {
		return nil, invalid("NestClusterTemplate", newT.Name, newT.Spec.Template.ObjectMeta.Validate(field.NewPath("spec", "template", "metadata")))
	}
	errs := validateNestClusterTemplate(newT)
	if !isTopologyDryRun(ctx, newT) {
		errs = append(errs, field.Forbidden(specPath,
			fmt.Sprintf("immutable (changed: %s): create a new NestClusterTemplate and point the ClusterClass at it", joinPaths(changed))))
	}
	return nil, invalid("NestClusterTemplate", newT.Name, errs)
}

// ValidateDelete allows every deletion.
func (w *NestClusterTemplate) ValidateDelete(context.Context, *infrav1.NestClusterTemplate) (admission.Warnings, error) {
	return nil, nil
}

func (w *NestClusterTemplate) accessWarnings(ctx context.Context, t *infrav1.NestClusterTemplate) (admission.Warnings, error) {
	errs, err := checkInfraClusterUses(ctx, newAccess(w.Client, t.Namespace), t.Spec.Template.Spec.InfraClusters, nil, field.NewPath("spec", "template", "spec", "infraClusters"))
	if err != nil {
		return nil, err
	}
	var warnings admission.Warnings
	for _, e := range errs {
		warnings = append(warnings, e.Error())
	}
	return warnings, nil
}

func validateNestClusterTemplate(t *infrav1.NestClusterTemplate) field.ErrorList {
	errs := validateNestClusterSpec(&t.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))
	return append(errs, t.Spec.Template.ObjectMeta.Validate(field.NewPath("spec", "template", "metadata"))...)
}

func defaultNestClusterSpec(spec *infrav1.NestClusterSpec) {
	for i := range spec.InfraClusters {
		if spec.InfraClusters[i].ControlPlane == nil {
			spec.InfraClusters[i].ControlPlane = ptr.To(true)
		}
	}
}

// validateNestClusterSpec checks the control-plane endpoint, which becomes immutable as soon as it
// has a host: a half-written one could never be fixed.
func validateNestClusterSpec(spec *infrav1.NestClusterSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	ep, epPath := spec.ControlPlaneEndpoint, path.Child("controlPlaneEndpoint")
	switch {
	case ep.Host != "" && ep.Port == 0:
		errs = append(errs, field.Required(epPath.Child("port"), "the API server's port (usually 6443) is needed with host; the endpoint cannot be changed once set"))
	case ep.Host == "" && ep.Port != 0:
		errs = append(errs, field.Required(epPath.Child("host"), "an IP address or DNS name is needed with port; the endpoint cannot be changed once set"))
	}
	if ep.Host != "" && net.ParseIP(ep.Host) == nil && len(content.IsDNS1123Subdomain(ep.Host)) > 0 {
		errs = append(errs, field.Invalid(epPath.Child("host"), ep.Host, "must be an IP address or a lower-case DNS name (no scheme, no port)"))
	}
	return errs
}

// nestClusterWarnings points out a NestCluster that cannot host a control plane of NestMachines.
func nestClusterWarnings(spec *infrav1.NestClusterSpec) admission.Warnings {
	controlPlanes := 0
	for _, use := range spec.InfraClusters {
		if ptr.Deref(use.ControlPlane, true) {
			controlPlanes++
		}
	}
	var warnings admission.Warnings
	if controlPlanes == 2 {
		warnings = append(warnings, infrav1.TwoInfraClustersMessage)
	}
	switch {
	case controlPlanes == 0:
		warnings = append(warnings, "no Infra cluster in spec.infraClusters takes control-plane machines (all have controlPlane false): a control plane of NestMachines cannot be placed")
	case controlPlanes > 1 && spec.ControlPlaneEndpoint.Host == "":
		warnings = append(warnings, fmt.Sprintf("%d Infra clusters take control-plane machines but spec.controlPlaneEndpoint is not set: give a VIP or load balancer in front of all of them", controlPlanes))
	case spec.ControlPlaneEndpoint.Host == "" && spec.ControlPlaneService == nil && spec.OpenShiftEndpoints == nil:
		warnings = append(warnings, "none of spec.controlPlaneEndpoint, spec.controlPlaneService and spec.openshiftEndpoints is set: the cluster waits until an endpoint is given")
	}
	return warnings
}
