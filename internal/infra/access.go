package infra

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Allows reports whether the InfraCluster's allowedNamespaces admits the management namespace ns:
// nil admits none, an empty object admits all, otherwise ns must be listed or match the selector.
// It returns a sentence a person can act on when it does not.
func Allows(ic *infrav1.InfraCluster, ns *corev1.Namespace) (bool, string, error) {
	allowed := ic.Spec.AllowedNamespaces
	if allowed == nil {
		return false, fmt.Sprintf("InfraCluster %s admits no namespace: set spec.allowedNamespaces (an empty object admits all)", ic.Name), nil
	}
	if len(allowed.List) == 0 && allowed.Selector == nil {
		return true, "", nil
	}
	if slices.Contains(allowed.List, ns.Name) {
		return true, "", nil
	}
	if allowed.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(allowed.Selector)
		if err != nil {
			return false, "", fmt.Errorf("InfraCluster %s has an invalid spec.allowedNamespaces.selector: %w", ic.Name, err)
		}
		if sel.Matches(labels.Set(ns.Labels)) {
			return true, "", nil
		}
	}
	return false, fmt.Sprintf("InfraCluster %s does not admit namespace %s: add it to spec.allowedNamespaces.list or label it to match spec.allowedNamespaces.selector", ic.Name, ns.Name), nil
}
