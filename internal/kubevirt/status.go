package kubevirt

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Reasons ReadStatus reports; they are meant for the NestMachine's VMProvisioned condition.
const (
	// ReasonWaitingForVM: the VirtualMachine does not exist (yet).
	ReasonWaitingForVM = "WaitingForVirtualMachine"
	// ReasonDeleting: the VirtualMachine is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonDataVolumeProvisioning: a DataVolume of the VM is importing, cloning or waiting.
	ReasonDataVolumeProvisioning = "DataVolumeProvisioning"
	// ReasonDataVolumeFailed: CDI reports an error on a DataVolume of the VM.
	ReasonDataVolumeFailed = "DataVolumeFailed"
	// ReasonUnschedulable: no Infra node fits the VM's pod.
	ReasonUnschedulable = "Unschedulable"
	// ReasonImagePullFailed: the container disk image cannot be pulled.
	ReasonImagePullFailed = "ImagePullFailed"
	// ReasonCrashLoopBackOff: the VM keeps failing to start and KubeVirt backs off.
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	// ReasonVolumeNotFound: a PVC or DataVolume the VM needs does not exist.
	ReasonVolumeNotFound = "VolumeNotFound"
	// ReasonVMFailure: KubeVirt cannot create or run the VM's instance (quota, admission, ...).
	ReasonVMFailure = "VMFailure"
	// ReasonVMIFailed: the VM's instance ended in failure.
	ReasonVMIFailed = "VMIFailed"
	// ReasonStopped: the VM is not running and is not meant to (run strategy, guest shutdown).
	ReasonStopped = "Stopped"
	// ReasonPaused: the VM is paused.
	ReasonPaused = "Paused"
	// ReasonStarting: the VM's instance is being created, scheduled or booted.
	ReasonStarting = "Starting"
	// ReasonNotReady: the VM's instance runs but is not ready.
	ReasonNotReady = "NotReady"
	// ReasonRunning: the VM's instance runs and is ready.
	ReasonRunning = "Running"
	// ReasonMigrating: the VM's instance runs and is being live-migrated.
	ReasonMigrating = "Migrating"

	// ReasonLiveMigratable is the LiveMigratable condition's reason when KubeVirt gives none.
	ReasonLiveMigratable = "LiveMigratable"
	// ReasonNotLiveMigratable is the LiveMigratable condition's reason when KubeVirt gives none.
	ReasonNotLiveMigratable = "NotLiveMigratable"
	// ReasonLiveMigratableUnknown: there is no instance, or it does not say.
	ReasonLiveMigratableUnknown = "NoInstance"
)

// Status is what a NestMachine reports about its VM.
type Status struct {
	// Provisioned is true when the VM's instance runs and is ready: the machine has booted.
	Provisioned bool
	// Reason and Message say what the VM is doing or waiting for, for a person to act on.
	Reason  string
	Message string
	// Error is true when the Reason is an error KubeVirt or CDI reports (unschedulable, image
	// pull, crash loop, failed import...) rather than progress. It may clear by itself.
	Error bool
	// Addresses of the machine: the instance's IPs, and the VM name as hostname and internal DNS
	// name (the guest's hostname and so the tenant Node's name).
	Addresses []clusterv1.MachineAddress
	// NodeName is the Infra node that runs the instance.
	NodeName string
	// LiveMigratable mirrors KubeVirt's LiveMigratable condition of the instance, typed as the
	// NestMachine's condition; time and generation are for the caller to set.
	LiveMigratable metav1.Condition
}

// ReadStatus computes the Status of a VM from the VM, its instance (nil when there is none) and the
// DataVolumes it uses. It reads only status fields that KubeVirt and CDI set.
func ReadStatus(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, dataVolumes []cdiv1.DataVolume) Status {
	s := Status{LiveMigratable: liveMigratable(vmi)}
	if vm == nil {
		s.Reason, s.Message = ReasonWaitingForVM, "the VirtualMachine does not exist yet"
		return s
	}
	if vmi != nil {
		s.NodeName = vmi.Status.NodeName
	}
	s.Addresses = addresses(vm, vmi)
	s.Reason, s.Message, s.Error = progress(vm, vmi, dataVolumes)
	s.Provisioned = s.Reason == ReasonRunning || s.Reason == ReasonMigrating
	return s
}

