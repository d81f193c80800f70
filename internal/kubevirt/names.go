package kubevirt

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
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

	// hashLength is the number of hex characters of the SHA-256 suffix of a shortened name: 40 bits,
	// enough that two names of one tenant namespace do not collide in practice.
	hashLength = 10
)

// VMName is the name of the VirtualMachine of a NestMachine in its tenant namespace. It is the
// NestMachine's name when that is a DNS label of at most MaxVMNameLength characters; otherwise it is
// the name made DNS-label safe (dots become dashes), cut, and suffixed with a hash of the full name,
// so that two NestMachines of one namespace never share a VM even when their names only differ past
// the cut or by a dot.
func VMName(nm *infrav1.NestMachine) string {
	return shorten(nm.Name, MaxVMNameLength)
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

// LabelValue makes s usable as a label value. Names of Kubernetes objects are up to 253 characters
// but label values only 63: a longer value is cut and suffixed with a hash of the whole value, so
// it stays unique and is the same every time. Selectors must use LabelValue too.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	return shorten(s, validation.LabelValueMaxLength)
}

// shorten returns name when it is a DNS label of at most max characters, else a DNS label of at
// most max characters made of the name's safe prefix and a hash of the whole name.
func shorten(name string, max int) string {
	if len(name) <= max && len(validation.IsDNS1123Label(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:hashLength]

	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	prefix := b.String()
	if keep := max - hashLength - 1; len(prefix) > keep {
		prefix = prefix[:keep]
	}
	// A DNS label starts and ends with an alphanumeric character; the hash supplies the end.
	prefix = strings.Trim(prefix, "-")
	if prefix == "" {
		return suffix
	}
	return prefix + "-" + suffix
}
