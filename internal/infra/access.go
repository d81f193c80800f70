package infra

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// Allows reports whether the InfraCluster's allowedNamespaces admits the management namespace ns
// (the rule is placement.NamespaceAllowed, which the webhooks apply too). It returns a sentence a
// person can act on when it does not.
func Allows(ic *infrav1.InfraCluster, ns *corev1.Namespace) (bool, string, error) {
	ok, err := placement.NamespaceAllowed(ic.Spec.AllowedNamespaces, ns.Name, ns.Labels)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("InfraCluster %s has an invalid spec.allowedNamespaces.selector: %w", ic.Name, err)
	case ok:
		return true, "", nil
	case ic.Spec.AllowedNamespaces == nil:
		return false, fmt.Sprintf("InfraCluster %s admits no namespace: set spec.allowedNamespaces (an empty object admits all)", ic.Name), nil
	default:
		return false, fmt.Sprintf("InfraCluster %s does not admit namespace %s: add it to spec.allowedNamespaces.list or label it to match spec.allowedNamespaces.selector", ic.Name, ns.Name), nil
	}
}
