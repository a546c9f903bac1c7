#!/usr/bin/env bash
# One compile of the dependency tree per command: `cargo run --release -p harness` (the README's
# main job) and the image build (`cargo build-images`, .cargo/config.toml, also run by
# ci/test.sh) must resolve every dependency with the same features, or cargo compiles the
# differing crates and everything above them twice. Fails, naming the crates, when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
host=$(rustc -vV | sed -n 's/^host: //p')
resolved() {
  cargo tree --locked --target "$host" -e normal,build -f '{p} [{f}]' --prefix none "$@" \
    | sed 's/ (\*)$//; s/ (proc-macro)$//' | grep -v '^$' | grep -v "($PWD" | sort -u
}
packages=$(image_packages)
[ -n "$packages" ] || { echo ".cargo/config.toml has no build-images alias" >&2; exit 1; }
# Into variables first: a failing `cargo tree` inside a process substitution would go unnoticed.
alone=$(resolved -p harness)
# shellcheck disable=SC2086
together=$(resolved $packages)
if ! difference=$(diff <(echo "$alone") <(echo "$together")); then
  echo "features differ between \`-p harness\` and \`$packages\` (< harness alone, > image build):" >&2
  echo "$difference" >&2
  echo "give the workspace dependency the features both need (Cargo.toml [workspace.dependencies])" >&2
  exit 1
fi
echo "one feature resolution: -p harness = $packages"
