package kubevirt

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func statusVM(mutate ...func(*kubevirtv1.VirtualMachine)) *kubevirtv1.VirtualMachine {
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "nest-team-a-tenant1", Name: "vm-1"},
		Spec:       kubevirtv1.VirtualMachineSpec{RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways)},
	}
	for _, m := range mutate {
		m(vm)
	}
	return vm
}

func statusVMI(phase kubevirtv1.VirtualMachineInstancePhase, conditions ...kubevirtv1.VirtualMachineInstanceCondition) *kubevirtv1.VirtualMachineInstance {
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Namespace: "nest-team-a-tenant1", Name: "vm-1"},
		Status:     kubevirtv1.VirtualMachineInstanceStatus{Phase: phase, Conditions: conditions},
	}
	if phase == kubevirtv1.Running || phase == kubevirtv1.Scheduled {
		vmi.Status.NodeName = "infra-node-3"
	}
	return vmi
}

func vmiCond(t kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus, reason, message string) kubevirtv1.VirtualMachineInstanceCondition {
	return kubevirtv1.VirtualMachineInstanceCondition{Type: t, Status: status, Reason: reason, Message: message}
}

var (
	readyTrue  = vmiCond(kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
	podSchedOK = vmiCond("PodScheduled", corev1.ConditionTrue, "", "")
)

func dataVolume(name string, phase cdiv1.DataVolumePhase, progress cdiv1.DataVolumeProgress, conditions ...cdiv1.DataVolumeCondition) cdiv1.DataVolume {
	return cdiv1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: "nest-team-a-tenant1", Name: name},
		Status:     cdiv1.DataVolumeStatus{Phase: phase, Progress: progress, Conditions: conditions},
	}
}

// hostnames are the addresses every existing VM reports.
var hostnames = []clusterv1.MachineAddress{
	{Type: clusterv1.MachineHostName, Address: "vm-1"},
	{Type: clusterv1.MachineInternalDNS, Address: "vm-1"},
}

func noInstance() metav1.Condition {
	return metav1.Condition{Type: infrav1.LiveMigratableCondition, Status: metav1.ConditionUnknown, Reason: "NoInstance", Message: "the VM has no running instance to migrate"}
}

func notReported() metav1.Condition {
	return metav1.Condition{Type: infrav1.LiveMigratableCondition, Status: metav1.ConditionUnknown, Reason: "NoInstance", Message: "VMI vm-1 does not report whether it can migrate"}
}

