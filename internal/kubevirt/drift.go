package kubevirt

import (
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
	kubevirtv1 "kubevirt.io/api/core/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// templateAnnotationKeys are the template annotations drift reconciles: the owner in full, which the
// instance carries so that its events find a NestMachine with a long name.
var templateAnnotationKeys = []string{infrav1.NestMachineAnnotation, infrav1.NestClusterAnnotation}

// MutableDrift brings the fields of an existing VM that may change after creation back to what was
// rendered, and tells whether anything changed (so whether to send an update). Those fields are:
// the run strategy, the labels and annotation this provider owns (on the VM and its template; other
// labels are left alone), and on the template the eviction strategy and the placement (node
// selector, tolerations, affinity). KubeVirt applies placement to a running VM (live update) and the
// eviction strategy on its next start. Everything else is left as found: it is either immutable in
// practice (disks, data volume templates, CPU and memory of a running guest) or written by
// KubeVirt itself (the instancetype revision, defaults its webhooks add, status).
//
// actual is not modified; the result is a copy.
func MutableDrift(desired, actual *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachine, bool) {
	updated := actual.DeepCopy()
	changed := false

	if syncOwned(&updated.Labels, desired.Labels, ownedLabelKeys) {
		changed = true
	}
	if syncOwned(&updated.Annotations, desired.Annotations, ownership.AnnotationKeys) {
		changed = true
	}
	if !equality.Semantic.DeepEqual(updated.Spec.RunStrategy, desired.Spec.RunStrategy) || updated.Spec.Running != nil {
		updated.Spec.RunStrategy = copyPtr(desired.Spec.RunStrategy)
		// running and runStrategy are mutually exclusive: KubeVirt rejects a VM with both.
		updated.Spec.Running = nil
		changed = true
	}

	if desired.Spec.Template == nil || updated.Spec.Template == nil {
		return updated, changed
	}
	want, got := &desired.Spec.Template.Spec, &updated.Spec.Template.Spec
	if syncOwned(&updated.Spec.Template.ObjectMeta.Labels, desired.Spec.Template.ObjectMeta.Labels, templateDriftKeys) {
		changed = true
	}
	if syncOwned(&updated.Spec.Template.ObjectMeta.Annotations, desired.Spec.Template.ObjectMeta.Annotations, templateAnnotationKeys) {
		changed = true
	}
	if !equality.Semantic.DeepEqual(got.EvictionStrategy, want.EvictionStrategy) {
		got.EvictionStrategy = copyPtr(want.EvictionStrategy)
		changed = true
	}
	if !(len(got.NodeSelector) == 0 && len(want.NodeSelector) == 0) && !equality.Semantic.DeepEqual(got.NodeSelector, want.NodeSelector) {
		got.NodeSelector = maps.Clone(want.NodeSelector)
		changed = true
	}
	if !(len(got.Tolerations) == 0 && len(want.Tolerations) == 0) && !equality.Semantic.DeepEqual(got.Tolerations, want.Tolerations) {
		got.Tolerations = nil
		for i := range want.Tolerations {
			got.Tolerations = append(got.Tolerations, *want.Tolerations[i].DeepCopy())
		}
		changed = true
	}
	if !equality.Semantic.DeepEqual(got.Affinity, want.Affinity) {
		got.Affinity = want.Affinity.DeepCopy()
		changed = true
	}
	return updated, changed
}

// syncOwned sets the keys of *have that we own to their values in want (removing those want lacks),
// leaving other keys alone, and reports whether it changed anything.
func syncOwned(have *map[string]string, want map[string]string, keys []string) bool {
	changed := false
	for _, k := range keys {
		w, wantIt := want[k]
		h, hasIt := (*have)[k]
		switch {
		case wantIt && (!hasIt || h != w):
			if *have == nil {
				*have = map[string]string{}
			}
			(*have)[k] = w
			changed = true
		case !wantIt && hasIt:
			delete(*have, k)
			changed = true
		}
	}
	return changed
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
