#!/usr/bin/env bash
# The scale benchmark (benches/scale.rs) on a control plane of its own, with a release build.
#
#   bash hack/bench.sh [--objects N] [--rate R]
#
# --objects N: objects to create, in stacks of four (credential, storage configuration, network,
#   workspace): BENCH_STACKS=N/4 (default 1,000 objects).
# --rate R: requests per second, both the account's client-side limit and the simulator's
#   server-side limit: BENCH_RATE=R (default 15).
# Other settings by environment: BENCH_PROVISIONING_SECS (5), BENCH_POLL_SECS (30),
# BENCH_BUSY_POLL_SECS (5), BENCH_STEADY_SECS (three poll intervals), BENCH_RESTART_SECS (60),
# BENCH_OUT_DIR (bench/ in the target directory), BENCH_CLUSTER_DIR (the control plane's state).
#
# Prints a table (time to Ready against the rate-limit bound, Account API calls and the
# operator's API server requests by phase, steady state, a restart, the namespace delete, the
# operator's memory and CPU) and writes scale-N.json and scale-N.png (objects Ready over time
# against the bound) into the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."
# at_least VALUE MIN: VALUE is a whole number of at least MIN.
at_least() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; }
while [ $# -gt 0 ]; do
  case $1 in
    --objects)
      at_least "${2-}" 4 || { echo "--objects needs a number of at least 4" >&2; exit 2; }
      export BENCH_STACKS=$(($2 / 4)); shift 2 ;;
    --rate)
      at_least "${2-}" 1 || { echo "--rate needs a number of requests per second, at least 1" >&2; exit 2; }
      export BENCH_RATE=$2; shift 2 ;;
    *) echo "unknown argument: $1 (use --objects N, --rate R, or the BENCH_* variables)" >&2; exit 2 ;;
  esac
done
dir=${BENCH_CLUSTER_DIR:-"${TMPDIR:-/tmp}/databricks-account-operator-bench"}
env -u KUBECONFIG bash hack/cluster.sh up --dir "$dir"
trap 'bash hack/cluster.sh down --dir "$dir"' EXIT
eval "$(bash hack/cluster.sh env --dir "$dir")"
cargo bench --locked --bench scale
