// Package webhooks holds the provider's admission webhooks: defaulting and validation for every kind
// (InfraCluster, NestCluster, NestClusterTemplate, NestMachine, NestMachineTemplate), for what the CRD
// schema cannot say — cross-field consistency, references to InfraClusters and their
// allowedNamespaces, immutability — and the control-plane spread webhook on CAPI Machines, which keeps
// a tenant's control plane balanced over its Infra clusters (the rule is in internal/placement).
//
// Every rejection is an Invalid status whose causes name the field and what is allowed. Reads go to
// the manager's cache; nothing here writes.
//
// # Failure policy
//
// Every webhook fails closed (failurePolicy Fail). For the provider's own kinds that is the CAPI
// convention: an object the webhook did not see may be invalid forever. For the control-plane spread
// webhook it protects the invariant: if the webhook is down, KubeadmControlPlane cannot create
// control-plane Machines for Nest clusters and retries until it is back — and the same pod runs the
// controllers that would provision those machines, so nothing is lost by waiting. Machines of other
// providers never wait on this webhook: the webhook configuration selects only Machines with the
// control-plane label (objectSelector) whose spec.infrastructureRef is a NestMachine (matchConditions,
// evaluated by the API server), and the handler repeats that check before any read.
//
// # Concurrency
//
// The spread webhook decides from the cache, one request at a time: two control-plane Machines of one
// cluster created at the same moment can both be admitted against the same counts. KubeadmControlPlane
// never does that — it creates one machine per reconcile and waits to see it before the next step —
// and a machine the cache has not seen yet is visible within milliseconds. A race that slips through
// leaves a control plane the NestCluster controller sees as unbalanced (placement.Imbalance) and
// restores like the return of an Infra cluster.
package webhooks
