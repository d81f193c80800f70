package kubevirt

import (
	"fmt"
	"net"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// RunStrategy is the VM's run strategy: spec.runStrategy, else Always/Halted from the deprecated
// spec.running, else Halted.
func RunStrategy(vm *kubevirtv1.VirtualMachine) kubevirtv1.VirtualMachineRunStrategy {
	switch {
	case vm.Spec.RunStrategy != nil:
		return *vm.Spec.RunStrategy
	case vm.Spec.Running != nil && *vm.Spec.Running:
		return kubevirtv1.RunStrategyAlways
	default:
		return kubevirtv1.RunStrategyHalted
	}
}

// wantsVMI reports whether the VM should have a VMI. Manual keeps whatever exists; Once is treated like
// RerunOnFailure without restarts (the simulator starts a VMI when the VM has none).
func wantsVMI(strategy kubevirtv1.VirtualMachineRunStrategy) bool {
	switch strategy {
	case kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyOnce:
		return true
	}
	return false
}

// restartsAfter reports whether a VMI that ended in phase is replaced under strategy.
func restartsAfter(strategy kubevirtv1.VirtualMachineRunStrategy, phase kubevirtv1.VirtualMachineInstancePhase) bool {
	switch strategy {
	case kubevirtv1.RunStrategyAlways:
		return true
	case kubevirtv1.RunStrategyRerunOnFailure:
		return phase == kubevirtv1.Failed
	}
	return false
}

func vmiFinished(vmi *kubevirtv1.VirtualMachineInstance) bool {
	return vmi.Status.Phase == kubevirtv1.Succeeded || vmi.Status.Phase == kubevirtv1.Failed
}

// vmObservation is what the VM controller saw, from which the VM's status follows.
type vmObservation struct {
	vm  *kubevirtv1.VirtualMachine
	vmi *kubevirtv1.VirtualMachineInstance // nil when there is none
	pod *corev1.Pod                        // the VMI's launcher pod, nil when there is none
	// dataVolumesReady is false while a DataVolume the VM needs is missing or importing.
	dataVolumesReady bool
	// dataVolumeError names a DataVolume that failed.
	dataVolumeError string
	// missingPVC names a persistentVolumeClaim volume whose claim does not exist.
	missingPVC string
}

// vmStatus is the VM's status after obs; fields the simulator does not own are kept.
//
// desiredGeneration is the VM generation to report as desired, or 0 to keep what the status has: with no
// status subresource every status write bumps the generation, so mirroring it would never settle.
func vmStatus(obs vmObservation, desiredGeneration int64, now metav1.Time) kubevirtv1.VirtualMachineStatus {
	vm, vmi := obs.vm, obs.vmi
	st := *vm.Status.DeepCopy()
	strategy := RunStrategy(vm)
	st.RunStrategy = strategy
	if desiredGeneration != 0 {
		st.DesiredGeneration = desiredGeneration
	}
	st.Created = vmi != nil
	st.Ready = vmi != nil && vmi.DeletionTimestamp == nil && vmiConditionTrue(vmi, kubevirtv1.VirtualMachineInstanceReady)
	st.PrintableStatus = printableStatus(obs)

	var conds []kubevirtv1.VirtualMachineCondition
	ready := kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachineReady, Status: corev1.ConditionFalse}
	switch {
	case vmi == nil:
		ready.Reason, ready.Message = "VMINotExists", "VMI does not exist"
	case st.Ready:
		ready.Status = corev1.ConditionTrue
	default:
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceReady); c != nil {
			ready.Reason, ready.Message = c.Reason, c.Message
		}
	}
	conds = append(conds, ready)
	if vmi != nil {
		if g, ok := vmi.Annotations[kubevirtv1.VirtualMachineGenerationAnnotation]; ok {
			var gen int64
			if _, err := fmt.Sscan(g, &gen); err == nil {
				st.ObservedGeneration = gen
			}
		}
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); c != nil && c.Status == corev1.ConditionFalse {
			conds = append(conds, kubevirtv1.VirtualMachineCondition{
				Type: kubevirtv1.VirtualMachineConditionType(corev1.PodScheduled), Status: corev1.ConditionFalse, Reason: c.Reason, Message: c.Message,
			})
		}
		// A running VMI keeps the spec it started with; a changed template takes effect on restart.
		if vm.Spec.Template != nil && vmi.DeletionTimestamp == nil && !equality.Semantic.DeepEqual(vm.Spec.Template.Spec, vmi.Spec) {
			conds = append(conds, kubevirtv1.VirtualMachineCondition{
				Type: kubevirtv1.VirtualMachineRestartRequired, Status: corev1.ConditionTrue,
				Message: "a non-live-updatable field was changed in the template spec",
			})
		}
	}
	if obs.dataVolumeError != "" {
		conds = append(conds, kubevirtv1.VirtualMachineCondition{
			Type: kubevirtv1.VirtualMachineFailure, Status: corev1.ConditionTrue, Reason: "DataVolumeError",
			Message: fmt.Sprintf("DataVolume %s failed to import", obs.dataVolumeError),
		})
	}
	st.Conditions = mergeVMConditions(vm.Status.Conditions, conds, now)
	return st
}

