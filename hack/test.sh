#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, generated files, unit tests, and the
# integration tests against a real local control plane (provisioned here if none is running).
# Set KUBECONFIG to a reachable cluster to test against it instead.
#
# Every step runs under a time limit, and the suite under an overall one (TEST_TIMEOUT seconds,
# default 7200: a first run on 2 cores builds kube-apiserver and every crate). A step that hangs
# is stopped with everything it started, and the suite fails naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
deadline=$((SECONDS + ${TEST_TIMEOUT:-7200}))

# run_step LIMIT DESCRIPTION COMMAND...: COMMAND under the smaller of LIMIT and the time left.
# `timeout` signals COMMAND's whole process group, so test binaries and servers it started stop
# too; a second signal (KILL) follows 30 s later if they do not.
run_step() {
  local limit=$1 what=$2 left status=0
  shift 2
  left=$((deadline - SECONDS))
  if [ "$left" -le 0 ]; then
    printf '\nTIMEOUT: no time left for "%s" (TEST_TIMEOUT=%s s)\n' "$what" "${TEST_TIMEOUT:-7200}" >&2
    exit 124
  fi
  [ "$limit" -le "$left" ] || limit=$left
  printf '\n==> %s\n' "$what"
  timeout --kill-after=30 "$limit" "$@" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    printf '\nTIMEOUT: "%s" did not finish in %s s; stopped it (%s s into the suite)\n' \
      "$what" "$limit" "$((SECONDS - started))" >&2
    exit 124
  fi
  return "$status"
}

run_step 300 "cargo fmt --check" cargo fmt --all -- --check
run_step 2400 "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings

# Builds the operator binary, which writes the CRDs.
run_step 2400 "generated files (CRDs, their kustomize base, RBAC, Argo CD patch)" bash hack/generate.sh --check

run_step 600 "Argo CD health check (Lua 5.1)" bash hack/argocd-test.sh

we_started=0
if ! timeout 60 bash hack/cluster.sh status >/dev/null 2>&1; then we_started=1; fi
# The first run builds kube-apiserver from source (about 11 minutes on 2 cores).
run_step 2400 "control plane" bash hack/cluster.sh up
if [ "$we_started" = 1 ] && [ -z "${KEEP_CLUSTER:-}" ]; then
  trap 'timeout 120 bash hack/cluster.sh down' EXIT
fi
eval "$(timeout 60 bash hack/cluster.sh env)"
timeout 60 bash hack/cluster.sh status

run_step 300 "cluster script: a second control plane, reuse and teardown" bash hack/cluster-test.sh

# Every crate of the workspace: the client's and the simulator's unit tests too.
run_step 3000 "cargo test (unit and integration)" cargo test --locked --workspace --all-targets

run_step 1200 "official Databricks Python SDK against the simulator" bash hack/sdk-test.sh

run_step 1800 "Helm chart (Helm v4 SDK) and kustomize, installed into a control plane of its own" \
  bash hack/helm-test.sh

run_step 900 "alerts and dashboard: promtool check/test rules, a real Prometheus scraping the operator" \
  bash hack/prometheus-test.sh

printf '\n==> all tests passed in %s s\n' "$((SECONDS - started))"
