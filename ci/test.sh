#!/usr/bin/env bash
# The test command of the README: unit tests and the e2e suite on the local backend.
# Installs cargo-nextest when missing, builds the control plane and the node runtime on first
# use (cached by version), runs `cargo nextest run`, and always stops the shared test cluster afterwards.
# Extra arguments go to cargo nextest (e.g. `ci/test.sh -E 'binary(e2e)'`).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

ensure_nextest
ensure_controlplane
ensure_node

cleanup() { cargo run --quiet -p harness -- down >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The e2e suite runs the reference services from their release builds; building them here keeps
# that (long, when cold) build out of the first e2e test's time budget.
step "cargo build --release (reference services for the e2e suite)"
cargo build --release --locked -p token-srv -p user-srv -p admin-srv -p bench-baseline

ensure_go_minimal

profile=default
[ -n "${CI:-}" ] && profile=ci
step "cargo nextest run --workspace --profile $profile"
cargo nextest run --workspace --profile "$profile" "$@"

# local-cluster's real-cluster tests start clusters of their own, so they run after the e2e
# suite with its shared `harness up` cluster stopped; a missing root or control plane fails
# them here instead of skipping.
cleanup
step "cargo nextest run -p local-cluster --run-ignored only (real clusters)"
GOMICRO_LOCAL_E2E_REQUIRED=1 cargo nextest run -p local-cluster --run-ignored only --profile "$profile"
