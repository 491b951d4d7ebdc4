#!/usr/bin/env bash
# Checks hack/cluster.sh itself on a second, separate control plane: `up` twice reuses the running
# one, `status` reports it, and `down` leaves none of the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'bash hack/cluster.sh --dir "$dir/state" down >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
passed=0 failed=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $what"; else failed=$((failed + 1)); echo "FAILED: $what"; fi
}
pids() { cat "$dir"/state/*.pid 2>/dev/null | sort; }

env -u KUBECONFIG bash hack/cluster.sh --dir "$dir/state" up
first=$(pids)
check "up starts three processes" test "$(echo "$first" | wc -l)" -eq 3
env -u KUBECONFIG bash hack/cluster.sh --dir "$dir/state" up
check "a second up reuses the running control plane" test "$(pids)" = "$first"
check "status says it is ready" bash -c "env -u KUBECONFIG bash hack/cluster.sh --dir '$dir/state' status | grep -q ready"
check "the kubeconfig reaches the server" bash -c "kubectl --kubeconfig '$dir/state/kubeconfig' get --raw /readyz >/dev/null"
bash hack/cluster.sh --dir "$dir/state" down
alive=0
for p in $first; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
check "down leaves no process behind" test "$alive" -eq 0
check "down removes the state" test ! -e "$dir/state"
echo "cluster script: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
