package v1alpha1

import (
	"fmt"
	"strings"
)

// ProviderIDScheme starts every providerID of this provider.
const ProviderIDScheme = "nest://"

// ProviderID is the providerID of a machine: nest://<infra-cluster>/<namespace>/<name> of its VM or
// BareMetalHost, unique across every Infra cluster. CAPI matches it to the tenant Node's
// spec.providerID.
func ProviderID(infraCluster, namespace, name string) string {
	return ProviderIDScheme + infraCluster + "/" + namespace + "/" + name
}

// ParseProviderID splits a providerID made by ProviderID.
func ParseProviderID(id string) (infraCluster, namespace, name string, err error) {
	rest, ok := strings.CutPrefix(id, ProviderIDScheme)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("providerID %q is not %s<infra-cluster>/<namespace>/<name>", id, ProviderIDScheme)
	}
	return parts[0], parts[1], parts[2], nil
}