func TestReadStatus(t *testing.T) {
	retryAt := metav1.NewTime(time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC))
	tests := []struct {
		name string
		vm   *kubevirtv1.VirtualMachine
		vmi  *kubevirtv1.VirtualMachineInstance
		dvs  []cdiv1.DataVolume
		want Status
	}{
		{
			name: "no VM yet",
			want: Status{Reason: "WaitingForVirtualMachine", Message: "the VirtualMachine does not exist yet", LiveMigratable: noInstance()},
		},
		{
			name: "a VM being deleted says so, even while its VMI still runs",
			vm:   statusVM(func(vm *kubevirtv1.VirtualMachine) { vm.DeletionTimestamp = &retryAt }),
			vmi:  statusVMI(kubevirtv1.Running, readyTrue),
			want: Status{Reason: "Deleting", Message: "VirtualMachine vm-1 is being deleted", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a running, ready VMI is provisioned",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Running, podSchedOK, readyTrue),
			want: Status{Provisioned: true, Reason: "Running", Message: "VMI vm-1 is running on infra-node-3", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a migrating VMI is still provisioned",
			vm:   statusVM(),
			vmi: func() *kubevirtv1.VirtualMachineInstance {
				vmi := statusVMI(kubevirtv1.Running, readyTrue)
				vmi.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{TargetNode: "infra-node-4"}
				return vmi
			}(),
			want: Status{Provisioned: true, Reason: "Migrating", Message: "VMI vm-1 is running on infra-node-3 and migrating to infra-node-4", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a completed migration is just running",
			vm:   statusVM(),
			vmi: func() *kubevirtv1.VirtualMachineInstance {
				vmi := statusVMI(kubevirtv1.Running, readyTrue)
				vmi.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{TargetNode: "infra-node-3", Completed: true}
				return vmi
			}(),
			want: Status{Provisioned: true, Reason: "Running", Message: "VMI vm-1 is running on infra-node-3", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "KubeVirt's Failure condition on the VM (quota, admission) is an error",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.Conditions = []kubevirtv1.VirtualMachineCondition{{Type: kubevirtv1.VirtualMachineFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota: compute, requested: requests.memory=4Gi"}}
			}),
			want: Status{Reason: "VMFailure", Message: "FailedCreate: exceeded quota: compute, requested: requests.memory=4Gi", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "an unschedulable VMI says what the scheduler said",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusUnschedulable
			}),
			vmi:  statusVMI(kubevirtv1.Scheduling, vmiCond("PodScheduled", corev1.ConditionFalse, "Unschedulable", "0/3 nodes are available: 3 Insufficient memory.")),
			want: Status{Reason: "Unschedulable", Message: "VMI vm-1 cannot be scheduled: 0/3 nodes are available: 3 Insufficient memory.", Error: true, Addresses: hostnames, LiveMigratable: notReported()},
		},
		{
			name: "ErrImagePull on the VMI is an image pull error with the kubelet's message",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Scheduled, vmiCond(kubevirtv1.VirtualMachineInstanceSynchronized, corev1.ConditionFalse, "ErrImagePull", `failed to pull image "quay.io/nope:1": not found`)),
			want: Status{Reason: "ImagePullFailed", Message: `VMI vm-1: ErrImagePull: failed to pull image "quay.io/nope:1": not found`, Error: true, Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "ImagePullBackOff on the VMI is an image pull error",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Scheduled, vmiCond(kubevirtv1.VirtualMachineInstanceSynchronized, corev1.ConditionFalse, "ImagePullBackOff", "Back-off pulling image")),
			want: Status{Reason: "ImagePullFailed", Message: "VMI vm-1: ImagePullBackOff: Back-off pulling image", Error: true, Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a missing PVC on the VMI is an error",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Pending, vmiCond(kubevirtv1.VirtualMachineInstanceSynchronized, corev1.ConditionFalse, "FailedPvcNotFound", "PVC nest-team-a-tenant1/golden does not exist")),
			want: Status{Reason: "VolumeNotFound", Message: "VMI vm-1: PVC nest-team-a-tenant1/golden does not exist", Error: true, Addresses: hostnames, LiveMigratable: notReported()},
		},
		{
			name: "CrashLoopBackOff says how often and when KubeVirt retries",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusCrashLoopBackOff
				vm.Status.StartFailure = &kubevirtv1.VirtualMachineStartFailure{ConsecutiveFailCount: 4, RetryAfterTimestamp: &retryAt}
			}),
			want: Status{Reason: "CrashLoopBackOff", Message: "VirtualMachine vm-1 keeps failing to start (4 times in a row); next try at 2026-05-04T10:30:00Z", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "ErrorUnschedulable on the VM without a VMI condition is still unschedulable",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusUnschedulable
			}),
			want: Status{Reason: "Unschedulable", Message: "VirtualMachine vm-1 cannot be scheduled", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "ErrImagePull on the VM is an image pull error",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusErrImagePull
			}),
			want: Status{Reason: "ImagePullFailed", Message: "VirtualMachine vm-1: ErrImagePull", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "an importing DataVolume reports its progress",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusProvisioning
			}),
			dvs:  []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.ImportInProgress, "45.00%")},
			want: Status{Reason: "DataVolumeProvisioning", Message: "DataVolume vm-1-root importing 45.00%", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "an import without known progress says importing only",
			vm:   statusVM(),
			dvs:  []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.ImportScheduled, "N/A")},
			want: Status{Reason: "DataVolumeProvisioning", Message: "DataVolume vm-1-root importing", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a cloning DataVolume says which kind of clone",
			vm:   statusVM(),
			dvs:  []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.CSICloneInProgress, "")},
			want: Status{Reason: "DataVolumeProvisioning", Message: "DataVolume vm-1-root cloning (CSICloneInProgress)", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a pending DataVolume says why its claim is not bound",
			vm:   statusVM(),
			dvs: []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.Pending, "",
				cdiv1.DataVolumeCondition{Type: cdiv1.DataVolumeBound, Status: corev1.ConditionFalse, Message: `storageclass.storage.k8s.io "fast" not found`})},
			want: Status{Reason: "DataVolumeProvisioning", Message: `DataVolume vm-1-root Pending: storageclass.storage.k8s.io "fast" not found`, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a failed DataVolume is an error with CDI's reason",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusDataVolumeError
			}),
			dvs: []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.Failed, "",
				cdiv1.DataVolumeCondition{Type: cdiv1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: "Error", Message: "Unable to connect to http data source: 404"})},
			want: Status{Reason: "DataVolumeFailed", Message: "DataVolume vm-1-root failed: Error: Unable to connect to http data source: 404", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "an importer that keeps restarting is an error, though CDI retries",
			vm:   statusVM(),
			dvs: func() []cdiv1.DataVolume {
				dv := dataVolume("vm-1-root", cdiv1.ImportInProgress, "N/A",
					cdiv1.DataVolumeCondition{Type: cdiv1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: "Error", Message: "certificate signed by unknown authority"})
				dv.Status.RestartCount = 3
				return []cdiv1.DataVolume{dv}
			}(),
			want: Status{Reason: "DataVolumeFailed", Message: "DataVolume vm-1-root restarted 3 times: Error: certificate signed by unknown authority", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "DataVolumes are read by name, and a failure wins over progress",
			vm:   statusVM(),
			dvs: []cdiv1.DataVolume{
				dataVolume("vm-1-zdata", cdiv1.Failed, ""),
				dataVolume("vm-1-root", cdiv1.ImportInProgress, "10.00%"),
				dataVolume("vm-1-data", cdiv1.Succeeded, "100.0%"),
			},
			want: Status{Reason: "DataVolumeFailed", Message: "DataVolume vm-1-zdata failed", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "DataVolumeError on the VM without a DataVolume to read is still an error",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusDataVolumeError
			}),
			want: Status{Reason: "DataVolumeFailed", Message: "VirtualMachine vm-1: a DataVolume reports an error", Error: true, Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a DataVolume waiting for its first consumer defers to the VMI, which is that consumer",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Scheduling, vmiCond("PodScheduled", corev1.ConditionFalse, "", "waiting for volume binding")),
			dvs:  []cdiv1.DataVolume{dataVolume("vm-1-root", cdiv1.WaitForFirstConsumer, "N/A"), dataVolume("vm-1-data", cdiv1.Succeeded, "100.0%")},
			want: Status{Reason: "Starting", Message: "VMI vm-1 Scheduling: waiting for volume binding", Addresses: hostnames, LiveMigratable: notReported()},
		},
		{
			name: "a halted VM is stopped",
			vm:   statusVM(func(vm *kubevirtv1.VirtualMachine) { vm.Spec.RunStrategy = ptr.To(kubevirtv1.RunStrategyHalted) }),
			want: Status{Reason: "Stopped", Message: "VirtualMachine vm-1 is stopped", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a VM KubeVirt reports as Stopped is stopped",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusStopped
			}),
			want: Status{Reason: "Stopped", Message: "VirtualMachine vm-1 is stopped", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "without a VMI, KubeVirt's printable status tells the progress",
			vm: statusVM(func(vm *kubevirtv1.VirtualMachine) {
				vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding
			}),
			want: Status{Reason: "Starting", Message: "VirtualMachine vm-1 is WaitingForVolumeBinding", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a VM KubeVirt has not looked at yet",
			vm:   statusVM(),
			want: Status{Reason: "Starting", Message: "VirtualMachine vm-1 has no VMI yet", Addresses: hostnames, LiveMigratable: noInstance()},
		},
		{
			name: "a paused VMI is paused",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Running, vmiCond(kubevirtv1.VirtualMachineInstancePaused, corev1.ConditionTrue, "PausedByUser", "paused with virtctl")),
			want: Status{Reason: "Paused", Message: "VMI vm-1 is paused: paused with virtctl", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a failed VMI is an error with its reason",
			vm:   statusVM(),
			vmi: func() *kubevirtv1.VirtualMachineInstance {
				vmi := statusVMI(kubevirtv1.Failed)
				vmi.Status.Reason = "NodeUnresponsive"
				return vmi
			}(),
			want: Status{Reason: "VMIFailed", Message: "VMI vm-1 failed: NodeUnresponsive", Error: true, Addresses: hostnames, LiveMigratable: notReported()},
		},
		{
			name: "a VMI whose guest shut down is stopped",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Succeeded),
			want: Status{Reason: "Stopped", Message: "VMI vm-1 has shut down", Addresses: hostnames, LiveMigratable: notReported()},
		},
		{
			name: "a running VMI that is not ready says why",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Running, vmiCond(kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, "GuestNotReady", "readiness probe failed")),
			want: Status{Reason: "NotReady", Message: "VMI vm-1 is running on infra-node-3 but not ready: GuestNotReady: readiness probe failed", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a scheduled VMI is starting",
			vm:   statusVM(),
			vmi:  statusVMI(kubevirtv1.Scheduled, podSchedOK),
			want: Status{Reason: "Starting", Message: "VMI vm-1 Scheduled", Addresses: hostnames, NodeName: "infra-node-3", LiveMigratable: notReported()},
		},
		{
			name: "a VMI without a phase yet is pending",
			vm:   statusVM(),
			vmi:  statusVMI(""),
			want: Status{Reason: "Starting", Message: "VMI vm-1 Pending", Addresses: hostnames, LiveMigratable: notReported()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(ReadStatus(tt.vm, tt.vmi, tt.dvs)).To(Equal(tt.want))
		})
	}
}

