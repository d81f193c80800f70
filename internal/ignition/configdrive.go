package ignition

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MetadataInput are the VMI fields KubeVirt builds a config drive's meta_data.json from.
type MetadataInput struct {
	// VMIName is the VirtualMachineInstance's name, which is its VirtualMachine's name.
	VMIName string
	// Namespace is the VMI's namespace.
	Namespace string
	// Hostname is the VMI's spec.hostname; empty lets KubeVirt derive the hostname from VMIName.
	Hostname string
	// FirmwareUUID is the VMI's spec.domain.firmware.uuid; empty makes KubeVirt write a random one,
	// which ConfigDriveMetadata leaves out.
	FirmwareUUID string
	// InstanceType is the name of the VM's instancetype, from the VMI's instancetype annotations.
	InstanceType string
}

// configDriveMetadata has the fields, in the order, of KubeVirt's config drive metadata type.
type configDriveMetadata struct {
	InstanceType string `json:"instance_type,omitempty"`
	InstanceID   string `json:"instance_id"`
	Hostname     string `json:"hostname,omitempty"`
	UUID         string `json:"uuid,omitempty"`
}

// ConfigDriveHostname is the hostname KubeVirt writes into a VMI's config drive metadata (and
// NoCloud's local-hostname): spec.hostname when set, else the VMI name up to its first dot, cut
// to 63 characters.
func ConfigDriveHostname(vmiName, specHostname string) string {
	if specHostname != "" {
		return specHostname
	}
	name, _, _ := strings.Cut(vmiName, ".")
	if len(name) > validation.DNS1123LabelMaxLength {
		name = name[:validation.DNS1123LabelMaxLength]
	}
	return name
}

// ConfigDriveMetadata renders openstack/latest/meta_data.json as KubeVirt writes it on the
// config-2 drive of a VMI with a cloudInitConfigDrive volume and no SSH keys propagated through
// it: instance_id "<name>.<namespace>", hostname, uuid. KubeVirt renders this file itself; a
// VM spec can only steer it through the VMI's name, spec.hostname and firmware UUID. Errors name
// the invalid field.
func ConfigDriveMetadata(in MetadataInput) ([]byte, error) {
	var errs []error
	if msgs := validation.IsDNS1123Subdomain(in.VMIName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("VMI name %q: %s", in.VMIName, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(in.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace %q: %s", in.Namespace, strings.Join(msgs, "; ")))
	}
	if in.Hostname != "" {
		// KubeVirt's admission rejects a spec.hostname that is not a DNS label.
		if msgs := validation.IsDNS1123Label(in.Hostname); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("spec.hostname %q: %s", in.Hostname, strings.Join(msgs, "; ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot render the config drive metadata: %w", err)
	}
	return json.Marshal(configDriveMetadata{
		InstanceType: in.InstanceType,
		InstanceID:   in.VMIName + "." + in.Namespace,
		Hostname:     ConfigDriveHostname(in.VMIName, in.Hostname),
		UUID:         in.FirmwareUUID,
	})
}
