//! The controllers: one per kind, sharing one Account API client per `DatabricksAccount`.

pub mod account;
pub mod kinds;
pub mod leader;
pub mod managed;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::time::Instant;

use crate::crd::DeletionPolicy;
use crate::databricks::{AccountClient, Error as ApiCallError, models::Resource as RemoteResource};

/// Operator settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Steady-state observation interval.
    pub poll_interval: Duration,
    /// Observation interval while something is in flight (provisioning, pending, deleting).
    pub busy_poll_interval: Duration,
    /// Deletion policy of objects that do not set one.
    pub default_deletion_policy: DeletionPolicy,
    /// How long the IAM-propagation error is retried before it is reported as a rejection.
    pub credential_propagation_window: Duration,
    /// Largest per-object backoff after errors.
    pub max_backoff: Duration,
    /// Namespaces to watch; empty for all.
    pub watch_namespaces: Vec<String>,
    /// PEM certificates every account's client trusts in addition to the public roots.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(600),
            busy_poll_interval: Duration::from_secs(15),
            default_deletion_policy: DeletionPolicy::Delete,
            credential_propagation_window: Duration::from_secs(300),
            max_backoff: Duration::from_secs(300),
            watch_namespaces: Vec::new(),
            extra_ca_pem: None,
        }
    }
}

/// An account's client and whether it works.
#[derive(Clone)]
pub struct AccountEntry {
    /// The client.
    pub client: AccountClient,
    /// What the client was built from (spec and Secret versions).
    pub fingerprint: String,
    /// Whether the last check succeeded.
    pub ready: bool,
    /// Why it is not ready.
    pub message: String,
}

type CacheSlot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<dyn Any + Send + Sync>)>>>;

/// Shared state of all controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// Event recorder.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Account clients by `namespace/name`.
    pub accounts: Mutex<HashMap<String, AccountEntry>>,
    /// One list per kind per account, shared by every object of that kind.
    lists: Mutex<HashMap<(String, &'static str), CacheSlot>>,
    /// Per-object error counts, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Per-object gates after a rejection: no API call before the instant unless the generation changes.
    gates: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    /// When an object first met the IAM-propagation error.
    propagation: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    /// A context for the controllers.
    pub fn new(client: Client, settings: Settings, instance: String) -> Arc<Self> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "databricks-account-operator".into(),
                instance: Some(instance),
            },
        );
        Arc::new(Self {
            client,
            settings,
            recorder,
            metrics: Arc::default(),
            accounts: Mutex::default(),
            lists: Mutex::default(),
            failures: Mutex::default(),
            gates: Mutex::default(),
            propagation: Mutex::default(),
        })
    }

    /// The account entry for `namespace/name`.
    pub fn account(&self, key: &str) -> Option<AccountEntry> {
        lock(&self.accounts).get(key).cloned()
    }

    /// All objects of a kind in an account, from a list no older than `max_age`.
    pub async fn list<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<Arc<Vec<R>>, ApiCallError> {
        let slot = lock(&self.lists)
            .entry((account.to_string(), R::COLLECTION))
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        if let Some((at, any)) = guard.as_ref()
            && at.elapsed() <= max_age
            && let Ok(v) = any.clone().downcast::<Vec<R>>()
        {
            return Ok(v);
        }
        let fresh = Arc::new(client.list::<R>().await?);
        *guard = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Forgets the list of a kind (after a create or delete).
    pub fn invalidate<R: RemoteResource>(&self, account: &str) {
        lock(&self.lists).remove(&(account.to_string(), R::COLLECTION));
    }

    /// Records a failure and returns the backoff before the next attempt.
    pub fn backoff(&self, key: &str, floor: Option<Duration>) -> Duration {
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let nominal = Duration::from_secs(1)
            .saturating_mul(2u32.saturating_pow(n.min(12) - 1))
            .min(self.settings.max_backoff);
        let jitter = rand::random_range(0.8..1.2);
        nominal.mul_f64(jitter).max(floor.unwrap_or_default())
    }

    /// Clears the failure count after a success.
    pub fn succeeded(&self, key: &str) {
        lock(&self.failures).remove(key);
    }

    /// Holds API calls for an object until the poll interval passes or its generation changes.
    pub fn gate(&self, key: &str, generation: Option<i64>, for_: Duration) {
        lock(&self.gates).insert(key.to_string(), (generation, Instant::now() + for_));
    }

    /// The time left on an object's gate, if it still applies.
    pub fn gated(&self, key: &str, generation: Option<i64>) -> Option<Duration> {
        let mut g = lock(&self.gates);
        match g.get(key) {
            Some((gen_, until)) if *gen_ == generation && *until > Instant::now() => {
                Some(until.saturating_duration_since(Instant::now()))
            }
            Some(_) => {
                g.remove(key);
                None
            }
            None => None,
        }
    }

    /// Clears an object's gate.
    pub fn ungate(&self, key: &str) {
        lock(&self.gates).remove(key);
    }

    /// How long an object has been meeting the IAM-propagation error.
    pub fn propagation_elapsed(&self, key: &str) -> Duration {
        lock(&self.propagation)
            .entry(key.to_string())
            .or_insert_with(Instant::now)
            .elapsed()
    }

    /// Forgets an object's IAM-propagation window.
    pub fn propagation_done(&self, key: &str) {
        lock(&self.propagation).remove(key);
    }
}

/// Parses `30s`, `5m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The poll-interval annotation accepts the usual short forms and nothing else.
    #[test]
    fn poll_interval_annotation_parses() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}