// progress picks the most useful thing to say, errors before progress, the instance's own account
// before the VM's summary.
func progress(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, dataVolumes []cdiv1.DataVolume) (reason, message string, isError bool) {
	if vm.DeletionTimestamp != nil {
		return ReasonDeleting, fmt.Sprintf("VirtualMachine %s is being deleted", vm.Name), false
	}
	if vmi != nil && vmi.Status.Phase == kubevirtv1.Running && vmiConditionTrue(vmi, kubevirtv1.VirtualMachineInstanceReady) {
		if vmi.Status.MigrationState != nil && !vmi.Status.MigrationState.Completed && !vmi.Status.MigrationState.Failed {
			return ReasonMigrating, fmt.Sprintf("VMI %s is running on %s and migrating to %s", vmi.Name, vmi.Status.NodeName, vmi.Status.MigrationState.TargetNode), false
		}
		return ReasonRunning, fmt.Sprintf("VMI %s is running on %s", vmi.Name, vmi.Status.NodeName), false
	}

	if c := vmCondition(vm, kubevirtv1.VirtualMachineFailure); c != nil && c.Status == corev1.ConditionTrue {
		return ReasonVMFailure, joinReason(c.Reason, c.Message), true
	}
	if vmi != nil {
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); c != nil &&
			c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return ReasonUnschedulable, fmt.Sprintf("VMI %s cannot be scheduled: %s", vmi.Name, c.Message), true
		}
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceSynchronized); c != nil && c.Status == corev1.ConditionFalse {
			switch c.Reason {
			case "ErrImagePull", "ImagePullBackOff":
				return ReasonImagePullFailed, fmt.Sprintf("VMI %s: %s: %s", vmi.Name, c.Reason, c.Message), true
			case "FailedPvcNotFound":
				return ReasonVolumeNotFound, fmt.Sprintf("VMI %s: %s", vmi.Name, c.Message), true
			}
		}
	}
	switch vm.Status.PrintableStatus {
	case kubevirtv1.VirtualMachineStatusCrashLoopBackOff:
		msg := fmt.Sprintf("VirtualMachine %s keeps failing to start", vm.Name)
		if f := vm.Status.StartFailure; f != nil {
			msg = fmt.Sprintf("%s (%d times in a row)", msg, f.ConsecutiveFailCount)
			if f.RetryAfterTimestamp != nil {
				msg += "; next try at " + f.RetryAfterTimestamp.UTC().Format("2006-01-02T15:04:05Z")
			}
		}
		return ReasonCrashLoopBackOff, msg, true
	case kubevirtv1.VirtualMachineStatusUnschedulable:
		return ReasonUnschedulable, fmt.Sprintf("VirtualMachine %s cannot be scheduled", vm.Name), true
	case kubevirtv1.VirtualMachineStatusErrImagePull, kubevirtv1.VirtualMachineStatusImagePullBackOff:
		return ReasonImagePullFailed, fmt.Sprintf("VirtualMachine %s: %s", vm.Name, vm.Status.PrintableStatus), true
	case kubevirtv1.VirtualMachineStatusPvcNotFound:
		return ReasonVolumeNotFound, fmt.Sprintf("VirtualMachine %s: %s", vm.Name, vm.Status.PrintableStatus), true
	}

	if reason, message, isError, ok := dataVolumeProgress(dataVolumes); ok {
		return reason, message, isError
	}
	if vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusDataVolumeError {
		return ReasonDataVolumeFailed, fmt.Sprintf("VirtualMachine %s: a DataVolume reports an error", vm.Name), true
	}

	if vmi == nil {
		switch {
		case vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusStopped,
			vm.Spec.RunStrategy != nil && *vm.Spec.RunStrategy == kubevirtv1.RunStrategyHalted:
			return ReasonStopped, fmt.Sprintf("VirtualMachine %s is stopped", vm.Name), false
		case vm.Status.PrintableStatus != "":
			return ReasonStarting, fmt.Sprintf("VirtualMachine %s is %s", vm.Name, vm.Status.PrintableStatus), false
		}
		return ReasonStarting, fmt.Sprintf("VirtualMachine %s has no VMI yet", vm.Name), false
	}

	if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstancePaused); c != nil && c.Status == corev1.ConditionTrue {
		return ReasonPaused, joinReason(fmt.Sprintf("VMI %s is paused", vmi.Name), c.Message), false
	}
	switch vmi.Status.Phase {
	case kubevirtv1.Failed:
		return ReasonVMIFailed, joinReason(fmt.Sprintf("VMI %s failed", vmi.Name), vmi.Status.Reason), true
	case kubevirtv1.Succeeded:
		return ReasonStopped, fmt.Sprintf("VMI %s has shut down", vmi.Name), false
	case kubevirtv1.Running:
		msg := fmt.Sprintf("VMI %s is running on %s but not ready", vmi.Name, vmi.Status.NodeName)
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceReady); c != nil {
			msg = joinReason(msg, joinReason(c.Reason, c.Message))
		}
		return ReasonNotReady, msg, false
	}
	phase := vmi.Status.Phase
	if phase == "" {
		phase = kubevirtv1.Pending
	}
	msg := fmt.Sprintf("VMI %s %s", vmi.Name, phase)
	if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); c != nil && c.Status == corev1.ConditionFalse {
		msg = joinReason(msg, c.Message)
	}
	return ReasonStarting, msg, false
}

