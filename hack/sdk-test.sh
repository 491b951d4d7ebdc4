#!/usr/bin/env bash
# Check the simulator against the official Databricks Python SDK.
#
#   hack/sdk-test.sh
#
# Uses the virtualenv of hack/sdk-venv.sh (the pinned databricks-sdk), builds the simulator binary
# (respecting CARGO_TARGET_DIR), starts `databricks-account-sim` on a free loopback port, runs tests/sdk/sdk_e2e.py against it,
# stops the simulator and exits with the script's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="acme"
PYTHON="$(bash "$ROOT/hack/sdk-venv.sh")"

echo "==> building the simulator"
(cd "$ROOT" && cargo build --quiet -p databricks-account-sim --bin databricks-account-sim)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# Run a private copy: a shared CARGO_TARGET_DIR may be rebuilt from another worktree meanwhile.
WORK="$(mktemp -d -t sdk-sim.XXXXXX)"
BIN="$WORK/databricks-account-sim"
cp "$TARGET_DIR/debug/databricks-account-sim" "$BIN"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
HOST="http://127.0.0.1:$PORT"
LOG="$WORK/simulator.log"

"$BIN" --listen "127.0.0.1:$PORT" --provisioning-seconds 2 --deletion-seconds 1 \
    --endpoint-pending-seconds 1 --deployment-prefix "$PREFIX" >"$LOG" 2>&1 &
SIM_PID=$!
cleanup() {
    kill "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    rm -f "$BIN"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if curl -fsS "$HOST/.well-known/databricks-config" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$SIM_PID" 2>/dev/null; then
        echo "simulator exited early:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
echo "==> simulator up at $HOST (log: $LOG)"

status=0
SIM_HOST="$HOST" \
    SIM_ACCOUNT_ID="00000000-0000-0000-0000-000000000001" \
    SIM_CLIENT_ID="sim-client-id" \
    SIM_CLIENT_SECRET="sim-client-secret" \
    SIM_DEPLOYMENT_PREFIX="$PREFIX" \
    "$PYTHON" "$ROOT/tests/sdk/sdk_e2e.py" || status=$?
if [[ $status -ne 0 ]]; then
    echo "==> SDK check failed; simulator log:" >&2
    tail -n 50 "$LOG" >&2
fi
exit "$status"
