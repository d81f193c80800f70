#!/usr/bin/env bash
# Writes the release assets of the provider into OUT_DIR (default: out/): what a GitHub release carries
# and what a clusterctl repository serves for one version (<repo>/infrastructure-nest/<version>/):
#   infrastructure-components.yaml  kustomize build of config/default, with the manager image IMG
#   metadata.yaml                   the release series and their CAPI contract
#   cluster-template*.yaml, clusterclass-*.yaml   the flavors and ClusterClasses of templates/
# Environment: KUSTOMIZE (default bin/kustomize), IMG (default: the image in config/manager).
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

# The image is set in a throw-away overlay, so that the repository's kustomizations stay untouched.
overlay="$(mktemp -d "${out}/.kustomize.XXXXXX")"
trap 'rm -rf "${overlay}"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "- $(realpath --relative-to="${overlay}" "${root}/config/default")"
  if [[ -n "${IMG:-}" ]]; then
    echo "images:"
    echo "- name: ghcr.io/nestcapi/cluster-api-provider-nest"
    if [[ "${IMG}" == *@* ]]; then
      echo "  newName: ${IMG%@*}"
      echo "  digest: ${IMG#*@}"
    elif [[ "${IMG##*/}" == *:* ]]; then # a tag, not a registry port
      echo "  newName: ${IMG%:*}"
      echo "  newTag: ${IMG##*:}"
    else
      echo "  newName: ${IMG}"
    fi
  fi
} > "${overlay}/kustomization.yaml"

"${kustomize}" build "${overlay}" > "${out}/infrastructure-components.yaml"
cp "${root}/metadata.yaml" "${out}/metadata.yaml"
cp "${root}"/templates/cluster-template*.yaml "${root}"/templates/clusterclass-*.yaml "${out}/"
echo "release manifests written to ${out}"
