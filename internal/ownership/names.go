package ownership

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hashLength is the number of hex characters of the SHA-256 suffix of a shortened name: 40 bits,
// enough that two names of one namespace do not collide in practice.
const hashLength = 10

// ShortName returns name when it is a DNS label of at most max characters, else a DNS label of at
// most max characters made of the name's safe prefix (lower case, anything but letters and digits
// turned into dashes) and a hash of the whole name: distinct long names stay distinct, and the same
// name always gives the same result, so every controller and replica derives it without storing it.
func ShortName(name string, max int) string {
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

// LabelValue makes s usable as a label value. Names of Kubernetes objects are up to 253 characters
// but label values only 63: a longer value is cut and suffixed with a hash of the whole value, so it
// stays unique and is the same every time. Selectors must use LabelValue too; whoever needs the whole
// name reads the annotations (OwnerOf).
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	return ShortName(s, validation.LabelValueMaxLength)
}

// TenantNamespace is the namespace a tenant cluster gets in an Infra cluster:
// <prefix><cluster-namespace>-<cluster-name>, shortened with a hash of the full name when it would not
// be a DNS label of 63 characters.
func TenantNamespace(prefix, clusterNamespace, clusterName string) string {
	return ShortName(prefix+clusterNamespace+"-"+clusterName, validation.DNS1123LabelMaxLength)
}
