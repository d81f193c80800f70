package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// protectedVMPointers are the parts of the rendered VirtualMachine a patch may not write: its
// identity and the labels the provider finds it by. A patch that changed them would orphan the VM.
var protectedVMPointers = func() []string {
	pointers := []string{"/apiVersion", "/kind", "/metadata/name", "/metadata/namespace"}
	for _, label := range append(slices.Clone(ownership.LabelKeys), clusterv1.ClusterNameLabel) {
		pointers = append(pointers, "/metadata/labels/"+escapePointerToken(label))
	}
	for _, annotation := range ownership.AnnotationKeys {
		pointers = append(pointers, "/metadata/annotations/"+escapePointerToken(annotation))
	}
	return pointers
}()

func escapePointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// validPointer reports whether p is an RFC 6901 JSON pointer: empty, or "/"-separated tokens in
// which "~" only starts the escapes "~0" and "~1".
func validPointer(p string) bool {
	if p != "" && !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return false
		}
	}
	return true
}

// overlaps reports whether writing at a touches b: the same location, an ancestor or a descendant.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/")
}

// pointerWrite is a location an operation writes (or removes), and the field that names it.
type pointerWrite struct {
	pointer string
	path    *field.Path
}

// validateVMPatches checks each RFC 6902 operation on its own — well-formed pointers, the value or
// source its op needs, no write to the VM's identity or ownership labels — with a message on the
// exact field; then, when each is well formed, that the list applies to the VirtualMachine the
// provider renders from this spec (internal/kubevirt.CheckPatches), so a patch that can never apply
// is refused before a machine is made.
func validateVMPatches(kv *infrav1.KubeVirtMachineSpec, allow []infrav1.VMPatchFeature, path *field.Path) field.ErrorList {
	errs := validateVMPatchOps(kv, path)
	if len(errs) > 0 || len(kv.VMPatches) == 0 {
		return errs
	}
	err := kubevirt.CheckPatches(kv, allow)
	var patchErr *kubevirt.PatchError
	var policyErr *kubevirt.PolicyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &policyErr):
		return field.ErrorList{field.Forbidden(path, policyErr.Error()+"; no InfraCluster that admits this namespace allows it")}
	case errors.As(err, &patchErr):
		return field.ErrorList{field.Invalid(path.Index(patchErr.Index).Child("path"), patchErr.Patch.Path,
			fmt.Sprintf("%s %s does not apply to the VirtualMachine rendered from this spec: %v", patchErr.Patch.Op, patchErr.Patch.Path, patchErr.Err))}
	default:
		return field.ErrorList{field.Invalid(path, len(kv.VMPatches), fmt.Sprintf("the patches cannot be checked: %v", err))}
	}
}

func validateVMPatchOps(kv *infrav1.KubeVirtMachineSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range kv.VMPatches {
		pp := path.Index(i)
		if !validPointer(p.Path) {
			errs = append(errs, field.Invalid(pp.Child("path"), p.Path, `not a JSON pointer (RFC 6901): "/"-separated tokens, with "~" written "~0" and "/" inside a token written "~1"`))
		}
		if p.From != "" && !validPointer(p.From) {
			errs = append(errs, field.Invalid(pp.Child("from"), p.From, `not a JSON pointer (RFC 6901): "/"-separated tokens, with "~" written "~0" and "/" inside a token written "~1"`))
		}
		var written []pointerWrite
		switch p.Op {
		case "add", "replace", "test":
			if p.Value == nil || len(p.Value.Raw) == 0 {
				errs = append(errs, field.Required(pp.Child("value"), fmt.Sprintf("op %s needs a value", p.Op)))
			}
			if p.Op != "test" {
				written = append(written, pointerWrite{p.Path, pp.Child("path")})
			}
		case "remove":
			written = append(written, pointerWrite{p.Path, pp.Child("path")})
		case "move", "copy":
			if p.From == "" {
				errs = append(errs, field.Required(pp.Child("from"), fmt.Sprintf("op %s needs from, the pointer it takes the value from", p.Op)))
				break
			}
			if p.Op == "move" && strings.HasPrefix(p.Path, p.From+"/") {
				errs = append(errs, field.Invalid(pp.Child("path"), p.Path, fmt.Sprintf("a location cannot be moved into itself (%s is inside from %s)", p.Path, p.From)))
			}
			written = append(written, pointerWrite{p.Path, pp.Child("path")})
			if p.Op == "move" {
				written = append(written, pointerWrite{p.From, pp.Child("from")})
			}
		}
		for _, w := range written {
			for _, protected := range protectedVMPointers {
				if overlaps(w.pointer, protected) {
					errs = append(errs, field.Forbidden(w.path, fmt.Sprintf("%s %s would change %s of the VirtualMachine, which the provider owns: it is how the VM is named and found; patch other fields", p.Op, w.pointer, protected)))
					break
				}
			}
		}
	}
	return errs
}

// patchAllowance is what the VM patches of a NestMachine (or template) in namespace may add: what at
// least one InfraCluster admitting the namespace allows (the controller applies the policy of the
// Infra cluster the machine lands in before creating its VM). No reader allows nothing.
func patchAllowance(ctx context.Context, c client.Reader, namespace string) ([]infrav1.VMPatchFeature, error) {
	if c == nil {
		return nil, nil
	}
	a := newAccess(c, namespace)
	ics := &infrav1.InfraClusterList{}
	if err := c.List(ctx, ics); err != nil {
		return nil, fmt.Errorf("listing InfraClusters: %w", err)
	}
	var allow []infrav1.VMPatchFeature
	for i := range ics.Items {
		ic := &ics.Items[i]
		if ic.Spec.VMPatchPolicy == nil || len(ic.Spec.VMPatchPolicy.Allow) == 0 {
			continue
		}
		if ok, err := a.admits(ctx, ic); err != nil || !ok {
			continue
		}
		for _, f := range ic.Spec.VMPatchPolicy.Allow {
			if !slices.Contains(allow, f) {
				allow = append(allow, f)
			}
		}
	}
	return allow, nil
}
