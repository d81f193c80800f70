package kubevirt

import (
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestApplyPatches(t *testing.T) {
	tests := []struct {
		name    string
		patches []infrav1.JSONPatch
		check   func(g Gomega, vm *kubevirtv1.VirtualMachine)
	}{
		{
			name:    "no patches return an equal copy",
			patches: nil,
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm).To(Equal(mustRender(t, workerInput())))
			},
		},
		{
			name:    "add sets a field the curated API does not cover",
			patches: []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"bootloader":{"efi":{"secureBoot":true}}}`)}},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.Firmware.Bootloader.EFI.SecureBoot).To(Equal(ptr.To(true)))
			},
		},
		{
			name: "add appends to a list with -",
			patches: []infrav1.JSONPatch{
				{Op: "add", Path: "/spec/template/spec/domain/devices/disks/-", Value: jsonValue(`{"name":"scratch","disk":{"bus":"virtio"}}`)},
				{Op: "add", Path: "/spec/template/spec/volumes/-", Value: jsonValue(`{"name":"scratch","emptyDisk":{"capacity":"10Gi"}}`)},
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Domain.Devices.Disks).To(HaveLen(3))
				g.Expect(vm.Spec.Template.Spec.Domain.Devices.Disks[2].Name).To(Equal("scratch"))
				g.Expect(vm.Spec.Template.Spec.Volumes[2].EmptyDisk.Capacity.String()).To(Equal("10Gi"))
			},
		},
		{
			name:    "add with a null value clears a field",
			patches: []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/evictionStrategy", Value: &apiextensionsv1.JSON{}}},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.EvictionStrategy).To(BeNil())
			},
		},
		{
			name:    "remove drops a field",
			patches: []infrav1.JSONPatch{{Op: "remove", Path: "/spec/template/spec/schedulerName"}},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.SchedulerName).To(BeEmpty())
			},
		},
		{
			name: "test guards a replace",
			patches: []infrav1.JSONPatch{
				{Op: "test", Path: "/spec/runStrategy", Value: jsonValue(`"Always"`)},
				{Op: "replace", Path: "/spec/runStrategy", Value: jsonValue(`"Manual"`)},
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyManual)))
			},
		},
		{
			name: "move and copy, with ~1 escaping / in label keys",
			patches: []infrav1.JSONPatch{
				{Op: "add", Path: "/metadata/labels/scratch", Value: jsonValue(`"x"`)},
				{Op: "move", From: "/metadata/labels/scratch", Path: "/metadata/annotations/scratch"},
				{Op: "copy", From: "/metadata/labels/cluster.x-k8s.io~1cluster-name", Path: "/metadata/annotations/tenant"},
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Labels).NotTo(HaveKey("scratch"))
				g.Expect(vm.Annotations).To(HaveKeyWithValue("scratch", "x"))
				g.Expect(vm.Annotations).To(HaveKeyWithValue("tenant", "tenant1"))
			},
		},
		{
			// docs/scheduler.md: how a tenant keeps its VMs out of nest-consolidator's moves.
			name:    "an annotation on the VMI template, as the consolidator's opt-out",
			patches: []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/metadata/annotations/nest.cluster.x-k8s.io~1consolidate", Value: jsonValue(`"false"`)}},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.ObjectMeta.Annotations).To(HaveKeyWithValue("nest.cluster.x-k8s.io/consolidate", "false"))
			},
		},
		{
			name: "a field added and removed again leaves a valid VM",
			patches: []infrav1.JSONPatch{
				{Op: "add", Path: "/spec/template/spec/tolerations", Value: jsonValue(`[{"key":"a","operator":"Exists"}]`)},
				{Op: "remove", Path: "/spec/template/spec/tolerations/0"},
			},
			check: func(g Gomega, vm *kubevirtv1.VirtualMachine) {
				g.Expect(vm.Spec.Template.Spec.Tolerations).To(BeEmpty())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			vm := mustRender(t, workerInput())
			before := vm.DeepCopy()
			got, err := ApplyPatches(vm, tt.patches)
			g.Expect(err).NotTo(HaveOccurred())
			tt.check(g, got)
			g.Expect(vm).To(Equal(before), "ApplyPatches must not modify its input")
		})
	}
}

func TestApplyPatchesErrors(t *testing.T) {
	big := `"` + strings.Repeat("x", 400_000) + `"`
	tests := []struct {
		name      string
		patches   []infrav1.JSONPatch
		wantIndex int
		wantErr   string
	}{
		{
			name:      "replace of a path that does not exist",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/spec/template/spec/domain/firmware/uuid", Value: jsonValue(`"x"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /spec/template/spec/domain/firmware/uuid): replace operation does not apply: doc is missing path: /spec/template/spec/domain/firmware/uuid: missing value",
		},
		{
			name: "add under a parent that does not exist, after a patch that applied",
			patches: []infrav1.JSONPatch{
				{Op: "add", Path: "/metadata/labels/ok", Value: jsonValue(`"yes"`)},
				{Op: "add", Path: "/spec/template/spec/domain/firmware/uuid", Value: jsonValue(`"x"`)},
			},
			wantIndex: 1,
			wantErr:   `spec.kubevirt.vmPatches[1] (add /spec/template/spec/domain/firmware/uuid): add operation does not apply: doc is missing path: "/spec/template/spec/domain/firmware/uuid": missing value`,
		},
		{
			name:      "remove of a path that does not exist",
			patches:   []infrav1.JSONPatch{{Op: "remove", Path: "/spec/template/spec/affinity"}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (remove /spec/template/spec/affinity): error in remove for path: '/spec/template/spec/affinity': unable to remove nonexistent key: affinity: missing value`,
		},
		{
			name:      "a negative index is not RFC 6902",
			patches:   []infrav1.JSONPatch{{Op: "remove", Path: "/spec/template/spec/volumes/-1"}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (remove /spec/template/spec/volumes/-1): error in remove for path: '/spec/template/spec/volumes/-1': Unable to access invalid index: -1: invalid index referenced",
		},
		{
			name:      "a test that fails stops the patches",
			patches:   []infrav1.JSONPatch{{Op: "test", Path: "/spec/runStrategy", Value: jsonValue(`"Halted"`)}, {Op: "remove", Path: "/spec/runStrategy"}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (test /spec/runStrategy): testing value /spec/runStrategy failed: test failed",
		},
		{
			name:      "a field KubeVirt does not know",
			patches:   []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/bogus", Value: jsonValue(`true`)}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (add /spec/template/spec/domain/bogus): the patched VirtualMachine has an unknown field "spec.template.spec.domain.bogus"`,
		},
		{
			name:      "a field spelled in the wrong case, which the API server would drop",
			patches:   []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"bootloader":{"efi":{"secureboot":true}}}`)}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (add /spec/template/spec/domain/firmware): the patched VirtualMachine has an unknown field "spec.template.spec.domain.firmware.bootloader.efi.secureboot"`,
		},
		{
			name:      "an unknown field inside a list item",
			patches:   []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/devices/disks/0/speed", Value: jsonValue(`"fast"`)}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (add /spec/template/spec/domain/devices/disks/0/speed): the patched VirtualMachine has an unknown field "spec.template.spec.domain.devices.disks[0].speed"`,
		},
		{
			name:      "a value of the wrong type",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/spec/template/spec/domain/cpu/cores", Value: jsonValue(`"two"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /spec/template/spec/domain/cpu/cores): the patched VirtualMachine has a JSON string at \"spec.template.spec.domain.cpu.cores\", where KubeVirt expects a uint32",
		},
		{
			name:      "add without a value",
			patches:   []infrav1.JSONPatch{{Op: "add", Path: "/metadata/labels/x"}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (add /metadata/labels/x): op "add" needs a value`,
		},
		{
			name:      "test without a value",
			patches:   []infrav1.JSONPatch{{Op: "test", Path: "/spec/runStrategy"}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (test /spec/runStrategy): op "test" needs a value`,
		},
		{
			name:      "move without from",
			patches:   []infrav1.JSONPatch{{Op: "move", Path: "/metadata/annotations/x"}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (move /metadata/annotations/x): op "move" needs from`,
		},
		{
			name:      "an operation RFC 6902 does not define",
			patches:   []infrav1.JSONPatch{{Op: "merge", Path: "/spec", Value: jsonValue(`{}`)}},
			wantIndex: 0,
			wantErr:   `spec.kubevirt.vmPatches[0] (merge /spec): op "merge" is not one of add, remove, replace, move, copy, test`,
		},
		{
			name:      "a path that is not a JSON pointer",
			patches:   []infrav1.JSONPatch{{Op: "remove", Path: "spec/runStrategy"}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (remove spec/runStrategy): path must be a JSON pointer starting with /",
		},
		{
			name:      "a value that is not JSON",
			patches:   []infrav1.JSONPatch{{Op: "add", Path: "/metadata/labels/x", Value: jsonValue(`{not json`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (add /metadata/labels/x): value is not valid JSON",
		},
		{
			name:      "renaming the VM",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/metadata/name", Value: jsonValue(`"other"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /metadata/name): patches may not change metadata.name: the provider finds the VM by it",
		},
		{
			name:      "moving the VM to another namespace",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/metadata/namespace", Value: jsonValue(`"other"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /metadata/namespace): patches may not change metadata.namespace",
		},
		{
			name:      "changing the kind",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/kind", Value: jsonValue(`"VirtualMachineInstance"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /kind): patches may not change apiVersion or kind",
		},
		{
			name:      "removing the role label from the pod template, which the scheduler reads",
			patches:   []infrav1.JSONPatch{{Op: "remove", Path: "/spec/template/metadata/labels/cluster.x-k8s.io~1role"}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (remove /spec/template/metadata/labels/cluster.x-k8s.io~1role): patches may not change the label cluster.x-k8s.io/role in spec.template.metadata.labels: the provider and its scheduler rely on it",
		},
		{
			name:      "changing an ownership label on the VM",
			patches:   []infrav1.JSONPatch{{Op: "replace", Path: "/metadata/labels/nest.infrastructure.cluster.x-k8s.io~1machine-uid", Value: jsonValue(`"x"`)}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (replace /metadata/labels/nest.infrastructure.cluster.x-k8s.io~1machine-uid): patches may not change the label nest.infrastructure.cluster.x-k8s.io/machine-uid in metadata.labels: the provider and its scheduler rely on it",
		},
		{
			name:      "removing the owner annotation",
			patches:   []infrav1.JSONPatch{{Op: "remove", Path: "/metadata/annotations/nest.infrastructure.cluster.x-k8s.io~1machine"}},
			wantIndex: 0,
			wantErr:   "spec.kubevirt.vmPatches[0] (remove /metadata/annotations/nest.infrastructure.cluster.x-k8s.io~1machine): patches may not change the annotation nest.infrastructure.cluster.x-k8s.io/machine",
		},
		{
			name: "copies that blow the VM up",
			patches: []infrav1.JSONPatch{
				{Op: "add", Path: "/metadata/annotations/big", Value: jsonValue(big)},
				{Op: "copy", From: "/metadata/annotations/big", Path: "/metadata/annotations/big2"},
				{Op: "copy", From: "/metadata/annotations/big", Path: "/metadata/annotations/big3"},
			},
			wantIndex: 2,
			wantErr:   "spec.kubevirt.vmPatches[2] (copy /metadata/annotations/big to /metadata/annotations/big3): the patched VirtualMachine is larger than 1048576 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			vm := mustRender(t, workerInput())
			before := vm.DeepCopy()
			got, err := ApplyPatches(vm, tt.patches)
			g.Expect(err).To(MatchError(tt.wantErr))
			g.Expect(got).To(BeNil())
			var pe *PatchError
			g.Expect(errors.As(err, &pe)).To(BeTrue(), "errors must be *PatchError so a webhook can build a field path")
			g.Expect(pe.Index).To(Equal(tt.wantIndex))
			g.Expect(pe.Patch).To(Equal(tt.patches[tt.wantIndex]))
			g.Expect(vm).To(Equal(before), "a failed patch must not modify the input")
		})
	}
}

func TestRenderVMReportsPatchErrors(t *testing.T) {
	g := NewWithT(t)
	in := workerInput()
	in.NestMachine.Spec.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "replace", Path: "/spec/template/spec/nope", Value: jsonValue(`1`)}}
	vm, err := RenderVM(in)
	g.Expect(vm).To(BeNil())
	g.Expect(err).To(MatchError("spec.kubevirt.vmPatches[0] (replace /spec/template/spec/nope): replace operation does not apply: doc is missing key: /spec/template/spec/nope: missing value"))
}

