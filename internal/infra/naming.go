package infra

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// TenantNamespace is the namespace a tenant cluster gets in an Infra cluster:
// <prefix><cluster-namespace>-<cluster-name>, shortened with a hash of the full name when it would
// exceed the 63 characters of a DNS label. It is deterministic, so every controller and replica
// derives the same name without storing it.
func TenantNamespace(prefix, clusterNamespace, clusterName string) string {
	return ShortName(prefix+clusterNamespace+"-"+clusterName, 63)
}

// ShortName returns name when it fits in max characters, else a prefix of it followed by "-" and 10
// hex characters of its SHA-256: distinct long names stay distinct.
func ShortName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	keep := strings.TrimRight(name[:max-len(suffix)-1], "-.")
	return keep + "-" + suffix
}
