package metal3

import (
	"fmt"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Reasons of the HostClaimed and HostProvisioned conditions beyond the API package's
// (Provisioning, NoHostAvailable, HostError).
const (
	// ClaimedReason: the machine holds a host.
	ClaimedReason = "Claimed"
	// ProvisionedReason: the host is provisioned and powered on.
	ProvisionedReason = "Provisioned"
)

// Progress is what a NestMachine reports about its host.
type Progress struct {
	// Provisioned is true once the host runs the machine's image.
	Provisioned bool
	// Condition is the HostProvisioned condition.
	Condition metav1.Condition
	// Addresses are the host's NIC addresses (InternalIP) and hostname (Hostname, InternalDNS).
	Addresses []clusterv1.MachineAddress
	// NodeName is the tenant Node the host is expected to register as: the hostname the operator's
	// inspection found, else the host's name.
	NodeName string
}

// ReadProgress reads a claimed host's provisioning progress: the state, the operator's error and the
// power state become the HostProvisioned condition, hardware details the addresses.
func ReadProgress(host *bmov1alpha1.BareMetalHost) Progress {
	p := Progress{Addresses: Addresses(host), NodeName: host.Name}
	if hw := host.Status.HardwareDetails; hw != nil && hw.Hostname != "" {
		p.NodeName = hw.Hostname
	}
	name := HostKey(host)
	state := host.Status.Provisioning.State
	cond := func(status metav1.ConditionStatus, reason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: infrav1.HostProvisionedCondition, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case !host.DeletionTimestamp.IsZero():
		p.Condition = cond(metav1.ConditionFalse, infrav1.HostErrorReason, "BareMetalHost %s is being deleted", name)
	case host.Status.OperationalStatus == bmov1alpha1.OperationalStatusError || host.Status.ErrorType != "" || host.Status.ErrorMessage != "":
		errType := string(host.Status.ErrorType)
		if errType == "" {
			errType = "error"
		}
		msg := host.Status.ErrorMessage
		if msg == "" {
			msg = "no message from the baremetal-operator"
		}
		p.Condition = cond(metav1.ConditionFalse, infrav1.HostErrorReason, "BareMetalHost %s (state %q): %s: %s", name, state, errType, msg)
	case state == bmov1alpha1.StateProvisioned && host.Status.PoweredOn:
		p.Provisioned = true
		p.Condition = cond(metav1.ConditionTrue, ProvisionedReason, "BareMetalHost %s is provisioned and powered on", name)
	case state == bmov1alpha1.StateProvisioned:
		p.Condition = cond(metav1.ConditionFalse, infrav1.ProvisioningReason, "BareMetalHost %s is provisioned: waiting for it to power on", name)
	case state == bmov1alpha1.StateProvisioning:
		image := "its image"
		if host.Spec.Image != nil {
			image = host.Spec.Image.URL
		}
		p.Condition = cond(metav1.ConditionFalse, infrav1.ProvisioningReason, "BareMetalHost %s is provisioning: writing %s", name, image)
	default:
		p.Condition = cond(metav1.ConditionFalse, infrav1.ProvisioningReason, "BareMetalHost %s is %s: waiting for the baremetal-operator to provision it", name, stateName(state))
	}
	return p
}

func stateName(s bmov1alpha1.ProvisioningState) string {
	if s == bmov1alpha1.StateNone {
		return "in no state yet"
	}
	return fmt.Sprintf("in state %q", s)
}

// MaxAddresses is the most addresses a NestMachine's status holds (its CRD's maxItems).
const MaxAddresses = 32

// Addresses are a host's addresses as CAPI wants them: each NIC IP once as InternalIP, then the
// inspected hostname as Hostname and InternalDNS; at most MaxAddresses, the hostname kept.
func Addresses(host *bmov1alpha1.BareMetalHost) []clusterv1.MachineAddress {
	hw := host.Status.HardwareDetails
	if hw == nil {
		return nil
	}
	maxIPs := MaxAddresses
	if hw.Hostname != "" {
		maxIPs -= 2
	}
	var out []clusterv1.MachineAddress
	seen := map[string]bool{}
	for _, nic := range hw.NIC {
		if nic.IP == "" || seen[nic.IP] || len(out) == maxIPs {
			continue
		}
		seen[nic.IP] = true
		out = append(out, clusterv1.MachineAddress{Type: clusterv1.MachineInternalIP, Address: nic.IP})
	}
	if hw.Hostname != "" {
		out = append(out,
			clusterv1.MachineAddress{Type: clusterv1.MachineHostName, Address: hw.Hostname},
			clusterv1.MachineAddress{Type: clusterv1.MachineInternalDNS, Address: hw.Hostname})
	}
	return out
}
