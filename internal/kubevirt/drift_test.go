package kubevirt

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestMutableDrift(t *testing.T) {
	desiredInput := func() Input {
		in := controlPlaneInput()
		in.NestMachine.Spec.KubeVirt.Placement = &infrav1.Placement{
			NodeSelector: map[string]string{"node-role.kubernetes.io/virt": ""},
			Tolerations:  []corev1.Toleration{{Key: "virt", Operator: corev1.TolerationOpExists}},
		}
		in.NestMachine.Spec.KubeVirt.Instancetype = &infrav1.InstancetypeReference{Name: "u1.large"}
		in.NestMachine.Spec.KubeVirt.CPU, in.NestMachine.Spec.KubeVirt.Memory = nil, nil
		return in
	}
	tests := []struct {
		name        string
		desired     func(vm *kubevirtv1.VirtualMachine)
		actual      func(vm *kubevirtv1.VirtualMachine)
		wantChanged bool
		check       func(g Gomega, updated *kubevirtv1.VirtualMachine)
	}{
		{
			name:        "a VM as rendered needs no update",
			wantChanged: false,
		},
		{
			name: "what KubeVirt and the API server add is left alone and is no drift",
			actual: func(vm *kubevirtv1.VirtualMachine) {
				vm.ResourceVersion, vm.UID, vm.Generation = "42", "vm-uid", 3
				vm.Finalizers = []string{"kubevirt.io/virtualMachineControllerFinalize"}
				vm.Spec.Instancetype.RevisionName = "vm-u1.large-v1beta1-abc-1"
				vm.Spec.Template.Spec.Domain.Firmware = &kubevirtv1.Firmware{UUID: "6a1f0c3e-uuid"}
				vm.Spec.Template.Spec.Domain.Machine = &kubevirtv1.Machine{Type: "q35"}
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusRunning
			},
			wantChanged: false,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Instancetype.RevisionName).To(Equal("vm-u1.large-v1beta1-abc-1"))
				g.Expect(updated.Spec.Template.Spec.Domain.Firmware.UUID).To(BeEquivalentTo("6a1f0c3e-uuid"))
				g.Expect(updated.ResourceVersion).To(Equal("42"))
			},
		},
		{
			name: "immutable fields that differ (a changed boot image) are not touched",
			desired: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.Template.Spec.Volumes[0].ContainerDisk.Image = "quay.io/containerdisks/fedora:41"
			},
			wantChanged: false,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.Spec.Volumes[0].ContainerDisk.Image).To(Equal("quay.io/containerdisks/centos-stream:9"))
			},
		},
		{
			name:        "a run strategy changed by hand is set back",
			actual:      func(vm *kubevirtv1.VirtualMachine) { vm.Spec.RunStrategy = ptr.To(kubevirtv1.RunStrategyHalted) },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyAlways)))
			},
		},
		{
			name: "a new run strategy in the NestMachine is applied",
			desired: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.RunStrategy = ptr.To(kubevirtv1.RunStrategyRerunOnFailure)
			},
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyRerunOnFailure)))
			},
		},
		{
			name: "the deprecated running field is replaced by the run strategy, KubeVirt refuses both",
			actual: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.RunStrategy = nil
				vm.Spec.Running = ptr.To(true)
			},
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Running).To(BeNil())
				g.Expect(updated.Spec.RunStrategy).To(Equal(ptr.To(kubevirtv1.RunStrategyAlways)))
			},
		},
		{
			name: "ownership labels removed or changed on the VM are restored, other labels kept",
			actual: func(vm *kubevirtv1.VirtualMachine) {
				delete(vm.Labels, infrav1.NestMachineUIDLabel)
				vm.Labels[RoleLabel] = "worker"
				vm.Labels["team"] = "blue"
			},
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Labels).To(HaveKeyWithValue(infrav1.NestMachineUIDLabel, "9b2d1c3e-0000-4000-8000-000000000001"))
				g.Expect(updated.Labels).To(HaveKeyWithValue(RoleLabel, "control-plane"))
				g.Expect(updated.Labels).To(HaveKeyWithValue("team", "blue"))
			},
		},
		{
			name:        "labels someone else added are not drift",
			actual:      func(vm *kubevirtv1.VirtualMachine) { vm.Labels["team"] = "blue"; vm.Annotations["note"] = "x" },
			wantChanged: false,
		},
		{
			name:        "a VM that lost all its labels gets ours back",
			actual:      func(vm *kubevirtv1.VirtualMachine) { vm.Labels = nil },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Labels).To(Equal(Labels(controlPlaneInput())))
			},
		},
		{
			name:        "the owner annotation is restored",
			actual:      func(vm *kubevirtv1.VirtualMachine) { vm.Annotations = map[string]string{"note": "x"} },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Annotations).To(Equal(map[string]string{"note": "x", infrav1.NestMachineAnnotation: "team-a/tenant1-control-plane-x7k2p",
					infrav1.NestClusterAnnotation: "team-a/tenant1"}))
			},
		},
		{
			name:        "the role label on the pod template, which the scheduler reads, is restored",
			actual:      func(vm *kubevirtv1.VirtualMachine) { delete(vm.Spec.Template.ObjectMeta.Labels, RoleLabel) },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue(RoleLabel, "control-plane"))
			},
		},
		{
			name: "the eviction strategy is reconciled",
			actual: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.Template.Spec.EvictionStrategy = ptr.To(kubevirtv1.EvictionStrategyNone)
			},
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.Spec.EvictionStrategy).To(Equal(ptr.To(kubevirtv1.EvictionStrategyLiveMigrate)))
			},
		},
		{
			name:        "a new node selector is applied",
			desired:     func(vm *kubevirtv1.VirtualMachine) { vm.Spec.Template.Spec.NodeSelector["zone"] = "b" },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.Spec.NodeSelector).To(Equal(map[string]string{"node-role.kubernetes.io/virt": "", "zone": "b"}))
			},
		},
		{
			name: "an empty node selector and none are the same",
			desired: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.Template.Spec.NodeSelector, vm.Spec.Template.Spec.Tolerations = nil, nil
			},
			actual: func(vm *kubevirtv1.VirtualMachine) {
				vm.Spec.Template.Spec.NodeSelector, vm.Spec.Template.Spec.Tolerations = map[string]string{}, []corev1.Toleration{}
			},
			wantChanged: false,
		},
		{
			name:        "tolerations removed from the NestMachine are removed",
			desired:     func(vm *kubevirtv1.VirtualMachine) { vm.Spec.Template.Spec.Tolerations = nil },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.Spec.Tolerations).To(BeEmpty())
			},
		},
		{
			name:        "the control-plane anti-affinity, removed by hand, is restored",
			actual:      func(vm *kubevirtv1.VirtualMachine) { vm.Spec.Template.Spec.Affinity = nil },
			wantChanged: true,
			check: func(g Gomega, updated *kubevirtv1.VirtualMachine) {
				g.Expect(updated.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).To(
					Equal([]corev1.PodAffinityTerm{ControlPlaneAntiAffinityTerm("tenant1")}))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			desired := mustRender(t, desiredInput())
			if tt.desired != nil {
				tt.desired(desired)
			}
			actual := mustRender(t, desiredInput())
			if tt.actual != nil {
				tt.actual(actual)
			}
			before := actual.DeepCopy()
			updated, changed := MutableDrift(desired, actual)
			g.Expect(changed).To(Equal(tt.wantChanged))
			if tt.check != nil {
				tt.check(g, updated)
			}
			g.Expect(actual).To(Equal(before), "MutableDrift must not modify the VM it was given")
			if !tt.wantChanged {
				g.Expect(updated).To(Equal(actual), "no drift must mean no difference")
			}
			again, changedAgain := MutableDrift(desired, updated)
			g.Expect(changedAgain).To(BeFalse(), "a reconciled VM must not drift again")
			g.Expect(again).To(Equal(updated))
		})
	}
}
