package webhooks

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Probe defaults, the same as the CRD's for a probe that is given: written into the object so that
// how quickly a loss is noticed is visible on it.
const (
	defaultProbeIntervalSeconds  = 10
	defaultProbeTimeoutSeconds   = 5
	defaultProbeFailureThreshold = 3
)

// +kubebuilder:webhook:verbs=create;update,path=/mutate-infrastructure-cluster-x-k8s-io-v1alpha1-infracluster,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=infraclusters,versions=v1alpha1,name=default.infracluster.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1
// +kubebuilder:webhook:verbs=create;update;delete,path=/validate-infrastructure-cluster-x-k8s-io-v1alpha1-infracluster,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=infrastructure.cluster.x-k8s.io,resources=infraclusters,versions=v1alpha1,name=validation.infracluster.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1

// InfraCluster defaults and validates InfraClusters, and warns when a change takes an Infra cluster
// away from tenants that use it.
type InfraCluster struct {
	// Client reads NestClusters and Namespaces, from the manager's cache.
	Client client.Reader
}

var (
	_ admission.Defaulter[*infrav1.InfraCluster] = &InfraCluster{}
	_ admission.Validator[*infrav1.InfraCluster] = &InfraCluster{}
)

// SetupWebhookWithManager registers the defaulting and validating webhooks.
func (w *InfraCluster) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &infrav1.InfraCluster{}).WithDefaulter(w).WithValidator(w).Complete()
}

// Default writes the probe settings into the spec.
func (w *InfraCluster) Default(_ context.Context, ic *infrav1.InfraCluster) error {
	if ic.Spec.Probe == nil {
		ic.Spec.Probe = &infrav1.ProbeSpec{IntervalSeconds: defaultProbeIntervalSeconds, TimeoutSeconds: defaultProbeTimeoutSeconds,
			FailureThreshold: defaultProbeFailureThreshold}
	}
	return nil
}

// ValidateCreate checks the namespace selector, and warns when no namespace may use the Infra
// cluster.
func (w *InfraCluster) ValidateCreate(_ context.Context, ic *infrav1.InfraCluster) (admission.Warnings, error) {
	var warnings admission.Warnings
	if ic.Spec.AllowedNamespaces == nil {
		warnings = append(warnings, "spec.allowedNamespaces is not set, so no namespace may use this Infra cluster: set it to {} for every namespace, or give a list or a selector")
	}
	return warnings, invalid("InfraCluster", ic.Name, validateInfraClusterSpec(&ic.Spec))
}

// ValidateUpdate checks the namespace selector, and warns about NestClusters that lose the Infra
// cluster through the change: the NestCluster controller drops it from their failure domains.
func (w *InfraCluster) ValidateUpdate(ctx context.Context, oldIC, newIC *infrav1.InfraCluster) (admission.Warnings, error) {
	if newIC.DeletionTimestamp != nil {
		return nil, nil
	}
	if errs := validateInfraClusterSpec(&newIC.Spec); len(errs) > 0 {
		return nil, invalid("InfraCluster", newIC.Name, errs)
	}
	users, err := w.users(ctx, newIC.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var lost []string
	for _, nc := range users {
		a := newAccess(w.Client, nc.Namespace)
		before, err := a.admits(ctx, oldIC)
		if err != nil {
			continue // the old selector was invalid: nothing was admitted through it
		}
		after, err := a.admits(ctx, newIC)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if before && !after {
			lost = append(lost, nc.Namespace+"/"+nc.Name)
		}
	}
	if len(lost) == 0 {
		return nil, nil
	}
	return admission.Warnings{fmt.Sprintf("spec.allowedNamespaces no longer admits NestClusters that use this Infra cluster: %v; their machines here are no longer placed or replaced here", lost)}, nil
}

// ValidateDelete refuses to delete an Infra cluster that NestClusters still list: deleting it would
// leave their machines there without a provider. The message names them. NestClusters being deleted
// do not count: the InfraCluster's finalizer waits for them.
func (w *InfraCluster) ValidateDelete(ctx context.Context, ic *infrav1.InfraCluster) (admission.Warnings, error) {
	users, err := w.users(ctx, ic.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var names []string
	for _, nc := range users {
		if nc.DeletionTimestamp.IsZero() {
			names = append(names, nc.Namespace+"/"+nc.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	return nil, apierrors.NewForbidden(infrav1.GroupVersion.WithResource("infraclusters").GroupResource(), ic.Name,
		fmt.Errorf("NestClusters %v still list it in spec.infraClusters: remove it from them (their machines there are then replaced elsewhere) before deleting it", names))
}

// users lists the NestClusters whose spec names the Infra cluster.
func (w *InfraCluster) users(ctx context.Context, name string) ([]infrav1.NestCluster, error) {
	list := &infrav1.NestClusterList{}
	if err := w.Client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing NestClusters: %w", err)
	}
	var users []infrav1.NestCluster
	for _, nc := range list.Items {
		if slices.ContainsFunc(nc.Spec.InfraClusters, func(u infrav1.InfraClusterUse) bool { return u.Name == name }) {
			users = append(users, nc)
		}
	}
	return users, nil
}

func validateInfraClusterSpec(spec *infrav1.InfraClusterSpec) field.ErrorList {
	if spec.AllowedNamespaces == nil {
		return nil
	}
	return validateLabelSelector(spec.AllowedNamespaces.Selector, field.NewPath("spec", "allowedNamespaces", "selector"))
}
