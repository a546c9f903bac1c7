#!/usr/bin/env bash
# Builds the local backend's upstream Kubernetes from Go modules into a version-keyed cache:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy
#   (k8s.io/kubernetes: one multi-call binary, hard-linked under each name) and etcd
#   (go.etcd.io/etcd/server/v3).
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

# `-gcflags=all=-dwarf=false` below: no DWARF from the compiler (the linker's `-w` drops it
# anyway, so the binaries are the same): about 7 % less compile CPU (etcd v3.7.4 cold, measured
# apart: 76 vs 82 CPU-s).
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor} -X $pkg.gitTreeState=clean"
done

build() { # build <source dir> <label> <binary> <package>: the binary lands in $bin_dir
  local src=$1 label=$2 binary=$3 package=$4
  local start=$SECONDS tmp="$bin_dir/.tmp-$BASHPID"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building $label for Kubernetes $MINOR (a cold build takes many minutes on 2 cores)"
  ( cd "$src" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w $version_flags" -o "$tmp/$binary" "$package" ) || {
    rm -rf "$tmp"; log "error: 'go build $package' failed in $src"; exit 1; }
  mv "$tmp/$binary" "$bin_dir/$binary"
  rm -rf "$tmp"
  log "built $label in $((SECONDS - start)) s"
}

# etcd builds beside the Kubernetes build (the Go build cache is safe for concurrent builds):
# the latter's serial link step leaves a core idle.
etcd_build=
if [ ! -x "$bin_dir/etcd" ]; then
  build "$here/etcd/$ETCD_VERSION" "etcd $ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 & etcd_build=$!
  trap '[ -z "$etcd_build" ] || pkill -P "$etcd_build" 2>/dev/null || true' EXIT
else
  log "etcd ${ETCD_VERSION} cached in $bin_dir"
fi

# The six Kubernetes commands are one multi-call binary, `kube` (multicall/main.go, built in the
# version's module), hard-linked under each command's name: one link step instead of six, and a
# third of the disk (and CI cache) of six binaries.
kube_tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
missing=0
for tool in "${kube_tools[@]}"; do [ -x "$bin_dir/$tool" ] || missing=1; done
if [ "$missing" = 1 ]; then
  src="$bin_dir/.src-$$"
  rm -rf "$src"; mkdir -p "$src"
  cp "$here/kubernetes/$KUBERNETES_VERSION/go.mod" "$here/kubernetes/$KUBERNETES_VERSION/go.sum" \
    "$here/multicall/main.go" "$src/"
  build "$src" "kubernetes $KUBERNETES_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl: one multi-call binary)" kube .
  rm -rf "$src"
  for tool in "${kube_tools[@]}"; do ln -f "$bin_dir/kube" "$bin_dir/$tool"; done
else
  log "kubernetes ${KUBERNETES_VERSION} binaries cached in $bin_dir"
fi
if [ -n "$etcd_build" ]; then
  wait "$etcd_build" || { etcd_build=; log "error: the etcd build failed (its output is above)"; exit 1; }
  etcd_build=
fi
echo "$bin_dir"
