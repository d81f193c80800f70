#!/usr/bin/env bash
# Generates the CRDs of the APIs an Infra cluster serves (KubeVirt, CDI) from their Go types, with full
# structural schemas, into test/crd/kubevirt. Only the kinds the provider and the simulators use are kept.
set -euo pipefail
out=test/crd/kubevirt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go tool controller-gen crd:allowDangerousTypes=true,maxDescLen=0 \
  paths=kubevirt.io/api/core/v1 \
  paths=kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1 \
  output:crd:artifacts:config="$tmp"
rm -rf "$out"
mkdir -p "$out"
for f in kubevirt.io_virtualmachines kubevirt.io_virtualmachineinstances kubevirt.io_virtualmachineinstancemigrations \
         cdi.kubevirt.io_datavolumes cdi.kubevirt.io_datasources; do
  cp "$tmp/$f.yaml" "$out/$f.yaml"
done