// dataVolumeProgress reports the first DataVolume, by name, that is not done: a failure first.
func dataVolumeProgress(dataVolumes []cdiv1.DataVolume) (reason, message string, isError, ok bool) {
	dvs := make([]*cdiv1.DataVolume, 0, len(dataVolumes))
	for i := range dataVolumes {
		dvs = append(dvs, &dataVolumes[i])
	}
	sort.Slice(dvs, func(i, j int) bool { return dvs[i].Name < dvs[j].Name })

	for _, dv := range dvs {
		if dv.Status.Phase == cdiv1.Failed {
			msg := fmt.Sprintf("DataVolume %s failed", dv.Name)
			if c := dvCondition(dv, cdiv1.DataVolumeRunning); c != nil {
				msg = joinReason(msg, joinReason(c.Reason, c.Message))
			}
			return ReasonDataVolumeFailed, msg, true, true
		}
		// CDI retries a failing importer and counts the restarts; the Running condition says why.
		if c := dvCondition(dv, cdiv1.DataVolumeRunning); dv.Status.RestartCount > 0 && c != nil && c.Status == corev1.ConditionFalse && c.Message != "" {
			return ReasonDataVolumeFailed, fmt.Sprintf("DataVolume %s restarted %d times: %s", dv.Name, dv.Status.RestartCount, joinReason(c.Reason, c.Message)), true, true
		}
	}
	for _, dv := range dvs {
		switch dv.Status.Phase {
		case cdiv1.Succeeded:
			continue
		case cdiv1.ImportScheduled, cdiv1.ImportInProgress:
			return ReasonDataVolumeProvisioning, withProgress(fmt.Sprintf("DataVolume %s importing", dv.Name), dv.Status.Progress), false, true
		case cdiv1.CloneScheduled, cdiv1.CloneInProgress, cdiv1.SnapshotForSmartCloneInProgress,
			cdiv1.CloneFromSnapshotSourceInProgress, cdiv1.SmartClonePVCInProgress, cdiv1.CSICloneInProgress,
			cdiv1.NamespaceTransferInProgress, cdiv1.PrepClaimInProgress, cdiv1.RebindInProgress, cdiv1.ExpansionInProgress:
			return ReasonDataVolumeProvisioning, withProgress(fmt.Sprintf("DataVolume %s cloning (%s)", dv.Name, dv.Status.Phase), dv.Status.Progress), false, true
		case cdiv1.WaitForFirstConsumer, cdiv1.PendingPopulation:
			// The VM's pod is the first consumer: the VMI's scheduling tells the rest.
			continue
		default:
			phase := dv.Status.Phase
			if phase == "" {
				phase = cdiv1.Pending
			}
			msg := fmt.Sprintf("DataVolume %s %s", dv.Name, phase)
			if c := dvCondition(dv, cdiv1.DataVolumeBound); c != nil && c.Status != corev1.ConditionTrue {
				msg = joinReason(msg, c.Message)
			}
			return ReasonDataVolumeProvisioning, msg, false, true
		}
	}
	return "", "", false, false
}

