"""Tests of the Helm chart and the kustomize bases, with real Helm (helm-python-sdk: Helm v4's Go SDK
as a C library) and the local control plane of $KUBECONFIG.

    hack/helm-test.sh          (creates the virtualenv, then runs this file from the repository root)

Every check is one distinct behaviour, and can fail for the reason it names: negative RBAC
checks need the API server's Forbidden answer for the ServiceAccount, absence checks its NotFound,
and the install section runs on a cluster without the CRDs, so that Helm's own CRD install is
what it tests. Every kubectl call has a timeout.

Prints "N passed, M failed" and exits 1 if anything failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "databricks-account-operator"
VALUES_ALL = yaml.safe_load((ROOT / "tests" / "helm" / "values-all.yaml").read_text())
HEALTH_LUA = (CHART / "files" / "health.lua").read_text()
GROUP = "account.databricks-operator.dev"
# The kinds, from the CRDs the code generates (hack/generate.sh --check keeps crds/ current): what the
# chart and kustomize must cover, so a kind added to the code and missing there fails here.
SOURCE_CRDS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))}
KINDS = [c["spec"]["names"]["kind"] for c in SOURCE_CRDS.values()]
PLURALS = [c["spec"]["names"]["plural"] for c in SOURCE_CRDS.values()]
CRD_NAMES = sorted(c["metadata"]["name"] for c in SOURCE_CRDS.values())
RELEASE_NS = "dao-system"

passed = 0
failed = 0


def check(name: str, cond: bool, detail: object = "") -> bool:
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail != "" else ""), flush=True)
    return cond


def section(title: str) -> None:
    print(f"--- {title}", flush=True)


# No single command of this test takes long; one that hangs fails its section instead of the run.
COMMAND_TIMEOUT = 60


def run(cmd: list[str], *, input: str | None = None, check_rc: bool = True) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, cwd=ROOT, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{' '.join(cmd)} did not finish in {COMMAND_TIMEOUT} s") from e
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def kubectl(*args: str, input: str | None = None, check_rc: bool = True) -> subprocess.CompletedProcess:
    return run(["kubectl", f"--request-timeout={COMMAND_TIMEOUT // 2}s", *args], input=input, check_rc=check_rc)


# ------------------------------------------------------------------------------------------------
# Rendering helpers


def render(values: dict | None = None, name: str = "dao", namespace: str = RELEASE_NS) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values or {}, name=name, namespace=namespace)


def objects(rendered: dict[str, str]) -> list[dict]:
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def find(objs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    return [
        o for o in objs
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> dict:
    found = find(objs, kind, name, namespace)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''} in {namespace}, found {len(found)}")
    return found[0]


def container(objs: list[dict]) -> dict:
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def rules_key(rules: list[dict]) -> list:
    """Rules as comparable data (order-insensitive within a rule's lists)."""
    return sorted(
        json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in r.items()}, sort_keys=True)
        for r in rules
    )


