//! The controllers: one per kind, sharing one Account API client per `DatabricksAccount`.

pub mod account;
pub mod kinds;
pub mod leader;
pub mod managed;

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tokio::time::Instant;

use crate::crd::DeletionPolicy;
use crate::databricks::{
    AccountClient, AllowedHosts, Error as ApiCallError, models::Resource as RemoteResource,
};

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
    /// The Account API hosts the operator may call.
    pub allowed_hosts: AllowedHosts,
    /// The token file exchanged by accounts that use OAuth token federation (the operator's own
    /// projected service-account token; never a path from a custom resource).
    pub federation_token_file: PathBuf,
    /// How often per-object state of objects that are gone is swept (a backstop: a released
    /// finalizer forgets at once).
    pub sweep_interval: Duration,
    /// Fences Account API writes while this replica does not hold the leader lease.
    pub fence: WriteFence,
    /// The shortest poll interval the per-object annotation may ask for (10 s; tests go lower).
    pub min_annotated_poll_interval: Duration,
    /// Time limit of one HTTP exchange with the Account API (a trickling server is cut off).
    pub api_timeout: Duration,
    /// Reconciles of one kind running at once. Unbounded, a thousand new objects start a thousand
    /// reconciles and as many connections to the API server, which stay open afterwards.
    pub concurrency: u16,
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
            allowed_hosts: AllowedHosts::default(),
            federation_token_file: PathBuf::from(DEFAULT_FEDERATION_TOKEN_FILE),
            sweep_interval: Duration::from_secs(60),
            fence: WriteFence::open(),
            min_annotated_poll_interval: crate::bounds::POLL_INTERVAL_MIN,
            api_timeout: Duration::from_secs(60),
            concurrency: 16,
        }
    }
}

/// Where the chart mounts the projected service-account token for OAuth token federation.
pub const DEFAULT_FEDERATION_TOKEN_FILE: &str = "/var/run/secrets/databricks/token";

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

/// The identity of one object: kind, namespace, name and uid. Per-object state is keyed by it, so
/// a new object of the same name never inherits an old one's backoff, and it is removed with the
/// object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl ObjKey {
    /// The key of an object.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        Self {
            kind: K::kind(&()).into_owned(),
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            uid: obj.uid().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

type CacheSlot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<dyn Any + Send + Sync>)>>>;