func withProgress(msg string, p cdiv1.DataVolumeProgress) string {
	if p == "" || p == "N/A" {
		return msg
	}
	return msg + " " + string(p)
}

// joinReason joins two parts of a message, skipping an empty one.
func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}

func liveMigratable(vmi *kubevirtv1.VirtualMachineInstance) metav1.Condition {
	cond := metav1.Condition{
		Type:    infrav1.LiveMigratableCondition,
		Status:  metav1.ConditionUnknown,
		Reason:  ReasonLiveMigratableUnknown,
		Message: "the VM has no running instance to migrate",
	}
	if vmi == nil {
		return cond
	}
	c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable)
	if c == nil {
		cond.Message = fmt.Sprintf("VMI %s does not report whether it can migrate", vmi.Name)
		return cond
	}
	cond.Status = metav1.ConditionStatus(c.Status)
	cond.Reason, cond.Message = c.Reason, c.Message
	if cond.Reason == "" {
		switch cond.Status {
		case metav1.ConditionTrue:
			cond.Reason = ReasonLiveMigratable
		case metav1.ConditionFalse:
			cond.Reason = ReasonNotLiveMigratable
		default:
			cond.Reason = ReasonLiveMigratableUnknown
		}
	}
	return cond
}

// addresses lists the instance's IPs in interface order without duplicates, skipping loopback and
// link-local ones no other machine can reach, then the VM name as hostname and internal DNS name:
// the guest takes it as hostname from the cloud-init metadata, and the tenant Node is named after it.
func addresses(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) []clusterv1.MachineAddress {
	var out []clusterv1.MachineAddress
	seen := map[string]bool{}
	if vmi != nil {
		for _, iface := range vmi.Status.Interfaces {
			ips := iface.IPs
			if len(ips) == 0 && iface.IP != "" {
				ips = []string{iface.IP}
			}
			for _, ip := range ips {
				addr, err := netip.ParseAddr(ip)
				if err != nil || addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsUnspecified() {
					continue
				}
				if s := addr.String(); !seen[s] {
					seen[s] = true
					out = append(out, clusterv1.MachineAddress{Type: clusterv1.MachineInternalIP, Address: s})
				}
			}
		}
	}
	return append(out,
		clusterv1.MachineAddress{Type: clusterv1.MachineHostName, Address: vm.Name},
		clusterv1.MachineAddress{Type: clusterv1.MachineInternalDNS, Address: vm.Name},
	)
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

func vmCondition(vm *kubevirtv1.VirtualMachine, t kubevirtv1.VirtualMachineConditionType) *kubevirtv1.VirtualMachineCondition {
	for i := range vm.Status.Conditions {
		if vm.Status.Conditions[i].Type == t {
			return &vm.Status.Conditions[i]
		}
	}
	return nil
}

func dvCondition(dv *cdiv1.DataVolume, t cdiv1.DataVolumeConditionType) *cdiv1.DataVolumeCondition {
	for i := range dv.Status.Conditions {
		if dv.Status.Conditions[i].Type == t {
			return &dv.Status.Conditions[i]
		}
	}
	return nil
}
