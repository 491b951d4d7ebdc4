#!/usr/bin/env bash
# Test the Argo CD health check under Lua 5.1, the semantics of Argo CD's gopher-lua, as it ships:
# charts/databricks-account-operator/files/health.lua (the chart's keys hold it byte for byte) and every
# script in config/argocd/argocd-cm-patch.yaml (what the kustomize component and `kubectl patch` install).
# The test reads the closed set of condition reasons from src/crd/common.rs, so each has a case.
#
#   hack/argocd-test.sh
#
# Installs Debian's lua5.1 with apt-get if it is missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

HEALTH_LUA=charts/databricks-account-operator/files/health.lua
PATCH=config/argocd/argocd-cm-patch.yaml

if ! command -v lua5.1 >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "lua5.1 is missing: apt-get install lua5.1 (as root)" >&2; exit 1; }
  echo "==> installing lua5.1"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lua5.1 >&2
fi

echo "==> $HEALTH_LUA (lua5.1)"
lua5.1 tests/argocd/health_test.lua "$HEALTH_LUA" src/crd/common.rs

# Each `resource.customizations.health.<group>_<kind>: |` block of the patch, unindented, as a file.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk -v dir="$work" '
  /^  resource\.customizations\.health\.[^ :]+: \|$/ {
    file = $1; sub(/:$/, "", file); file = dir "/" file; next
  }
  /^[^ ]/ || /^ ? ?[^ ]/ { file = ""; next }
  file != "" { line = $0; sub(/^    /, "", line); print line > file }
' "$PATCH"
scripts=("$work"/*)
[ -e "${scripts[0]}" ] || { echo "no resource.customizations.health keys in $PATCH" >&2; exit 1; }
for script in "${scripts[@]}"; do
  echo "==> $PATCH: $(basename "$script") (lua5.1)"
  lua5.1 tests/argocd/health_test.lua "$script" src/crd/common.rs
done