// printableStatus follows KubeVirt's order of precedence, for the states the simulator produces.
func printableStatus(obs vmObservation) kubevirtv1.VirtualMachinePrintableStatus {
	vm, vmi := obs.vm, obs.vmi
	switch {
	case vm.DeletionTimestamp != nil:
		return kubevirtv1.VirtualMachineStatusTerminating
	case vmi != nil && vmi.DeletionTimestamp != nil:
		return kubevirtv1.VirtualMachineStatusStopping
	case vmi != nil && migrating(vmi):
		return kubevirtv1.VirtualMachineStatusMigrating
	case obs.dataVolumeError != "":
		return kubevirtv1.VirtualMachineStatusDataVolumeError
	case vmi == nil && obs.missingPVC != "":
		return kubevirtv1.VirtualMachineStatusPvcNotFound
	case vmi == nil && !wantsVMI(RunStrategy(vm)):
		return kubevirtv1.VirtualMachineStatusStopped
	case vmi == nil && !obs.dataVolumesReady:
		return kubevirtv1.VirtualMachineStatusProvisioning
	case vmi == nil:
		return kubevirtv1.VirtualMachineStatusStarting
	}
	if reason := waitingReason(obs.pod); reason == string(kubevirtv1.VirtualMachineStatusErrImagePull) || reason == string(kubevirtv1.VirtualMachineStatusImagePullBackOff) {
		return kubevirtv1.VirtualMachinePrintableStatus(reason)
	}
	if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
		return kubevirtv1.VirtualMachineStatusUnschedulable
	}
	switch vmi.Status.Phase {
	case kubevirtv1.Running:
		return kubevirtv1.VirtualMachineStatusRunning
	case kubevirtv1.Succeeded, kubevirtv1.Failed:
		return kubevirtv1.VirtualMachineStatusStopped
	}
	return kubevirtv1.VirtualMachineStatusStarting
}

// migrating reports whether a live migration of vmi has started and not ended.
func migrating(vmi *kubevirtv1.VirtualMachineInstance) bool {
	m := vmi.Status.MigrationState
	return m != nil && m.StartTimestamp != nil && !m.Completed && !m.Failed
}