EXPECTED_RECONCILE_RULES = rules_key([
    {"apiGroups": [GROUP], "resources": PLURALS, "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": [GROUP], "resources": [p + "/status" for p in PLURALS], "verbs": ["patch"]},
    {"apiGroups": [GROUP], "resources": [p + "/finalizers" for p in PLURALS], "verbs": ["update"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
])


def check_monitoring() -> None:
    """The PrometheusRule and the dashboard ConfigMap carry files/alerts.yaml and files/dashboard.json
    as they are (promtool and the Prometheus test check those files)."""
    check("defaults: no PrometheusRule", not find(objects(render()), "PrometheusRule"))
    objs = objects(render({"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
                                       "grafanaDashboard": {"enabled": True}}}))
    rule = find(objs, "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    check("PrometheusRule: the groups of files/alerts.yaml", len(rule) == 1 and rule[0]["spec"] == alerts, rule)
    check("PrometheusRule: extra labels", rule and rule[0]["metadata"]["labels"].get("release") == "kps")
    dash = [c for c in find(objs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    want = json.loads((CHART / "files" / "dashboard.json").read_text())
    check("dashboard ConfigMap: files/dashboard.json, labelled for Grafana's sidecar",
          len(dash) == 1 and json.loads(dash[0]["data"]["databricks-account-operator.json"]) == want
          and dash[0]["metadata"]["labels"].get("grafana_dashboard") == "1", dash)


def hardening(objs: list[dict]) -> dict:
    """What makes the Deployment hardened, in a form two renders can be compared by."""
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = {e["name"]: e.get("valueFrom") for e in c["env"]}
    return {
        "pod securityContext": pod.get("securityContext"),
        "container securityContext": c.get("securityContext"),
        "automountServiceAccountToken": pod.get("automountServiceAccountToken"),
        "liveness": (c.get("livenessProbe") or {}).get("httpGet"),
        "readiness": (c.get("readinessProbe") or {}).get("httpGet"),
        "POD_NAME": env.get("POD_NAME"),
        "POD_NAMESPACE": env.get("POD_NAMESPACE"),
        "command": c.get("command"),
        "first arg": c["args"][0],
        "metrics-addr on the metrics port": f"--metrics-addr=0.0.0.0:{ports.get('metrics')}" in c["args"],
    }


def check_hardened(objs: list[dict]) -> None:
    """Each hardening literal, once, on the default render (other renders compare with it)."""
    h = hardening(objs)
    psc, csc = h["pod securityContext"] or {}, h["container securityContext"] or {}
    check("hardened: pod runAsNonRoot", psc.get("runAsNonRoot") is True, psc)
    check("hardened: pod runAsUser 65532", psc.get("runAsUser") == 65532, psc)
    check("hardened: pod seccomp RuntimeDefault", psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", psc)
    check("hardened: container runAsNonRoot", csc.get("runAsNonRoot") is True, csc)
    check("hardened: container runAsUser 65532", csc.get("runAsUser") == 65532, csc)
    check("hardened: readOnlyRootFilesystem", csc.get("readOnlyRootFilesystem") is True, csc)
    check("hardened: allowPrivilegeEscalation false", csc.get("allowPrivilegeEscalation") is False, csc)
    check("hardened: capabilities drop ALL", csc.get("capabilities") == {"drop": ["ALL"]}, csc)
    check("hardened: container seccomp RuntimeDefault",
          csc.get("seccompProfile", {}).get("type") == "RuntimeDefault", csc)
    check("hardened: automountServiceAccountToken", h["automountServiceAccountToken"] is True, h)
    check("hardened: liveness /healthz on the metrics port",
          h["liveness"] == {"path": "/healthz", "port": "metrics"}, h["liveness"])
    check("hardened: readiness /readyz on the metrics port",
          h["readiness"] == {"path": "/readyz", "port": "metrics"}, h["readiness"])
    check("hardened: POD_NAME and POD_NAMESPACE from the downward API",
          (h["POD_NAME"], h["POD_NAMESPACE"]) == ({"fieldRef": {"fieldPath": "metadata.name"}},
                                                  {"fieldRef": {"fieldPath": "metadata.namespace"}}), h)
    check("hardened: the binary is the image's entrypoint (no command override)", h["command"] is None, h["command"])


def check_same_hardening(name: str, objs: list[dict], reference: list[dict]) -> None:
    got, want = hardening(objs), hardening(reference)
    check(f"{name}: hardened like the default render", got == want,
          {k: (got[k], want[k]) for k in want if got[k] != want[k]})


# ------------------------------------------------------------------------------------------------
# Sections


def test_lint() -> None:
    section("helm lint")
    for label, values in [("defaults", None), ("values-all", VALUES_ALL)]:
        report = helm.lint(str(CHART), values, strict=True, namespace=RELEASE_NS)
        # Lint findings are data, not exceptions; severity 1 = info ("icon is recommended").
        bad = [m for m in report["messages"] if m["severity"] >= 2]
        check(f"lint {label}: no warnings or errors", not bad and not report["errors"], bad or report["errors"])
    for k8s in ("v1.20.0", "v1.33.0"):
        report = helm.lint(str(CHART), None, kube_version=k8s)
        check(f"lint for Kubernetes {k8s}", not report["errors"], report["errors"])


def test_schema() -> None:
    section("values.schema.json")
    with helm.Chart.load(CHART) as chart:
        for label, values in [("defaults", {}), ("values-all", VALUES_ALL)]:
            try:
                chart.validate_schema(values)
                check(f"schema accepts {label}", True)
            except helm.HelmValuesError as e:
                check(f"schema accepts {label}", False, e)
        bad_values = {
            "logFormat xml": {"logFormat": "xml"},
            "defaultDeletionPolicy Keep": {"defaultDeletionPolicy": "Keep"},
            "unknown top-level key": {"replicaCount": 2},
            "unknown nested key": {"metrics": {"serviceMonitor": {"enabled": True, "namespace": "x"}}},
            "replicas as a string": {"replicas": "2"},
            "negative replicas": {"replicas": -1},
            "watchNamespaces not a list": {"watchNamespaces": "a,b"},
            "watchNamespaces invalid name": {"watchNamespaces": ["Team_A"]},
            "pollInterval not a duration": {"pollInterval": "ten minutes"},
            "pullPolicy": {"image": {"pullPolicy": "Sometimes"}},
            "metrics port out of range": {"metrics": {"port": 70000}},
            "leaderElection.enabled string": {"leaderElection": {"enabled": "yes"}},
            "serviceAccount.create string": {"serviceAccount": {"create": "true"}},
            "resources unknown key": {"resources": {"limits": {"gpu": 1}}},
            "argocd.healthCheck.enabled string": {"argocd": {"healthCheck": {"enabled": "false"}}},
            "extraCaBundle key with a slash": {"extraCaBundle": {"configMap": "ca", "key": "a/b"}},
        }
        for label, values in bad_values.items():
            try:
                chart.validate_schema(values)
                check(f"schema rejects {label}", False, "accepted")
            except helm.HelmValuesError:
                check(f"schema rejects {label}", True)
        try:
            chart.render({"logFormat": "xml"}, name="dao", namespace=RELEASE_NS)
            check("render refuses values the schema rejects", False, "rendered")
        except helm.HelmValuesError:
            check("render refuses values the schema rejects", True)


def binary_accepts(flag: str, value: str) -> bool:
    """Starts the operator binary with one flag and no cluster: a flag it refuses fails first, with
    the flag's name; an accepted one gets as far as looking for Kubernetes."""
    env = dict(os.environ, KUBECONFIG="/nonexistent/kubeconfig", KUBERNETES_SERVICE_HOST="")
    p = subprocess.run([os.environ["DAO_BIN"], "run", f"--{flag}={value}", "--metrics-addr=127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30, env=env)
    if p.returncode == 0:
        raise AssertionError(f"the binary ran with no cluster: {p.stderr}")
    if f"--{flag}" in p.stderr or "invalid value" in p.stderr:
        return False
    if "Kubernetes" in p.stderr or "kubeconfig" in p.stderr.lower():
        return True
    raise AssertionError(f"unexpected failure for --{flag}={value}: {p.stderr}")


def test_schema_matches_binary() -> None:
    """The chart's schema accepts exactly what the binary accepts, so no value that passes
    `helm install` can crash-loop the pod."""
    section("values.schema.json accepts what the binary accepts")
    durations = ["1s", "1", "9s", "10s", "59s", "86400s", "86400", "86401s", "1m", "1440m", "1441m",
                 "1h", "24h", "25h", "0s", "0", "010s", "1h30m", "1.5h", "90s", "ms", "5d", "10ms", "",
                 "18446744073709551615", " 10m"]
    hosts = [["accounts.cloud.databricks.com"], ["127.0.0.1"], ["127.0.0.1:8085"], ["[::1]:8085"],
             ["https://accounts.cloud.databricks.com"], ["*.databricks.com"], ["a.example/path"], []]
    with helm.Chart.load(CHART) as chart:
        def schema_accepts(values: dict) -> bool:
            try:
                chart.validate_schema(values)
                return True
            except helm.HelmValuesError:
                return False
        for key, flag in [("pollInterval", "poll-interval"), ("busyPollInterval", "busy-poll-interval"),
                          ("reachableTimeout", "reachable-timeout")]:
            for d in durations:
                s_ok = schema_accepts({key: d})
                b_ok = binary_accepts(flag, d)
                check(f"{key}={d!r}: schema {'accepts' if s_ok else 'refuses'}, as the binary does",
                      s_ok == b_ok, f"schema {s_ok}, binary {b_ok}")
        for h in hosts:
            s_ok = schema_accepts({"allowedHosts": h})
            b_ok = binary_accepts("allowed-hosts", ",".join(h))
            check(f"allowedHosts={h!r}: schema {'accepts' if s_ok else 'refuses'}, as the binary does",
                  s_ok == b_ok, f"schema {s_ok}, binary {b_ok}")


def test_render_defaults() -> None:
    section("render with default values")
    objs = objects(render())
    kinds = sorted(o["kind"] for o in objs)
    check("defaults: the expected objects", kinds == sorted([
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount",
    ]), kinds)
    check_hardened(objs)
    c = container(objs)
    check("defaults: image tag is the appVersion",
          c["image"] == "ghcr.io/databricks-account-operator/databricks-account-operator:0.1.0", c["image"])
    check("defaults: args", c["args"] == [
        "run", "--poll-interval=10m", "--busy-poll-interval=15s", "--reachable-timeout=30m",
        "--default-deletion-policy=Delete",
        "--metrics-addr=0.0.0.0:8080", "--log-format=json",
        "--allowed-hosts=accounts.cloud.databricks.com,accounts.cloud.databricks.us,accounts-dod.cloud.databricks.mil",
        "--federation-token-file=/var/run/secrets/databricks/token", "--hold-account-secrets=true",
    ], c["args"])
    env = {e["name"]: e.get("value") for e in c["env"]}
    check("defaults: RUST_LOG info", env.get("RUST_LOG") == "info", env)
    check("defaults: resources from values", c["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}, c["resources"])
    check("defaults: no volumes", "volumes" not in one(objs, "Deployment")["spec"]["template"]["spec"])
    dep = one(objs, "Deployment")
    check("defaults: one replica, Recreate", dep["spec"]["replicas"] == 1
          and dep["spec"]["strategy"]["type"] == "Recreate", dep["spec"].get("strategy"))
    check("defaults: all objects in the release namespace", all(
        o["metadata"].get("namespace") == RELEASE_NS for o in objs if not o["kind"].startswith("Cluster")))
    sa = one(objs, "ServiceAccount")
    check("defaults: ServiceAccount name", sa["metadata"]["name"] == "dao-databricks-account-operator", sa["metadata"])
    check("defaults: pod uses the ServiceAccount",
          dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"])
    cr = one(objs, "ClusterRole")
    check("defaults: ClusterRole has exactly the operator's calls", rules_key(cr["rules"]) == EXPECTED_RECONCILE_RULES,
          cr["rules"])
    # Opting out of the Secret finalizer drops `patch` on Secrets and tells the binary.
    unheld = objects(render({"holdAccountSecrets": False}))
    secret_rules = [r for r in one(unheld, "ClusterRole")["rules"] if r["resources"] == ["secrets"]]
    check("holdAccountSecrets=false: Secrets are only read", secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}], secret_rules)
    check("holdAccountSecrets=false: the flag says so",
          "--hold-account-secrets=false" in container(unheld)["args"], container(unheld)["args"])
    crb = one(objs, "ClusterRoleBinding")
    check("defaults: ClusterRoleBinding to the ServiceAccount",
          crb["roleRef"]["name"] == cr["metadata"]["name"]
          and crb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": RELEASE_NS}],
          crb)
    lease = one(objs, "Role", namespace=RELEASE_NS)
    check("defaults: Lease Role in the release namespace", rules_key(lease["rules"]) == rules_key([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["dao-databricks-account-operator"], "verbs": ["get", "update"]},
    ]), lease["rules"])
    svc = one(objs, "Service")
    check("defaults: metrics Service selects the pods",
          all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())
          and svc["spec"]["ports"][0]["targetPort"] == "metrics" and svc["spec"]["ports"][0]["port"] == 8080, svc["spec"])
    check("defaults: selector labels on the pod template", all(
        dep["spec"]["template"]["metadata"]["labels"].get(k) == v
        for k, v in dep["spec"]["selector"]["matchLabels"].items()))
    check("defaults: no ServiceMonitor", not find(objs, "ServiceMonitor"))
    check("defaults: no argocd ConfigMap", not find(objs, "ConfigMap"))
    notes = render()["databricks-account-operator/templates/NOTES.txt"]
    check("NOTES: a real-account example", "https://accounts.cloud.databricks.com" in notes and "kind: DatabricksAccount" in notes)
    check("NOTES: a simulator example", "sim-client-id" in notes and "databricks-account-sim" in notes)


def test_render_all() -> None:
    section("render with tests/helm/values-all.yaml")
    rendered = render(VALUES_ALL)
    objs = objects(rendered)
    check_same_hardening("values-all", objs, objects(render()))
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = container(objs)
    check("values-all: image", c["image"] == "registry.example.com/platform/databricks-account-operator:9.8.7"
          and c["imagePullPolicy"] == "Always", c["image"])
    check("values-all: imagePullSecrets", pod.get("imagePullSecrets") == [{"name": "registry-credentials"}])
    check("values-all: args", c["args"] == [
        "run", "--poll-interval=5m", "--busy-poll-interval=20s", "--reachable-timeout=45m",
        "--default-deletion-policy=Orphan",
        "--metrics-addr=0.0.0.0:9090", "--log-format=text",
        "--allowed-hosts=accounts.cloud.databricks.com,127.0.0.1:8085",
        "--federation-token-file=/var/run/secrets/databricks/token", "--hold-account-secrets=true",
        "--watch-namespaces=team-a,team-b",
        "--leader-elect", "--lease-name=dbx-operator-leader",
        "--extra-ca-file=/etc/databricks-account-operator/extra-ca/bundle.pem",
    ], c["args"])
    env = {e["name"]: e.get("value") for e in c["env"]}
    check("values-all: RUST_LOG", env.get("RUST_LOG") == "debug,kube=info", env)
    check("values-all: CA ConfigMap and federation token mounted read-only", c.get("volumeMounts") == [
        {"name": "extra-ca", "mountPath": "/etc/databricks-account-operator/extra-ca", "readOnly": True},
        {"name": "databricks-token", "mountPath": "/var/run/secrets/databricks", "readOnly": True}]
          and pod.get("volumes") == [
              {"name": "extra-ca", "configMap": {
                  "name": "corporate-ca", "items": [{"key": "bundle.pem", "path": "bundle.pem"}]}},
              {"name": "databricks-token", "projected": {"sources": [{"serviceAccountToken": {
                  "path": "token", "audience": "https://accounts.cloud.databricks.com",
                  "expirationSeconds": 1800}}]}}],
          (c.get("volumeMounts"), pod.get("volumes")))
    try:
        render({"oauthFederation": {"enabled": True, "audience": "", "expirationSeconds": 3600}})
        check("federation without an audience is refused", False)
    except helm.HelmError as e:
        check("federation without an audience is refused", "audience" in str(e), e)
    check("values-all: resources", c["resources"] == VALUES_ALL["resources"], c["resources"])
    check("values-all: scheduling", pod.get("nodeSelector") == VALUES_ALL["nodeSelector"]
          and pod.get("tolerations") == VALUES_ALL["tolerations"] and pod.get("affinity") == VALUES_ALL["affinity"]
          and pod.get("priorityClassName") == "platform-critical")
    meta = dep["spec"]["template"]["metadata"]
    check("values-all: pod annotations and labels", meta.get("annotations") == VALUES_ALL["podAnnotations"]
          and meta["labels"].get("team") == "platform", meta)
    check("values-all: two replicas, RollingUpdate", dep["spec"]["replicas"] == 2
          and dep["spec"]["strategy"]["type"] == "RollingUpdate")
    sa = one(objs, "ServiceAccount")
    check("values-all: ServiceAccount name and annotations", sa["metadata"]["name"] == "dbx-operator"
          and sa["metadata"].get("annotations") == VALUES_ALL["serviceAccount"]["annotations"]
          and pod["serviceAccountName"] == "dbx-operator", sa["metadata"])
    # RBAC switches to Roles in the watched namespaces.
    check("values-all: no ClusterRole or ClusterRoleBinding",
          not find(objs, "ClusterRole") and not find(objs, "ClusterRoleBinding"))
    for ns in ("team-a", "team-b"):
        role = find(objs, "Role", namespace=ns)
        binding = find(objs, "RoleBinding", namespace=ns)
        check(f"values-all: Role in {ns}", len(role) == 1 and rules_key(role[0]["rules"]) == EXPECTED_RECONCILE_RULES,
              role)
        check(f"values-all: RoleBinding in {ns}", len(binding) == 1
              and binding[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                            "name": role[0]["metadata"]["name"] if role else None}
              and binding[0]["subjects"] == [{"kind": "ServiceAccount", "name": "dbx-operator", "namespace": RELEASE_NS}],
              binding)
    lease = one(objs, "Role", namespace=RELEASE_NS)
    check("values-all: Lease Role still in the release namespace, for the named Lease",
          any(r.get("resourceNames") == ["dbx-operator-leader"] for r in lease["rules"]), lease["rules"])
    check("values-all: only the watched namespaces and the release namespace get Roles",
          sorted(o["metadata"]["namespace"] for o in find(objs, "Role")) == sorted(["team-a", "team-b", RELEASE_NS]))
    svc = one(objs, "Service")
    check("values-all: Service type, port, annotations", svc["spec"]["type"] == "NodePort"
          and svc["spec"]["ports"][0]["port"] == 9091
          and svc["metadata"].get("annotations") == {"prometheus.io/scrape": "true"}, svc)
    sm = find(objs, "ServiceMonitor")
    check("values-all: ServiceMonitor present", len(sm) == 1, sm)
    if sm:
        ep = sm[0]["spec"]["endpoints"][0]
        check("values-all: ServiceMonitor scrapes /metrics on the metrics port",
              ep == {"port": "metrics", "path": "/metrics", "interval": "1m", "scrapeTimeout": "15s"}, ep)
        check("values-all: ServiceMonitor labels", sm[0]["metadata"]["labels"].get("release") == "kube-prometheus-stack")
        check("values-all: ServiceMonitor selects the Service",
              all(svc["metadata"]["labels"].get(k) == v for k, v in sm[0]["spec"]["selector"]["matchLabels"].items()))
    check_monitoring()
    cm = find(objs, "ConfigMap")
    check("values-all: argocd-cm snippet present", len(cm) == 1, cm)
    if cm:
        data = cm[0]["data"]
        want = {f"resource.customizations.health.{GROUP}_{k}" for k in KINDS}
        check("argocd-cm snippet: one key per kind", set(data) == want, sorted(data))
        check("argocd-cm snippet: every key is files/health.lua byte for byte",
              all(v == HEALTH_LUA for v in data.values()))
        patch = yaml.safe_load((ROOT / "config" / "argocd" / "argocd-cm-patch.yaml").read_text())["data"]
        check("argocd-cm snippet equals config/argocd/argocd-cm-patch.yaml", patch == data)
    notes = rendered["databricks-account-operator/templates/NOTES.txt"]
    check("NOTES: watched namespaces, leader election, Argo CD", "team-a, team-b" in notes
          and "dbx-operator-leader" in notes and "argocd-cm" in notes)

    # Switches one at a time.
    objs = objects(render({"replicas": 3}))
    check("replicas 3 turns leader election on", "--leader-elect" in container(objs)["args"])
    objs = objects(render({"leaderElection": {"enabled": True}}))
    args = container(objs)["args"]
    check("leaderElection.enabled with one replica", "--leader-elect" in args
          and "--lease-name=dao-databricks-account-operator" in args, args)
    objs = objects(render({"serviceAccount": {"create": False, "name": "existing"}}))
    check("serviceAccount.create false: none created, the named one used", not find(objs, "ServiceAccount")
          and one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
          and one(objs, "ClusterRoleBinding")["subjects"][0]["name"] == "existing")
    objs = objects(render({"metrics": {"service": {"enabled": False}}}))
    check("metrics.service.enabled false: no Service", not find(objs, "Service"))
    try:
        render({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}})
        check("a ServiceMonitor without a Service is refused", False, "rendered")
    except helm.HelmRenderError as e:
        check("a ServiceMonitor without a Service is refused", "metrics.service.enabled" in str(e), e)
    objs = objects(render(name="databricks-account-operator", namespace="databricks-account-operator-system"))
    check("release named like the chart: names are not doubled",
          one(objs, "Deployment")["metadata"]["name"] == "databricks-account-operator"
          and "--lease-name=databricks-account-operator" not in container(objs)["args"])


def chart_copy(dest: Path) -> Path:
    """A copy of the chart with its crds/ symlink resolved, to change without touching the repository."""
    import shutil  # noqa: PLC0415
    shutil.copytree(CHART, dest, symlinks=False)
    return dest


def test_crds() -> None:
    section("CRDs")
    sources = {p.name: p.read_text() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    check("crds/ holds one CRD per kind, of one group",
          len(CRD_NAMES) == len(set(KINDS)) > 0 and all(c["spec"]["group"] == GROUP for c in SOURCE_CRDS.values()),
          CRD_NAMES)
    link = CHART / "crds"
    check("the chart's crds is a symlink to the repository's crds/, not a copy",
          link.is_symlink() and os.readlink(link) == "../../crds", link)
    with helm.Chart.load(CHART) as chart:
        loaded = {Path(c["name"]).name: c["data"] for c in chart.crds}
        files = sorted(f["name"] for f in chart.files)
    check("Helm follows the symlink and loads exactly crds/*.yaml as the chart's CRDs", loaded == sources, sorted(loaded))
    check("crds/Kustomization (the kustomize base) is not part of the chart", "crds/Kustomization" not in files, files)

    # helm package stores the files themselves: the archive works without the repository.
    import tempfile  # noqa: PLC0415
    with tempfile.TemporaryDirectory() as tmp:
        archive = helm.package(str(CHART), destination=tmp)
        with helm.Chart.load_archive(Path(archive).read_bytes()) as packaged:
            packed = {Path(c["name"]).name: c["data"] for c in packaged.crds}
            packed_files = sorted(f["name"] for f in packaged.files)
            rendered = packaged.render({}, name="dao", namespace=RELEASE_NS)
        check("the packaged chart holds crds/*.yaml as files", packed == sources, sorted(packed))
        check("the packaged chart has no crds/Kustomization", "crds/Kustomization" not in packed_files, packed_files)
        cr = one(objects(rendered), "ClusterRole")
        check("the packaged chart renders the same RBAC", rules_key(cr["rules"]) == EXPECTED_RECONCILE_RULES, cr["rules"])

        # The chart's RBAC and Argo CD keys follow crds/: a new CRD needs no other edit of the chart...
        copy = chart_copy(Path(tmp) / "chart")
        extra = yaml.safe_load(sources[sorted(sources)[0]])
        extra["metadata"]["name"] = f"databricksextras.{GROUP}"
        extra["spec"]["names"].update(kind="DatabricksExtra", plural="databricksextras", singular="databricksextra",
                                      shortNames=["dbextra"], listKind="DatabricksExtraList")
        (copy / "crds" / f"databricksextras.{GROUP}.yaml").write_text(yaml.safe_dump(extra))
        with helm.Chart.load(copy) as chart:
            objs = objects(chart.render({"argocd": {"healthCheck": {"enabled": True}}}, name="dao", namespace=RELEASE_NS))
        resources = {r for rule in one(objs, "ClusterRole")["rules"] for r in rule["resources"]}
        check("a CRD added to crds/ gets RBAC for itself, its status and finalizers",
              {"databricksextras", "databricksextras/status", "databricksextras/finalizers"} <= resources, resources)
        check("a CRD added to crds/ gets its Argo CD key",
              f"resource.customizations.health.{GROUP}_DatabricksExtra" in one(objs, "ConfigMap")["data"])
        # ...and one of another group fails the render rather than go without RBAC.
        extra["spec"]["group"] = "other.example.com"
        extra["metadata"]["name"] = "databricksextras.other.example.com"
        (copy / "crds" / f"databricksextras.{GROUP}.yaml").write_text(yaml.safe_dump(extra))
        try:
            with helm.Chart.load(copy) as chart:
                chart.render({}, name="dao", namespace=RELEASE_NS)
            check("a CRD of another group in crds/ fails the render", False, "rendered")
        except helm.HelmError as e:
            check("a CRD of another group in crds/ fails the render", "other.example.com" in str(e), e)


def test_kustomize() -> None:
    section("kustomize")
    out = kubectl("kustomize", "config/default").stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    kinds = sorted(o["kind"] for o in objs)
    check("config/default renders the expected objects", kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
         "Deployment"] + ["CustomResourceDefinition"] * len(KINDS)), kinds)
    ns = "databricks-account-operator-system"
    check("config/default: namespaced objects in databricks-account-operator-system", all(
        o["metadata"].get("namespace") == ns for o in objs
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")))
    crds = {o["metadata"]["name"]: o for o in objs if o["kind"] == "CustomResourceDefinition"}
    sources = {yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())
               for p in (ROOT / "crds").glob("*.yaml")}
    check("config/default: CRDs are crds/ (plus the part-of label)", sorted(crds) == sorted(sources) and all(
        {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "labels"}} == sources[n]
        for n, o in crds.items()))
    check_same_hardening("config/default", objs, objects(render()))
    cr = one(objs, "ClusterRole")
    check("config/rbac ClusterRole matches the chart's rules", rules_key(cr["rules"]) == EXPECTED_RECONCILE_RULES)
    lease = one(objs, "Role")
    check("config/rbac Lease Role for the default lease name",
          any(r.get("resourceNames") == ["databricks-account-operator"] for r in lease["rules"]))
    check("config/default: image",
          container(objs)["image"] == "ghcr.io/databricks-account-operator/databricks-account-operator:0.1.0")

    # The argocd component merges the health check into an argocd-cm.
    with_component = ROOT / "tests" / "helm" / "kustomize-argocd"
    p = kubectl("kustomize", str(with_component), check_rc=False)
    if check("config/argocd component renders into an argocd-cm", p.returncode == 0, p.stderr):
        cm = yaml.safe_load(p.stdout)
        want = {f"resource.customizations.health.{GROUP}_{k}" for k in KINDS}
        check("config/argocd: every kind's key holds health.lua, other keys kept",
              set(cm["data"]) == want | {"url"} and all(cm["data"][k] == HEALTH_LUA for k in want)
              and cm["metadata"]["namespace"] == "argocd", sorted(cm["data"]))

    # Against the API server. Kubernetes v1.20 does not know x-kubernetes-validations: it refuses a
    # server-side apply of such CRDs, and kubectl's client-side validation rejects them, so this is a
    # client-side apply with --validate=false and a server dry run. A dry run does not create the
    # Namespace, so the namespaced objects go to a fresh namespace created for the check.
    if not os.environ.get("KUBECONFIG"):
        check("KUBECONFIG is set for the server dry run", False)
        return
    test_ns = f"dao-kustomize-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", test_ns)
    try:
        manifest = out.replace(f"namespace: {ns}", f"namespace: {test_ns}").replace(f"name: {ns}", f"name: {test_ns}")
        p = kubectl("apply", "--dry-run=server", "--validate=false", "-f", "-", input=manifest, check_rc=False)
        check("kubectl apply --dry-run=server --validate=false of config/default", p.returncode == 0,
              p.stderr[-2000:])
        check("server dry run covered the Deployment", "deployment.apps/databricks-account-operator" in p.stdout,
              p.stdout)

        # The same patch file, with kubectl, merges the health check into an existing argocd-cm.
        kubectl("create", "configmap", "argocd-cm", "-n", test_ns, "--from-literal=url=https://argocd.example.com")
        p = kubectl("patch", "configmap", "argocd-cm", "-n", test_ns, "--type", "merge",
                    "--patch-file", "config/argocd/argocd-cm-patch.yaml", check_rc=False)
        if check("kubectl patch --type merge --patch-file config/argocd/argocd-cm-patch.yaml", p.returncode == 0,
                 p.stderr[-2000:]):
            data = json.loads(kubectl("get", "configmap", "argocd-cm", "-n", test_ns, "-o", "json").stdout)["data"]
            want = {f"resource.customizations.health.{GROUP}_{k}" for k in KINDS}
            check("kubectl patch: every kind's key holds health.lua, other keys kept",
                  set(data) == want | {"url"} and all(data[k] == HEALTH_LUA for k in want), sorted(data))
    finally:
        kubectl("delete", "namespace", test_ns, "--wait=false", check_rc=False)


def wait_until(what: str, fn, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last})")


def can_i(sa: str, ns: str, verb: str, resource: str, where: str | None) -> bool:
    """Whether the API server answers "yes" for the ServiceAccount (an error is never a yes)."""
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{ns}:{sa}"]
    args += ["-n", where] if where else ["--all-namespaces"]
    p = kubectl(*args, check_rc=False)
    return p.stdout.strip() == "yes"


API_PREFIX = {
    "": "/api/v1",
    GROUP: f"/apis/{GROUP}/v1alpha1",
    "coordination.k8s.io": "/apis/coordination.k8s.io/v1",
    "apiextensions.k8s.io": "/apis/apiextensions.k8s.io/v1",
}


def forbidden(sa: str, ns: str, verb: str, resource: str, where: str | None) -> tuple[bool, str]:
    """Makes the request as the ServiceAccount (a server-side dry run where it would change
    something) and returns whether the API server refused exactly that: a Forbidden answer naming
    the ServiceAccount, the verb, the resource and the namespace. A connection error, a refused
    impersonation or a NotFound is not that answer. Also returns kubectl's output.

    `resource` is `plural[.group][/name]`, as for `kubectl auth can-i`."""
    kind_part, _, name = resource.partition("/")
    plural, _, group = kind_part.partition(".")
    path = API_PREFIX[group] + (f"/namespaces/{where}" if where else "") + f"/{plural}"
    user = f"system:serviceaccount:{ns}:{sa}"
    body = json.dumps({"metadata": {"name": name or "dao-test", **({"namespace": where} if where else {})}})
    one_name = f"{path}/{name or 'dao-test'}"
    args = {
        "get": ["get", "--raw", one_name],
        "list": ["get", "--raw", path],
        "watch": ["get", "--raw", f"{path}?watch=1&timeoutSeconds=1"],
        "create": ["create", "--raw", f"{path}?dryRun=All", "-f", "-"],
        "update": ["replace", "--raw", f"{one_name}?dryRun=All", "-f", "-"],
        "delete": ["delete", "--raw", f"{one_name}?dryRun=All"],
    }[verb]
    p = kubectl(*args, f"--as={user}", input=body, check_rc=False)
    scope = f'in the namespace "{where}"' if where else "at the cluster scope"
    want = f'User "{user}" cannot {verb} resource "{plural}" in API group "{group}" {scope}'
    if p.returncode == 0:
        # Not the answer: what the server returned (perhaps Secrets) is not shown.
        return False, "allowed: the server answered the request"
    return "Error from server (Forbidden)" in p.stderr and want in p.stderr, p.stderr.strip()[-400:]


def absent(*args: str) -> tuple[bool, str]:
    """Whether `kubectl get ARGS` says NotFound (not any other error)."""
    p = kubectl("get", *args, check_rc=False)
    return p.returncode != 0 and "(NotFound)" in p.stderr, p.stderr.strip()[-300:]


def server_minor() -> int:
    info = json.loads(kubectl("get", "--raw", "/version").stdout)
    return int("".join(ch for ch in info["minor"] if ch.isdigit()))


def helm_install(cfg: helm.Config, name: str, values: dict, namespace: str, server_side: bool, **opts) -> dict:
    """Config.install, with Helm 4's server-side apply switchable.

    Helm 4 installs (CRDs included) with server-side apply by default, and API servers older than 1.25
    refuse a server-side apply of CRDs with x-kubernetes-validations ("field not declared in schema").
    `helm install --server-side=false` is the CLI's way out; helm-python-sdk 0.2.2's Config.install does
    not expose that option although its C library takes it (`server_side_apply`), so pass it there.
    """
    if server_side:
        return cfg.install(str(CHART), name, values, namespace=namespace, **opts)
    from helm_python import _native  # noqa: PLC0415 - private, see the docstring
    from helm_python.config import _opts  # noqa: PLC0415

    handle, ref = cfg._chart_args(str(CHART))
    payload = _native.call_string(
        "helm_install", cfg._raw(), cfg._context_arg(None), handle, ref, name, json.dumps(values),
        _opts(namespace=namespace, timeout_seconds=opts.get("timeout"),
              create_namespace=opts.get("create_namespace") or None, server_side_apply=False),
    )
    return json.loads(payload)


def within(what: str, fn, timeout: float) -> bool:
    try:
        return bool(wait_until(what, fn, timeout=timeout))
    except TimeoutError:
        return False


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def operate_as_service_account(sa: str, sa_ns: str, watched: str, lease: str) -> None:
    """Runs the simulator (SIM_BIN) and the operator binary (DAO_BIN) with a kubeconfig that impersonates
    the chart's ServiceAccount, applies config/samples/ to a watched namespace and waits for the
    workspace; then deletes the objects through the operator, so nothing is left behind."""
    binary = os.environ.get("DAO_BIN")
    if not check("DAO_BIN names the operator binary", bool(binary) and Path(binary).is_file(), binary):
        return
    sim_binary = os.environ.get("SIM_BIN")
    if not check("SIM_BIN names the simulator binary", bool(sim_binary) and Path(sim_binary).is_file(), sim_binary):
        return
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    for user in admin["users"]:
        user["user"]["as"] = f"system:serviceaccount:{sa_ns}:{sa}"
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"dao-sa-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    sa_kubeconfig = work / "kubeconfig"
    sa_kubeconfig.write_text(yaml.safe_dump(admin))
    sa_kubeconfig.chmod(0o600)
    sim_port, metrics_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sim_binary, "--listen", f"127.0.0.1:{sim_port}", "--deployment-prefix", "acme",
             "--provisioning-seconds", "1", "--deletion-seconds", "0.5"],
            stdout=subprocess.DEVNULL, stderr=open(work / "simulator.log", "w")))
        env = dict(os.environ, KUBECONFIG=str(sa_kubeconfig), POD_NAMESPACE=sa_ns, POD_NAME="sa-operator",
                   RUST_LOG="info")
        procs.append(subprocess.Popen(
            [binary, "run", "--watch-namespaces", watched, "--leader-elect", f"--lease-name={lease}",
             "--busy-poll-interval", "1s", "--metrics-addr", f"127.0.0.1:{metrics_port}",
             "--allowed-hosts", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "operator.log", "w")))
        docs = []
        for f in sorted((ROOT / "config" / "samples").glob("*.yaml")):
            docs.append(f.read_text().replace("http://127.0.0.1:8085", f"http://127.0.0.1:{sim_port}"))
        kubectl("apply", "-n", watched, "-f", "-", input="\n---\n".join(docs))

        def ready() -> bool:
            out = kubectl("get", "dbws", "analytics", "-n", watched, "-o",
                          "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check_rc=False)
            return out.stdout.strip() == "True"
        converged = within("the workspace to be Ready", ready, timeout=120)
        check("as the ServiceAccount: the full stack converges", converged,
              (work / "operator.log").read_text()[-3000:] if not converged else "")
        holder = kubectl("get", "lease", lease, "-n", sa_ns, "-o", "jsonpath={.spec.holderIdentity}",
                         check_rc=False).stdout.strip()
        check("as the ServiceAccount: it holds the chart's Lease", holder == "sa-operator", holder)
        denied, out = forbidden(sa, sa_ns, "list", "secrets", "default")
        check("as the ServiceAccount: Secrets of an unwatched namespace are refused", denied, out)
        log = (work / "operator.log").read_text()
        check("as the ServiceAccount: no permission errors in the operator log", "forbidden" not in log.lower(),
              [line for line in log.splitlines() if "forbidden" in line.lower()][:3])
        kubectl("delete", "-n", watched, "--wait=false", "-f", "-", input="\n---\n".join(docs), check_rc=False)

        def gone() -> bool:
            out = kubectl("get", "databricks", "-n", watched, "-o", "name", check_rc=False)
            return out.returncode == 0 and not out.stdout.strip()
        check("as the ServiceAccount: deleting the objects cleans up through the operator",
              within("the objects to be deleted", gone, timeout=120))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_install() -> None:
    section("helm install into the control plane")
    kubeconfig = os.environ.get("KUBECONFIG")
    if not check("KUBECONFIG is set", bool(kubeconfig)):
        return
    suffix = uuid.uuid4().hex[:6]
    ns = f"dao-helm-{suffix}"
    watched = [f"dao-watched-{suffix}-a", f"dao-watched-{suffix}-b"]
    ours = [c for c in kubectl("get", "crd", "-o", "name").stdout.split() if c.endswith("." + GROUP)]
    # Helm installs crds/ only where they are absent: on a cluster that has them, what follows
    # would not test Helm's CRD install at all (hack/helm-test.sh starts a fresh control plane).
    if not check("the cluster has none of the CRDs before the install", not ours, ours):
        return
    with helm.Config(kubeconfig_path=kubeconfig, namespace=ns) as cfg:
        cfg.check_reachable()
        server_side = server_minor() >= 25
        print(f"    (server-side apply: {server_side}; Kubernetes 1.{server_minor()})", flush=True)
        releases = []
        try:
            # 1. Defaults: every namespace, ClusterRole.
            rel = helm_install(cfg, "dao", {}, ns, server_side, create_namespace=True, timeout=120)
            releases.append("dao")
            check("install with defaults", rel.get("status") == "deployed", {k: rel.get(k) for k in ("name", "status")})

            def established() -> list[str]:
                out = kubectl("get", "crd", "-o", "jsonpath={range .items[*]}{.metadata.name} "
                              "{.status.conditions[?(@.type==\"Established\")].status}{\"\\n\"}{end}").stdout
                return sorted(line.split()[0] for line in out.splitlines() if line.endswith(" True"))
            ok = within("the CRDs to be Established", lambda: set(CRD_NAMES) <= set(established()), timeout=60)
            check("Helm installed every CRD of crds/, Established", ok, established())
            full = "dao-databricks-account-operator"
            expected = {(o["kind"], o["metadata"]["name"]) for o in objects(render(namespace=ns))}
            found = set()
            for kind, name in expected:
                where = [] if kind.startswith("Cluster") else ["-n", ns]
                if kubectl("get", kind.lower(), name, *where, check_rc=False).returncode == 0:
                    found.add((kind, name))
            check("defaults: every rendered object exists", found == expected, sorted(expected - found))
            dep = json.loads(kubectl("get", "deployment", full, "-n", ns, "-o", "json").stdout)
            sc = dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            check("the API server kept the hardened security context",
                  sc.get("readOnlyRootFilesystem") is True and sc.get("runAsUser") == 65532, sc)
            # What the ServiceAccount may do, as the API server's RBAC decides it: "yes" from the
            # server for what it may do, the server's Forbidden for what it may not.
            for verb, res, where, want in [
                ("watch", f"databricksworkspaces.{GROUP}", None, True),
                ("patch", f"databricksnetworks.{GROUP}/status", "default", True),
                ("update", f"databricksaccounts.{GROUP}/finalizers", "default", True),
                ("create", "events.events.k8s.io", "default", True),
                ("get", "secrets", "default", True),
                ("list", "secrets", "default", True),
                ("patch", "secrets", "default", True),
                ("delete", "secrets", "default", False),
                ("update", "secrets", "default", False),
                ("watch", "configmaps", "default", False),
                ("create", f"databricksworkspaces.{GROUP}", "default", False),
                ("delete", f"databricksworkspaces.{GROUP}", "default", False),
                ("create", "leases.coordination.k8s.io", ns, True),
                ("update", "leases.coordination.k8s.io/" + full, ns, True),
                ("update", "leases.coordination.k8s.io/other", ns, False),
                ("create", "leases.coordination.k8s.io", "default", False),
                ("create", "customresourcedefinitions.apiextensions.k8s.io", None, False),
            ]:
                label = f"defaults: SA {'may' if want else 'may not'} {verb} {res} in {where or 'all namespaces'}"
                if want:
                    check(label, can_i(full, ns, verb, res, where))
                else:
                    check(label, *forbidden(full, ns, verb, res, where))

            # 2. Watched namespaces: Roles only there; leader election; extra CA; Argo CD snippet.
            for w in watched:
                kubectl("create", "namespace", w)
            values = {
                "watchNamespaces": watched, "leaderElection": {"enabled": True},
                "extraCaBundle": {"configMap": "corporate-ca", "key": "ca.crt"},
                "argocd": {"healthCheck": {"enabled": True}}, "replicas": 2,
            }
            rel = helm_install(cfg, "dao-ns", values, ns, server_side, timeout=120)
            check("install with watchNamespaces", rel.get("status") == "deployed", rel.get("status"))
            releases.append("dao-ns")
            full2 = "dao-ns-databricks-account-operator"
            missing = [f"{kind}/{w}" for w in watched for kind in ("role", "rolebinding")
                       if kubectl("get", kind, full2, "-n", w, check_rc=False).returncode != 0]
            check("watched: a Role and RoleBinding in each watched namespace", not missing, missing)
            check("watched: SA may watch workspaces in the watched namespaces",
                  all(can_i(full2, ns, "watch", f"databricksworkspaces.{GROUP}", w) for w in watched))
            check("watched: SA may get secrets in the watched namespaces",
                  all(can_i(full2, ns, "get", "secrets", w) for w in watched))
            check("watched: no ClusterRole", *absent("clusterrole", full2))
            check("watched: SA may not get secrets in an unwatched namespace",
                  *forbidden(full2, ns, "get", "secrets", "default"))
            check("watched: SA may not watch workspaces cluster-wide",
                  *forbidden(full2, ns, "watch", f"databricksworkspaces.{GROUP}", None))
            check("watched: argocd-cm snippet ConfigMap exists",
                  kubectl("get", "configmap", full2 + "-argocd-cm", "-n", ns, check_rc=False).returncode == 0)
            listed = {r["name"] for r in cfg.list()}
            check("helm list shows both releases", {"dao", "dao-ns"} <= listed, listed)

            # 3. The operator itself, with the identity of the chart's ServiceAccount (impersonated,
            #    so the real RBAC decides), converges the full-stack sample in a watched namespace.
            operate_as_service_account(full2, ns, watched[0], lease=full2)
        finally:
            for r in reversed(releases):
                try:
                    cfg.uninstall(r, timeout=120)
                    check(f"uninstall {r}", True)
                except helm.HelmError as e:
                    check(f"uninstall {r}", False, e)
    check("uninstall removed the ClusterRole", *absent("clusterrole", "dao-databricks-account-operator"))
    left = [w for w in watched if not absent("role", "dao-ns-databricks-account-operator", "-n", w)[0]]
    check("uninstall removed the Roles in watched namespaces", not left, left)
    check("CRDs stay after uninstall (Helm never deletes crds/)",
          all(kubectl("get", "crd", c, check_rc=False).returncode == 0 for c in CRD_NAMES))
    for n in [ns, *watched]:
        kubectl("delete", "namespace", n, "--wait=false", check_rc=False)


def main() -> int:
    started = time.monotonic()
    for test in (test_lint, test_schema, test_schema_matches_binary, test_render_defaults, test_render_all, test_crds, test_kustomize,
                 test_install):
        t0 = time.monotonic()
        try:
            test()
        except Exception:  # noqa: BLE001 - a crashed section is one failure, the others still run
            check(f"{test.__name__} ran to the end", False, traceback.format_exc())
        print(f"    {test.__name__}: {time.monotonic() - t0:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
