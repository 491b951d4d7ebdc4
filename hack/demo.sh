#!/usr/bin/env bash
# The operator's main job on its embedded defaults, with no Databricks account:
# a local control plane, the Account API simulator, the CRDs, the operator, and the full stack of
# config/samples/ (account, credential, storage, key, network, workspace) reaching Ready with the
# workspace RUNNING. Then the namespace is deleted and the operator removes every remote object in
# dependency order.
#
#   bash hack/demo.sh            # run it and clean up
#   KEEP=1 bash hack/demo.sh     # leave the simulator, operator and namespace running
set -euo pipefail
cd "$(dirname "$0")/.."
NS=${DEMO_NAMESPACE:-databricks-demo}
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "local control plane"
bash hack/cluster.sh up
eval "$(bash hack/cluster.sh env)"

say "building the operator and the simulator"
cargo build --quiet -p databricks-account-operator -p databricks-account-sim \
  --bin databricks-account-operator --bin databricks-account-sim
work=$(mktemp -d -t dbx-demo.XXXXXX)
BIN="$work/databricks-account-operator"
SIM="$work/databricks-account-sim"
cp "${CARGO_TARGET_DIR:-target}/debug/databricks-account-operator" "$BIN"
cp "${CARGO_TARGET_DIR:-target}/debug/databricks-account-sim" "$SIM"

port=8085
if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "127.0.0.1:8085 is taken; the simulator listens on $port"
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
if [ -z "${KEEP:-}" ]; then trap cleanup EXIT; fi

say "Account API simulator on http://127.0.0.1:$port (log: $work/simulator.log)"
"$SIM" --listen "127.0.0.1:$port" --deployment-prefix acme --provisioning-seconds 15 \
  >"$work/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$port/.well-known/databricks-config" >/dev/null 2>&1 && break
  sleep 0.2
done

say "CRDs"
"$BIN" crds --install

say "operator (log: $work/operator.log)"
"$BIN" run --busy-poll-interval 3s --allowed-hosts 127.0.0.1 >"$work/operator.log" 2>&1 &
pids+=($!)

say "applying config/samples/ to namespace $NS"
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
for f in config/samples/*.yaml; do
  sed "s|http://127.0.0.1:8085|http://127.0.0.1:$port|" "$f"
  echo "---"
done | kubectl apply -n "$NS" -f - 2>&1 | grep -v "^W[0-9]" || true

say "waiting for the workspace to be RUNNING"
deadline=$((SECONDS + 180))
until [ "$(kubectl get dbws analytics -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
  if [ $SECONDS -ge $deadline ]; then
    kubectl get databricks -n "$NS" 2>/dev/null || true
    echo "the workspace did not become Ready in 180 s; see $work/operator.log" >&2
    exit 1
  fi
  kubectl get dbws -n "$NS" --no-headers 2>/dev/null | sed 's/^/   /' || true
  sleep 3
done
kubectl get databricks -n "$NS" 2>/dev/null
echo
echo "workspace URL: $(kubectl get dbws analytics -n "$NS" -o jsonpath='{.status.workspaceUrl}' 2>/dev/null)"

if [ -n "${KEEP:-}" ]; then
  say "left running: simulator (pid ${pids[0]}), operator (pid ${pids[1]}), namespace $NS"
  exit 0
fi

say "deleting namespace $NS: the operator removes the remote objects in dependency order"
kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
deadline=$((SECONDS + 120))
while kubectl get namespace "$NS" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "namespace $NS still exists after 120 s" >&2; exit 1; }
  sleep 2
done
echo "namespace gone; objects left in the simulator: $(curl -fsS "http://127.0.0.1:$port/__sim/state" |
  python3 -c 'import json, sys; print(sum(len(v) for v in json.load(sys.stdin).values()))')"