func waitingReason(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == ComputeContainer && cs.State.Waiting != nil {
			return cs.State.Waiting.Reason
		}
	}
	return ""
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) *kubevirtv1.VirtualMachineInstanceCondition {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == t {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

func vmiConditionTrue(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) bool {
	c := vmiCondition(vmi, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// mergeVMConditions returns want, keeping the transition time of conditions whose status did not change.
func mergeVMConditions(have, want []kubevirtv1.VirtualMachineCondition, now metav1.Time) []kubevirtv1.VirtualMachineCondition {
	out := make([]kubevirtv1.VirtualMachineCondition, 0, len(want))
	for _, w := range want {
		w.LastTransitionTime = now
		for _, h := range have {
			if h.Type == w.Type && h.Status == w.Status {
				w.LastTransitionTime = h.LastTransitionTime
				w.LastProbeTime = h.LastProbeTime
			}
		}
		out = append(out, w)
	}
	return out
}

// setVMICondition sets or replaces a condition, keeping its transition time when its status holds.
func setVMICondition(st *kubevirtv1.VirtualMachineInstanceStatus, c kubevirtv1.VirtualMachineInstanceCondition, now metav1.Time) {
	c.LastTransitionTime = now
	for i := range st.Conditions {
		if st.Conditions[i].Type != c.Type {
			continue
		}
		if st.Conditions[i].Status == c.Status {
			c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			c.LastProbeTime = st.Conditions[i].LastProbeTime
		}
		st.Conditions[i] = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

func removeVMICondition(st *kubevirtv1.VirtualMachineInstanceStatus, t kubevirtv1.VirtualMachineInstanceConditionType) {
	st.Conditions = slices.DeleteFunc(st.Conditions, func(c kubevirtv1.VirtualMachineInstanceCondition) bool { return c.Type == t })
}

// setVMIPhase sets the phase and records its transition.
func setVMIPhase(st *kubevirtv1.VirtualMachineInstanceStatus, phase kubevirtv1.VirtualMachineInstancePhase, now metav1.Time) {
	if st.Phase == phase {
		return
	}
	st.Phase = phase
	st.PhaseTransitionTimestamps = append(st.PhaseTransitionTimestamps, kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{
		Phase: phase, PhaseTransitionTimestamp: now,
	})
}

// AccessModes returns the access modes of the claim behind a PVC or DataVolume volume, and whether they
// are known.
type AccessModes func(volume kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool)

// LiveMigratable is the VMI's LiveMigratable condition by KubeVirt's main rules: every PVC or DataVolume
// disk must be ReadWriteMany (container disks, cloud-init, config and empty disks are fine), no host disk,
// no host device or GPU, and no bridge binding on the pod network. As in KubeVirt, the eviction strategy
// does not enter into it: evictionStrategy LiveMigrate on a non-migratable VMI is the user's problem.
func LiveMigratable(spec *kubevirtv1.VirtualMachineInstanceSpec, modes AccessModes) kubevirtv1.VirtualMachineInstanceCondition {
	no := func(reason, msg string) kubevirtv1.VirtualMachineInstanceCondition {
		return kubevirtv1.VirtualMachineInstanceCondition{
			Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
		}
	}
	for _, v := range spec.Volumes {
		switch {
		case v.HostDisk != nil:
			return no(kubevirtv1.VirtualMachineInstanceReasonDisksNotMigratable, fmt.Sprintf("cannot migrate VMI with host disk %s", v.Name))
		case v.PersistentVolumeClaim != nil || v.DataVolume != nil:
			m, ok := modes(v)
			if !ok || !slices.Contains(m, corev1.ReadWriteMany) {
				return no(kubevirtv1.VirtualMachineInstanceReasonDisksNotMigratable,
					fmt.Sprintf("cannot migrate VMI: PVC %s is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)", v.Name))
			}
		}
	}
	if len(spec.Domain.Devices.GPUs) > 0 || len(spec.Domain.Devices.HostDevices) > 0 {
		return no(kubevirtv1.VirtualMachineInstanceReasonHostDeviceNotMigratable, "VMI uses a PCI host devices")
	}
	podNetworks := map[string]bool{}
	for _, n := range spec.Networks {
		if n.Pod != nil {
			podNetworks[n.Name] = true
		}
	}
	for _, iface := range spec.Domain.Devices.Interfaces {
		if iface.Bridge != nil && podNetworks[iface.Name] {
			return no(kubevirtv1.VirtualMachineInstanceReasonInterfaceNotMigratable,
				"cannot migrate VMI which does not use masquerade, bridge with kubevirt.io/allow-pod-bridge-network-live-migration VM annotation or a migratable plugin to connect to the pod network")
		}
	}
	return kubevirtv1.VirtualMachineInstanceCondition{Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: corev1.ConditionTrue}
}

// dataVolumeAccessModes are the access modes a DataVolume's claim gets: from spec.storage or spec.pvc.
// Without them CDI asks the storage profile, which the simulator does not have: unknown.
func dataVolumeAccessModes(dv *cdiv1beta1.DataVolume) ([]corev1.PersistentVolumeAccessMode, bool) {
	if dv.Spec.Storage != nil && len(dv.Spec.Storage.AccessModes) > 0 {
		return dv.Spec.Storage.AccessModes, true
	}
	if dv.Spec.PVC != nil && len(dv.Spec.PVC.AccessModes) > 0 {
		return dv.Spec.PVC.AccessModes, true
	}
	return nil, false
}

// vmiInterfaces are the interfaces the guest agent reports: one per network (the default pod network
// when none is listed), the pod network with the launcher pod's address, others with addresses from
// secondary, each with a MAC (the spec's, else derived from the address).
func vmiInterfaces(spec *kubevirtv1.VirtualMachineInstanceSpec, podIP string, secondary func() (string, error)) ([]kubevirtv1.VirtualMachineInstanceNetworkInterface, error) {
	networks := spec.Networks
	if len(networks) == 0 && usesPodNetwork(spec) {
		networks = []kubevirtv1.Network{*kubevirtv1.DefaultPodNetwork()}
	}
	macs := map[string]string{}
	for _, iface := range spec.Domain.Devices.Interfaces {
		macs[iface.Name] = iface.MacAddress
	}
	out := make([]kubevirtv1.VirtualMachineInstanceNetworkInterface, 0, len(networks))
	for i, n := range networks {
		ip := podIP
		podIface := "eth0"
		if n.Pod == nil {
			var err error
			if ip, err = secondary(); err != nil {
				return nil, err
			}
			podIface = fmt.Sprintf("pod%x", i)
		}
		mac := macs[n.Name]
		if mac == "" {
			mac = macFor(ip)
		}
		out = append(out, kubevirtv1.VirtualMachineInstanceNetworkInterface{
			Name: n.Name, IP: ip, IPs: []string{ip}, MAC: mac, InterfaceName: fmt.Sprintf("eth%d", i),
			PodInterfaceName: podIface, InfoSource: "domain, guest-agent", QueueCount: 1, LinkState: "up",
		})
	}
	return out, nil
}

// macFor is a locally administered MAC derived from an IPv4 address.
func macFor(ip string) string {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		return "02:00:00:00:00:01"
	}
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", v4[0], v4[1], v4[2], v4[3])
}
