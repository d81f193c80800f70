// Package sandbox runs the whole system on one machine: a management API server with CAPI's and the
// provider's CRDs and webhooks; the real CAPI controllers (core, KubeadmControlPlane, kubeadm
// bootstrap) and the provider's manager in-process; Infra clusters, each a real API server with fake
// KubeVirt-capable nodes, the KubeVirt (and Metal3) simulators and a real nest-scheduler process; and
// a real API server per tenant cluster, where simulated machines register their Nodes. Tenant clusters
// are generated from the templates by the real clusterctl and applied as a user would.
//
// The `sandbox` command (make sandbox), the end-to-end suite (test/e2e) and the end-to-end benchmark
// are built on it. docs/sandbox.md says what is real and what is simulated.
package sandbox
