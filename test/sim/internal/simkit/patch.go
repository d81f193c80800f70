package simkit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// JSONPatchOp is one operation of a JSON patch (RFC 6902).
type JSONPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// SetLabelOp sets one label of obj.
func SetLabelOp(obj client.Object, key, value string) JSONPatchOp {
	if obj.GetLabels() == nil {
		return JSONPatchOp{Op: "add", Path: "/metadata/labels", Value: map[string]string{key: value}}
	}
	return JSONPatchOp{Op: "add", Path: "/metadata/labels/" + EscapePointer(key), Value: value}
}

// RemoveLabelOp removes one label of obj, which must have it.
func RemoveLabelOp(key string) JSONPatchOp {
	return JSONPatchOp{Op: "remove", Path: "/metadata/labels/" + EscapePointer(key)}
}

// EscapePointer escapes a map key for a JSON pointer (RFC 6901).
func EscapePointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// WriteStatus replaces obj's status with status, through the status subresource when subresource is set,
// with ops applied in the same request when it goes to the main resource (in a second one otherwise).
// Only the status is encoded and only metadata is read back: status writes are most of what a simulator
// sends, and it learns the result from its watches anyway.
func WriteStatus(ctx context.Context, c client.Client, obj client.Object, status any, subresource bool, ops ...JSONPatchOp) error {
	return writeStatus(ctx, c, obj, status, subresource, nil, ops)
}

// WriteStatusLocked is WriteStatus only while obj is at the resourceVersion it was read at: the patch
// sets it, which the API server takes as a precondition and answers with a Conflict when another write
// came first. Two controllers that both replace an object's whole status (the VMI's) need it, or one
// overwrites what the other wrote.
func WriteStatusLocked(ctx context.Context, c client.Client, obj client.Object, status any, subresource bool, ops ...JSONPatchOp) error {
	lock := []JSONPatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: obj.GetResourceVersion()}}
	return writeStatus(ctx, c, obj, status, subresource, lock, ops)
}

func writeStatus(ctx context.Context, c client.Client, obj client.Object, status any, subresource bool, lock, ops []JSONPatchOp) error {
	all := append(lock, JSONPatchOp{Op: "add", Path: "/status", Value: status})
	if !subresource {
		all = append(all, ops...)
	}
	if err := jsonPatch(ctx, c, obj, subresource, all); err != nil {
		return err
	}
	if subresource && len(ops) > 0 {
		return jsonPatch(ctx, c, obj, false, ops)
	}
	return nil
}

func jsonPatch(ctx context.Context, c client.Client, obj client.Object, status bool, ops []JSONPatchOp) error {
	data, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding a patch: %w", err)
	}
	target, err := metadataOf(c, obj)
	if err != nil {
		return err
	}
	raw := client.RawPatch(types.JSONPatchType, data)
	if status {
		return c.Status().Patch(ctx, target, raw)
	}
	return c.Patch(ctx, target, raw)
}

// Patch sends what changed from orig to upd (metadata and spec) as a JSON merge patch, carrying orig's
// resourceVersion when lock is set, and reads back only metadata.
func Patch(ctx context.Context, c client.Client, orig, upd client.Object, lock bool) error {
	var p client.Patch = client.MergeFrom(orig)
	if lock {
		p = client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
	}
	data, err := p.Data(upd)
	if err != nil {
		return fmt.Errorf("computing a patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	target, err := metadataOf(c, orig)
	if err != nil {
		return err
	}
	return c.Patch(ctx, target, client.RawPatch(types.MergePatchType, data))
}

// metadataOf is a PartialObjectMetadata naming obj, so that the client reads back only metadata.
func metadataOf(c client.Client, obj client.Object) (*metav1.PartialObjectMetadata, error) {
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		return nil, err
	}
	target := &metav1.PartialObjectMetadata{}
	target.SetGroupVersionKind(gvk)
	target.SetNamespace(obj.GetNamespace())
	target.SetName(obj.GetName())
	return target, nil
}
