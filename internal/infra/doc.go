// Package infra keeps one connection per InfraCluster: a REST config built from its kubeconfig Secret
// (or the management cluster's own), a long-lived client and an informer cache of the objects this
// provider owns there (selected by the managed-by label) plus the BareMetalHosts and Nodes it must
// see. Remote informer events are turned into reconcile requests for the NestMachines and NestClusters
// they belong to, through controller-runtime sources: controllers notice progress by events, never by
// polling, and no client is built per reconcile.
//
// The InfraCluster controller drives the life of a connection: it builds it when the InfraCluster is
// first seen or its Secret changes, connects (starts the cache) when a probe succeeds, disconnects
// (stops the cache) when probes fail, and removes it when the InfraCluster is deleted. A fresh cache
// after a reconnect re-lists everything, so every owner is reconciled once after an Infra cluster
// returns — which is what finds work that was waiting for it.
package infra