func TestReadStatusLiveMigratable(t *testing.T) {
	tests := []struct {
		name string
		cond *kubevirtv1.VirtualMachineInstanceCondition
		want metav1.Condition
	}{
		{
			name: "true without a reason from KubeVirt gets one",
			cond: ptr.To(vmiCond(kubevirtv1.VirtualMachineInstanceIsMigratable, corev1.ConditionTrue, "", "")),
			want: metav1.Condition{Type: "LiveMigratable", Status: metav1.ConditionTrue, Reason: "LiveMigratable"},
		},
		{
			name: "false keeps KubeVirt's reason and message",
			cond: ptr.To(vmiCond(kubevirtv1.VirtualMachineInstanceIsMigratable, corev1.ConditionFalse, "DisksNotLiveMigratable", "cannot migrate VMI: PVC vm-1-root is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)")),
			want: metav1.Condition{Type: "LiveMigratable", Status: metav1.ConditionFalse, Reason: "DisksNotLiveMigratable", Message: "cannot migrate VMI: PVC vm-1-root is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)"},
		},
		{
			name: "false without a reason gets one",
			cond: ptr.To(vmiCond(kubevirtv1.VirtualMachineInstanceIsMigratable, corev1.ConditionFalse, "", "")),
			want: metav1.Condition{Type: "LiveMigratable", Status: metav1.ConditionFalse, Reason: "NotLiveMigratable"},
		},
		{
			name: "a VMI that does not report it is unknown",
			want: notReported(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmi := statusVMI(kubevirtv1.Running, readyTrue)
			if tt.cond != nil {
				vmi.Status.Conditions = append(vmi.Status.Conditions, *tt.cond)
			}
			NewWithT(t).Expect(ReadStatus(statusVM(), vmi, nil).LiveMigratable).To(Equal(tt.want))
		})
	}
}

