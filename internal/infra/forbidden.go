package infra

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// RBACDir is where the Infra-side RBAC of the provider ships: what a ForbiddenError tells the reader
// to compare the Infra cluster's grants with.
const RBACDir = "config/infra-rbac"

// ForbiddenError is an Infra cluster's API server refusing a request of the provider's identity. It
// names what to grant, so the InfraCluster or NestMachine condition that carries it is actionable,
// and wraps the API server's error: apierrors.IsForbidden holds for it.
type ForbiddenError struct {
	// InfraCluster is the name of the InfraCluster.
	InfraCluster string
	// User is the identity the Infra cluster saw, when its answer names it.
	User string
	// Verb is the refused verb: get, list, watch, create, update, patch, delete.
	Verb string
	// Resource is the resource with its API group, "virtualmachines.kubevirt.io", or "nodes" for the
	// core group; a subresource follows a slash.
	Resource string
	// Namespace is where the request was refused; empty at the cluster scope.
	Namespace string

	err error
}

func (e *ForbiddenError) Error() string {
	where := "at the cluster scope"
	if e.Namespace != "" {
		where = "in namespace " + e.Namespace
	}
	who := "the provider's identity"
	if e.User != "" {
		who = e.User
	}
	return fmt.Sprintf("forbidden: cannot %s %s %s in Infra cluster %s: grant %s %q on %s there, as the ClusterRole in %s does",
		e.Verb, e.Resource, where, e.InfraCluster, who, e.Verb, e.Resource, RBACDir)
}

func (e *ForbiddenError) Unwrap() error { return e.err }

// rbacRefusal matches the API server's message for a resource request its authorizer refused
// (k8s.io/apiserver's responsewriters.forbiddenMessage).
var rbacRefusal = regexp.MustCompile(`User "([^"]*)" cannot (\S+) resource "([^"]+)" in API group "([^"]*)"(?: in the namespace "([^"]+)"| at the cluster scope)`)

// Forbidden returns err as a *ForbiddenError of Infra cluster infra when it is the API server's
// refusal, else err unchanged. verb and namespace are what the caller asked, for an answer whose
// message does not say (an authorizer other than RBAC's wording).
func Forbidden(infra, verb, namespace string, err error) error {
	if err == nil || !apierrors.IsForbidden(err) {
		return err
	}
	var already *ForbiddenError
	if errors.As(err, &already) {
		return err
	}
	fe := &ForbiddenError{InfraCluster: infra, Verb: verb, Namespace: namespace, err: err}
	if m := rbacRefusal.FindStringSubmatch(err.Error()); m != nil {
		fe.User, fe.Verb, fe.Namespace = m[1], m[2], m[5]
		fe.Resource = qualifiedResource(m[3], m[4])
		return fe
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil {
			fe.Resource = qualifiedResource(d.Kind, d.Group)
		}
	}
	if fe.Resource == "" {
		fe.Resource = "an unnamed resource"
	}
	return fe
}

// qualifiedResource is resource.group, with a subresource after a slash: "virtualmachines.kubevirt.io",
// "nodes", "virtualmachines.kubevirt.io/finalizers".
func qualifiedResource(resource, group string) string {
	name, sub, _ := strings.Cut(resource, "/")
	if group != "" {
		name += "." + group
	}
	if sub != "" {
		name += "/" + sub
	}
	return name
}

// forbiddenNaming is a client whose errors name what an Infra cluster refused (Forbidden).
type forbiddenNaming struct {
	client.Client
	infra string
}

func (c forbiddenNaming) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return Forbidden(c.infra, "get", key.Namespace, c.Client.Get(ctx, key, obj, opts...))
}

func (c forbiddenNaming) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	return Forbidden(c.infra, "list", o.Namespace, c.Client.List(ctx, list, opts...))
}

func (c forbiddenNaming) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return Forbidden(c.infra, "create", obj.GetNamespace(), c.Client.Create(ctx, obj, opts...))
}

func (c forbiddenNaming) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return Forbidden(c.infra, "update", obj.GetNamespace(), c.Client.Update(ctx, obj, opts...))
}

func (c forbiddenNaming) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return Forbidden(c.infra, "patch", obj.GetNamespace(), c.Client.Patch(ctx, obj, patch, opts...))
}

func (c forbiddenNaming) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return Forbidden(c.infra, "delete", obj.GetNamespace(), c.Client.Delete(ctx, obj, opts...))
}

func (c forbiddenNaming) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	return Forbidden(c.infra, "deletecollection", obj.GetNamespace(), c.Client.DeleteAllOf(ctx, obj, opts...))
}

// forbiddenNamed wraps c so that its errors name what the Infra cluster refused.
func forbiddenNamed(infra string, c client.Client) client.Client {
	return forbiddenNaming{Client: c, infra: infra}
}

// cacheVerbs are what an informer of the cache does: a list, or a watch that streams the initial
// list, then a watch.
var cacheVerbs = []string{"list", "watch"}

// checkCacheGrants asks the Infra cluster (SelfSubjectAccessReview) whether the provider's identity
// may list and watch every kind the cache holds there, at the cluster scope, and returns a
// *ForbiddenError for the first it may not. An informer that is refused retries forever: without this
// check a missing grant is a cache that never syncs, or one that syncs and then never follows its
// kind, instead of a condition that says what to grant.
func (c *Connection) checkCacheGrants(ctx context.Context, kinds []cachedKind) error {
	for _, k := range kinds {
		gvk, err := apiutil.GVKForObject(k.object, c.scheme)
		if err != nil {
			return err
		}
		mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("mapping %s in Infra cluster %s: %w", gvk.Kind, c.Name, err)
		}
		for _, verb := range cacheVerbs {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: gvk.Group, Resource: mapping.Resource.Resource},
			}}
			if err := c.Uncached.Create(ctx, review); err != nil {
				return fmt.Errorf("asking Infra cluster %s whether the provider may %s %s: %w", c.Name, verb, mapping.Resource.GroupResource(), err)
			}
			if review.Status.Allowed {
				continue
			}
			why := review.Status.Reason
			if why == "" {
				why = "not allowed"
			}
			refusal := apierrors.NewForbidden(mapping.Resource.GroupResource(), "", errors.New(why))
			return &ForbiddenError{InfraCluster: c.Name, Verb: verb, Resource: qualifiedResource(mapping.Resource.Resource, gvk.Group), err: refusal}
		}
	}
	return nil
}
