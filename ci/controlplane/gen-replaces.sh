#!/usr/bin/env bash
# Regenerates kubernetes/go.mod for KUBERNETES_VERSION (versions.env).
#
# k8s.io/kubernetes requires each staging module (k8s.io/api, k8s.io/client-go, ...) at the
# placeholder v0.0.0 and redirects it into ./staging with a replace that only counts inside
# that module. A consumer must replace each one with the published staging tag v0.<minor>.<patch>.
# The list is read from the tag's own go.mod, so it follows the version without hand edits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
staging_version="v0.${KUBERNETES_VERSION#v1.}"

gomod=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[ -f "$gomod" ] || { echo "gen-replaces: could not download the go.mod of k8s.io/kubernetes@${KUBERNETES_VERSION}" >&2; exit 1; }
mapfile -t staging < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
[ "${#staging[@]}" -gt 10 ] || { echo "gen-replaces: found only ${#staging[@]} staging modules in $gomod" >&2; exit 1; }

cd "$here/kubernetes"
rm -f go.mod go.sum
go mod init gomicro-conformance/controlplane/kubernetes >/dev/null 2>&1
go mod edit -go=1.25.0
for module in "${staging[@]}"; do
  go mod edit -replace "${module}=${module}@${staging_version}"
done
for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  go get -tool "k8s.io/kubernetes/cmd/${tool}@${KUBERNETES_VERSION}"
done
go mod tidy
echo "gen-replaces: ${#staging[@]} staging modules pinned at ${staging_version} in $(pwd)/go.mod"
