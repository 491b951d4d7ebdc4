//! Prometheus metrics of the operator. Labels are bounded: kinds, fixed outcomes, API operations,
//! HTTP status codes and Kubernetes verbs; never object names or error texts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::controller::ObjKey;
use crate::databricks::{CallObserver, CallRecord};

/// `kind` and `outcome` of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Kind.
    pub kind: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// A kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind.
    pub kind: String,
}

/// An API operation and its answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// `credentials.create`, `workspaces.get`, ...
    pub operation: String,
    /// HTTP status, or `transport`.
    pub status: String,
}

/// An API operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `credentials.create`, `workspaces.get`, ...
    pub operation: String,
}

/// Objects of a kind by readiness.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Kind.
    pub kind: String,
    /// `true` or `false`.
    pub ready: String,
}

/// A request to the Kubernetes API server, named as the API server's own metrics name it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeRequestLabels {
    /// `GET`, `LIST`, `WATCH`, `CREATE`, `UPDATE`, `PATCH`, `APPLY` (a server-side apply),
    /// `DELETE`, `DELETECOLLECTION`, or the HTTP method of a request that names no resource.
    pub verb: String,
    /// `status` for the status subresource, `other` for another one, empty for the object itself.
    pub subresource: String,
}

/// Readiness by object: whether it is Ready, and whether it has been seen Ready at least once
/// (one entry per object, not a second set of keys).
type Readiness = HashMap<ObjKey, (bool, bool)>;

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn ready_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Hist<KindLabels>,
    api_requests: Family<ApiLabels, Counter>,
    api_duration: Hist<OperationLabels>,
    throttled: Family<OperationLabels, Counter>,
    objects: Family<ObjectLabels, Gauge>,
    time_to_ready: Hist<KindLabels>,
    tracked: Family<MapLabels, Gauge>,
    kube_requests: Family<KubeRequestLabels, Counter>,
    leader: Gauge,
    resident_memory: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Readiness by object, and the objects seen Ready at least once.
    readiness: Mutex<Readiness>,
}

