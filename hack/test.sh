#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, generated files, unit tests, and the
# integration tests against a real local control plane (provisioned here if none is running).
# Set KUBECONFIG to a reachable cluster to test against it instead.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "generated copies: chart CRDs and Argo CD health script"
bash hack/sync-chart-crds.sh --check
bash hack/sync-argocd-health.sh --check

step "Argo CD health check (Lua 5.1)"
bash hack/argocd-test.sh

step "control plane"
we_started=0
if ! bash hack/cluster.sh status >/dev/null 2>&1; then we_started=1; fi
bash hack/cluster.sh up
if [ "$we_started" = 1 ] && [ -z "${KEEP_CLUSTER:-}" ]; then
  trap 'bash hack/cluster.sh down' EXIT
fi
eval "$(bash hack/cluster.sh env)"
bash hack/cluster.sh status

step "cluster script: a second control plane, reuse and teardown"
bash hack/cluster-test.sh

step "cargo test (unit and integration)"
cargo test --locked --all-targets

step "official Databricks Python SDK against the simulator"
bash hack/sdk-test.sh

step "Helm chart (Helm v4 SDK) and kustomize, installed into the control plane"
bash hack/helm-test.sh

step "all tests passed in $((SECONDS - started)) s"
