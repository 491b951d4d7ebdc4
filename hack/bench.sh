#!/usr/bin/env bash
# The scale benchmark (benches/scale.rs) on a control plane of its own, with a release build.
# Prints time to Ready, Account API calls by route, API server reads, namespace-delete time and
# operator memory. Settings by environment: BENCH_STACKS (250 stacks of 4 objects), BENCH_RATE
# (15 requests/s), BENCH_PROVISIONING_SECS (5), BENCH_STEADY_SECS (90).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_CLUSTER_DIR:-"${TMPDIR:-/tmp}/databricks-account-operator-bench"}
env -u KUBECONFIG bash hack/cluster.sh up --dir "$dir"
trap 'bash hack/cluster.sh down --dir "$dir"' EXIT
eval "$(bash hack/cluster.sh env --dir "$dir")"
cargo bench --locked --bench scale