/// Shared state of all controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This replica's identity (its pod name), also sent in the Account API `User-Agent`.
    pub instance: String,
    /// Account clients by `namespace/name`.
    pub accounts: Mutex<HashMap<String, AccountEntry>>,
    /// The opted-in Secrets, one store per watched scope.
    secrets: Mutex<Vec<Store<KubeSecret>>>,
    /// Asks the account controllers to look at an account again (`namespace`, `name`).
    account_nudges: tokio::sync::broadcast::Sender<(String, String)>,
    /// One list per kind per account, shared by every object of that kind.
    lists: Mutex<HashMap<(String, &'static str), CacheSlot>>,
    /// Per-object error counts, for backoff.
    failures: Mutex<HashMap<ObjKey, u32>>,
    /// Per-object gates after a rejection: no API call before the instant unless the generation changes.
    gates: Mutex<HashMap<ObjKey, (Option<i64>, Instant)>>,
    /// When an object first met the IAM-propagation error.
    propagation: Mutex<HashMap<ObjKey, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    /// A context for the controllers.
    pub fn new(client: Client, settings: Settings, instance: String) -> Arc<Self> {
        let (account_nudges, _) = tokio::sync::broadcast::channel(1024);
        Arc::new(Self {
            client,
            settings,
            metrics: Arc::default(),
            instance,
            accounts: Mutex::default(),
            secrets: Mutex::default(),
            account_nudges,
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

    /// Records an account's client.
    pub(crate) fn set_account(&self, key: &str, entry: AccountEntry) {
        lock(&self.accounts).insert(key.to_string(), entry);
        self.track();
    }

    /// Marks an account not ready (no new work through it) but keeps its client, if any, for the
    /// deletes of objects that were created through it.
    pub(crate) fn disable_account(&self, key: &str, message: &str) {
        if let Some(e) = lock(&self.accounts).get_mut(key) {
            e.ready = false;
            e.message = crate::bounds::message(message);
        }
    }

    /// Forgets an account's client and every list fetched through it.
    pub(crate) fn forget_account(&self, key: &str) {
        lock(&self.accounts).remove(key);
        lock(&self.lists).retain(|(account, _), _| account != key);
        self.track();
    }

    /// Asks the account controller to check `namespace/name` again now (after its credentials
    /// were refused somewhere, or its Secret changed).
    pub fn nudge_account(&self, namespace: &str, name: &str) {
        let _ = self
            .account_nudges
            .send((namespace.to_string(), name.to_string()));
    }

    /// An opted-in Secret from the watched stores.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<KubeSecret>> {
        let key = ObjectRef::<KubeSecret>::new(name).within(namespace);
        lock(&self.secrets).iter().find_map(|s| s.get(&key))
    }

    /// Waits until every Secret store has its first full list, so that a restart never reads
    /// "Secret not found" from an empty cache.
    pub async fn secrets_ready(&self) {
        let stores: Vec<Store<KubeSecret>> = lock(&self.secrets).clone();
        for s in stores {
            let _ = s.wait_until_ready().await;
        }
    }

    /// All objects of a kind in an account, from a list no older than `max_age`.
    pub async fn list<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<Arc<Vec<R>>, ApiCallError> {
        let slot = {
            let mut lists = lock(&self.lists);
            let slot = lists
                .entry((account.to_string(), R::COLLECTION))
                .or_default()
                .clone();
            drop(lists);
            self.track();
            slot
        };
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
        self.track();
    }

    /// Records a failure and returns the backoff before the next attempt.
    pub fn backoff(&self, key: &ObjKey, floor: Option<Duration>) -> Duration {
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        self.track();
        let nominal = Duration::from_secs(1)
            .saturating_mul(2u32.saturating_pow(n.clamp(1, 12) - 1))
            .min(self.settings.max_backoff);
        let jitter = rand::random_range(0.8..1.2);
        crate::bounds::requeue(nominal.mul_f64(jitter).max(floor.unwrap_or_default()))
    }

    /// Clears the failure count after a success.
    pub fn succeeded(&self, key: &ObjKey) {
        if lock(&self.failures).remove(key).is_some() {
            self.track();
        }
    }

    /// Holds API calls for an object until the poll interval passes or its generation changes.
    pub fn gate(&self, key: &ObjKey, generation: Option<i64>, for_: Duration) {
        lock(&self.gates).insert(key.clone(), (generation, crate::bounds::after(for_)));
        self.track();
    }

    /// The time left on an object's gate, if it still applies.
    pub fn gated(&self, key: &ObjKey, generation: Option<i64>) -> Option<Duration> {
        let mut g = lock(&self.gates);
        match g.get(key) {
            Some((gen_, until)) if *gen_ == generation && *until > Instant::now() => {
                Some(until.saturating_duration_since(Instant::now()))
            }
            Some(_) => {
                g.remove(key);
                drop(g);
                self.track();
                None
            }
            None => None,
        }
    }

    /// Clears an object's gate.
    pub fn ungate(&self, key: &ObjKey) {
        if lock(&self.gates).remove(key).is_some() {
            self.track();
        }
    }

    /// How long an object has been meeting the IAM-propagation error.
    pub fn propagation_elapsed(&self, key: &ObjKey) -> Duration {
        let elapsed = lock(&self.propagation)
            .entry(key.clone())
            .or_insert_with(Instant::now)
            .elapsed();
        self.track();
        elapsed
    }

    /// Forgets an object's IAM-propagation window.
    pub fn propagation_done(&self, key: &ObjKey) {
        if lock(&self.propagation).remove(key).is_some() {
            self.track();
        }
    }

    /// Forgets everything kept about an object (it is gone).
    pub fn forget(&self, key: &ObjKey) {
        lock(&self.failures).remove(key);
        lock(&self.gates).remove(key);
        lock(&self.propagation).remove(key);
        self.metrics.readiness(key, None, None);
        self.track();
    }

    /// Forgets every object of `kind` (in `namespace`, or in every namespace) that `live` does not
    /// know: the backstop for objects that went without a reconcile seeing them go.
    pub fn sweep(&self, kind: &str, namespace: Option<&str>, live: impl Fn(&ObjKey) -> bool) {
        let stale =
            |k: &ObjKey| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns) && !live(k);
        let mut gone: Vec<ObjKey> = Vec::new();
        gone.extend(lock(&self.failures).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.gates).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.propagation).keys().filter(|k| stale(k)).cloned());
        gone.sort();
        gone.dedup();
        for k in &gone {
            self.forget(k);
        }
        self.metrics
            .sweep_readiness(kind, namespace, |key| !live(key));
        self.track();
    }

    /// Sizes of the per-object and per-account maps, by map name (also exported as metrics).
    pub fn state_sizes(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("failures", lock(&self.failures).len()),
            ("gates", lock(&self.gates).len()),
            ("propagation", lock(&self.propagation).len()),
            ("accounts", lock(&self.accounts).len()),
            ("lists", lock(&self.lists).len()),
            ("readiness", self.metrics.readiness_len()),
        ]
    }

    fn track(&self) {
        for (map, n) in self.state_sizes() {
            self.metrics.tracked(map, n);
        }
    }
}

