// Package metal3 simulates baremetal-operator (and the Ironic behind it) on an Infra API server that has
// the Metal3 CRDs: a controller-runtime manager (Run, or SetupWithManager on a caller's manager) that
// walks BareMetalHosts through status.provisioning.state as baremetal-operator does:
//
//	"" → registering (unmanaged without BMC details) → inspecting → preparing → available
//	available → provisioning (spec.image or customDeploy set and spec.online) → provisioned
//	provisioned → deprovisioning (image removed or replaced; cleaning included unless
//	automatedCleaningMode is disabled) → available, or provisioning for a new image
//	registering with spec.externallyProvisioned → externally provisioned
//	deletion → deprovisioning (when an image is or is being written) → powering off before delete →
//	deleting → the baremetalhost.metal3.io finalizer removed
//
// Registration reads the BMC credentials Secret (it must exist with a username and a password; the host
// retries when it appears). Inspection fills status.hardware (CPUs, RAM, a disk, NICs with addresses
// 172.<16+ID>.x.y, the first with the boot MAC, the host's name as hostname) and creates the host's
// HardwareData. status.provisioning.image mirrors spec.image once provisioned, poweredOn follows
// spec.online in stable states, and operationalStatus is OK, discovered, error (with errorType,
// errorMessage and errorCount) or detached. Each step takes its Delays (RequeueAfter, no sleeping);
// failures are injected by annotation (FailAnnotation) or Options.Fail; hooks see hosts provisioned and
// deprovisioned. CreateHosts makes hosts and their BMC Secrets that pass the CRD's validation.
//
// Not simulated: no BMC, Ironic or ramdisk; no firmware settings or components, RAID, BIOS, servicing,
// reboot and inspect annotations, status annotation (move), HostClaims, DataImages, PreprovisioningImages
// or BMCEventSubscriptions; userData, networkData and metaData are not read. The conditions
// (Manageable, AvailableForProvisioning, Provisioned, Progressing, Ready) are approximated from the state.
// As in baremetal-operator, a host provisions when it has an image and is online: consumerRef is the
// claimer's business. The paused and detached annotations are honoured. In-memory state (delays, hook
// calls) starts over when a simulator restarts: hooks must be idempotent.
package metal3
