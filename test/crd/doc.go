// Package crd holds CRDs of the simulated Infra-cluster APIs (KubeVirt, CDI), generated from their Go
// types by `make generate` so the test API servers have full structural schemas: they prune and
// reject exactly what a real KubeVirt API would.
package crd

import (
	// Keep the API modules the CRDs are generated from in go.mod.
	_ "kubevirt.io/api/core/v1"
	_ "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)