func TestCheckPatches(t *testing.T) {
	spec := func(patches ...infrav1.JSONPatch) *infrav1.KubeVirtMachineSpec {
		s := workerInput().NestMachine.Spec.KubeVirt
		s.VMPatches = patches
		return s
	}
	tests := []struct {
		name    string
		spec    *infrav1.KubeVirtMachineSpec
		wantErr string
	}{
		{name: "no spec", spec: nil},
		{name: "no patches", spec: spec()},
		{
			name: "patches that apply to any machine",
			spec: spec(infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"serial":"abc"}`)}),
		},
		{
			name: "a patch that only applies to control-plane VMs, which have an affinity",
			spec: spec(infrav1.JSONPatch{Op: "replace", Path: "/spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/0/topologyKey", Value: jsonValue(`"topology.kubernetes.io/zone"`)}),
		},
		{
			name: "a patch that only applies to Ignition machines, which have a config drive",
			spec: spec(infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/volumes/1/cloudInitConfigDrive/networkDataSecretRef", Value: jsonValue(`{"name":"static-network"}`)}),
		},
		{
			name: "a patch that applies to no machine names its index",
			spec: spec(
				infrav1.JSONPatch{Op: "add", Path: "/metadata/labels/ok", Value: jsonValue(`"yes"`)},
				infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/domain/cpu/sockets", Value: jsonValue(`"many"`)},
			),
			wantErr: "spec.kubevirt.vmPatches[1] (add /spec/template/spec/domain/cpu/sockets): the patched VirtualMachine has a JSON string at \"spec.template.spec.domain.cpu.sockets\", where KubeVirt expects a uint32",
		},
		{
			name:    "a patch without its value",
			spec:    spec(infrav1.JSONPatch{Op: "replace", Path: "/spec/runStrategy"}),
			wantErr: `spec.kubevirt.vmPatches[0] (replace /spec/runStrategy): op "replace" needs a value`,
		},
		{
			name:    "a patch that produces an unknown field",
			spec:    spec(infrav1.JSONPatch{Op: "add", Path: "/spec/extra", Value: jsonValue(`{}`)}),
			wantErr: `spec.kubevirt.vmPatches[0] (add /spec/extra): the patched VirtualMachine has an unknown field "spec.extra"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := CheckPatches(tt.spec, nil)
			if tt.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(tt.wantErr))
		})
	}
}

func TestCheckPatchesDoesNotModifyTheSpec(t *testing.T) {
	g := NewWithT(t)
	s := workerInput().NestMachine.Spec.KubeVirt
	s.Placement = &infrav1.Placement{NodeSelector: map[string]string{"a": "b"}, Tolerations: []corev1.Toleration{{Key: "k"}}}
	s.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/nodeSelector/c", Value: jsonValue(`"d"`)}}
	before := s.DeepCopy()
	g.Expect(CheckPatches(s, nil)).To(Succeed())
	g.Expect(s).To(Equal(before))
}
