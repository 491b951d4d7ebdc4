#!/usr/bin/env bash
# Test the Argo CD health check (charts/databricks-account-operator/files/health.lua) under Lua 5.1,
# the semantics of Argo CD's gopher-lua, and check that config/argocd holds identical copies. The
# test reads the closed set of condition reasons from src/crd/common.rs, so each has a case.
#
#   hack/argocd-test.sh
#
# Installs Debian's lua5.1 with apt-get if it is missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v lua5.1 >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "lua5.1 is missing: apt-get install lua5.1 (as root)" >&2; exit 1; }
  echo "==> installing lua5.1"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lua5.1 >&2
fi

echo "==> config/argocd copies of the health check"
bash hack/sync-argocd-health.sh --check

echo "==> health check tests (lua5.1)"
lua5.1 tests/argocd/health_test.lua charts/databricks-account-operator/files/health.lua src/crd/common.rs
