#!/usr/bin/env bash
# Copy the generated CRDs (crds/*.yaml, the source of truth) to the places that need their own copy:
# the Helm chart's crds/ (a chart cannot read outside its directory) and config/crd/bases (kustomize
# refuses files outside a kustomization's root).
#
#   hack/sync-chart-crds.sh          copy
#   hack/sync-chart-crds.sh --check  exit 1 (and say which) if any copy differs or is missing or extra
set -euo pipefail
cd "$(dirname "$0")/.."

DESTS=(charts/databricks-account-operator/crds config/crd/bases)
check=0
[ "${1:-}" = "--check" ] && check=1

status=0
for dest in "${DESTS[@]}"; do
  if [ $check = 1 ]; then
    for f in crds/*.yaml; do
      if ! cmp -s "$f" "$dest/$(basename "$f")"; then
        echo "stale or missing: $dest/$(basename "$f") (run hack/sync-chart-crds.sh)" >&2
        status=1
      fi
    done
    for f in "$dest"/*.yaml; do
      [ -e "$f" ] || continue
      if [ ! -e "crds/$(basename "$f")" ]; then
        echo "extra: $f has no source in crds/ (run hack/sync-chart-crds.sh)" >&2
        status=1
      fi
    done
  else
    mkdir -p "$dest"
    rm -f "$dest"/*.yaml
    cp crds/*.yaml "$dest/"
    echo "copied $(ls crds/*.yaml | wc -l) CRDs to $dest"
  fi
done
if [ $check = 1 ] && [ $status = 0 ]; then
  echo "CRD copies are identical to crds/"
fi
exit $status
