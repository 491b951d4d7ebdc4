#!/usr/bin/env bash
# The scale benchmark (benches/scale.rs) on a control plane of its own, with a release build.
# Prints time to Ready, Account API calls by route, API server reads, namespace-delete time and
# operator memory. Settings by environment: BENCH_STACKS (250 stacks of 4 objects), BENCH_RATE
# (15 requests/s), BENCH_PROVISIONING_SECS (5), BENCH_STEADY_SECS (90).
# `--objects N` is the same as BENCH_STACKS=N/4 (a stack is four objects).
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case $1 in
    --objects)
      [ $# -ge 2 ] && [ "$2" -ge 4 ] 2>/dev/null || { echo "--objects needs a number of at least 4" >&2; exit 2; }
      export BENCH_STACKS=$(($2 / 4)); shift 2 ;;
    *) echo "unknown argument: $1 (use --objects N, or the BENCH_* variables)" >&2; exit 2 ;;
  esac
done
dir=${BENCH_CLUSTER_DIR:-"${TMPDIR:-/tmp}/databricks-account-operator-bench"}
env -u KUBECONFIG bash hack/cluster.sh up --dir "$dir"
trap 'bash hack/cluster.sh down --dir "$dir"' EXIT
eval "$(bash hack/cluster.sh env --dir "$dir")"
cargo bench --locked --bench scale
