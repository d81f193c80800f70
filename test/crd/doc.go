// Package crd holds CRDs the test API servers install for APIs this module does not serve.
//
// kubevirt/ holds the simulated Infra-cluster APIs (KubeVirt, CDI), generated from their Go types by
// `make generate` so the test API servers have full structural schemas: they prune and reject exactly
// what a real KubeVirt API would.
//
// assisted/ holds the OpenShift Assisted bootstrap and control-plane kinds the openshift-assisted
// flavors use. Their Go module is not served by the module proxy here, so they are written by hand
// from the providers' API types and cover only the fields the flavors set, with structural schemas:
// the clusterctl suite installs them and dry-runs the flavors with strict field validation, so a
// misspelt field fails the test. A flavor that sets a new field adds it here first.
package crd

import (
	// Keep the API modules the CRDs are generated from in go.mod.
	_ "kubevirt.io/api/core/v1"
	_ "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)
