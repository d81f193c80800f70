// Package kubevirt turns a NestMachine into the KubeVirt objects that run it in an Infra cluster,
// and reads back what KubeVirt and CDI report about them. Everything here is a pure function over
// plain values: no client, no API server, no clock. That keeps the controller thin and lets table
// tests pin every rendered field.
//
// What is in it:
//
//   - Names: VMName gives every NestMachine a deterministic VM name that is a DNS label short enough
//     for the names derived from it (RootDataVolumeName); LabelValue shortens label values the same
//     way.
//   - Rendering: RenderVM renders the VirtualMachine (CPU and memory or an instancetype, the boot
//     image as a container disk or a CDI DataVolume template, networks, run and eviction strategy,
//     placement, and a required anti-affinity between the control-plane VMs of one tenant), then
//     applies the NestMachine's JSON patches. RenderBootstrapSecret renders the Secret the VM's
//     cloud-init NoCloud (cloud-config) or config drive (Ignition) disk reads; SetOwner ties it to
//     the VM. The same input always renders byte-identical objects, so comparing rendered with
//     found is meaningful.
//   - Labels: every object carries the tenant cluster name and role (read by the scheduler plugin on
//     the virt-launcher pod) and the ownership labels of the API package (read by watch mappings and
//     the orphan sweeper).
//   - Patches: ApplyPatches applies RFC 6902 patches and decodes the result strictly; CheckPatches
//     lets the admission webhook refuse patches that can never apply.
//   - Status: ReadStatus derives provisioned, addresses, node, the LiveMigratable condition and a
//     reason and message a person can act on from the VM, its instance and its DataVolumes.
//   - Drift: MutableDrift resets what may change on an existing VM and leaves the rest alone.
//
// Bootstrap data is secret: it only ever travels in the Secret, is never inlined into the VM, and
// no type here holds it, so none can print it.
package kubevirt
