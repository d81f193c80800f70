package metal3

import (
	"context"
	"fmt"
	"strconv"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
)

// Annotations on a BareMetalHost that change how the simulator treats it.
const (
	// FailAnnotation injects a failure, named by its Metal3 error type: "registration error",
	// "inspection error", "preparation error", "provisioning error" or "power management error". The host
	// reports it (operationalStatus error, errorType, errorMessage, errorCount) when it reaches the step
	// that fails, and carries on once the annotation is removed.
	FailAnnotation = "sim.nest.dev/fail"
	// CPUsAnnotation and RAMAnnotation override the inspected CPU count and RAM (MiB) of one host.
	CPUsAnnotation = "sim.nest.dev/cpus"
	RAMAnnotation  = "sim.nest.dev/ram-mib"
)

// Delays are how long each step takes. Every state is written (and so observable) even with no delay.
type Delays struct {
	// Registering is the BMC check, Inspecting the hardware inspection, Preparing the preparation
	// (RAID, firmware) before a host becomes available.
	Registering, Inspecting, Preparing time.Duration
	// Provisioning is writing the image and booting it.
	Provisioning time.Duration
	// Deprovisioning is removing the image; Cleaning is added to it when automatedCleaningMode is not
	// disabled (Metal3 reports cleaning as part of the deprovisioning state).
	Deprovisioning, Cleaning time.Duration
	// PowerChange is powering the host on or off.
	PowerChange time.Duration
	// Deleting is the provisioner forgetting the host, after it is powered off.
	Deleting time.Duration
}

// Hardware is what inspection finds on a host unless its annotations say otherwise.
type Hardware struct {
	// CPUs is the logical CPU count; default 32.
	CPUs int
	// RAMMiB is the memory in MiB; default 131072 (128 GiB).
	RAMMiB int
	// DiskGB is the size of the one disk; default 480.
	DiskGB int
	// NICs is the number of network interfaces, the first being the boot interface; default 2.
	NICs int
}

// HostHook is called with a host as the simulator sees it. Hooks run inside a reconcile: an error is
// logged and the hook is called again with backoff, so a hook must be idempotent.
type HostHook func(ctx context.Context, host *bmov1alpha1.BareMetalHost) error

// Options configure a Metal3 simulator.
type Options struct {
	// ID tells simulators in one process apart: inspected NIC addresses are 172.<16+ID>.x.y (ID at most 15).
	ID uint8
	// Delays of the steps.
	Delays Delays
	// Fail injects failures into hosts without annotating them: it returns the error type a host fails
	// with, or "" (FailAnnotation wins when both are set).
	Fail func(host *bmov1alpha1.BareMetalHost) bmov1alpha1.ErrorType
	// Hardware found by inspection.
	Hardware Hardware
	// Concurrency is the number of workers; default 8.
	Concurrency int
	// Namespaces restricts the simulator to these namespaces; default all.
	Namespaces []string
	// OnProvisioned is called once a host is provisioned (status written), e.g. to register a tenant Node.
	OnProvisioned HostHook
	// OnDeprovisioned is called when a provisioned host starts deprovisioning (or is deleted), e.g. to
	// remove the tenant Node.
	OnDeprovisioned HostHook
}

func (o Options) withDefaults() (Options, error) {
	if o.ID > 15 {
		return o, fmt.Errorf("simulator ID %d is above 15", o.ID)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Hardware.CPUs <= 0 {
		o.Hardware.CPUs = 32
	}
	if o.Hardware.RAMMiB <= 0 {
		o.Hardware.RAMMiB = 128 * 1024
	}
	if o.Hardware.DiskGB <= 0 {
		o.Hardware.DiskGB = 480
	}
	if o.Hardware.NICs <= 0 {
		o.Hardware.NICs = 2
	}
	return o, nil
}

// hardwareOf is the hardware of host: the defaults, overridden by its annotations.
func (o Options) hardwareOf(host *bmov1alpha1.BareMetalHost) Hardware {
	hw := o.Hardware
	if v, err := strconv.Atoi(host.Annotations[CPUsAnnotation]); err == nil && v > 0 {
		hw.CPUs = v
	}
	if v, err := strconv.Atoi(host.Annotations[RAMAnnotation]); err == nil && v > 0 {
		hw.RAMMiB = v
	}
	return hw
}

// failureOf is the failure injected into host.
func (o Options) failureOf(host *bmov1alpha1.BareMetalHost) bmov1alpha1.ErrorType {
	if v, ok := host.Annotations[FailAnnotation]; ok {
		return bmov1alpha1.ErrorType(v)
	}
	if o.Fail != nil {
		return o.Fail(host)
	}
	return ""
}
