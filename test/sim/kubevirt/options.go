package kubevirt

import (
	"context"
	"fmt"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Annotations on a VirtualMachine (or a VirtualMachineInstance or DataVolume) that change how the
// simulator treats it.
const (
	// FailAnnotation injects a failure. Values:
	//   - FailErrImagePull, FailImagePullBackOff: the launcher's compute container waits with that
	//     reason, the VMI never runs, the VM's printableStatus says so;
	//   - FailDataVolumeError: the VM's DataVolumes fail to import (phase Failed), the VM's
	//     printableStatus is DataVolumeError and no VMI is created;
	//   - FailMigration (on a VirtualMachineInstanceMigration, its VMI or VM): the migration fails once
	//     it runs, the target pod goes and the VM stays on its source node.
	// Removing the annotation lets the VM recover.
	FailAnnotation = "sim.nest.dev/fail"
	// BootDelayAnnotation overrides Options.BootDelay for one VM (a Go duration: "5s").
	BootDelayAnnotation = "sim.nest.dev/boot-delay"
	// ImportDelayAnnotation overrides Options.ImportDelay for one VM's DataVolumes or one DataVolume.
	ImportDelayAnnotation = "sim.nest.dev/import-delay"
)

// Values of FailAnnotation.
const (
	FailErrImagePull     = string(kubevirtv1.VirtualMachineStatusErrImagePull)
	FailImagePullBackOff = string(kubevirtv1.VirtualMachineStatusImagePullBackOff)
	FailDataVolumeError  = string(kubevirtv1.VirtualMachineStatusDataVolumeError)
	FailMigration        = "MigrationFailed"
)

// DefaultMigrationPendingTimeout is virt-controller's default time for a migration's target pod to stay
// unschedulable before the migration fails (5 minutes; other pending reasons get 15).
const DefaultMigrationPendingTimeout = 5 * time.Minute

// VMIHook is called with a VirtualMachineInstance as the simulator sees it. Hooks run inside a
// reconcile: an error is logged and the hook is called again with backoff, so a hook must be idempotent
// (it is called at least once per VMI and event).
type VMIHook func(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error

// Options configure a KubeVirt simulator.
type Options struct {
	// ID tells simulators in one process apart: the launcher pods' addresses are 10.<ID>.x.y, so give
	// each simulator of a test its own ID (at most 127; secondary networks use 10.<ID+128>.x.y).
	ID uint8
	// BootDelay is the time from the launcher pod being bound to a node to the VMI running.
	BootDelay time.Duration
	// ImportDelay is the time a DataVolume takes to import or clone (progress is reported in quarters).
	ImportDelay time.Duration
	// MigrationDelay is the time a live migration takes from its target pod running to the VM running
	// there (the migration's Running phase).
	MigrationDelay time.Duration
	// MigrationPendingTimeout is how long a migration's target pod may stay unschedulable before the
	// migration fails; default DefaultMigrationPendingTimeout.
	MigrationPendingTimeout time.Duration
	// SelfSchedule makes the simulator bind launcher pods itself (first fit, see FirstFit) instead of
	// waiting for a kube-scheduler. Use it when no scheduler runs against the Infra API server.
	SelfSchedule bool
	// Concurrency is the number of workers of each of the simulator's controllers; default 8.
	Concurrency int
	// LauncherImage is the compute container's image; default the virt-launcher of KubeVirt v1.9.0.
	LauncherImage string
	// GuestOS is what the guest agent reports; default Ubuntu 24.04.
	GuestOS *kubevirtv1.VirtualMachineInstanceGuestOSInfo
	// OnRunning is called once a VMI runs (status written), e.g. to register a tenant Node.
	OnRunning VMIHook
	// OnDeleted is called when a VMI is being deleted, after its launcher pod is gone and before its
	// finalizer is removed, e.g. to remove the tenant Node.
	OnDeleted VMIHook
	// Namespaces restricts the simulator to these namespaces; default all.
	Namespaces []string
}

func (o Options) withDefaults() (Options, error) {
	if o.ID > 127 {
		return o, fmt.Errorf("simulator ID %d is above 127", o.ID)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MigrationPendingTimeout <= 0 {
		o.MigrationPendingTimeout = DefaultMigrationPendingTimeout
	}
	if o.LauncherImage == "" {
		o.LauncherImage = defaultLauncherImage
	}
	if o.GuestOS == nil {
		o.GuestOS = &kubevirtv1.VirtualMachineInstanceGuestOSInfo{
			Name: "Ubuntu", ID: "ubuntu", Version: "24.04 LTS (Noble Numbat)", VersionID: "24.04",
			PrettyName: "Ubuntu 24.04 LTS", KernelRelease: "6.8.0-sim", KernelVersion: "#1 SMP", Machine: "x86_64",
		}
	}
	return o, nil
}

// delayFrom reads a duration annotation from the first object that has it, else def.
func delayFrom(key string, def time.Duration, objs ...client.Object) time.Duration {
	for _, o := range objs {
		if o == nil {
			continue
		}
		if v, ok := o.GetAnnotations()[key]; ok {
			if d, err := time.ParseDuration(v); err == nil && d >= 0 {
				return d
			}
		}
	}
	return def
}

// failureOf is the injected failure of the first object that has one.
func failureOf(objs ...client.Object) string {
	for _, o := range objs {
		if o == nil {
			continue
		}
		if v, ok := o.GetAnnotations()[FailAnnotation]; ok {
			return v
		}
	}
	return ""
}
