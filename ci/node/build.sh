#!/usr/bin/env bash
# Builds or installs the local backend's node runtime into a version-keyed cache:
#   containerd, containerd-shim-runc-v2, ctr  (github.com/containerd/containerd/v2, Go module ./containerd)
#   pause                                      (./pause/pause.c, gcc -static: the sandbox image's program)
#   runc, cni/{bridge,host-local,loopback}     (the host's, else Debian packages via apt-get; symlinked)
#   nft (on PATH, for kube-proxy's nftables mode and clean-up: the host's, else Debian's nftables)
# kubelet and kube-proxy come from ../controlplane/build.sh (the same k8s.io/kubernetes build).
# Prints the bin directory on stdout as its last line. Rebuilds only what is missing.
# Env: GOMICRO_CACHE_DIR (default ~/.cache/gomicro-conformance).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

log() { printf '[node] %s\n' "$*" >&2; }

pause_hash=$(sha256sum "$here/pause/pause.c" | cut -c1-12)
bin_dir="$(gomicro_cache_dir)/node/containerd-${CONTAINERD_VERSION}_pause-${pause_hash}/bin"
mkdir -p "$bin_dir/cni"

containerd_tools=(containerd containerd-shim-runc-v2 ctr)
pkgs=()
for tool in "${containerd_tools[@]}"; do
  [ -x "$bin_dir/$tool" ] || pkgs+=("github.com/containerd/containerd/v2/cmd/$tool")
done
if [ "${#pkgs[@]}" -gt 0 ]; then
  command -v go >/dev/null 2>&1 || { log "error: the Go toolchain is missing (need Go >= 1.26.6 on PATH for containerd ${CONTAINERD_VERSION})"; exit 2; }
  start=$SECONDS tmp="$bin_dir/.tmp-$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building containerd ${CONTAINERD_VERSION}: ${pkgs[*]}"
  ( cd "$here/containerd" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -gcflags=all=-dwarf=false \
      -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}" \
      -o "$tmp/" "${pkgs[@]}" ) || { rm -rf "$tmp"; log "error: 'go build ${pkgs[*]}' failed in $here/containerd"; exit 1; }
  mv "$tmp"/* "$bin_dir/"
  rm -rf "$tmp"
  log "built containerd in $((SECONDS - start)) s"
else
  log "containerd ${CONTAINERD_VERSION} cached in $bin_dir"
fi

if [ ! -x "$bin_dir/pause" ]; then
  command -v gcc >/dev/null 2>&1 || { log "error: gcc is missing (it builds the static pause program)"; exit 2; }
  gcc -static -Os -s -Wall -Werror -o "$bin_dir/pause.tmp" "$here/pause/pause.c" \
    || { log "error: gcc -static failed for pause.c (the static C library comes with libc6-dev)"; exit 1; }
  mv "$bin_dir/pause.tmp" "$bin_dir/pause"
  log "built pause ($(stat -c %s "$bin_dir/pause") bytes)"
fi

# runc and the CNI plugins: the host's when it has them (e.g. Docker's runc on a CI runner),
# else Debian's packages; linked into the bin dir so the node's configs name one place.
find_runc() { command -v runc || true; }
find_cni_dir() { local d; for d in /usr/lib/cni /opt/cni/bin; do [ -x "$d/bridge" ] && { echo "$d"; return; }; done; return 0; }
runc_path=$(find_runc) cni_dir=$(find_cni_dir)
missing=()
[ -n "$runc_path" ] || missing+=("$RUNC_DEB")
[ -n "$cni_dir" ] || missing+=("$CNI_PLUGINS_DEB")
command -v nft >/dev/null 2>&1 || missing+=("$NFTABLES_DEB")
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { log "error: ${missing[*]} missing and no apt-get here: install runc, the CNI plugins (bridge, host-local, loopback) and nft with the system's package manager"; exit 2; }
  log "installing Debian packages: ${missing[*]}"
  { apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } >&2 \
    || { log "error: apt-get install ${missing[*]} failed"; exit 1; }
  runc_path=$(find_runc) cni_dir=$(find_cni_dir)
fi
[ -n "$runc_path" ] || { log "error: runc not on PATH after installing $RUNC_DEB"; exit 1; }
command -v nft >/dev/null 2>&1 || { log "error: nft not on PATH after installing $NFTABLES_DEB"; exit 1; }
[ -n "$cni_dir" ] || { log "error: no CNI bridge plugin in /usr/lib/cni or /opt/cni/bin after installing $CNI_PLUGINS_DEB"; exit 1; }
ln -sfn "$runc_path" "$bin_dir/runc"
for plugin in bridge host-local loopback; do
  [ -x "$cni_dir/$plugin" ] || { log "error: CNI plugin $plugin missing in $cni_dir"; exit 1; }
  ln -sfn "$cni_dir/$plugin" "$bin_dir/cni/$plugin"
done
for pair in "$RUNC_DEB $RUNC_DEB_TESTED" "$CNI_PLUGINS_DEB $CNI_PLUGINS_DEB_TESTED" "$NFTABLES_DEB $NFTABLES_DEB_TESTED"; do
  read -r package tested <<<"$pair"
  installed=$(dpkg-query -W -f '${Version}' "$package" 2>/dev/null || echo "not from $package")
  [ "$installed" = "$tested" ] || log "note: $package: $installed here; the local backend was tried with $tested"
done
echo "$bin_dir"
