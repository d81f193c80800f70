package kubevirt

import (
	"fmt"
	"slices"
	"strings"

	kubevirtv1 "kubevirt.io/api/core/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// PolicyError says which feature a NestMachine's VM patches add that the Infra cluster's
// spec.vmPatchPolicy does not allow.
type PolicyError struct {
	// Feature the patches add.
	Feature infrav1.VMPatchFeature
	// What is added, for the message.
	What string
}

// Error implements error.
func (e *PolicyError) Error() string {
	return fmt.Sprintf("spec.kubevirt.vmPatches add %s: the InfraCluster's spec.vmPatchPolicy.allow does not list %s (allowed by the Infra cluster's administrator only)", e.What, e.Feature)
}

// CheckPatchPolicy compares the VM rendered without patches (rendered) with the patched one
// (patched) and returns a *PolicyError for the first feature the patches add that allow does not
// list: hostDisk volumes, host devices or GPUs, another scheduler name.
func CheckPatchPolicy(rendered, patched *kubevirtv1.VirtualMachine, allow []infrav1.VMPatchFeature) error {
	if patched.Spec.Template == nil {
		return nil
	}
	allowed := func(f infrav1.VMPatchFeature) bool { return slices.Contains(allow, f) }
	had := func(name string) bool {
		if rendered.Spec.Template == nil {
			return false
		}
		return slices.ContainsFunc(rendered.Spec.Template.Spec.Volumes, func(v kubevirtv1.Volume) bool { return v.Name == name && v.HostDisk != nil })
	}
	spec := patched.Spec.Template.Spec
	if !allowed(infrav1.VMPatchHostDisk) {
		for _, v := range spec.Volumes {
			if v.HostDisk != nil && !had(v.Name) {
				return &PolicyError{Feature: infrav1.VMPatchHostDisk, What: fmt.Sprintf("the hostDisk volume %q (path %s on the Infra node)", v.Name, v.HostDisk.Path)}
			}
		}
	}
	if !allowed(infrav1.VMPatchHostDevices) {
		var devices []string
		for _, d := range spec.Domain.Devices.HostDevices {
			devices = append(devices, d.DeviceName)
		}
		for _, d := range spec.Domain.Devices.GPUs {
			devices = append(devices, d.DeviceName)
		}
		if len(devices) > 0 {
			return &PolicyError{Feature: infrav1.VMPatchHostDevices, What: "host devices or GPUs (" + strings.Join(devices, ", ") + ")"}
		}
	}
	if !allowed(infrav1.VMPatchSchedulerName) && rendered.Spec.Template != nil && spec.SchedulerName != rendered.Spec.Template.Spec.SchedulerName {
		return &PolicyError{Feature: infrav1.VMPatchSchedulerName, What: fmt.Sprintf("the scheduler name %q", spec.SchedulerName)}
	}
	return nil
}
