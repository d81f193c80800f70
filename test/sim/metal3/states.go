package metal3

import (
	"fmt"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stages timed by the simulator besides the provisioning states.
const (
	stagePowerOn  = "power-on"
	stagePowerOff = "power-off"
)

// stepInput is what the state machine needs besides the host.
type stepInput struct {
	now metav1.Time
	// elapsed is the time the host has spent at a stage: its provisioning state, or a power change.
	elapsed func(stage string) time.Duration
	delays  Delays
	fail    bmov1alpha1.ErrorType
	// credentialsVersion is the resourceVersion of the BMC credentials Secret; credentialsErr says why it
	// could not be read.
	credentialsVersion string
	credentialsErr     error
	// id is the host's ID in the provisioner.
	id string
	// hardware is what inspection finds.
	hardware func() (*bmov1alpha1.HardwareDetails, error)
}

// stepResult is where one step leaves the host.
type stepResult struct {
	status bmov1alpha1.BareMetalHostStatus
	// requeue is when to look again without an event (a delay running); 0 means wait for an event.
	requeue time.Duration
	// deleted is set when the host has gone through deletion: its finalizer can go.
	deleted bool
}

// step advances a host by at most one transition of baremetal-operator's state machine:
//
//	"" → registering (unmanaged while the BMC address is empty) → inspecting → preparing → available
//	available → provisioning (image set and online: host.NeedsProvisioning; no consumerRef needed) → provisioned
//	provisioned → deprovisioning (image removed or changed; cleaning included) → available or provisioning
//	registering with externallyProvisioned → externally provisioned
//	deletion: deprovisioning when an image is or is being written, then powering off before delete →
//	deleting → gone
//
// Power follows spec.online in available, provisioned and externally provisioned. An injected failure
// stops the step it names with operationalStatus error; removing it lets the step finish.
func step(host *bmov1alpha1.BareMetalHost, in stepInput) (stepResult, error) {
	st := host.Status.DeepCopy()
	var res stepResult
	deleting := host.DeletionTimestamp != nil
	// wait reports whether delay has passed at stage, setting res.requeue when it has not.
	wait := func(stage string, delay time.Duration) bool {
		left := delay - in.elapsed(stage)
		if left > 0 {
			res.requeue = left
			return false
		}
		return true
	}
	enter := func(state bmov1alpha1.ProvisioningState) {
		leaveOperation(st, st.Provisioning.State, in.now)
		st.Provisioning.State = state
		enterOperation(st, state, in.now)
		clearError(st)
		st.ErrorCount = 0
	}

	switch state := st.Provisioning.State; state {
	case bmov1alpha1.StateNone, bmov1alpha1.StateUnmanaged:
		switch {
		case deleting:
			res.deleted = true
		case host.Spec.BMC.Address == "" || host.Spec.BMC.CredentialsName == "":
			st.Provisioning.State = bmov1alpha1.StateUnmanaged
			st.OperationalStatus = bmov1alpha1.OperationalStatusDiscovered
		default:
			enter(bmov1alpha1.StateRegistering)
			st.OperationalStatus = bmov1alpha1.OperationalStatusOK
		}

	case bmov1alpha1.StateRegistering:
		switch {
		case deleting:
			enter(bmov1alpha1.StateDeleting)
		case in.credentialsErr != nil:
			setError(st, bmov1alpha1.RegistrationError, fmt.Sprintf("failed to read BMC credentials: %v", in.credentialsErr))
		case in.fail == bmov1alpha1.RegistrationError:
			setError(st, bmov1alpha1.RegistrationError, fmt.Sprintf("failed to register host: BMC %s did not answer (simulated)", host.Spec.BMC.Address))
		case wait(string(state), in.delays.Registering):
			st.Provisioning.ID = in.id
			st.GoodCredentials = bmov1alpha1.CredentialsStatus{
				Reference: &corev1.SecretReference{Name: host.Spec.BMC.CredentialsName, Namespace: host.Namespace},
				Version:   in.credentialsVersion,
			}
			st.TriedCredentials = st.GoodCredentials
			switch {
			case host.Spec.ExternallyProvisioned:
				enter(bmov1alpha1.StateExternallyProvisioned)
			case !host.NeedsHardwareInspection():
				enter(bmov1alpha1.StatePreparing)
			default:
				enter(bmov1alpha1.StateInspecting)
			}
		default:
			clearError(st)
		}

	case bmov1alpha1.StateInspecting:
		switch {
		case deleting:
			enter(bmov1alpha1.StatePoweringOffBeforeDelete)
		case in.fail == bmov1alpha1.InspectionError:
			setError(st, bmov1alpha1.InspectionError, "inspection failed: the ramdisk did not report back (simulated)")
		case wait(string(state), in.delays.Inspecting):
			hw, err := in.hardware()
			if err != nil {
				return res, err
			}
			st.HardwareDetails = hw
			st.HardwareProfile = "unknown"
			enter(bmov1alpha1.StatePreparing)
		default:
			clearError(st)
		}

	case bmov1alpha1.StatePreparing:
		switch {
		case deleting:
			enter(bmov1alpha1.StatePoweringOffBeforeDelete)
		case in.fail == bmov1alpha1.PreparationError:
			setError(st, bmov1alpha1.PreparationError, "preparation failed: RAID configuration was rejected (simulated)")
		case wait(string(state), in.delays.Preparing):
			enter(bmov1alpha1.StateAvailable)
		default:
			clearError(st)
		}

	case bmov1alpha1.StateAvailable, bmov1alpha1.StateReady:
		switch {
		case deleting:
			enter(bmov1alpha1.StatePoweringOffBeforeDelete)
		case host.NeedsProvisioning():
			enter(bmov1alpha1.StateProvisioning)
		default:
			syncPower(host, st, in, wait)
		}

	case bmov1alpha1.StateProvisioning:
		switch {
		case deleting || !hasImage(host):
			enter(bmov1alpha1.StateDeprovisioning)
		case in.fail == bmov1alpha1.ProvisioningError:
			setError(st, bmov1alpha1.ProvisioningError, fmt.Sprintf("failed to write image %s: checksum mismatch (simulated)", imageURL(host)))
		case wait(string(state), in.delays.Provisioning):
			if host.Spec.Image != nil {
				st.Provisioning.Image = *host.Spec.Image.DeepCopy()
			}
			st.Provisioning.CustomDeploy = host.Spec.CustomDeploy.DeepCopy()
			st.Provisioning.RootDeviceHints = host.Spec.RootDeviceHints.DeepCopy()
			st.Provisioning.BootMode = host.BootMode()
			st.PoweredOn = host.Spec.Online
			enter(bmov1alpha1.StateProvisioned)
		default:
			clearError(st)
		}

	case bmov1alpha1.StateProvisioned:
		if deleting || needsDeprovisioning(host) {
			enter(bmov1alpha1.StateDeprovisioning)
			break
		}
		syncPower(host, st, in, wait)

	case bmov1alpha1.StateExternallyProvisioned:
		if deleting {
			enter(bmov1alpha1.StatePoweringOffBeforeDelete)
			break
		}
		syncPower(host, st, in, wait)

	case bmov1alpha1.StateDeprovisioning:
		delay := in.delays.Deprovisioning
		if host.Spec.AutomatedCleaningMode != bmov1alpha1.CleaningModeDisabled {
			delay += in.delays.Cleaning
		}
		if !wait(string(state), delay) {
			break
		}
		st.Provisioning.Image = bmov1alpha1.Image{}
		st.Provisioning.CustomDeploy = nil
		st.PoweredOn = false
		switch {
		case deleting:
			enter(bmov1alpha1.StatePoweringOffBeforeDelete)
		case host.Spec.Online && hasImage(host):
			// A new image replaces the old one: straight on to provisioning.
			enter(bmov1alpha1.StateProvisioning)
		default:
			enter(bmov1alpha1.StateAvailable)
		}

	case bmov1alpha1.StatePoweringOffBeforeDelete:
		if wait(string(state), in.delays.PowerChange) {
			st.PoweredOn = false
			enter(bmov1alpha1.StateDeleting)
		}

	case bmov1alpha1.StateDeleting:
		if wait(string(state), in.delays.Deleting) {
			res.deleted = true
		}

	default:
		// A state this simulator does not play (match profile, servicing…): leave the host as it is.
	}

	setConditions(host, st, in.now)
	if !equality.Semantic.DeepEqual(withoutLastUpdated(host.Status), withoutLastUpdated(*st)) {
		st.LastUpdated = &in.now
	}
	res.status = *st
	return res, nil
}

// syncPower powers the host on or off to match spec.online.
func syncPower(host *bmov1alpha1.BareMetalHost, st *bmov1alpha1.BareMetalHostStatus, in stepInput, wait func(string, time.Duration) bool) {
	if st.PoweredOn == host.Spec.Online {
		if st.ErrorType == bmov1alpha1.PowerManagementError {
			clearError(st)
		}
		return
	}
	action, stage := "on", stagePowerOn
	if !host.Spec.Online {
		action, stage = "off", stagePowerOff
	}
	if in.fail == bmov1alpha1.PowerManagementError {
		setError(st, bmov1alpha1.PowerManagementError, fmt.Sprintf("failed to power %s the host: BMC %s refused the request (simulated)", action, host.Spec.BMC.Address))
		return
	}
	if wait(stage, in.delays.PowerChange) {
		st.PoweredOn = host.Spec.Online
		clearError(st)
	}
}

func setError(st *bmov1alpha1.BareMetalHostStatus, t bmov1alpha1.ErrorType, msg string) {
	if st.ErrorType != t || st.ErrorMessage != msg {
		st.ErrorCount++
	}
	st.OperationalStatus = bmov1alpha1.OperationalStatusError
	st.ErrorType = t
	st.ErrorMessage = msg
}

func clearError(st *bmov1alpha1.BareMetalHostStatus) {
	if st.OperationalStatus == bmov1alpha1.OperationalStatusError {
		st.OperationalStatus = bmov1alpha1.OperationalStatusOK
	}
	st.ErrorType = ""
	st.ErrorMessage = ""
}

// operationOf is the operation history entry a state belongs to.
func operationOf(st *bmov1alpha1.BareMetalHostStatus, state bmov1alpha1.ProvisioningState) *bmov1alpha1.OperationMetric {
	switch state {
	case bmov1alpha1.StateRegistering:
		return &st.OperationHistory.Register
	case bmov1alpha1.StateInspecting:
		return &st.OperationHistory.Inspect
	case bmov1alpha1.StateProvisioning:
		return &st.OperationHistory.Provision
	case bmov1alpha1.StateDeprovisioning:
		return &st.OperationHistory.Deprovision
	}
	return nil
}

func enterOperation(st *bmov1alpha1.BareMetalHostStatus, state bmov1alpha1.ProvisioningState, now metav1.Time) {
	if op := operationOf(st, state); op != nil {
		*op = bmov1alpha1.OperationMetric{Start: now}
	}
}

func leaveOperation(st *bmov1alpha1.BareMetalHostStatus, state bmov1alpha1.ProvisioningState, now metav1.Time) {
	if op := operationOf(st, state); op != nil {
		op.End = now
	}
}

func hasImage(host *bmov1alpha1.BareMetalHost) bool {
	return (host.Spec.Image != nil && host.Spec.Image.URL != "") || (host.Spec.CustomDeploy != nil && host.Spec.CustomDeploy.Method != "")
}

func imageURL(host *bmov1alpha1.BareMetalHost) string {
	if host.Spec.Image == nil {
		return ""
	}
	return host.Spec.Image.URL
}

// needsDeprovisioning: the image was removed or replaced since it was written.
func needsDeprovisioning(host *bmov1alpha1.BareMetalHost) bool {
	if host.Spec.ExternallyProvisioned {
		return false
	}
	if !hasImage(host) {
		return true
	}
	written := host.Status.Provisioning
	if host.Spec.Image != nil && host.Spec.Image.URL != written.Image.URL {
		return true
	}
	return !equality.Semantic.DeepEqual(host.Spec.CustomDeploy, written.CustomDeploy)
}

// setConditions sets the conditions baremetal-operator keeps on a host, approximated from its state.
func setConditions(host *bmov1alpha1.BareMetalHost, st *bmov1alpha1.BareMetalHostStatus, now metav1.Time) {
	state := st.Provisioning.State
	set := func(t string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: host.Generation, LastTransitionTime: now,
		})
	}

	switch {
	case state == bmov1alpha1.StateNone || state == bmov1alpha1.StateUnmanaged:
		set(bmov1alpha1.ManageableCondition, false, bmov1alpha1.NotManagedReason, "the host has no BMC address or credentials")
	case st.ErrorType == bmov1alpha1.RegistrationError:
		set(bmov1alpha1.ManageableCondition, false, bmov1alpha1.RegistrationFailedReason, st.ErrorMessage)
	case st.ErrorType == bmov1alpha1.PowerManagementError:
		set(bmov1alpha1.ManageableCondition, false, bmov1alpha1.PowerFailureReason, st.ErrorMessage)
	case state == bmov1alpha1.StateRegistering:
		set(bmov1alpha1.ManageableCondition, false, bmov1alpha1.RegisteringReason, "")
	default:
		set(bmov1alpha1.ManageableCondition, true, bmov1alpha1.ManageableReason, "")
	}

	switch state {
	case bmov1alpha1.StateAvailable, bmov1alpha1.StateReady:
		set(bmov1alpha1.AvailableForProvisioningCondition, true, bmov1alpha1.AvailableReason, "")
	case bmov1alpha1.StateInspecting:
		set(bmov1alpha1.AvailableForProvisioningCondition, false, bmov1alpha1.InspectingReason, "")
	default:
		set(bmov1alpha1.AvailableForProvisioningCondition, false, bmov1alpha1.NotAvailableReason, "")
	}

	provisioned := state == bmov1alpha1.StateProvisioned || state == bmov1alpha1.StateExternallyProvisioned
	switch {
	case provisioned:
		set(bmov1alpha1.ProvisionedCondition, true, bmov1alpha1.ProvisionedReason, "")
	case state == bmov1alpha1.StateProvisioning:
		set(bmov1alpha1.ProvisionedCondition, false, bmov1alpha1.ProvisioningReason, "")
	default:
		set(bmov1alpha1.ProvisionedCondition, false, bmov1alpha1.NotProvisionedReason, "")
	}

	progressing := map[bmov1alpha1.ProvisioningState]string{
		bmov1alpha1.StateRegistering:             bmov1alpha1.RegisteringReason,
		bmov1alpha1.StateInspecting:              bmov1alpha1.InspectingReason,
		bmov1alpha1.StatePreparing:               bmov1alpha1.PreparingReason,
		bmov1alpha1.StateProvisioning:            bmov1alpha1.ProvisioningReason,
		bmov1alpha1.StateDeprovisioning:          bmov1alpha1.DeprovisioningReason,
		bmov1alpha1.StatePoweringOffBeforeDelete: bmov1alpha1.PoweringOffBeforeDeleteReason,
		bmov1alpha1.StateDeleting:                bmov1alpha1.DeletingReason,
	}
	if reason, ok := progressing[state]; ok {
		set(bmov1alpha1.ProgressingCondition, true, reason, "")
	} else {
		set(bmov1alpha1.ProgressingCondition, false, bmov1alpha1.NotProgressingReason, "")
	}

	switch {
	case st.OperationalStatus == bmov1alpha1.OperationalStatusError:
		set(bmov1alpha1.ReadyCondition, false, bmov1alpha1.ErrorReason, st.ErrorMessage)
	case provisioned:
		set(bmov1alpha1.ReadyCondition, true, bmov1alpha1.ProvisionedReason, "")
	default:
		set(bmov1alpha1.ReadyCondition, false, bmov1alpha1.NotProvisionedReason, "")
	}
}

func withoutLastUpdated(st bmov1alpha1.BareMetalHostStatus) bmov1alpha1.BareMetalHostStatus {
	st.LastUpdated = nil
	return st
}
