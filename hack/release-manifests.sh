#!/usr/bin/env bash
# Writes the release assets of the provider into OUT_DIR (default: out/): what a GitHub release carries
# and what a clusterctl repository serves for one version (<repo>/infrastructure-nest/<version>/):
#   infrastructure-components.yaml  kustomize build of config/default, with the manager image IMG
#   nest-scheduler.yaml             kustomize build of config/scheduler, with the image SCHEDULER_IMG:
#                                   what each Infra cluster runs (clusterctl does not read it)
#   nest-consolidator.yaml          kustomize build of config/consolidator, with the image SCHEDULER_IMG
#                                   (it carries both binaries): off by default, applied per Infra cluster
#   nest-infra-rbac.yaml            kustomize build of config/infra-rbac: the provider's least-privilege
#                                   identity in an Infra cluster (clusterctl does not read it)
#   metadata.yaml                   the release series and their CAPI contract
#   cluster-template*.yaml, clusterclass-*.yaml   the flavors and ClusterClasses of templates/
# Environment: KUSTOMIZE (default bin/kustomize), IMG (default: the image in config/manager),
# SCHEDULER_IMG (default: the image in config/scheduler and config/consolidator).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${OUT_DIR:-${root}/out}}"
kustomize="${KUSTOMIZE:-${root}/bin/kustomize}"

if [[ ! -x "${kustomize}" ]]; then
  echo "no kustomize at ${kustomize}: run 'make kustomize'" >&2
  exit 1
fi

mkdir -p "${out}"
out="$(cd "${out}" && pwd)"

# Images are set in throw-away overlays, so that the repository's kustomizations stay untouched.
overlays="$(mktemp -d "${out}/.kustomize.XXXXXX")"
trap 'rm -rf "${overlays}"' EXIT

# build <config dir> <image name in its manifests> <image to set, or empty> <output file>
build() {
  local dir="${overlays}/$(basename "$1")" name="$2" image="$3"
  mkdir -p "${dir}"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "- $(realpath --relative-to="${dir}" "$1")"
    if [[ -n "${image}" ]]; then
      echo "images:"
      echo "- name: ${name}"
      if [[ "${image}" == *@* ]]; then
        echo "  newName: ${image%@*}"
        echo "  digest: ${image#*@}"
      elif [[ "${image##*/}" == *:* ]]; then # a tag, not a registry port
        echo "  newName: ${image%:*}"
        echo "  newTag: ${image##*:}"
      else
        echo "  newName: ${image}"
      fi
    fi
  } > "${dir}/kustomization.yaml"
  "${kustomize}" build "${dir}" > "$4"
}

build "${root}/config/default" ghcr.io/nestcapi/cluster-api-provider-nest "${IMG:-}" "${out}/infrastructure-components.yaml"
build "${root}/config/scheduler" ghcr.io/nestcapi/nest-scheduler "${SCHEDULER_IMG:-}" "${out}/nest-scheduler.yaml"
build "${root}/config/consolidator" ghcr.io/nestcapi/nest-scheduler "${SCHEDULER_IMG:-}" "${out}/nest-consolidator.yaml"
build "${root}/config/infra-rbac" "" "" "${out}/nest-infra-rbac.yaml"
cp "${root}/metadata.yaml" "${out}/metadata.yaml"
cp "${root}"/templates/cluster-template*.yaml "${root}"/templates/clusterclass-*.yaml "${out}/"
echo "release manifests written to ${out}"
