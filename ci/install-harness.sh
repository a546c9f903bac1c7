#!/usr/bin/env bash
# Installs the harness (`harness` and `harness-pod`) into <root>/bin for the GitHub Action
# (action.yml), and prints that bin directory:
#   1. with a version (a release tag such as v0.1.0) and a repository (owner/name): the release's
#      static binary, harness-x86_64-unknown-linux-musl.tar.gz (`gh release download`);
#   2. else, or when there is no such release asset: `cargo install` of that tag from the
#      repository (`--git`), or without a version of the action's own checkout (`--path`).
# Usage: ci/install-harness.sh <root> [<version> [<owner/name>]]
set -euo pipefail
root=$1 version=${2:-} repository=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
asset=harness-x86_64-unknown-linux-musl.tar.gz
log() { printf '[install-harness] %s\n' "$*" >&2; }
mkdir -p "$root/bin"

if [ -n "$version" ] && [ -n "$repository" ] && command -v gh >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if gh release download "$version" --repo "$repository" --pattern "$asset" --dir "$tmp" >&2; then
    tar -xzf "$tmp/$asset" -C "$root/bin" harness harness-pod
    rm -rf "$tmp"
    log "release binary $version of $repository installed"
    "$root/bin/harness" --version >&2
    echo "$root/bin"
    exit 0
  fi
  rm -rf "$tmp"
  log "no release asset $asset for $version in $repository: building it with cargo install"
fi

command -v cargo >/dev/null 2>&1 || { log "error: no release binary and no cargo to build one (install Rust)"; exit 2; }
if [ -n "$version" ] && [ -n "$repository" ]; then
  cargo install --locked --root "$root" --git "https://github.com/$repository" --tag "$version" harness >&2
else
  cargo install --locked --root "$root" --path "$here/harness" >&2
fi
"$root/bin/harness" --version >&2
echo "$root/bin"
