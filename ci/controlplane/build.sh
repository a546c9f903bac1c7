#!/usr/bin/env bash
# Builds the local backend's upstream Kubernetes from Go modules into a version-keyed cache:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy
#   (k8s.io/kubernetes, one go build) and etcd (go.etcd.io/etcd/server/v3).
# The node's other parts (containerd, runc, CNI plugins, pause) come from ci/node/build.sh.
# Usage: ci/controlplane/build.sh [MINOR]   (a supported minor of versions.tsv, e.g. 1.34;
# default: the table's default). Prints the bin directory on stdout as its last line.
# Rebuilds only what is missing. Env: GOMICRO_CACHE_DIR (default ~/.cache/gomicro-conformance).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
select_version "${1:-}" || exit 2

log() { printf '[controlplane] %s\n' "$*" >&2; }
command -v go >/dev/null 2>&1 || { log "error: the Go toolchain is missing (need Go >= 1.25 on PATH; see README 'Local backend')"; exit 2; }

cache_root=${GOMICRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gomicro-conformance}
bin_dir="$cache_root/controlplane/kubernetes-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}/bin"
mkdir -p "$bin_dir"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor} -X $pkg.gitTreeState=clean"
done

build() { # build <module dir> <label> <package>...: binaries land in $bin_dir named after their package
  local module=$1 label=$2; shift 2
  local start=$SECONDS tmp="$bin_dir/.tmp-$BASHPID"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building $label for Kubernetes $MINOR: $* (a cold build takes many minutes on 2 cores)"
  ( cd "$here/$module" && go build -trimpath -ldflags "-s -w $version_flags" -o "$tmp/" "$@" ) || {
    rm -rf "$tmp"; log "error: 'go build $*' failed in $here/$module"; exit 1; }
  # etcd's main package is the module root go.etcd.io/etcd/server/v3, which go names "server".
  if [ -f "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
  mv "$tmp"/* "$bin_dir/"
  rm -rf "$tmp"
  log "built $label in $((SECONDS - start)) s"
}

# etcd builds beside the Kubernetes build (the Go build cache is safe for concurrent builds):
# the latter's serial link steps leave a core idle.
etcd_build=
if [ ! -x "$bin_dir/etcd" ]; then
  build "etcd/$ETCD_VERSION" "etcd $ETCD_VERSION" go.etcd.io/etcd/server/v3 & etcd_build=$!
  trap '[ -z "$etcd_build" ] || pkill -P "$etcd_build" 2>/dev/null || true' EXIT
else
  log "etcd ${ETCD_VERSION} cached in $bin_dir"
fi

kube_tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
pkgs=()
for tool in "${kube_tools[@]}"; do [ -x "$bin_dir/$tool" ] || pkgs+=("k8s.io/kubernetes/cmd/$tool"); done
if [ "${#pkgs[@]}" -gt 0 ]; then
  # One go build for every missing tool so they share compiled packages; -o names a directory.
  build "kubernetes/$KUBERNETES_VERSION" "kubernetes $KUBERNETES_VERSION" "${pkgs[@]}"
else
  log "kubernetes ${KUBERNETES_VERSION} binaries cached in $bin_dir"
fi
if [ -n "$etcd_build" ]; then
  wait "$etcd_build" || { etcd_build=; log "error: the etcd build failed (its output is above)"; exit 1; }
  etcd_build=
fi
echo "$bin_dir"
