package envtest

import (
	"net/http/httptest"
	"testing"
)

// The hung proxy holds what needs the API server's storage and answers health, version, discovery
// and access reviews, as an API server with a wedged etcd does.
func TestHTTPProxyHoldsOnlyStorageRequests(t *testing.T) {
	for path, want := range map[string]bool{
		"/readyz":              false,
		"/version":             false,
		"/api":                 false,
		"/api/v1":              false,
		"/apis":                false,
		"/apis/kubevirt.io/v1": false,
		"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": false,
		"/api/v1/nodes":                                         true,
		"/api/v1/namespaces/ns/secrets/s":                       true,
		"/apis/kubevirt.io/v1/virtualmachines":                  true,
		"/apis/metal3.io/v1alpha1/namespaces/ns/baremetalhosts": true,
	} {
		if got := storageRequest(httptest.NewRequest("GET", path, nil)); got != want {
			t.Errorf("storageRequest(%s) = %v, want %v", path, got, want)
		}
	}
}