mod runner {
    use std::sync::Arc;

    use futures::{FutureExt, StreamExt};
    use kube::api::Api;
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::reflector::{ObjectRef, Store};
    use kube::runtime::watcher;
    use kube::{Resource, ResourceExt};

    use super::Context;
    use super::managed::{Error, Managed, reconcile};
    use crate::crd::*;

    fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    /// Times a reconcile and counts its outcome.
    async fn measured<K: Resource<DynamicType = ()>, F>(
        ctx: Arc<Context>,
        f: F,
    ) -> Result<Action, Error>
    where
        F: std::future::Future<Output = Result<Action, Error>>,
    {
        let started = std::time::Instant::now();
        let result = f.await;
        ctx.metrics
            .reconciled(&K::kind(&()), result.is_ok(), started.elapsed());
        result
    }

    fn error_policy<K: Resource>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
        let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        if err.is_conflict() {
            // Started from a cached object older than the last write: look again with the newer one.
            tracing::debug!(object = %key, "status write conflicted with a newer version; retrying");
            return Action::requeue(std::time::Duration::from_millis(300));
        }
        tracing::warn!(object = %key, error = %err, "reconcile failed");
        Action::requeue(ctx.backoff(&key, None))
    }

    /// Objects of `K` in `other`'s namespace that reference `other` or are referenced by it, or use
    /// it as their account.
    fn related<K: Managed, O: Resource<DynamicType = ()> + serde::Serialize + Send + Sync>(
        store: &Store<K>,
        other: &O,
    ) -> Vec<ObjectRef<K>> {
        let ns = other.namespace();
        let other_kind = O::kind(&()).to_string();
        let other_name = other.name_any();
        let spec_of = |o: &O| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.get("spec").cloned())
                .unwrap_or_default()
        };
        let other_spec = spec_of(other);
        let mut out = Vec::new();
        for k in store.state() {
            if k.namespace() != ns {
                continue;
            }
            let uses_it = other_kind == "DatabricksAccount"
                && k.management().account_ref.name == other_name
                || k.dependencies().iter().any(|d| {
                    d.kind.kind() == other_kind
                        && d.reference.name.as_deref() == Some(other_name.as_str())
                });
            let used_by_it = K::dep_kind()
                .is_some_and(|dk| super::managed::references(&other_spec, dk, &k.name_any()));
            if uses_it || used_by_it {
                out.push(ObjectRef::from_obj(&*k));
            }
        }
        out
    }

    fn watch_other<K: Managed, O>(
        c: Controller<K>,
        client: &kube::Client,
        ns: Option<&str>,
        store: Store<K>,
    ) -> Controller<K>
    where
        O: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + serde::Serialize
            + Send
            + Sync
            + 'static,
    {
        c.watches(
            api::<O>(client, ns),
            watcher::Config::default(),
            move |o: O| related(&store, &o),
        )
    }

    type Shutdown = futures::future::Shared<
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>,
    >;

    async fn run_kind<K: Managed>(ctx: Arc<Context>, ns: Option<String>, shutdown: Shutdown) {
        let client = ctx.client.clone();
        let ns = ns.as_deref();
        let c = Controller::new(api::<K>(&client, ns), watcher::Config::default());
        let store = c.store();
        let c = watch_other::<K, DatabricksAccount>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksCredential>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksStorageConfig>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksKeyConfig>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksNetwork>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksVpcEndpoint>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksPrivateAccessSettings>(c, &client, ns, store.clone());
        let c = watch_other::<K, DatabricksWorkspace>(c, &client, ns, store);
        c.graceful_shutdown_on(shutdown)
            .run(
                |obj, ctx: Arc<Context>| measured::<K, _>(ctx.clone(), reconcile::<K>(obj, ctx)),
                error_policy::<K>,
                ctx,
            )
            .for_each(|_| futures::future::ready(()))
            .await;
    }

    async fn run_accounts(ctx: Arc<Context>, ns: Option<String>, shutdown: Shutdown) {
        let client = ctx.client.clone();
        Controller::new(
            api::<DatabricksAccount>(&client, ns.as_deref()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx: Arc<Context>| {
                measured::<DatabricksAccount, _>(ctx.clone(), super::account::reconcile(obj, ctx))
            },
            error_policy::<DatabricksAccount>,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    }

    async fn run_scope(ctx: Arc<Context>, ns: Option<String>, shutdown: Shutdown) {
        tokio::join!(
            run_accounts(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksCredential>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksStorageConfig>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksKeyConfig>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksNetwork>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksVpcEndpoint>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksPrivateAccessSettings>(ctx.clone(), ns.clone(), shutdown.clone()),
            run_kind::<DatabricksWorkspace>(ctx, ns, shutdown),
        );
    }

    /// Runs every controller, over all namespaces or over each of `settings.watch_namespaces`,
    /// until `shutdown` resolves.
    pub async fn run(
        ctx: Arc<Context>,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        let shutdown: Shutdown = (Box::pin(shutdown)
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>)
            .shared();
        let scopes: Vec<Option<String>> = if ctx.settings.watch_namespaces.is_empty() {
            vec![None]
        } else {
            ctx.settings
                .watch_namespaces
                .iter()
                .cloned()
                .map(Some)
                .collect()
        };
        futures::future::join_all(
            scopes
                .into_iter()
                .map(|ns| run_scope(ctx.clone(), ns, shutdown.clone())),
        )
        .await;
    }
}

pub use runner::run;
