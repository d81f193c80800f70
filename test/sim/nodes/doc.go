// Package nodes makes fake Nodes: Infra nodes for virt-launcher pods (Create, with KubeVirt's schedulable
// label and device-plugin resources when asked) and tenant nodes for booted machines (ForVMI, ForHost,
// Register, with or without the providerID nest://<infra>/<namespace>/<name>).
//
// A fake node has capacity, allocatable (extended resources included), labels, taints, addresses, node
// info and a Ready condition. No kubelet runs: there are no heartbeats, leases, images or volumes. Because
// envtest runs no node lifecycle controller, the package plays its part: the node.kubernetes.io/not-ready
// taint the API server puts on every new node is lifted while the node is Ready and put back when
// SetReady marks it not ready.
package nodes
