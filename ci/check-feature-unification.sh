#!/usr/bin/env bash
# One compile of the dependency tree for both README commands: `cargo run -p harness` (the main
# job), the image build (`cargo build-images`, .cargo/config.toml, run by ci/run.sh and
# ci/test.sh) and the test build (`cargo nextest run --workspace`) must resolve every dependency
# they share with the same features, or cargo compiles the differing crates and everything above
# them again. Fails, naming the crates, when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
host=$(rustc -vV | sed -n 's/^host: //p')
resolved() {
  cargo tree --locked --target "$host" -f '{p} [{f}]' --prefix none "$@" \
    | sed 's/ (\*)$//; s/ (proc-macro)$//' | grep -v '^$' | grep -v "($PWD" | sort -u
}
packages=$(image_packages)
[ -n "$packages" ] || { echo ".cargo/config.toml has no build-images alias" >&2; exit 1; }
# Into variables first: a failing `cargo tree` inside a process substitution would go unnoticed.
alone=$(resolved -e normal,build -p harness)
# shellcheck disable=SC2086
together=$(resolved -e normal,build $packages)
if ! difference=$(diff <(echo "$alone") <(echo "$together")); then
  echo "features differ between \`-p harness\` and \`$packages\` (< harness alone, > image build):" >&2
  echo "$difference" >&2
  echo "give the workspace dependency the features both need (Cargo.toml [workspace.dependencies])" >&2
  exit 1
fi
# The test build adds the dev-dependencies (crates of their own, compiled for the tests only); a
# crate the image build compiles too must keep its features there.
tests=$(resolved -e normal,build,dev --workspace)
crate() { sed 's/ \[.*//' <<<"$1" | sort -u; }
shared=$(comm -12 <(crate "$together") <(crate "$tests"))
# Lines (`name version [features]`) whose crate, name and version, is one of $shared.
of_shared() { awk 'NR == FNR { keep[$1 " " $2]; next } ($1 " " $2) in keep' <(echo "$shared") -; }
only_images=$(comm -23 <(echo "$together") <(echo "$tests") | of_shared)
only_tests=$(comm -13 <(echo "$together") <(echo "$tests") | of_shared)
if [ -n "$only_images$only_tests" ]; then
  echo "features differ between the image build and the test build (cargo nextest run --workspace):" >&2
  [ -z "$only_images" ] || sed 's/^/< /' <<<"$only_images" >&2
  [ -z "$only_tests" ] || sed 's/^/> /' <<<"$only_tests" >&2
  echo "pin the features the tests add (Cargo.toml [workspace.dependencies], feature pins)" >&2
  exit 1
fi
echo "one feature resolution: -p harness = $packages = the test build (for the crates they share)"
