// Package ignition checks and adjusts the Ignition bootstrap data (CAPI bootstrap format
// "ignition") that a KubeVirt VM reads from its config drive, and describes the config drive
// metadata KubeVirt puts beside it. Everything here is a pure function over bytes and strings:
// no client, no API server.
//
// Two kinds of Ignition reach this provider:
//
//   - Ignition spec 3 (3.0.0 to 3.5.0): RHCOS / OpenShift 4.6+ and Fedora CoreOS. The OpenShift
//     installer's master.ign and worker.ign are pointer configs that merge (or replace) the
//     machine-config server's config, https://api-int.<cluster>.<base domain>:22623/config/<pool>;
//     the OpenShift Assisted bootstrap provider emits spec 3 too. Parsed and validated with
//     github.com/coreos/ignition/v2.
//   - Ignition spec 2 (2.0.0 to 2.4.0): what CAPI's kubeadm bootstrap provider renders for Flatcar
//     (templates/cluster-template-ignition.yaml) from a Container Linux Config. Parsed and validated
//     with github.com/flatcar/ignition, the library that provider renders it with.
//
// What is in it:
//
//   - Validate parses and validates either spec and returns an Info: the spec version, whether the
//     config is a pointer config, and the remote URLs it points at. Info.RequireV3 is the extra
//     check for RHCOS / OpenShift machines, whose Ignition only reads spec 3.
//   - SetHostname adds a file entry that writes /etc/hostname, merged the way Ignition merges
//     configs and kept in the config's own spec version, unless the config already writes it.
//   - ConfigDriveHostname and ConfigDriveMetadata say what KubeVirt writes in
//     openstack/latest/meta_data.json on a config drive: KubeVirt builds that file itself from the
//     VMI (name, namespace, spec.hostname, firmware UUID); the VM spec cannot supply it.
//
// Bootstrap data carries secrets (join tokens, certificates, pull secrets). No error from this
// package quotes the data: errors name spec versions, JSON paths, line and column numbers, and
// short reasons only.
package ignition