func TestReadStatusAddresses(t *testing.T) {
	tests := []struct {
		name       string
		interfaces []kubevirtv1.VirtualMachineInstanceNetworkInterface
		want       []clusterv1.MachineAddress
	}{
		{
			name: "no interfaces: only the hostname and DNS name, which are the VM name",
			want: hostnames,
		},
		{
			name: "all IPs of all interfaces in order, without duplicates, then the names",
			interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{
				{Name: "default", IP: "10.128.2.15", IPs: []string{"10.128.2.15", "fd02::2:f"}},
				{Name: "storage", IP: "192.168.10.4", IPs: []string{"192.168.10.4", "10.128.2.15"}},
			},
			want: append([]clusterv1.MachineAddress{
				{Type: clusterv1.MachineInternalIP, Address: "10.128.2.15"},
				{Type: clusterv1.MachineInternalIP, Address: "fd02::2:f"},
				{Type: clusterv1.MachineInternalIP, Address: "192.168.10.4"},
			}, hostnames...),
		},
		{
			name:       "the single IP is used when the list is empty",
			interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: "10.128.2.15"}},
			want:       append([]clusterv1.MachineAddress{{Type: clusterv1.MachineInternalIP, Address: "10.128.2.15"}}, hostnames...),
		},
		{
			name: "link-local, loopback, unspecified and unparsable addresses are dropped; IPv6 is normalised",
			interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{
				{Name: "default", IPs: []string{"fe80::1", "169.254.0.5", "127.0.0.1", "0.0.0.0", "not-an-ip", "FD02:0:0::2:F"}},
			},
			want: append([]clusterv1.MachineAddress{{Type: clusterv1.MachineInternalIP, Address: "fd02::2:f"}}, hostnames...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmi := statusVMI(kubevirtv1.Running, readyTrue)
			vmi.Status.Interfaces = tt.interfaces
			NewWithT(t).Expect(ReadStatus(statusVM(), vmi, nil).Addresses).To(Equal(tt.want))
		})
	}
}
