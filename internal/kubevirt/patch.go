package kubevirt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// MaxPatchedSize bounds the JSON of a patched VirtualMachine. A few copy operations can double the
// document each time; an object this size is already past what an API server stores.
const MaxPatchedSize = 1 << 20

// PatchError says which of spec.kubevirt.vmPatches failed and why. Index lets a webhook build a
// field path; Error names the field, the operation and its path.
type PatchError struct {
	// Index of the patch in spec.kubevirt.vmPatches.
	Index int
	// Patch that failed.
	Patch infrav1.JSONPatch
	// Err is why it failed.
	Err error
}

// Error implements error.
func (e *PatchError) Error() string {
	target := e.Patch.Path
	if e.Patch.From != "" {
		target = e.Patch.From + " to " + e.Patch.Path
	}
	return fmt.Sprintf("spec.kubevirt.vmPatches[%d] (%s %s): %v", e.Index, e.Patch.Op, target, e.Err)
}

// Unwrap returns the cause.
func (e *PatchError) Unwrap() error { return e.Err }

// ApplyPatches applies RFC 6902 patches, in order, to the JSON of vm and decodes the result back
// into a VirtualMachine, strictly: a field KubeVirt does not know is an error, as the API server
// would prune it silently. Every patch must leave a valid VirtualMachine, which is what lets the
// error name the patch at fault. Patches may not change the VM's identity (apiVersion, kind, name,
// namespace) nor the ownership labels and annotation it carries: those are how the provider finds
// its VMs again. vm is not modified. Errors are *PatchError.
func ApplyPatches(vm *kubevirtv1.VirtualMachine, patches []infrav1.JSONPatch) (*kubevirtv1.VirtualMachine, error) {
	out := vm.DeepCopy()
	if len(patches) == 0 {
		return out, nil
	}
	doc, err := json.Marshal(vm)
	if err != nil {
		return nil, fmt.Errorf("cannot encode VirtualMachine %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	opts := jsonpatch.NewApplyOptions()
	// RFC 6902 knows no negative indices; accepting them would make patches mean something else
	// in another implementation.
	opts.SupportNegativeIndices = false
	opts.AccumulatedCopySizeLimit = MaxPatchedSize

	for i, p := range patches {
		fail := func(err error) (*kubevirtv1.VirtualMachine, error) {
			return nil, &PatchError{Index: i, Patch: p, Err: err}
		}
		if err := validatePatch(p); err != nil {
			return fail(err)
		}
		op, err := encodeOperation(p)
		if err != nil {
			return fail(err)
		}
		patch, err := jsonpatch.DecodePatch(op)
		if err != nil {
			return fail(err)
		}
		if doc, err = patch.ApplyWithOptions(doc, opts); err != nil {
			return fail(err)
		}
		if len(doc) > MaxPatchedSize {
			return fail(fmt.Errorf("the patched VirtualMachine is larger than %d bytes", MaxPatchedSize))
		}
		if out, err = decodeStrict(doc); err != nil {
			return fail(err)
		}
		if err := sameIdentity(vm, out); err != nil {
			return fail(err)
		}
	}
	return out, nil
}

// validatePatch checks what the CRD schema cannot: a value is required by add, replace and test,
// but the schema cannot tell a missing value from a null one.
func validatePatch(p infrav1.JSONPatch) error {
	switch p.Op {
	case "add", "replace", "test":
		if p.Value == nil {
			return fmt.Errorf("op %q needs a value", p.Op)
		}
	case "move", "copy":
		if p.From == "" {
			return fmt.Errorf("op %q needs from", p.Op)
		}
	case "remove":
	default:
		return fmt.Errorf("op %q is not one of add, remove, replace, move, copy, test", p.Op)
	}
	if !strings.HasPrefix(p.Path, "/") {
		return errors.New("path must be a JSON pointer starting with /")
	}
	return nil
}

func encodeOperation(p infrav1.JSONPatch) ([]byte, error) {
	op := map[string]any{"op": string(p.Op), "path": p.Path}
	if p.From != "" {
		op["from"] = p.From
	}
	if p.Value != nil {
		// A value that decoded from JSON null has no bytes left: it still means null.
		raw := json.RawMessage("null")
		if len(p.Value.Raw) > 0 {
			raw = p.Value.Raw
		}
		if !json.Valid(raw) {
			return nil, errors.New("value is not valid JSON")
		}
		op["value"] = raw
	}
	return json.Marshal([]any{op})
}

// decodeStrict decodes a patched VirtualMachine, failing on fields it does not know. Decoding with
// DisallowUnknownFields is not enough: KubeVirt types with their own UnmarshalJSON (the VMI spec
// among them) decode their content leniently, so the unknown fields are found by walking the JSON
// against the Go type, case-sensitively like the API server.
func decodeStrict(doc []byte) (*kubevirtv1.VirtualMachine, error) {
	var generic any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("the patched VirtualMachine is not valid JSON: %w", err)
	}
	if field := unknownField(generic, reflect.TypeFor[kubevirtv1.VirtualMachine](), ""); field != "" {
		return nil, fmt.Errorf("the patched VirtualMachine has an unknown field %q", field)
	}
	vm := &kubevirtv1.VirtualMachine{}
	if err := json.Unmarshal(doc, vm); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, fmt.Errorf("the patched VirtualMachine has a JSON %s at %q, where KubeVirt expects a %s", typeErr.Value, typeErr.Field, typeErr.Type)
		}
		return nil, fmt.Errorf("the patched VirtualMachine does not decode: %w", err)
	}
	return vm, nil
}