/// A fence on Account API writes: open without leader election; with it, open only until the
/// lease this replica last renewed could have expired. Checked right before every write, so a
/// replica that was paused past its lease (or lost it) sends nothing once it resumes.
#[derive(Clone, Debug)]
pub struct WriteFence(Option<Arc<Mutex<Option<std::time::Instant>>>>);

impl WriteFence {
    /// Always open (no leader election).
    pub fn open() -> Self {
        Self(None)
    }

    /// Closed until [`Self::hold_until`] opens it.
    pub fn closed() -> Self {
        Self(Some(Arc::default()))
    }

    /// Opens the fence until `deadline`.
    pub fn hold_until(&self, deadline: std::time::Instant) {
        if let Some(m) = &self.0 {
            *lock(m) = Some(deadline);
        }
    }

    /// Closes the fence now.
    pub fn close(&self) {
        if let Some(m) = &self.0 {
            *lock(m) = None;
        }
    }

    /// Whether a write may be sent now.
    pub fn allows(&self) -> bool {
        match &self.0 {
            None => true,
            Some(m) => lock(m).is_some_and(|d| std::time::Instant::now() < d),
        }
    }
}

impl crate::databricks::WriteGate for WriteFence {
    fn allows_writes(&self) -> bool {
        self.allows()
    }
}

/// Parses a duration flag: `30s`, `5m`, `1h` or seconds, between 1 s and 24 h.
pub fn parse_flag_duration(s: &str) -> Result<Duration, String> {
    crate::bounds::parse_duration(
        s,
        crate::bounds::FLAG_DURATION_MIN,
        crate::bounds::FLAG_DURATION_MAX,
    )
}

mod runner {
    use std::sync::Arc;

    use futures::{FutureExt, StreamExt};
    use k8s_openapi::api::core::v1::Secret as KubeSecret;
    use kube::api::Api;
    use kube::runtime::controller::{self, Action, Controller};
    use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
    use kube::runtime::{WatchStreamExt, watcher};
    use kube::{Resource, ResourceExt};

    use super::managed::{Error, Managed, reconcile};
    use super::{Context, lock};
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

    fn error_policy<K: Resource<DynamicType = ()>>(
        obj: Arc<K>,
        err: &Error,
        ctx: Arc<Context>,
    ) -> Action {
        let key = super::ObjKey::of(&*obj);
        if err.is_conflict() {
            // Started from a cached object older than the last write: look again with the newer one.
            tracing::debug!(object = %key, "status write conflicted with a newer version; retrying");
            return Action::requeue(std::time::Duration::from_millis(300));
        }
        tracing::warn!(object = %key, error = %err, "reconcile failed");
        Action::requeue(ctx.backoff(&key, None))
    }

