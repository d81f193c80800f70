package kubevirt

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// labelOps are the JSON patch operations that turn orig's labels named by keys into upd's: set, changed
// or removed.
func labelOps(orig, upd client.Object, keys ...string) []simkit.JSONPatchOp {
	var ops []simkit.JSONPatchOp
	set := map[string]string{}
	for _, key := range keys {
		v, want := upd.GetLabels()[key]
		old, has := orig.GetLabels()[key]
		switch {
		case want && (!has || old != v):
			set[key] = v
		case !want && has:
			ops = append(ops, simkit.RemoveLabelOp(key))
		}
	}
	if len(set) == 0 {
		return ops
	}
	if orig.GetLabels() == nil {
		return append(ops, simkit.JSONPatchOp{Op: "add", Path: "/metadata/labels", Value: set})
	}
	for _, key := range keys {
		if v, ok := set[key]; ok {
			ops = append(ops, simkit.JSONPatchOp{Op: "add", Path: "/metadata/labels/" + simkit.EscapePointer(key), Value: v})
		}
	}
	return ops
}