// unknownField returns the dotted path of the first JSON field (in sorted order, so the same
// document always reports the same field) that type t has no field for, or "".
func unknownField(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		switch t.Kind() {
		case reflect.Map:
			for _, k := range keys {
				if f := unknownField(val[k], t.Elem(), join(path, k)); f != "" {
					return f
				}
			}
		case reflect.Struct:
			fields := jsonFields(t)
			if fields == nil {
				// A type that decodes itself from arbitrary JSON (FieldsV1, RawExtension).
				return ""
			}
			for _, k := range keys {
				ft, ok := fields[k]
				if !ok {
					return join(path, k)
				}
				if f := unknownField(val[k], ft, join(path, k)); f != "" {
					return f
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range val {
				if f := unknownField(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); f != "" {
					return f
				}
			}
		}
	}
	// Scalars and shape mismatches: json.Unmarshal reports the latter with the Go type.
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	fieldCache         sync.Map // reflect.Type -> map[string]reflect.Type
	jsonUnmarshalerTyp = reflect.TypeFor[json.Unmarshaler]()
)

// jsonFields maps the JSON names of struct type t to their types, following encoding/json: inline
// embedded structs contribute their fields, "-" hides a field. It returns nil for a type that
// implements json.Unmarshaler and shows no JSON field, whose content is opaque.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	// Fields of the outer struct win over those of embedded ones, as in encoding/json.
	for _, et := range embedded {
		for name, ft := range jsonFields(et) {
			if _, ok := fields[name]; !ok {
				fields[name] = ft
			}
		}
	}
	if len(fields) == 0 && reflect.PointerTo(t).Implements(jsonUnmarshalerTyp) {
		fields = nil
	}
	fieldCache.Store(t, fields)
	return fields
}

// sameIdentity refuses patches that would make the VM lose track of its NestMachine.
func sameIdentity(before, after *kubevirtv1.VirtualMachine) error {
	switch {
	case after.APIVersion != before.APIVersion || after.Kind != before.Kind:
		return errors.New("patches may not change apiVersion or kind")
	case after.Name != before.Name:
		return errors.New("patches may not change metadata.name: the provider finds the VM by it")
	case after.Namespace != before.Namespace:
		return errors.New("patches may not change metadata.namespace")
	}
	for _, k := range ownership.AnnotationKeys {
		if after.Annotations[k] != before.Annotations[k] {
			return fmt.Errorf("patches may not change the annotation %s", k)
		}
	}
	if err := sameOwnedLabels("metadata.labels", before.Labels, after.Labels); err != nil {
		return err
	}
	if before.Spec.Template != nil {
		var afterLabels map[string]string
		if after.Spec.Template != nil {
			afterLabels = after.Spec.Template.ObjectMeta.Labels
		}
		if err := sameOwnedLabels("spec.template.metadata.labels", before.Spec.Template.ObjectMeta.Labels, afterLabels); err != nil {
			return err
		}
	}
	return nil
}

func sameOwnedLabels(where string, before, after map[string]string) error {
	for _, k := range ownedLabelKeys {
		b, had := before[k]
		if !had {
			continue
		}
		if a, has := after[k]; !has || a != b {
			return fmt.Errorf("patches may not change the label %s in %s: the provider and its scheduler rely on it", k, where)
		}
	}
	return nil
}

// CheckPatches is for the admission webhook: it renders a sample VM from spec and applies
// spec.vmPatches, so that a patch that can never apply is refused before any machine is made.
// The webhook cannot know whether the machine will be a control plane or which bootstrap format
// it will get, and these change the VM; the patches pass when they apply to at least one of those
// renderings, and otherwise the error is the worker, cloud-config one's. Errors name
// spec.kubevirt.vmPatches[i] (they are *PatchError) unless the spec itself cannot be rendered.
func CheckPatches(spec *infrav1.KubeVirtMachineSpec, allow []infrav1.VMPatchFeature) error {
	if spec == nil || len(spec.VMPatches) == 0 {
		return nil
	}
	var first error
	for _, controlPlane := range []bool{false, true} {
		for _, format := range []string{FormatCloudConfig, FormatIgnition} {
			in := sampleInput(spec, controlPlane, format)
			in.PatchPolicy = allow
			_, err := RenderVM(in)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// sampleInput is a plausible Input around spec, with placeholder names.
func sampleInput(spec *infrav1.KubeVirtMachineSpec, controlPlane bool, format string) Input {
	const placeholder = "sample"
	machine := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: placeholder, Name: placeholder}}
	if controlPlane {
		machine.Labels = map[string]string{clusterv1.MachineControlPlaneLabel: ""}
	}
	return Input{
		NestMachine: &infrav1.NestMachine{
			ObjectMeta: metav1.ObjectMeta{Namespace: placeholder, Name: placeholder, UID: types.UID("00000000-0000-0000-0000-000000000000")},
			Spec:       infrav1.NestMachineSpec{KubeVirt: spec.DeepCopy()},
		},
		Machine:             machine,
		ClusterName:         placeholder,
		Namespace:           placeholder,
		BootstrapSecretName: BootstrapSecretName(placeholder),
		BootstrapFormat:     format,
	}
}
