// Command clusterctl is CAPI's clusterctl, built from the Go module proxy at the version go.mod pins, so
// that tests run the real `clusterctl generate cluster` and `clusterctl init` against this provider.
package main

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"sigs.k8s.io/cluster-api/cmd/clusterctl/cmd"
)

func main() {
	cmd.Execute()
}
