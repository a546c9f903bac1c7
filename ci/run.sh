#!/usr/bin/env bash
# README command 1, the main job: the conformance run against the reference services on the
# default backend, i.e. `cargo run -p harness -- run "$@"`, with the local backend's
# Go builds (Kubernetes, etcd, containerd: minutes cold, cached by version) started first in the
# background, so that on a fresh machine they compile beside the cargo build instead of after it.
# Where a Docker engine answers the backend may be k3s, which needs none of them: they are then
# left to the harness, which builds them only when it picks the local backend.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

if docker info >/dev/null 2>&1; then
  step "a Docker engine answers: the local backend's Go builds are left to the harness (k3s needs none)"
else
  start_go_builds cluster
  trap stop_go_builds EXIT
fi

# One invocation for the harness and the images it deploys (the same features: one compile, in
# the dev profile, which the test build of ci/test.sh reuses).
step "cargo build-images: $(image_packages) (the harness and the reference services' images)"
cargo build-images

if [ -n "${GO_BUILDS_PID:-}" ]; then
  wait_go_builds
  trap - EXIT
fi

step "harness run $*"
cargo run --locked --quiet -p harness -- run "$@"
