# Reads ci/controlplane/versions.tsv (sourced by build.sh and gen-replaces.sh, not run).
# select_version [MINOR]: sets MINOR, KUBERNETES_VERSION, ETCD_VERSION and K3S_TAG for MINOR
# (e.g. 1.34; a patch version such as v1.34.4 is accepted too), default: the table's default
# row; an unsupported minor fails with the supported ones listed (exit 2).
versions_table="$(dirname "${BASH_SOURCE[0]}")/versions.tsv"
select_version() {
  local wanted=${1:-} row
  wanted=${wanted#v}
  if [ -z "$wanted" ]; then
    row=$(awk -F'\t' '!/^#/ && $5 == "default"' "$versions_table")
  else
    [[ $wanted =~ ^1\.[0-9]+\.[0-9]+$ ]] && wanted=${wanted%.*}
    row=$(awk -F'\t' -v m="$wanted" '!/^#/ && $1 == m' "$versions_table")
  fi
  if [ -z "$row" ]; then
    printf 'error: Kubernetes %s is not supported; supported minors: %s\n' "$wanted" \
      "$(awk -F'\t' '!/^#/ { printf "%s ", $1 }' "$versions_table")" >&2
    return 2
  fi
  IFS=$'\t' read -r MINOR KUBERNETES_VERSION ETCD_VERSION K3S_TAG _ <<<"$row"
}
