package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// requestsFor is the body of every watch that fans one changed object out to the objects indexed
// by it: it lists what opts select into list (from the cache) and requests a reconcile of each.
// A map function cannot return an error, so a failed list is logged and maps to nothing; the
// objects are reconciled again at their next event or resync.
func requestsFor(ctx context.Context, c client.Reader, changed client.Object, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := c.List(ctx, list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the objects a change is mapped to", "list", fmt.Sprintf("%T", list), "changed", klog.KObj(changed))
		return nil
	}
	objs, err := objectsOf(list)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Reading a list", "list", fmt.Sprintf("%T", list))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(objs))
	for _, o := range objs {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
	}
	return reqs
}

// ownerOfKind maps an object in an Infra cluster to the management object of kind
// (ownership.KindNestMachine or KindNestCluster) that made it, named in full by the object's
// ownership annotations (labels shorten long names); an object of another owner maps to nothing.
func ownerOfKind(kind string) func(ctx context.Context, infra string, o client.Object) []reconcile.Request {
	return func(_ context.Context, _ string, o client.Object) []reconcile.Request {
		owner, ok := ownership.OwnerOf(o)
		if !ok || owner.Kind != kind {
			return nil
		}
		return []reconcile.Request{{NamespacedName: owner.Key()}}
	}
}

// objectsOf is the items of a typed list, as pointers into it.
func objectsOf(l client.ObjectList) ([]client.Object, error) {
	items, err := meta.ExtractList(l)
	if err != nil {
		return nil, err
	}
	objs := make([]client.Object, 0, len(items))
	for _, item := range items {
		o, ok := item.(client.Object)
		if !ok {
			return nil, fmt.Errorf("%T in %T is not an object", item, l)
		}
		objs = append(objs, o)
	}
	return objs, nil
}
