#!/usr/bin/env bash
# Measures what a new user waits for: the README's two commands on a fresh clone with empty
# caches (CARGO_HOME, the target dir, pip's cache, GOCACHE, the Go module cache and the
# project's cache all in new, empty directories), then both again warm. Prints, per step, the
# wall time and the CPU time it used (user + sys: on two cores, CPU / 2 is the floor of the wall
# time), and whether `git status` of the clone is still clean. Needs what the two commands need
# (root, Rust, Go) and the network to the package registries; takes about an hour cold.
# Usage: ci/first-run.sh [WORK_DIR]   (default: a new directory under /tmp; the clone is HEAD)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/first-run.XXXXXX)}
mkdir -p "$work"
[ ! -e "$work/clone" ] || { echo "error: $work/clone exists: give an empty WORK_DIR" >&2; exit 2; }

# The README's two commands, read from its "Two commands" block, so this measures what it says.
mapfile -t commands < <(sed -n '/^## Two commands/,/^## /p' "$repo/README.md" \
  | sed -n '/^```sh/,/^```/p' | grep -v '^```' | sed 's/ *#.*$//')
[ "${#commands[@]}" -eq 2 ] || { echo "error: README's 'Two commands' block holds ${#commands[@]} commands, not 2" >&2; exit 1; }

git clone --quiet "$repo" "$work/clone"
export CARGO_HOME="$work/cargo-home" XDG_CACHE_HOME="$work/cache" GOPATH="$work/gopath"
unset CARGO_TARGET_DIR GOCACHE GOMODCACHE GOMICRO_CACHE_DIR GOMICRO_CONTROLPLANE_BIN_DIR GOMICRO_NODE_BIN_DIR
mkdir -p "$CARGO_HOME" "$XDG_CACHE_HOME" "$GOPATH"
cd "$work/clone"
echo "fresh clone of $(git rev-parse --short HEAD) in $work/clone; caches under $work; logs in $work/*.log"

results=()
measure() { # measure <label> <command>: runs it, logging to $work/<label>.log
  local label=$1 command=$2 started rc=0
  started=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/$label.cpu" bash -c "$command" > "$work/$label.log" 2>&1 || rc=$?
  local wall cpu
  wall=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  # time(1) writes "Command exited with non-zero status N" first when the command fails.
  cpu=$(tail -n 1 "$work/$label.cpu" | awk '{print $1 + $2}')
  results+=("$(printf '%-6s %-48s exit %-3s wall %7.0f s  cpu %7.0f s' "$label" "$command" "$rc" "$wall" "$cpu")")
  echo "${results[-1]}"
  [ "$rc" -eq 0 ] || { echo "error: '$command' failed; see $work/$label.log" >&2; exit 1; }
}
measure cold-1 "${commands[0]}"
measure cold-2 "${commands[1]}"
measure warm-1 "${commands[0]}"
measure warm-2 "${commands[1]}"
status=$(git status --short)
echo
printf '%s\n' "${results[@]}"
if [ -z "$status" ]; then echo "git status: clean"; else echo "git status: NOT clean:"; echo "$status"; exit 1; fi
