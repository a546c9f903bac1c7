#!/usr/bin/env bash
# Writes the Go modules the local backend builds a supported Kubernetes minor from
# (versions.tsv): kubernetes/<version>/go.mod and etcd/<version>/go.mod with their go.sum.
# Usage: ci/controlplane/gen-replaces.sh [MINOR...]   (default: every minor of the table)
# A maintainers' tool (needs the Go module proxy); the build scripts only read its output.
#
# k8s.io/kubernetes requires each staging module (k8s.io/api, k8s.io/client-go, ...) at the
# placeholder v0.0.0 and redirects it into ./staging with a replace that only counts inside
# that module. A consumer must replace each one with the published staging tag v0.<minor>.<patch>.
# The list is read from the tag's own go.mod, so it follows the version without hand edits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
[ "$#" -gt 0 ] || set -- $(awk -F'\t' '!/^#/ { print $1 }' "$versions_table")

kubernetes_module() { # kubernetes_module <version>
  local version=$1 staging_version="v0.${1#v1.}" gomod module tool
  gomod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { echo "gen-replaces: could not download the go.mod of k8s.io/kubernetes@${version}" >&2; exit 1; }
  mapfile -t staging < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
  [ "${#staging[@]}" -gt 10 ] || { echo "gen-replaces: found only ${#staging[@]} staging modules in $gomod" >&2; exit 1; }
  mkdir -p "$here/kubernetes/$version"
  cd "$here/kubernetes/$version"
  rm -f go.mod go.sum
  go mod init gomicro-conformance/controlplane/kubernetes >/dev/null 2>&1
  for module in "${staging[@]}"; do
    go mod edit -replace "${module}=${module}@${staging_version}"
  done
  for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    go get -tool "k8s.io/kubernetes/cmd/${tool}@${version}"
  done
  go mod tidy
  echo "gen-replaces: ${#staging[@]} staging modules pinned at ${staging_version} in $(pwd)/go.mod" >&2
}

etcd_module() { # etcd_module <version>
  mkdir -p "$here/etcd/$1"
  cd "$here/etcd/$1"
  rm -f go.mod go.sum
  go mod init gomicro-conformance/controlplane/etcd >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@$1"
  go mod tidy
  echo "gen-replaces: etcd $1 in $(pwd)/go.mod" >&2
}

for minor in "$@"; do
  select_version "$minor"
  [ -f "$here/kubernetes/$KUBERNETES_VERSION/go.sum" ] || kubernetes_module "$KUBERNETES_VERSION"
  [ -f "$here/etcd/$ETCD_VERSION/go.sum" ] || etcd_module "$ETCD_VERSION"
done
