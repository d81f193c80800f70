package placement

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// NamespaceAllowed reports whether an InfraCluster's spec.allowedNamespaces admits a management
// namespace with the given labels. Nil admits no namespace (an Infra cluster is shared only on
// purpose); an empty object admits every namespace; otherwise the namespace must be in list or its
// labels must match selector. An invalid selector is an error, never an admission.
func NamespaceAllowed(allowed *infrav1.AllowedNamespaces, namespace string, namespaceLabels map[string]string) (bool, error) {
	if allowed == nil {
		return false, nil
	}
	if len(allowed.List) == 0 && allowed.Selector == nil {
		return true, nil
	}
	if slices.Contains(allowed.List, namespace) {
		return true, nil
	}
	if allowed.Selector == nil {
		return false, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(allowed.Selector)
	if err != nil {
		return false, fmt.Errorf("reading spec.allowedNamespaces.selector: %w", err)
	}
	return selector.Matches(labels.Set(namespaceLabels)), nil
}

// DescribeAllowedNamespaces says in words which namespaces an allowedNamespaces admits, for
// messages that tell a user what to change.
func DescribeAllowedNamespaces(allowed *infrav1.AllowedNamespaces) string {
	switch {
	case allowed == nil:
		return "spec.allowedNamespaces is not set, which admits no namespace"
	case len(allowed.List) == 0 && allowed.Selector == nil:
		return "spec.allowedNamespaces is empty, which admits every namespace"
	case allowed.Selector == nil:
		return fmt.Sprintf("spec.allowedNamespaces.list admits %v", allowed.List)
	case len(allowed.List) == 0:
		return fmt.Sprintf("spec.allowedNamespaces.selector admits namespaces labelled %s", metav1.FormatLabelSelector(allowed.Selector))
	}
	return fmt.Sprintf("spec.allowedNamespaces admits %v and namespaces labelled %s", allowed.List, metav1.FormatLabelSelector(allowed.Selector))
}
