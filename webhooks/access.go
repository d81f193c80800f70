package webhooks

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// access answers, for one management namespace, whether InfraClusters exist and admit it. It reads
// the namespace's labels only when a selector needs them, and lists the InfraClusters only to tell
// a rejected user which ones they may use.
type access struct {
	client    client.Reader
	namespace string

	labels       map[string]string
	labelsLoaded bool
	usable       []string
	usableLoaded bool
}

func newAccess(c client.Reader, namespace string) *access {
	return &access{client: c, namespace: namespace}
}

func (a *access) namespaceLabels(ctx context.Context) (map[string]string, error) {
	if a.labelsLoaded {
		return a.labels, nil
	}
	ns := &corev1.Namespace{}
	err := a.client.Get(ctx, client.ObjectKey{Name: a.namespace}, ns)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading namespace %s: %w", a.namespace, err)
	}
	a.labels, a.labelsLoaded = ns.Labels, true
	return a.labels, nil
}

// admits reports whether ic admits the namespace.
func (a *access) admits(ctx context.Context, ic *infrav1.InfraCluster) (bool, error) {
	var nsLabels map[string]string
	if ic.Spec.AllowedNamespaces != nil && ic.Spec.AllowedNamespaces.Selector != nil {
		var err error
		if nsLabels, err = a.namespaceLabels(ctx); err != nil {
			return false, err
		}
	}
	return placement.NamespaceAllowed(ic.Spec.AllowedNamespaces, a.namespace, nsLabels)
}

// usableNames lists the InfraClusters that admit the namespace, for messages.
func (a *access) usableNames(ctx context.Context) (string, error) {
	if !a.usableLoaded {
		list := &infrav1.InfraClusterList{}
		if err := a.client.List(ctx, list); err != nil {
			return "", fmt.Errorf("listing InfraClusters: %w", err)
		}
		for i := range list.Items {
			ok, err := a.admits(ctx, &list.Items[i])
			if err == nil && ok {
				a.usable = append(a.usable, list.Items[i].Name)
			}
		}
		a.usableLoaded = true
	}
	if len(a.usable) == 0 {
		return "none", nil
	}
	return strings.Join(a.usable, ", "), nil
}

// check returns a field error when the InfraCluster called name does not exist or does not admit the
// namespace, naming the InfraClusters the namespace may use instead.
func (a *access) check(ctx context.Context, name string, path *field.Path) (*field.Error, error) {
	ic := &infrav1.InfraCluster{}
	if err := a.client.Get(ctx, client.ObjectKey{Name: name}, ic); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading InfraCluster %s: %w", name, err)
		}
		usable, err := a.usableNames(ctx)
		if err != nil {
			return nil, err
		}
		return field.Invalid(path, name, fmt.Sprintf("InfraCluster %q not found; InfraClusters that admit namespace %q: %s", name, a.namespace, usable)), nil
	}
	ok, err := a.admits(ctx, ic)
	if err != nil {
		return field.Invalid(path, name, fmt.Sprintf("InfraCluster %q cannot be checked: %v", name, err)), nil
	}
	if ok {
		return nil, nil
	}
	usable, err := a.usableNames(ctx)
	if err != nil {
		return nil, err
	}
	return field.Forbidden(path, fmt.Sprintf("InfraCluster %q does not admit namespace %q (%s): ask its administrator to admit it; InfraClusters that admit %q: %s",
		name, a.namespace, placement.DescribeAllowedNamespaces(ic.Spec.AllowedNamespaces), a.namespace, usable)), nil
}

// checkInfraClusterUses checks the uses whose name is in names (all of them when names is nil).
func checkInfraClusterUses(ctx context.Context, a *access, uses []infrav1.InfraClusterUse, names map[string]bool, path *field.Path) (field.ErrorList, error) {
	var errs field.ErrorList
	for i, use := range uses {
		if names != nil && !names[use.Name] {
			continue
		}
		fe, err := a.check(ctx, use.Name, path.Index(i).Child("name"))
		if err != nil {
			return nil, err
		}
		if fe != nil {
			errs = append(errs, fe)
		}
	}
	return errs, nil
}
