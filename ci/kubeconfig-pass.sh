#!/usr/bin/env bash
# The conformance run of the reference on a cluster the harness neither started nor has levers
# on, the path of kind, k3s and real clusters: a `harness up` cluster that was given NO image and
# whose node may pull from exactly one registry, on loopback (every other registry stays routed
# to a closed port). The harness pushes its images there (`--registry`, the OCI distribution
# API) and runs with `--backend kubeconfig`, reaching pods first at their IPs, then through
# kube-rs port-forward. Expected each time: exit 0, nothing failed, and only the cases needing a
# lever (FAULT-001/002/003/006/007) not applicable. Then a run asking for another Kubernetes
# minor than the cluster's must be refused (exit 3, the report saying why).
#
# Needs the image build (`cargo build-images`) and the local backend's Go builds; installs
# Debian's docker-registry (CNCF distribution) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

REGISTRY=127.0.0.1:5000
harness=target/debug/harness
out=target/kubeconfig-pass
rm -rf "$out"
mkdir -p "$out"

if ! command -v docker-registry >/dev/null 2>&1; then
  step "installing docker-registry (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >&2
fi

# The registry, on loopback only, with its storage in the pass's own directory.
cat > "$out/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $PWD/$out/registry-storage
http:
  addr: $REGISTRY
EOF
step "docker-registry on $REGISTRY"
docker-registry serve "$out/registry.yml" > "$out/registry.log" 2>&1 &
registry_pid=$!
cleanup() {
  "$harness" down >/dev/null 2>&1 || true
  kill "$registry_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf --noproxy '*' "http://$REGISTRY/v2/" >/dev/null && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$out/registry.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf --noproxy '*' "http://$REGISTRY/v2/" >/dev/null || { echo "the registry did not answer" >&2; exit 1; }

step "harness up --no-images --pull-registry $REGISTRY"
"$harness" down >/dev/null 2>&1 || true
up=$("$harness" up --no-images --pull-registry "$REGISTRY")
echo "$up" >&2
# The daemon records its kubeconfig in the state directory's cluster.json.
KUBECONFIG=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["kubeconfig"])' \
  "${GOMICRO_STATE_DIR:-/run/gomicro-conformance}/cluster.json")
export KUBECONFIG
[ -n "$KUBECONFIG" ] || { echo "harness up printed no KUBECONFIG" >&2; exit 1; }

status=0
for access in direct port-forward; do
  step "harness run --backend kubeconfig --registry $REGISTRY/conformance (pod access: $access)"
  started=$SECONDS
  HARNESS_POD_ACCESS=$access "$harness" run --backend kubeconfig --registry "$REGISTRY/conformance" \
    --report-dir "$out/$access" || status=$?
  echo "[kubeconfig-pass] $access: exit $status in $((SECONDS - started)) s" >&2
  head -n 1 "$out/$access/summary.md" >&2
  [ "$status" -eq 0 ] || { echo "the kubeconfig pass ($access) failed: see $out/$access/summary.md" >&2; exit "$status"; }
  # Only the lever cases may be not applicable; nothing may fail or stay unrun.
  report="$out/$access/conformance-report.yaml"
  not_applicable=$(python3 ci/report-cases.py "$report" notApplicable)
  echo "[kubeconfig-pass] $access: not applicable: $not_applicable" >&2
  [ "$not_applicable" = "FAULT-001 FAULT-002 FAULT-003 FAULT-006 FAULT-007" ] \
    || { echo "unexpected not-applicable cases: $not_applicable" >&2; exit 1; }
  unsuccessful=$(python3 ci/report-cases.py "$report" failed notRun)
  [ -z "$unsuccessful" ] || { echo "failed or not run: $unsuccessful (see $report)" >&2; exit 1; }
done

# A kubeconfig cluster runs what it runs: asked for another minor than the `harness up` cluster's
# (the default), the run is refused as "could not test" (exit 3), with the version it found.
other_minor=$(awk -F'\t' '!/^#/ && $5 != "default" { print $1; exit }' ci/controlplane/versions.tsv)
step "harness run --backend kubeconfig --kubernetes-version $other_minor (another minor than the cluster's)"
status=0
"$harness" run --backend kubeconfig --kubernetes-version "$other_minor" --registry "$REGISTRY/conformance" \
  --report-dir "$out/other-version" 2> "$out/other-version.log" || status=$?
read_report() { python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@"; }
result=$(read_report "$out/other-version/conformance-report.yaml" result)
reason=$(read_report "$out/other-version/conformance-report.yaml" resultReason)
echo "[kubeconfig-pass] asked for $other_minor: exit $status, result $result: $reason" >&2
[ "$status" -eq 3 ] && [ "$result" = error ] && [[ $reason == *"not $other_minor as asked"* ]] \
  || { echo "a kubeconfig cluster of another minor was not refused as expected" >&2; exit 1; }
echo "[kubeconfig-pass] passed: both pod access paths, exit 0, only the lever cases not applicable; another minor refused" >&2