/// Labels of the per-object state sizes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabels {
    /// `failures`, `gates`, `propagation`, `accounts`, `lists`, `readiness`.
    pub map: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("databricks_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration: Hist<KindLabels> = Family::new_with_constructor(seconds_histogram);
        let api_requests = Family::<ApiLabels, Counter>::default();
        let api_duration: Hist<OperationLabels> = Family::new_with_constructor(seconds_histogram);
        let throttled = Family::<OperationLabels, Counter>::default();
        let objects = Family::<ObjectLabels, Gauge>::default();
        let time_to_ready: Hist<KindLabels> = Family::new_with_constructor(ready_histogram);
        let tracked = Family::<MapLabels, Gauge>::default();
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "tracked_entries",
            "Entries of the operator's per-object and per-account state, by map (they shrink when objects go)",
            tracked.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "api_requests",
            "Databricks Account API requests by operation and HTTP status",
            api_requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Databricks Account API request latency, retries included",
            api_duration.clone(),
        );
        registry.register(
            "api_throttled_requests",
            "API requests held back by the client-side rate limit",
            throttled.clone(),
        );
        registry.register(
            "objects",
            "Managed objects by kind and readiness",
            objects.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Time from an object's creation to its first Ready seen by this process",
            time_to_ready.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the operator process (Linux /proc), read at each scrape",
            resident_memory.clone(),
        );
        let cpu_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "CPU time the operator process has used, user and system (Linux /proc), read at each scrape",
            cpu_seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (it holds the lease, or leader election is off), else 0",
            leader.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests this process sent to the Kubernetes API server, by verb and subresource (status writes have the status subresource)",
            kube_requests.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            api_requests,
            api_duration,
            throttled,
            objects,
            time_to_ready,
            tracked,
            kube_requests,
            leader,
            resident_memory,
            cpu_seconds,
            readiness: Mutex::default(),
        }
    }

    /// Whether this replica reconciles now.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts one request to the Kubernetes API server.
    pub fn kube_request<B>(&self, req: &http::Request<B>) {
        let apply = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
        let uri = req.uri();
        let (verb, subresource) = kube_verb(req.method(), apply, uri.path(), uri.query());
        self.kube_requests
            .get_or_create(&KubeRequestLabels {
                verb: verb.into(),
                subresource: subresource.into(),
            })
            .inc();
    }

    /// Records one reconcile.
    pub fn reconciled(&self, kind: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(took.as_secs_f64());
    }

    /// Records an object's readiness (`None` when it is gone). `age` is the time since the
    /// object was created; it is observed as time to ready on the object's first Ready.
    pub fn readiness(&self, key: &ObjKey, ready: Option<bool>, age: Option<Duration>) {
        let mut map = self.readiness_map();
        let before = map.get(key).map(|r| r.0);
        match ready {
            Some(r) => {
                let first_ready = match map.get_mut(key) {
                    Some(entry) => {
                        let first = r && !entry.1;
                        *entry = (r, entry.1 || r);
                        first
                    }
                    None => {
                        map.insert(key.clone(), (r, r));
                        r
                    }
                };
                if first_ready && let Some(age) = age {
                    self.time_to_ready
                        .get_or_create(&KindLabels {
                            kind: key.kind.to_string(),
                        })
                        .observe(age.as_secs_f64());
                }
            }
            None => {
                map.remove(key);
            }
        }
        if before != ready {
            self.count_kind(&map, &key.kind);
        }
        self.tracked("readiness", map.len());
    }

    /// Forgets the readiness of objects of `kind` (in `namespace`, or anywhere) that are `gone`.
    pub fn sweep_readiness(
        &self,
        kind: &str,
        namespace: Option<&str>,
        gone: impl Fn(&ObjKey) -> bool,
    ) {
        let mut map = self.readiness_map();
        let before = map.len();
        map.retain(|k, _| {
            !(k.kind == kind && namespace.is_none_or(|ns| &*k.namespace == ns) && gone(k))
        });
        if map.len() != before {
            self.count_kind(&map, kind);
        }
        self.tracked("readiness", map.len());
    }

    /// How many objects have a recorded readiness.
    pub fn readiness_len(&self) -> usize {
        self.readiness_map().len()
    }

    /// Sets the size of one of the operator's state maps.
    pub fn tracked(&self, map: &str, entries: usize) {
        self.tracked
            .get_or_create(&MapLabels { map: map.into() })
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    fn readiness_map(&self) -> std::sync::MutexGuard<'_, Readiness> {
        self.readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_kind(&self, map: &Readiness, kind: &str) {
        for r in [true, false] {
            let n = map
                .iter()
                .filter(|(k, rr)| k.kind == kind && rr.0 == r)
                .count();
            self.objects
                .get_or_create(&ObjectLabels {
                    kind: kind.into(),
                    ready: r.to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        if let Some((rss, cpu)) = process_usage() {
            self.resident_memory.set(rss);
            self.cpu_seconds.set(cpu);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Resident bytes and CPU seconds of this process, from `/proc/self` (Linux; `None` elsewhere).
/// Clock ticks are taken as 100 per second, the value on every Linux platform the image targets.
fn process_usage() -> Option<(i64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let cpu = (ticks(11)? + ticks(12)?) / 100.0;
    Some((rss_kib.saturating_mul(1024), cpu))
}

/// The verb and subresource label of a request to the Kubernetes API server, by the rules the API
/// server itself applies (a GET without a name is a LIST, or a WATCH with `watch=true`; a DELETE
/// without a name is a DELETECOLLECTION; a PATCH of `apply` content is an APPLY).
fn kube_verb(
    method: &http::Method,
    apply: bool,
    path: &str,
    query: Option<&str>,
) -> (&'static str, &'static str) {
    use http::Method;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let rest = match parts.first() {
        Some(&"api") if parts.len() >= 2 => &parts[2..],
        Some(&"apis") if parts.len() >= 3 => &parts[3..],
        _ => &[][..],
    };
    if rest.is_empty() {
        // `/version`, `/apis` and the like: no resource, no verb of its own.
        let verb = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        return (verb, "");
    }
    // `namespaces/NS/KIND/...` is a namespaced resource; `namespaces/NS/status` (or `finalize`) a
    // subresource of the namespace itself.
    let rest = match rest {
        ["namespaces", _, next, ..] if *next != "status" && *next != "finalize" => &rest[2..],
        _ => rest,
    };
    let named = rest.len() >= 2;
    let subresource = match rest.get(2) {
        None => "",
        Some(&"status") => "status",
        Some(_) => "other",
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        Method::GET if watch => "WATCH",
        Method::GET if named => "GET",
        Method::GET => "LIST",
        Method::POST => "CREATE",
        Method::PUT => "UPDATE",
        Method::PATCH if apply => "APPLY",
        Method::PATCH => "PATCH",
        Method::DELETE if named => "DELETE",
        Method::DELETE => "DELETECOLLECTION",
        _ => "OTHER",
    };
    (verb, subresource)
}

/// A layer for the Kubernetes client that counts each request it sends in the metrics in `sink`
/// (set once the metrics exist: they belong to the controllers' context, which needs the client
/// first; nothing is sent before).
pub fn kube_request_layer<B>(
    sink: Arc<OnceLock<Arc<Metrics>>>,
) -> tower::util::MapRequestLayer<impl Fn(http::Request<B>) -> http::Request<B> + Clone> {
    tower::util::MapRequestLayer::new(move |req: http::Request<B>| {
        if let Some(m) = sink.get() {
            m.kube_request(&req);
        }
        req
    })
}

impl CallObserver for Metrics {
    fn observe(&self, r: &CallRecord<'_>) {
        self.api_requests
            .get_or_create(&ApiLabels {
                operation: r.operation.into(),
                status: r.status.into(),
            })
            .inc();
        let op = OperationLabels {
            operation: r.operation.into(),
        };
        self.api_duration
            .get_or_create(&op)
            .observe(r.elapsed.as_secs_f64());
        if !r.throttled.is_zero() {
            self.throttled.get_or_create(&op).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status writes are told from other writes, and reads are named as the API server names
    /// them, so that a benchmark can count what the operator costs the API server by verb.
    #[test]
    fn kube_requests_are_counted_by_verb_and_subresource() {
        let m = Metrics::new();
        let g = "/apis/account.databricks-operator.dev/v1alpha1";
        let apply = "application/apply-patch+yaml";
        let merge = "application/merge-patch+json";
        let requests = [
            (
                "PATCH",
                apply,
                format!(
                    "{g}/namespaces/ns/databricksworkspaces/w/status?fieldManager=x&force=true"
                ),
            ),
            (
                "PATCH",
                merge,
                format!("{g}/namespaces/ns/databricksworkspaces/w/status"),
            ),
            (
                "PATCH",
                merge,
                format!("{g}/namespaces/ns/databricksworkspaces/w"),
            ),
            (
                "GET",
                "",
                format!("{g}/namespaces/ns/databricksworkspaces?watch=true&resourceVersion=5"),
            ),
            (
                "GET",
                "",
                format!("{g}/namespaces/ns/databricksworkspaces?limit=500"),
            ),
            ("GET", "", format!("{g}/databricksworkspaces")),
            ("GET", "", "/api/v1/namespaces/ns/secrets/s".to_string()),
            ("GET", "", "/api/v1/namespaces/ns".to_string()),
            ("PUT", "", "/api/v1/namespaces/ns/finalize".to_string()),
            (
                "POST",
                "",
                "/apis/events.k8s.io/v1/namespaces/ns/events".to_string(),
            ),
            (
                "PUT",
                "",
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l".to_string(),
            ),
            ("DELETE", "", "/api/v1/namespaces/ns/pods".to_string()),
            ("GET", "", "/version".to_string()),
        ];
        for (method, content_type, uri) in &requests {
            let mut req = http::Request::builder().method(*method).uri(uri);
            if !content_type.is_empty() {
                req = req.header(http::header::CONTENT_TYPE, *content_type);
            }
            m.kube_request(&req.body(()).unwrap());
        }
        let text = m.encode();
        let count = |verb: &str, sub: &str| {
            let line = format!(
                r#"databricks_operator_kube_requests_total{{verb="{verb}",subresource="{sub}"}} "#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .map(|v| v.parse::<u64>().unwrap())
                .unwrap_or(0)
        };
        assert_eq!(count("APPLY", "status"), 1, "{text}");
        assert_eq!(count("PATCH", "status"), 1);
        assert_eq!(count("PATCH", ""), 1);
        assert_eq!(count("WATCH", ""), 1);
        assert_eq!(count("LIST", ""), 2);
        assert_eq!(count("GET", ""), 3, "a secret, a namespace and /version");
        assert_eq!(count("UPDATE", "other"), 1, "a namespace's finalize");
        assert_eq!(count("CREATE", ""), 1);
        assert_eq!(count("UPDATE", ""), 1);
        assert_eq!(count("DELETECOLLECTION", ""), 1);
    }

    /// API calls are counted by operation and status, and objects by readiness.
    #[test]
    fn counts_calls_and_readiness() {
        let m = Metrics::new();
        for status in ["200", "200", "429"] {
            m.observe(&CallRecord {
                operation: "credentials.create",
                status,
                elapsed: Duration::from_millis(10),
                throttled: Duration::ZERO,
            });
        }
        let key = |name: &str| {
            ObjKey::new(
                "DatabricksCredential".into(),
                "ns",
                name,
                &format!("uid-{name}"),
            )
        };
        m.readiness(&key("a"), Some(false), None);
        m.readiness(&key("a"), Some(true), Some(Duration::from_secs(3)));
        m.readiness(&key("b"), Some(false), None);
        let text = m.encode();
        assert!(text.contains(r#"databricks_operator_api_requests_total{operation="credentials.create",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"databricks_operator_api_requests_total{operation="credentials.create",status="429"} 1"#));
        assert!(text.contains(
            r#"databricks_operator_objects{kind="DatabricksCredential",ready="true"} 1"#
        ));
        assert!(text.contains(
            r#"databricks_operator_objects{kind="DatabricksCredential",ready="false"} 1"#
        ));
        assert!(text.contains(
            r#"databricks_operator_time_to_ready_seconds_count{kind="DatabricksCredential"} 1"#
        ));
        m.readiness(&key("a"), None, None);
        let text = m.encode();
        assert!(text.contains(
            r#"databricks_operator_objects{kind="DatabricksCredential",ready="true"} 0"#
        ));
        assert!(
            text.contains(r#"databricks_operator_tracked_entries{map="readiness"} 1"#),
            "{text}"
        );
        m.sweep_readiness("DatabricksCredential", Some("ns"), |_| true);
        assert_eq!(m.readiness_len(), 0);
        assert!(m.encode().contains(
            r#"databricks_operator_objects{kind="DatabricksCredential",ready="false"} 0"#
        ));
    }
}
