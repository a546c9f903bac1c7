#!/usr/bin/env bash
# The test command of the README: unit tests and the e2e suite on the local backend.
# Installs cargo-nextest when missing, builds the control plane, the node runtime and go-minimal
# on first use (cached; beside the cargo builds), runs `cargo nextest run`, and always stops the
# shared test cluster afterwards.
# Extra arguments go to cargo nextest (e.g. `ci/test.sh -E 'binary(e2e)'`).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

ensure_nextest
# The e2e suite's article walkthrough runs the real curl (found through $CURL) and grpcurl
# ($GRPCURL: built with the Go builds below, exported after them).
ensure_curl

# The Go builds (control plane, node runtime, go-minimal, grpcurl; each cached by version or
# source hash, so instant when warm) run beside the cargo builds below: cold, both take minutes.
start_go_builds

# A failed `harness down` is shown (a cluster left up makes the real-cluster tests fail), not fatal.
cleanup() { stop_go_builds; cargo run --quiet -p harness -- down >/dev/null || echo "warning: harness down failed" >&2; }
trap cleanup EXIT

# The e2e suite runs the reference services from their dev builds (the test build below reuses
# their dependency tree: ci/check-feature-unification.sh); building them here keeps
# that (long, when cold) build out of the first e2e test's time budget.
step "cargo build-images (the harness, the reference services and the bench baseline: the images of the e2e suite)"
cargo build-images

profile=default
[ -n "${CI:-}" ] && profile=ci
step "cargo nextest run --no-run (the test build)"
cargo nextest run --workspace --profile "$profile" --no-run

wait_go_builds
ensure_grpcurl

# First the article walkthrough and the cases that reach every kind of pod endpoint (HTTP and gRPC
# logins, health, reflection, registration, resolver, config reload) again, with pods reached
# through kube-rs port-forward (the k3s backend's path) instead of their IPs on the bridge. Every
# case runs through port-forward in .ci/run's kubeconfig pass; the tests of other
# implementations and broken fixtures reach pods the same way as these, so they run once, below.
# It runs first: it starts the shared cluster, which the suite's first tests (conformance, e2e)
# then use as they are. --workspace with a filter, not -p harness: the workspace's
# feature resolution is the one the test build above compiled (ci/check-feature-unification.sh).
port_forward_cases='/^\[[a-z-]+\] conformance::(REG_001|HEALTH_00[12]|LOGIN_00[12]|RES_001|CFG_002)$/'
port_forward_tests="package(harness) & ((binary(conformance) & test($port_forward_cases)) | test(article_walkthrough_with_curl_and_grpcurl))"
step "cargo nextest run --workspace -E '$port_forward_tests' with HARNESS_POD_ACCESS=port-forward"
HARNESS_POD_ACCESS=port-forward cargo nextest run --workspace -E "$port_forward_tests" --profile "$profile" "$@"

step "cargo nextest run --workspace --profile $profile"
cargo nextest run --workspace --profile "$profile" "$@"

# local-cluster's real-cluster tests start clusters of their own, so they run after the e2e
# suite with its shared `harness up` cluster stopped; a missing root or control plane fails
# them here instead of skipping.
cleanup
step "cargo nextest run --run-ignored only -E package(local-cluster) (real clusters)"
# --workspace with a filter, not -p: the test build's feature resolution, as above.
GOMICRO_LOCAL_E2E_REQUIRED=1 cargo nextest run --workspace --run-ignored only -E 'package(local-cluster)' --profile "$profile"
