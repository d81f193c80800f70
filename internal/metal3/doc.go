// Package metal3 decides which Metal3 BareMetalHost a bare-metal NestMachine gets and renders every
// change this provider makes to a host over its life: claim, provision, deprovision, release. It also
// reads a host's progress back into a condition and addresses. Everything here is a pure function
// over plain values — no client, no clock — so the controller stays thin and table tests pin every
// decision.
//
// The life of a host, as the controller drives it with these functions:
//
//   - Choose: Candidates keeps the hosts a machine may take — matching its hostSelector, available
//     (or ready, the older name), not deleting, not in error, not paused or detached, not consumed,
//     with no image — and Choose picks one by rendezvous hashing on the NestMachine's UID. Each
//     claimer has its own stable preference order over the hosts, so concurrent claimers mostly go
//     to different hosts and a claimer that loses a race simply moves to its next preference. The
//     caller passes only hosts of the Infra cluster named by the Machine's failure domain: this
//     package never sees, so never falls back to, another Infra cluster.
//   - Claim: RenderClaim sets consumerRef (the NestMachine) and the ownership labels. The caller
//     writes it with an Update carrying the host's resourceVersion: a conflict means another
//     claimer won, and FindClaimed finds a host already claimed by a NestMachine (after a restart)
//     so it is never claimed twice.
//   - Provision: RenderDataSecret puts the bootstrap (and network) data in a Secret next to the
//     host, under the keys the baremetal-operator reads ("userData", "networkData");
//     RenderProvision sets image, userData, networkData, online and automatedCleaningMode.
//   - Progress: ReadProgress turns provisioning state, error and power into the HostProvisioned
//     condition, the machine's addresses and the tenant Node's name.
//   - Delete: RenderDeprovision clears image, custom deploy and data and keeps the claim until
//     Deprovisioned says the host is back; RenderRelease then removes consumerRef and our labels.
//
// Bootstrap data is secret: it only travels in the Secret; no other type here holds it.
package metal3
