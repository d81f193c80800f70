package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/cluster-api/util/topology"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// invalid turns a list of field errors into the Invalid status every rejection uses, or nil.
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(infrav1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// validateLabelSelector validates a label selector like the API server does, and says which
// operators exist when one does not.
func validateLabelSelector(sel *metav1.LabelSelector, path *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, path)
	for _, e := range errs {
		if e.Type == field.ErrorTypeInvalid && strings.HasSuffix(e.Field, ".operator") {
			e.Detail = "operator must be one of In, NotIn, Exists, DoesNotExist"
		}
	}
	return errs
}

// changedFields returns the paths under root where oldObj and newObj differ, compared as JSON: the
// deepest object field that differs, lists as a whole. Comparing the serialised form keeps a
// defaulted-but-equal pointer or an empty map from counting as a change.
func changedFields(root *field.Path, oldObj, newObj any) ([]*field.Path, error) {
	oldJSON, err := toJSONValue(oldObj)
	if err != nil {
		return nil, err
	}
	newJSON, err := toJSONValue(newObj)
	if err != nil {
		return nil, err
	}
	var changed []*field.Path
	diffJSON(root, oldJSON, newJSON, &changed)
	return changed, nil
}

func toJSONValue(obj any) (any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("serialising %T to compare it: %w", obj, err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("reading back %T to compare it: %w", obj, err)
	}
	return v, nil
}

func diffJSON(path *field.Path, oldV, newV any, changed *[]*field.Path) {
	oldMap, oldIsMap := oldV.(map[string]any)
	newMap, newIsMap := newV.(map[string]any)
	if !oldIsMap || !newIsMap {
		if !reflect.DeepEqual(oldV, newV) {
			*changed = append(*changed, path)
		}
		return
	}
	keys := make([]string, 0, len(oldMap)+len(newMap))
	for k := range oldMap {
		keys = append(keys, k)
	}
	for k := range newMap {
		if _, ok := oldMap[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		diffJSON(path.Child(k), oldMap[k], newMap[k], changed)
	}
}

// within reports whether p is one of roots or below one of them.
func within(p *field.Path, roots ...string) bool {
	s := p.String()
	for _, root := range roots {
		if s == root || strings.HasPrefix(s, root+".") || strings.HasPrefix(s, root+"[") {
			return true
		}
	}
	return false
}

// joinPaths renders paths for a message.
func joinPaths(paths []*field.Path) string {
	parts := make([]string, 0, len(paths))
	for _, p := range paths {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, ", ")
}

// isTopologyDryRun reports whether the request in ctx is a ClusterClass topology dry run, which
// must not be stopped by template immutability: the topology controller uses it to compute what a
// change would look like. A context without a request (a direct call) is not one.
func isTopologyDryRun(ctx context.Context, obj metav1.Object) bool {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return false
	}
	return topology.IsDryRunRequest(req, obj)
}