    /// Forgets, every `sweep_interval`, the per-object state of objects of `K` no longer in `store`.
    async fn sweep<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static>(
        ctx: Arc<Context>,
        ns: Option<String>,
        store: Store<K>,
        shutdown: Shutdown,
    ) {
        let kind = K::kind(&()).into_owned();
        let every = ctx.settings.sweep_interval;
        let run = async {
            loop {
                tokio::time::sleep(every).await;
                if store.wait_until_ready().await.is_err() {
                    return;
                }
                ctx.sweep(&kind, ns.as_deref(), |k| {
                    store
                        .get(&ObjectRef::new(&k.name).within(&k.namespace))
                        .is_some_and(|o| o.uid().as_deref() == Some(k.uid.as_str()))
                });
            }
        };
        tokio::select! {
            () = run => {}
            () = shutdown => {}
        }
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
        let ns_ref = ns.as_deref();
        let c = Controller::new(api::<K>(&client, ns_ref), watcher::Config::default())
            .with_config(controller::Config::default().concurrency(ctx.settings.concurrency));
        let store = c.store();
        let sweeper = sweep::<K>(ctx.clone(), ns.clone(), store.clone(), shutdown.clone());
        let c = watch_other::<K, DatabricksAccount>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksCredential>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksStorageConfig>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksKeyConfig>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksNetwork>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksVpcEndpoint>(c, &client, ns_ref, store.clone());
        let c =
            watch_other::<K, DatabricksPrivateAccessSettings>(c, &client, ns_ref, store.clone());
        let c = watch_other::<K, DatabricksWorkspace>(c, &client, ns_ref, store);
        let controller = c
            .graceful_shutdown_on(shutdown)
            .run(
                |obj, ctx: Arc<Context>| measured::<K, _>(ctx.clone(), reconcile::<K>(obj, ctx)),
                error_policy::<K>,
                ctx,
            )
            .for_each(|_| futures::future::ready(()));
        tokio::join!(controller, sweeper);
    }

    /// Accounts whose spec names the Secret `secret` (in its namespace).
    fn accounts_using_secret(
        store: &Store<DatabricksAccount>,
        secret: &KubeSecret,
    ) -> Vec<ObjectRef<DatabricksAccount>> {
        let ns = secret.namespace();
        let name = secret.name_any();
        store
            .state()
            .iter()
            .filter(|a| a.namespace() == ns && a.spec.auth.secret_name() == Some(name.as_str()))
            .map(|a| ObjectRef::from_obj(&**a))
            .collect()
    }

    async fn run_accounts(ctx: Arc<Context>, ns: Option<String>, shutdown: Shutdown) {
        let client = ctx.client.clone();
        // Only Secrets that opt in are watched, so nothing else is ever read or cached.
        let (secrets, writer) = reflector::store::<KubeSecret>();
        lock(&ctx.secrets).push(secrets);
        let secret_events = reflector(
            writer,
            watcher::watcher(
                api::<KubeSecret>(&client, ns.as_deref()),
                watcher::Config::default().labels(&format!("{SECRET_LABEL}=true")),
            ),
        )
        .default_backoff()
        .touched_objects();
        let c = Controller::new(
            api::<DatabricksAccount>(&client, ns.as_deref()),
            watcher::Config::default(),
        )
        .with_config(controller::Config::default().concurrency(ctx.settings.concurrency));
        let store = c.store();
        let sweeper =
            sweep::<DatabricksAccount>(ctx.clone(), ns.clone(), store.clone(), shutdown.clone());
        let by_secret = store.clone();
        let by_nudge = store.clone();
        let nudges = futures::stream::unfold(ctx.account_nudges.subscribe(), |mut rx| async {
            loop {
                match rx.recv().await {
                    Ok(n) => return Some((n, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter_map(move |(ns, name)| {
            let r = ObjectRef::<DatabricksAccount>::new(&name).within(&ns);
            futures::future::ready(by_nudge.get(&r).map(|_| r))
        });
        let controller = c
            .watches_stream(secret_events, move |s: KubeSecret| {
                accounts_using_secret(&by_secret, &s)
            })
            .reconcile_on(nudges)
            .graceful_shutdown_on(shutdown)
            .run(
                |obj, ctx: Arc<Context>| {
                    measured::<DatabricksAccount, _>(
                        ctx.clone(),
                        super::account::reconcile(obj, ctx),
                    )
                },
                error_policy::<DatabricksAccount>,
                ctx,
            )
            .for_each(|_| futures::future::ready(()));
        tokio::join!(controller, sweeper);
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
