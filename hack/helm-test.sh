#!/usr/bin/env bash
# Test the Helm chart and the kustomize bases with real Helm (the PyPI package helm-python-sdk bundles
# Helm v4's Go SDK; no helm binary needed) and a real API server:
#   lint, values schema, renders (defaults and tests/helm/values-all.yaml), CRD copies, kustomize render
#   and server dry run, and an install/uninstall into a fresh namespace, CRDs included.
#
#   hack/helm-test.sh
#
# Creates (once) a virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator/helm-venv.
# Helm installs the chart's crds/ only where they are absent, so the install runs on a control plane of
# its own, started here (hack/cluster.sh --dir, a few seconds with the cached binaries) and stopped on
# exit; the one the other tests use already has the CRDs. HELM_TEST_KUBECONFIG names a cluster to use
# instead, which must not have them. Pods stay Pending there (no kubelet); the test does not wait for them.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_SDK_VERSION="0.2.2"
PYYAML_VERSION="6.0.2"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator"
VENV="$CACHE/helm-venv"

if [[ ! -x "$VENV/bin/python" ]] ||
  ! "$VENV/bin/python" - "$HELM_SDK_VERSION" "$PYYAML_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(version("helm-python-sdk") != sys.argv[1] or version("PyYAML") != sys.argv[2])
PY
then
  echo "==> creating $VENV with helm-python-sdk==$HELM_SDK_VERSION"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "helm-python-sdk==$HELM_SDK_VERSION" "PyYAML==$PYYAML_VERSION"
fi

command -v kubectl >/dev/null || { echo "kubectl is needed (kustomize, server dry run, checks)" >&2; exit 1; }
if [ -n "${HELM_TEST_KUBECONFIG:-}" ]; then
  export KUBECONFIG=$HELM_TEST_KUBECONFIG
else
  work=$(mktemp -d)
  trap 'bash hack/cluster.sh --dir "$work/cluster" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  echo "==> a control plane without the CRDs, for Helm to install them"
  env -u KUBECONFIG bash hack/cluster.sh --dir "$work/cluster" up
  export KUBECONFIG=$work/cluster/kubeconfig
fi
kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1 ||
  { echo "no reachable cluster at KUBECONFIG=$KUBECONFIG" >&2; exit 1; }

echo "==> building the operator (run as the chart's ServiceAccount) and the simulator it talks to"
cargo build --quiet -p databricks-account-operator -p databricks-account-sim \
  --bin databricks-account-operator --bin databricks-account-sim
export DAO_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/databricks-account-operator"
export SIM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/databricks-account-sim"

echo "==> chart and kustomize tests (Helm $("$VENV/bin/python" -c 'import helm_python; print(helm_python.helm_sdk_version())' 2>/dev/null || echo '?'))"
# Every command inside has its own timeout; this one catches a hang in the Helm library itself.
status=0
timeout --kill-after=10 900 "$VENV/bin/python" tests/helm/test_chart.py || status=$?
[ "$status" -ne 124 ] || echo "the chart test did not finish in 900 s" >&2
exit "$status"
