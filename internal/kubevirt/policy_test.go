package kubevirt

import (
	"testing"

	. "github.com/onsi/gomega"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestVMPatchPolicy(t *testing.T) {
	hostDisk := infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/volumes/-",
		Value: jsonValue(`{"name":"shadow","hostDisk":{"path":"/etc/shadow","type":"Disk"}}`)}
	hostDevice := infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/domain/devices/hostDevices",
		Value: jsonValue(`[{"name":"nic","deviceName":"intel.com/sriov"}]`)}
	gpu := infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/domain/devices/gpus",
		Value: jsonValue(`[{"name":"gpu","deviceName":"nvidia.com/A100"}]`)}
	scheduler := infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/schedulerName", Value: jsonValue(`"my-scheduler"`)}
	firmware := infrav1.JSONPatch{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"serial":"abc"}`)}
	tests := []struct {
		name    string
		patches []infrav1.JSONPatch
		allow   []infrav1.VMPatchFeature
		want    infrav1.VMPatchFeature
	}{
		{name: "an ungoverned patch passes", patches: []infrav1.JSONPatch{firmware}},
		{name: "a host disk is refused by default", patches: []infrav1.JSONPatch{hostDisk}, want: infrav1.VMPatchHostDisk},
		{name: "a host disk where the administrator allows it", patches: []infrav1.JSONPatch{hostDisk}, allow: []infrav1.VMPatchFeature{infrav1.VMPatchHostDisk}},
		{name: "a host device is refused by default", patches: []infrav1.JSONPatch{hostDevice}, want: infrav1.VMPatchHostDevices},
		{name: "a GPU is a host device", patches: []infrav1.JSONPatch{gpu}, allow: []infrav1.VMPatchFeature{infrav1.VMPatchHostDisk}, want: infrav1.VMPatchHostDevices},
		{name: "host devices where allowed", patches: []infrav1.JSONPatch{gpu, hostDevice}, allow: []infrav1.VMPatchFeature{infrav1.VMPatchHostDevices}},
		{name: "another scheduler is refused by default", patches: []infrav1.JSONPatch{scheduler}, want: infrav1.VMPatchSchedulerName},
		{name: "another scheduler where allowed", patches: []infrav1.JSONPatch{scheduler}, allow: []infrav1.VMPatchFeature{infrav1.VMPatchSchedulerName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			in := workerInput()
			in.NestMachine.Spec.KubeVirt.VMPatches = tt.patches
			in.PatchPolicy = tt.allow
			_, err := RenderVM(in)
			if tt.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var policy *PolicyError
			g.Expect(err).To(BeAssignableToTypeOf(policy))
			g.Expect(err.(*PolicyError).Feature).To(Equal(tt.want))
			g.Expect(err.Error()).To(ContainSubstring("spec.vmPatchPolicy.allow does not list " + string(tt.want)))
		})
	}
}
