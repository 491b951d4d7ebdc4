#!/usr/bin/env bash
# The alerts and the dashboard, checked with Prometheus' own tools (Debian's prometheus package,
# fetched with `apt-get download` and unpacked under the cache: nothing is installed system-wide):
#   1. promtool check rules on charts/.../files/alerts.yaml (what the chart's PrometheusRule carries);
#   2. promtool test rules on tests/prometheus/alerts_test.yaml (each alert fires and stays quiet);
#   3. a real Prometheus scrapes a running operator (the debug binary, on the current cluster, with the
#      simulator and a sample account and credential) and evaluates every alert expression and every
#      dashboard query without error; the dashboard uses only metric names the operator exports.
# Needs KUBECONFIG (hack/test.sh sets it) and the debug binaries (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator/prometheus"
if [[ ! -x "$CACHE/usr/bin/promtool" || ! -x "$CACHE/usr/bin/prometheus" ]]; then
  echo "==> fetching Debian's prometheus package into $CACHE"
  work=$(mktemp -d)
  # The machine's package lists first; if they lack it, lists of our own for bookworm (no change
  # to /etc/apt or the system's lists).
  if ! (cd "$work" && apt-get -qq -o APT::Sandbox::User=root download prometheus >/dev/null 2>&1); then
    mkdir -p "$work/apt/parts" "$work/apt/lists/partial"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      >"$work/apt/parts/main.sources"
    aptopts=(-o "Dir::Etc::SourceParts=$work/apt/parts" -o Dir::Etc::SourceList=/dev/null
      -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
    apt-get "${aptopts[@]}" -qq update
    (cd "$work" && apt-get "${aptopts[@]}" -qq download prometheus)
  fi
  deb=$(ls "$work"/prometheus_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { echo "apt-get download prometheus failed" >&2; exit 1; }
  mkdir -p "$CACHE"
  dpkg -x "$deb" "$CACHE"
  rm -rf "$work"
fi
promtool="$CACHE/usr/bin/promtool"
prometheus="$CACHE/usr/bin/prometheus"
rules=charts/databricks-account-operator/files/alerts.yaml
dashboard=charts/databricks-account-operator/files/dashboard.json

echo "==> promtool check rules"
"$promtool" check rules "$rules"
echo "==> promtool test rules"
"$promtool" test rules tests/prometheus/alerts_test.yaml

echo "==> a real Prometheus scraping a running operator"
target=${CARGO_TARGET_DIR:-target}
[ -x "$target/debug/databricks-account-operator" ] && [ -x "$target/debug/databricks-account-sim" ] ||
  cargo build --locked --bins --workspace
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
ns="prom-$(date +%s)"
pids=()
cleanup() {
  kubectl delete namespace "$ns" --wait=true --timeout=60s >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
sim_port=$(free_port); metrics_port=$(free_port); prom_port=$(free_port)
"$target/debug/databricks-account-sim" --listen "127.0.0.1:$sim_port" >"$tmp/sim.log" 2>&1 &
pids+=($!)
"$target/debug/databricks-account-operator" run --watch-namespaces "$ns" --allowed-hosts 127.0.0.1 \
  --metrics-addr "127.0.0.1:$metrics_port" --busy-poll-interval 1s >"$tmp/operator.log" 2>&1 &
pids+=($!)
kubectl create namespace "$ns" >/dev/null
for f in config/samples/account.yaml config/samples/credential.yaml; do
  sed "s#http://127.0.0.1:8085#http://127.0.0.1:$sim_port#" "$f" | kubectl apply -n "$ns" -f - >/dev/null
done
cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$PWD/$rules"]
scrape_configs:
  - job_name: databricks-account-operator
    static_configs: [{targets: ["127.0.0.1:$metrics_port"]}]
YAML
"$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
python3 - "$prom_port" "$metrics_port" "$rules" "$dashboard" "$ns" <<'PY'
import json, sys, time, urllib.parse, urllib.request
prom, metrics_port, rules_path, dashboard_path, ns = sys.argv[1:]
import re
def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()
def query(expr):
    return json.loads(get(f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
failed = 0
def check(name, ok, detail=""):
    global failed
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else f": {detail}"))
    failed += 0 if ok else 1
# Wait until Prometheus has scraped the operator with the credential Ready.
deadline = time.time() + 90
ready = None
while time.time() < deadline:
    try:
        r = query('databricks_operator_objects{kind="DatabricksCredential",ready="true"}')
        if r["status"] == "success" and any(float(s["value"][1]) >= 1 for s in r["data"]["result"]):
            ready = r
            break
    except OSError:
        pass
    time.sleep(1)
check("Prometheus scraped the operator and sees the sample credential Ready", ready is not None)
up = query('up{job="databricks-account-operator"}')
check("the scrape target is up", up["status"] == "success" and up["data"]["result"]
      and up["data"]["result"][0]["value"][1] == "1", up)
# Every alert rule loaded from the file and evaluates without error (Prometheus evaluates each every
# second here; health and lastError say how the last evaluation went).
time.sleep(5)
rules = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/rules"))
loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
names = sorted(r["name"] for r in loaded)
check("Prometheus loaded the 7 alert rules", len(loaded) == 7, names)
for r in loaded:
    check(f"alert {r['name']} evaluates without error", r.get("health") == "ok" and not r.get("lastError"),
          r.get("lastError"))
# The dashboard: every query evaluates, and names only metrics the operator exports: the names its
# registry declares (src/metrics.rs; families without samples yet are not in the exposition), with
# the suffixes of their types.
source = open("src/metrics.rs").read()
registered = re.findall(r'register\(\s*"([a-z_]+)"', source)
check("the operator registers its metrics under names the check can read", len(registered) >= 10, registered)
exported = {f"databricks_operator_{n}{s}" for n in registered for s in ["", "_total", "_bucket", "_sum", "_count"]}
text = get(f"http://127.0.0.1:{metrics_port}/metrics")
scraped = set(re.findall(r"^(databricks_operator_[a-z_]+)", text, re.M))
check("every scraped metric is a registered one", scraped <= exported, sorted(scraped - exported))
dashboard = json.load(open(dashboard_path))
exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
for expr in exprs:
    used = set(re.findall(r"databricks_operator_[a-z_]+", expr))
    unknown = sorted(used - exported)
    check(f"dashboard query names exported metrics: {expr[:70]}", not unknown, unknown)
    r = query(expr.replace("$__rate_interval", "1m"))
    check(f"dashboard query evaluates: {expr[:70]}", r.get("status") == "success", r)
sys.exit(1 if failed else 0)
PY
