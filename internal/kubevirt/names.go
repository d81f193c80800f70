package kubevirt

import (
	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

const (
	// rootDataVolumeSuffix names the DataVolume of the root disk after its VM.
	rootDataVolumeSuffix = "-root"
	// bootstrapSecretSuffix names the bootstrap Secret after its VM.
	bootstrapSecretSuffix = "-bootstrap"

	// MaxVMNameLength is the longest name VMName returns. A VM name becomes a pod label value and the
	// guest's hostname (63 characters at most), and the root DataVolume, whose name storage
	// provisioners copy into labels too, is the VM name plus "-root": so 63 minus that suffix.
	MaxVMNameLength = validation.DNS1123LabelMaxLength - len(rootDataVolumeSuffix)
)

// VMName is the name of the VirtualMachine of a NestMachine in its tenant namespace. It is the
// NestMachine's name when that is a DNS label of at most MaxVMNameLength characters; otherwise it is
// the name made DNS-label safe (dots become dashes), cut, and suffixed with a hash of the full name,
// so that two NestMachines of one namespace never share a VM even when their names only differ past
// the cut or by a dot.
func VMName(nm *infrav1.NestMachine) string {
	return ownership.ShortName(nm.Name, MaxVMNameLength)
}

// RootDataVolumeName is the name of the DataVolume that holds the root disk of the VM vmName.
func RootDataVolumeName(vmName string) string {
	return vmName + rootDataVolumeSuffix
}

// BootstrapSecretName is the conventional name of the Secret that holds the bootstrap data of the
// VM vmName in the Infra cluster. Secret names are not copied into labels, so the suffix may take
// the name past 63 characters.
func BootstrapSecretName(vmName string) string {
	return vmName + bootstrapSecretSuffix
}
