#!/usr/bin/env bash
# The chaos soak (tests/soak.rs) for as long as you like, on a control plane of its own.
#
#   bash hack/soak.sh [--rounds N] [--seed S]
#
# --rounds N: rounds to run (SOAK_ROUNDS; `cargo test` runs 30).
# --seed S: replay the decisions of a run (SOAK_SEED; printed at the start of every run and in
#   every failure). Without it, a new seed.
# SOAK_CLUSTER_DIR: the control plane's state (default: a directory of its own under TMPDIR).
#
# Prints one line per round (namespaces, objects, faults, kills, how long converging and deleting
# took), then the totals; fails with every invariant violation, the round it happened in and the
# operator's last log lines.
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case $1 in
    --rounds)
      [[ ${2-} =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a number of at least 1" >&2; exit 2; }
      export SOAK_ROUNDS=$2; shift 2 ;;
    --seed)
      [[ ${2-} =~ ^[0-9]+$ ]] || { echo "--seed needs a whole number" >&2; exit 2; }
      export SOAK_SEED=$2; shift 2 ;;
    *) echo "unknown argument: $1 (use --rounds N, --seed S)" >&2; exit 2 ;;
  esac
done
dir=${SOAK_CLUSTER_DIR:-"${TMPDIR:-/tmp}/databricks-account-operator-soak"}
env -u KUBECONFIG bash hack/cluster.sh up --dir "$dir"
trap 'bash hack/cluster.sh down --dir "$dir"' EXIT
eval "$(bash hack/cluster.sh env --dir "$dir")"
cargo test --locked --test soak -- --nocapture
