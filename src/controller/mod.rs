//! The controllers: one per kind, sharing one Account API client per `DatabricksAccount`.

pub mod account;
pub mod cache;
pub mod gate;
pub mod kinds;
pub mod leader;
pub mod managed;
pub mod plan;

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use tokio::time::Instant;

use crate::crd::{DatabricksAccount, DeletionPolicy};
use crate::databricks::{
    AccountClient, AllowedHosts, Error as ApiCallError, ResolveOverrides,
    models::Resource as RemoteResource,
};
use crate::intern::{Name, intern};
use cache::DepView;
use managed::DepKind;

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
    /// How long Databricks may take to show a workspace update it accepted before the operator
    /// reports `UpdateNotApplied` (20 min, tags 1 h).
    pub apply_limits: plan::ApplyLimits,
    /// Largest per-object backoff after errors.
    pub max_backoff: Duration,
    /// Namespaces to watch; empty for all.
    pub watch_namespaces: Vec<String>,
    /// PEM certificates every account's client trusts in addition to the public roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The Account API hosts the operator may call.
    pub allowed_hosts: AllowedHosts,
    /// Host names resolved to loopback addresses instead of through DNS (`--resolve-override`).
    pub resolve: ResolveOverrides,
    /// How long a RUNNING workspace that does not answer is checked with backoff before it is
    /// checked only at the poll interval.
    pub reachable_timeout: Duration,
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
    /// Keep a finalizer on each opted-in Secret while a `DatabricksAccount` names it (needs
    /// `patch` on Secrets), so that deletes finish even when a namespace delete removes the Secret
    /// first and the operator restarts.
    pub hold_secrets: bool,
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
            apply_limits: plan::ApplyLimits::default(),
            max_backoff: Duration::from_secs(300),
            watch_namespaces: Vec::new(),
            extra_ca_pem: None,
            allowed_hosts: AllowedHosts::default(),
            resolve: ResolveOverrides::default(),
            reachable_timeout: Duration::from_secs(30 * 60),
            federation_token_file: PathBuf::from(DEFAULT_FEDERATION_TOKEN_FILE),
            sweep_interval: Duration::from_secs(60),
            fence: WriteFence::open(),
            min_annotated_poll_interval: crate::bounds::POLL_INTERVAL_MIN,
            api_timeout: Duration::from_secs(60),
            hold_secrets: true,
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
    /// When the credentials were last checked and worked; `None` asks for a check at the next
    /// reconcile (after a 401 elsewhere).
    pub checked: Option<Instant>,
}

/// The identity of one object: kind, namespace, name and uid. Per-object state is keyed by it, so
/// a new object of the same name never inherits an old one's backoff, and it is removed with the
/// object. Its strings are shared (the kind is the type's own, namespace and name are interned, the
/// UID is a number), so a clone costs no allocation and each map entry holds 72 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// Kind.
    pub kind: std::borrow::Cow<'static, str>,
    /// Namespace.
    pub namespace: Name,
    /// Name.
    pub name: Name,
    /// UID, as [`crate::intern::uid`] reads it.
    pub uid: u128,
}

impl ObjKey {
    /// The key of an object.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        let meta = obj.meta();
        Self::new(
            K::kind(&()),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name
                .as_deref()
                .or(meta.generate_name.as_deref())
                .unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default(),
        )
    }

    /// The key of the object `kind/namespace/name` with this UID.
    pub fn new(
        kind: std::borrow::Cow<'static, str>,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Self {
        Self {
            kind,
            namespace: intern(namespace),
            name: intern(name),
            uid: crate::intern::uid(uid),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// One shared list: when it was made and what it holds, behind a lock that makes concurrent
/// readers share one fetch; and since when it is known to be out of date, if it is.
#[derive(Default)]
struct ListSlot {
    list: tokio::sync::Mutex<Option<Listed>>,
    outdated_since: Mutex<Option<Instant>>,
    /// When the last list was asked for (set before its answer comes).
    last_asked: Mutex<Option<Instant>>,
}

/// A list as fetched.
struct Listed {
    /// When its answer arrived: its age counts from here.
    at: Instant,
    /// When it was asked for: a change marked before this is in it.
    asked: Instant,
    /// The `Vec` of the kind's objects.
    items: Arc<dyn Any + Send + Sync>,
}

type CacheSlot = Arc<ListSlot>;

/// Remote names claimed for a create: (account ID, collection, name) → (object, since).
type NameClaims = HashMap<(String, &'static str, String), (ObjKey, Instant)>;

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
    /// The shared caches, one set per watched scope.
    caches: Mutex<Vec<Arc<cache::ScopeCaches>>>,
    /// Asks the account controllers to look at an account again (`namespace`, `name`).
    account_nudges: tokio::sync::broadcast::Sender<(String, String)>,
    /// One list per kind per account, shared by every object of that kind.
    lists: Mutex<HashMap<(String, &'static str), CacheSlot>>,
    /// Per-object backoff after errors: the delays still to come, until a success.
    failures: Mutex<HashMap<ObjKey, ExponentialBackoff>>,
    /// Per-object gates after a rejection: no API call before the instant unless the generation changes.
    gates: Mutex<HashMap<ObjKey, (Option<i64>, Instant)>>,
    /// When this process's DELETE of an object's remote object was accepted.
    deletes: Mutex<HashMap<ObjKey, Instant>>,
    /// The resourceVersion each running reconcile last wrote (removed when it returns).
    writes: Mutex<HashMap<ObjKey, String>>,
    /// Remote names being created, by account ID, collection and name: which object creates
    /// it, since when.
    creating: Mutex<NameClaims>,
    /// When an object first met the IAM-propagation error.
    propagation: Mutex<HashMap<ObjKey, Instant>>,
    /// The last reachability check of each RUNNING workspace.
    reach: Mutex<HashMap<ObjKey, plan::reach::ReachMemo>>,
    /// Objects at rest (Ready, Synced, default poll interval), with a digest of the remote
    /// object they last settled on: their kind's poller compares it with the shared list at
    /// each poll interval and wakes only the objects whose remote object changed or went.
    polled: Mutex<HashMap<ObjKey, u64>>,
}

/// How often an object at rest is reconciled anyway, as a multiple of the poll interval: its
/// kind's poller wakes it as soon as the shared list shows a change, so this is only a safety net
/// (against a wake lost, for example).
pub const RESYNC_POLLS: u32 = 10;

/// A digest of a value (every field of a remote object): what a poller compares to tell whether a
/// remote object changed since an object last settled on it. A derived `Hash`: 0.1 µs for a
/// workspace, where hashing its `Debug` text took 0.7 µs.
pub fn digest<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The delays after an object's consecutive errors: 0.8–1.6 s, then doubling, jittered (so that
/// objects that failed together do not retry together), at most `max` (half to all of it once
/// there). Endless: an object keeps being retried until it succeeds or is deleted.
fn error_backoff(max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800))
        .with_max_delay(max / 2)
        .with_jitter()
        .without_max_times()
        .build()
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
            caches: Mutex::default(),
            account_nudges,
            lists: Mutex::default(),
            failures: Mutex::default(),
            gates: Mutex::default(),
            writes: Mutex::default(),
            deletes: Mutex::default(),
            creating: Mutex::default(),
            propagation: Mutex::default(),
            reach: Mutex::default(),
            polled: Mutex::default(),
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
        if let Some(e) = lock(&self.accounts).get_mut(&format!("{namespace}/{name}")) {
            e.checked = None;
        }
        let _ = self
            .account_nudges
            .send((namespace.to_string(), name.to_string()));
    }

    /// Makes a scope's caches available to the reconciles.
    pub(crate) fn register_scope(&self, caches: Arc<cache::ScopeCaches>) {
        lock(&self.caches).push(caches);
    }

    /// The caches of the scope that watches `namespace`.
    pub fn scope(&self, namespace: &str) -> Option<Arc<cache::ScopeCaches>> {
        lock(&self.caches)
            .iter()
            .find(|c| c.covers(namespace))
            .cloned()
    }

    /// Waits until every cache has its first full list, so that a restart never reads "not
    /// found" (a Secret, a dependency) from a cache that has not listed yet.
    pub async fn caches_ready(&self) {
        let scopes: Vec<Arc<cache::ScopeCaches>> = lock(&self.caches).clone();
        for s in scopes {
            s.ready().await;
        }
    }

    /// An opted-in Secret, from the cache.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<KubeSecret>> {
        let key = ObjectRef::<KubeSecret>::new(name).within(namespace);
        self.scope(namespace)?.secrets.get(&key)
    }

    /// A DatabricksAccount, from the cache.
    pub fn account_object(&self, namespace: &str, name: &str) -> Option<Arc<DatabricksAccount>> {
        let key = ObjectRef::<DatabricksAccount>::new(name).within(namespace);
        self.scope(namespace)?.accounts.get(&key)
    }

    /// An object of `kind` as a dependency, from the cache.
    pub fn dependency(&self, namespace: &str, kind: DepKind, name: &str) -> Option<DepView> {
        self.scope(namespace)?
            .kind(&kind.kind())?
            .view(namespace, name)
    }

    /// Waits, at most `within`, until the cache no longer shows `key` with the operator's
    /// finalizer. A reconcile that released an object returns only once the cache knows, so
    /// that a wake queued meanwhile does not start a second delete from the stale copy.
    pub async fn until_released(&self, key: &ObjKey, within: Duration) {
        let deadline = crate::bounds::after(within);
        while let Some(cache) = self
            .scope(&key.namespace)
            .and_then(|s| s.kind(&key.kind).cloned())
            && cache.finalizing(&key.namespace, &key.name, key.uid)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Claims the remote `name` of a collection in an account for `key`'s create, or says which
    /// object holds it. A claim holds until the create's outcome is known (an answer lost keeps
    /// it for the lookup that follows), the object goes, or 10 minutes pass.
    pub fn claim_name(
        &self,
        account_id: &str,
        collection: &'static str,
        name: &str,
        key: &ObjKey,
    ) -> Result<(), ObjKey> {
        let mut claims = lock(&self.creating);
        let slot = claims
            .entry((account_id.to_string(), collection, name.to_string()))
            .or_insert_with(|| (key.clone(), Instant::now()));
        if slot.0 != *key && slot.1.elapsed() < Duration::from_secs(600) {
            return Err(slot.0.clone());
        }
        *slot = (key.clone(), Instant::now());
        drop(claims);
        self.track();
        Ok(())
    }

    /// Releases the names `key` claimed.
    pub fn release_names(&self, key: &ObjKey) {
        let mut claims = lock(&self.creating);
        let before = claims.len();
        claims.retain(|_, (holder, _)| holder != key);
        if claims.len() != before {
            drop(claims);
            self.track();
        }
    }

    /// `Kind/namespace/name` of the object of `kind` other than `uid` that manages the
    /// Databricks ID `id`, from the caches of `namespace`'s scope.
    pub fn owner(&self, namespace: &str, kind: &str, id: &str, uid: &str) -> Option<String> {
        self.scope(namespace)?.kind(kind)?.owner(id, uid)
    }

    /// Records that the Account API accepted the DELETE of `key`'s remote object (the first time).
    pub fn deleted(&self, key: &ObjKey) {
        lock(&self.deletes)
            .entry(key.clone())
            .or_insert_with(Instant::now);
        self.track();
    }

    /// When this process's DELETE of `key`'s remote object was accepted, if it was.
    pub fn deleted_at(&self, key: &ObjKey) -> Option<Instant> {
        lock(&self.deletes).get(key).copied()
    }

    /// Records that a running reconcile wrote `key`, which now has `resource_version`.
    pub(crate) fn wrote(&self, key: &ObjKey, resource_version: String) {
        lock(&self.writes).insert(key.clone(), resource_version);
    }

    /// Waits, at most `within`, until the cache shows the last write the reconcile of `key`
    /// made, if it made one. A reconcile returns only then, so that the next one (its own write
    /// wakes it) starts from what it wrote, not from the copy before: a create's next reconcile
    /// would otherwise see the pending marker without the ID and look the object up again.
    pub async fn until_cached(&self, key: &ObjKey, within: Duration) {
        let Some(ours) = lock(&self.writes).remove(key) else {
            return;
        };
        // Resource versions are opaque, but etcd's are increasing numbers: a newer one counts.
        let caught_up = |cached: &str| {
            cached == ours
                || matches!((cached.parse::<u64>(), ours.parse::<u64>()), (Ok(c), Ok(o)) if c >= o)
        };
        let deadline = crate::bounds::after(within);
        while let Some(cache) = self
            .scope(&key.namespace)
            .and_then(|s| s.kind(&key.kind).cloned())
            && cache
                .version(&key.namespace, &key.name)
                .is_some_and(|v| !caught_up(&v))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `Kind/name` of the objects in `namespace` that name `name` of `kind`, from the caches.
    pub fn referrers(&self, namespace: &str, kind: DepKind, name: &str) -> Vec<String> {
        self.scope(namespace)
            .map(|s| s.referrers(namespace, kind, name))
            .unwrap_or_default()
    }

    /// `Kind/name` of the objects in `namespace` that use the account `name`, from the caches.
    pub fn account_users(&self, namespace: &str, name: &str) -> Vec<String> {
        self.scope(namespace)
            .map(|s| s.account_users(namespace, name))
            .unwrap_or_default()
    }

    /// All objects of a kind in an account, from a list no older than `max_age`.
    pub async fn list<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<Arc<Vec<R>>, ApiCallError> {
        self.list_asked(account, client, max_age)
            .await
            .map(|(list, _)| list)
    }

    /// [`Context::list`], with the moment the list was asked for: anything done before then
    /// shows in it.
    pub async fn list_asked<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<(Arc<Vec<R>>, Instant), ApiCallError> {
        self.list_waiting(account, client, max_age, false).await
    }

    /// [`Context::list`] for reading objects' state, which other kinds' changes may have made
    /// out of date (see [`Context::expire`]): a list marked out of date is not used.
    pub async fn list_current<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<Arc<Vec<R>>, ApiCallError> {
        self.list_waiting(account, client, max_age, true)
            .await
            .map(|(list, _)| list)
    }

    /// A list for a reader that waits for it.
    async fn list_waiting<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
        current: bool,
    ) -> Result<(Arc<Vec<R>>, Instant), ApiCallError> {
        loop {
            match self
                .list_inner(account, client, max_age, current, false)
                .await?
            {
                Ok(listed) => return Ok(listed),
                // Only readers that defer are told to come back later; should one be, it waits.
                Err(later) => tokio::time::sleep(later).await,
            }
        }
    }

    /// [`Context::list_current`] for a reconcile, which holds one of its controller's slots
    /// while it waits: when the next list is due only after a pause (see `list_inner`), it gets
    /// the pause back instead of waiting, and comes back then, leaving the slot to the
    /// creates of its kind meanwhile.
    pub async fn list_current_or_later<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
    ) -> Result<Result<Arc<Vec<R>>, Duration>, ApiCallError> {
        self.list_inner(account, client, max_age, true, true)
            .await
            .map(|l| l.map(|(list, _)| list))
    }

    async fn list_inner<R: RemoteResource + Clone>(
        &self,
        account: &str,
        client: &AccountClient,
        max_age: Duration,
        current: bool,
        defer: bool,
    ) -> Result<Result<(Arc<Vec<R>>, Instant), Duration>, ApiCallError> {
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
        // A reader needs a list asked after the changes known when it came (those that woke
        // it); changes made while it waits wake readers of their own. Taken live instead, every
        // change during a list call (a busy account's calls wait in its rate limiter) would
        // send each waiter on to a list of its own, one after another.
        let need = current.then(|| *lock(&slot.outdated_since)).flatten();
        let outdated = |asked: Instant| need.is_some_and(|s| asked < s);
        if current {
            // Known to be out of date: objects that ask at about the same time (a network for
            // each workspace that changed) share one list made a moment after the last one
            // instead of making one each. The wait is outside the lock, so that readers that do
            // not need current state (a name lookup before a create) are not held.
            let last = *lock(&slot.last_asked);
            if let Some(last) = last.filter(|l| outdated(*l)) {
                let pause = self.settings.busy_poll_interval.min(Duration::from_secs(4)) / 2;
                let left = (last + pause).saturating_duration_since(Instant::now());
                if defer && !left.is_zero() {
                    return Ok(Err(left));
                }
                tokio::time::sleep(left).await;
            }
        }
        let mut guard = slot.list.lock().await;
        if let Some(Listed { at, asked, items }) = guard.as_ref()
            && at.elapsed() <= max_age
            && !(current && outdated(*asked))
            && let Ok(v) = items.clone().downcast::<Vec<R>>()
        {
            return Ok(Ok((v, *asked)));
        }
        let asked = Instant::now();
        *lock(&slot.last_asked) = Some(asked);
        let fresh = Arc::new(client.list::<R>().await?);
        *guard = Some(Listed {
            at: Instant::now(),
            asked,
            items: fresh.clone(),
        });
        Ok(Ok((fresh, asked)))
    }

    /// Marks the list of a kind out of date (its objects changed through another kind's): the
    /// next [`Context::list_current`] within its max age gets a new list, shared with the readers
    /// around it.
    pub fn expire<R: RemoteResource>(&self, account: &str) {
        if let Some(slot) = lock(&self.lists).get(&(account.to_string(), R::COLLECTION)) {
            *lock(&slot.outdated_since) = Some(Instant::now());
        }
    }

    /// Adds an object this replica just created to the shared list of its kind, if one is
    /// cached, so that the next create in the account does not list again to see it. The list is
    /// grown in place when no reader holds it (readers let go once they have planned); only a
    /// list a reader still holds is copied, so that the reader's view does not change under it.
    pub async fn remember<R: RemoteResource + Clone>(&self, account: &str, created: &R) {
        let slot = lock(&self.lists)
            .get(&(account.to_string(), R::COLLECTION))
            .cloned();
        let Some(slot) = slot else {
            return;
        };
        let mut guard = slot.list.lock().await;
        let Some(listed) = guard.as_mut() else {
            return;
        };
        // Taken out of the slot, so that the slot's own reference does not count as a reader.
        let items = std::mem::replace(&mut listed.items, Arc::new(()));
        match items.downcast::<Vec<R>>() {
            Ok(mut list) => {
                if !list.iter().any(|r| r.id() == created.id()) {
                    match Arc::get_mut(&mut list) {
                        Some(own) => own.push(created.clone()),
                        None => {
                            let mut copy = Vec::with_capacity(list.len() + 1);
                            copy.extend(list.iter().cloned());
                            copy.push(created.clone());
                            list = Arc::new(copy);
                        }
                    }
                }
                listed.items = list;
            }
            // Not a list of this kind: no use to anyone.
            Err(_) => *guard = None,
        }
    }

    /// Forgets the list of a kind (after a create or delete).
    pub fn invalidate<R: RemoteResource>(&self, account: &str) {
        lock(&self.lists).remove(&(account.to_string(), R::COLLECTION));
        self.track();
    }

    /// Records a failure and returns the backoff before the next attempt (see `error_backoff`).
    /// `floor` (a `Retry-After`) is honoured even beyond `max_backoff`.
    pub fn backoff(&self, key: &ObjKey, floor: Option<Duration>) -> Duration {
        let max = self.settings.max_backoff;
        let next = lock(&self.failures)
            .entry(key.clone())
            .or_insert_with(|| error_backoff(max))
            .next();
        self.track();
        let delay = next.unwrap_or(max).min(max);
        crate::bounds::requeue(delay.max(floor.unwrap_or_default()))
    }

    /// Forgets the backoff after a success.
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

    /// The last reachability check of a workspace.
    pub fn reach_memo(&self, key: &ObjKey) -> Option<plan::reach::ReachMemo> {
        lock(&self.reach).get(key).cloned()
    }

    /// Keeps a workspace's last reachability check (`None`: forget it, the workspace is not
    /// RUNNING).
    pub fn set_reach_memo(&self, key: &ObjKey, memo: Option<plan::reach::ReachMemo>) {
        let changed = match memo {
            Some(m) => lock(&self.reach).insert(key.clone(), m).is_none(),
            None => lock(&self.reach).remove(key).is_some(),
        };
        if changed {
            self.track();
        }
    }

    /// Forgets everything kept about an object (it is gone).
    pub fn forget(&self, key: &ObjKey) {
        lock(&self.failures).remove(key);
        lock(&self.reach).remove(key);
        lock(&self.polled).remove(key);
        lock(&self.gates).remove(key);
        lock(&self.propagation).remove(key);
        lock(&self.creating).retain(|_, (holder, _)| holder != key);
        lock(&self.deletes).remove(key);
        self.metrics.readiness(key, None, None);
        self.track();
    }

    /// Records that an object is at rest on a remote object with this digest (`None`: it is not
    /// at rest, and reconciles at its own pace).
    pub fn set_polled(&self, key: &ObjKey, digest: Option<u64>) {
        let mut polled = lock(&self.polled);
        match digest {
            Some(d) => {
                polled.insert(key.clone(), d);
            }
            None => {
                polled.remove(key);
            }
        }
        drop(polled);
        self.track();
    }

    /// The digest an object at rest last settled on.
    pub fn polled(&self, key: &ObjKey) -> Option<u64> {
        lock(&self.polled).get(key).copied()
    }

    /// Forgets every object of `kind` (in `namespace`, or in every namespace) that `live` does not
    /// know: the backstop for objects that went without a reconcile seeing them go.
    pub fn sweep(&self, kind: &str, namespace: Option<&str>, live: impl Fn(&ObjKey) -> bool) {
        let stale = |k: &ObjKey| {
            k.kind == kind && namespace.is_none_or(|ns| &*k.namespace == ns) && !live(k)
        };
        let mut gone: Vec<ObjKey> = Vec::new();
        gone.extend(lock(&self.failures).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.gates).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.propagation).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.reach).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.polled).keys().filter(|k| stale(k)).cloned());
        gone.extend(lock(&self.deletes).keys().filter(|k| stale(k)).cloned());
        gone.extend(
            lock(&self.creating)
                .values()
                .map(|(k, _)| k)
                .filter(|k| stale(k))
                .cloned(),
        );
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
            ("writes", lock(&self.writes).len()),
            ("deletes", lock(&self.deletes).len()),
            ("creating", lock(&self.creating).len()),
            ("propagation", lock(&self.propagation).len()),
            ("reach", lock(&self.reach).len()),
            ("polled", lock(&self.polled).len()),
            (
                "refs",
                lock(&self.caches).iter().map(|c| c.index().len()).sum(),
            ),
            ("accounts", lock(&self.accounts).len()),
            ("lists", lock(&self.lists).len()),
            ("readiness", self.metrics.readiness_len()),
            // Shared strings: at most twice those held (see `intern`), so not zero at once.
            ("names", crate::intern::len()),
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
    //! One watch per kind per scope feeds a store that every controller reads, and a fan-out that
    //! wakes exactly the objects an event concerns: the object itself, and, when what others see
    //! of it changed (readiness, ID, deletion, references), its dependents, its dependencies and
    //! its account. Wakes go through unbounded channels, so no controller can hold a watch back.

    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::{Arc, Mutex};

    use futures::{FutureExt, Stream, StreamExt};
    use k8s_openapi::api::core::v1::Secret as KubeSecret;
    use kube::api::Api;
    use kube::runtime::controller::{self, Action, Controller};
    use kube::runtime::reflector::{self, ObjectRef, Store};
    use kube::runtime::{WatchStreamExt, watcher};
    use kube::{Resource, ResourceExt};
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::cache::{KindCache, ScopeCaches, Target};
    use super::gate::{Gate, Wake};
    use super::managed::{Error, Managed, reconcile};
    use super::{Context, ObjKey, RemoteResource, lock};
    use crate::crd::*;
    use crate::intern::{Name, intern};

    type Shutdown = futures::future::Shared<
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>,
    >;
    type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

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
        let key = ObjKey::of(&*obj);
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
        caches: Arc<ScopeCaches>,
        store: Store<K>,
    ) {
        let kind = K::kind(&()).into_owned();
        let every = ctx.settings.sweep_interval;
        let ns = caches.namespace.clone();
        loop {
            tokio::time::sleep(every).await;
            caches.ready().await;
            ctx.sweep(&kind, ns.as_deref(), |k| {
                store
                    .get(&ObjectRef::new(&k.name).within(&k.namespace))
                    .is_some_and(|o| o.meta().uid.as_deref().map(crate::intern::uid) == Some(k.uid))
            });
        }
    }

    /// `(kind, namespace, name)` of an object whose view the fan-out remembers.
    type Seen = (std::borrow::Cow<'static, str>, Name, Name);

    /// Routes wakes to the controllers of one scope.
    struct Fanout {
        ctx: Arc<Context>,
        caches: Arc<ScopeCaches>,
        /// One channel per kind, by kind name.
        senders: HashMap<String, UnboundedSender<Wake>>,
        /// What other objects last saw of each object (a hash), so that an event that changes
        /// nothing they depend on wakes only the object itself.
        seen: Mutex<HashMap<Seen, (u64, u64)>>,
        /// Namespaces where a held Secret may no longer be named by any account.
        unheld: UnboundedSender<String>,
    }

    impl Fanout {
        fn wake(&self, kind: &str, ns: &str, name: &str) {
            if let Some(tx) = self.senders.get(kind) {
                let _ = tx.send((intern(ns), intern(name)));
            }
        }

        /// Wakes `Kind/name` entries as returned by the caches.
        fn wake_all(&self, ns: &str, objects: &[String]) {
            for o in objects {
                if let Some((kind, name)) = o.split_once('/') {
                    self.wake(kind, ns, name);
                }
            }
        }

        /// Records what others see of an object: what its dependents read (`view`) and what
        /// its dependencies and account wait on (`shape`). Returns which of the two changed.
        fn changed(
            &self,
            kind: std::borrow::Cow<'static, str>,
            ns: &str,
            name: &str,
            view: impl Hash,
            shape: impl Hash,
        ) -> (bool, bool) {
            let hash = |v: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v(&mut h);
                h.finish()
            };
            let now = (hash(&|h| view.hash(h)), hash(&|h| shape.hash(h)));
            let key = (kind, intern(ns), intern(name));
            match lock(&self.seen).insert(key, now) {
                Some(was) => (was.0 != now.0, was.1 != now.1),
                None => (true, true),
            }
        }

        fn forget(&self, kind: std::borrow::Cow<'static, str>, ns: &str, name: &str) {
            lock(&self.seen).remove(&(kind, intern(ns), intern(name)));
        }

        /// Wakes the objects that name a managed object (they wait for it to be Ready).
        fn wake_dependents<K: Managed>(&self, o: &K) {
            let ns = o.namespace().unwrap_or_default();
            if let Some(dk) = K::dep_kind() {
                self.wake_all(&ns, &self.caches.referrers(&ns, dk, &o.name_any()));
            }
        }

        /// Wakes what a managed object names and its account(s): they wait, to be deleted, for
        /// it to go or to stop naming them.
        fn wake_dependencies<K: Managed>(&self, o: &K) {
            let ns = o.namespace().unwrap_or_default();
            for d in o.dependencies() {
                if let Some(dep) = d.reference.name.as_deref() {
                    self.wake(&d.kind.kind(), &ns, dep);
                }
            }
            self.wake_deleting_account(&ns, &o.management().account_ref.name);
            if let Some(bound) = o
                .current_status()
                .and_then(|s| K::common_ref(s).account_name.clone())
            {
                self.wake_deleting_account(&ns, &bound);
            }
        }

        /// Wakes an account that is being deleted (it waits for its users to go). Others are
        /// not woken by their users: each account reconcile checks the credentials with a call.
        fn wake_deleting_account(&self, ns: &str, name: &str) {
            let key = ObjectRef::<DatabricksAccount>::new(name).within(ns);
            if self
                .caches
                .accounts
                .get(&key)
                .is_some_and(|a| a.meta().deletion_timestamp.is_some())
            {
                self.wake("DatabricksAccount", ns, name);
            }
        }

        fn on_managed<K: Managed>(&self, event: &watcher::Event<K>) {
            let kind = K::kind(&());
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    let ns = o.namespace().unwrap_or_default();
                    let name = o.name_any();
                    self.caches
                        .index()
                        .set(kind.clone(), &ns, &name, Target::of(o));
                    self.wake(&kind, &ns, &name);
                    let status = o.current_status();
                    let ready = status.and_then(|s| K::common_ref(s).condition("Ready"));
                    // What dependents read: readiness and its reason (not the message, which
                    // changes at every step of a provisioning), the ID and the account.
                    let view = (
                        ready.map(|c| (c.status.clone(), c.reason.clone())),
                        status.and_then(K::remote_id),
                        status.and_then(|s| K::common_ref(s).account_name.clone()),
                        o.management().account_ref.name.clone(),
                    );
                    // A network's remote state follows the workspace that uses it (VALID once
                    // it runs), so dependencies also look again when a dependent gets an ID or
                    // becomes Ready; not at every message of its provisioning.
                    let shape = (
                        o.meta().deletion_timestamp.is_some(),
                        o.meta().generation,
                        status.and_then(|s| K::common_ref(s).account_name.clone()),
                        status.and_then(K::remote_id),
                        ready.map(|c| c.status.clone()),
                    );
                    let (view_changed, shape_changed) =
                        self.changed(kind.clone(), &ns, &name, view, shape);
                    if view_changed {
                        self.wake_dependents(o);
                    }
                    if shape_changed {
                        self.wake_dependencies(o);
                    }
                }
                watcher::Event::Delete(o) => {
                    let ns = o.namespace().unwrap_or_default();
                    self.caches.index().remove(kind.clone(), &ns, &o.name_any());
                    self.ctx.track();
                    self.forget(kind.clone(), &ns, &o.name_any());
                    self.wake_dependents(o);
                    self.wake_dependencies(o);
                }
                // A relist replaces the store without delete events for what went meanwhile.
                watcher::Event::InitDone => {
                    if let Some(cache) = self.caches.kind(&kind) {
                        self.caches
                            .index()
                            .retain(&kind, |ns, name| cache.contains(ns, name));
                    }
                }
                watcher::Event::Init => {}
            }
        }

        fn on_account(&self, event: &watcher::Event<DatabricksAccount>) {
            const KIND: &str = "DatabricksAccount";
            match event {
                watcher::Event::Apply(a) | watcher::Event::InitApply(a) => {
                    let ns = a.namespace().unwrap_or_default();
                    let name = a.name_any();
                    self.wake(KIND, &ns, &name);
                    let ready = a
                        .status
                        .as_ref()
                        .and_then(|s| s.common.condition("Ready"))
                        .map(|c| (c.status.clone(), c.message.clone()));
                    let view = (
                        ready,
                        a.meta().deletion_timestamp.is_some(),
                        a.meta().generation,
                    );
                    if self.changed(KIND.into(), &ns, &name, view, ()).0 {
                        self.wake_all(&ns, &self.caches.account_users(&ns, &name));
                    }
                }
                watcher::Event::Delete(a) => {
                    let ns = a.namespace().unwrap_or_default();
                    let name = a.name_any();
                    self.forget(KIND.into(), &ns, &name);
                    self.wake_all(&ns, &self.caches.account_users(&ns, &name));
                    if a.spec.auth.secret_name().is_some() {
                        let _ = self.unheld.send(ns);
                    }
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
        }

        fn on_secret(&self, event: &watcher::Event<KubeSecret>) {
            let (watcher::Event::Apply(s)
            | watcher::Event::InitApply(s)
            | watcher::Event::Delete(s)) = event
            else {
                return;
            };
            let ns = s.namespace();
            let name = s.name_any();
            let mut named = false;
            for a in self.caches.accounts.state() {
                if a.namespace() == ns && a.spec.auth.secret_name() == Some(name.as_str()) {
                    named = true;
                    self.wake(
                        "DatabricksAccount",
                        &a.namespace().unwrap_or_default(),
                        &a.name_any(),
                    );
                }
            }
            if !named
                && !matches!(event, watcher::Event::Delete(_))
                && s.finalizers()
                    .iter()
                    .any(|f| f == crate::crd::SECRET_FINALIZER)
            {
                let _ = self.unheld.send(ns.unwrap_or_default());
            }
        }
    }

    /// An object at rest, its Databricks ID and the digest of the remote object it settled on.
    type AtRest = (ObjKey, String, u64);

    /// A kind's poller: at each poll interval, one list per account (the shared one, which the
    /// reconciles of the same interval reuse) is compared with what each object at rest last
    /// settled on, and only the objects whose remote object changed or went are woken. Objects
    /// at rest are otherwise reconciled every [`RESYNC_POLLS`] intervals, so that a steady state
    /// of N objects costs one list per kind and account per interval and no reconcile of each.
    async fn poller<K: Managed>(
        ctx: Arc<Context>,
        caches: Arc<ScopeCaches>,
        store: Store<K>,
        tx: UnboundedSender<Wake>,
    ) {
        let every = ctx.settings.poll_interval;
        loop {
            tokio::time::sleep(every).await;
            caches.ready().await;
            // By account: each object at rest, its Databricks ID and the digest it settled on.
            let mut by_account: HashMap<String, Vec<AtRest>> = HashMap::new();
            for o in store.state() {
                let key = ObjKey::of(&*o);
                let Some(seen) = ctx.polled(&key) else {
                    continue;
                };
                let Some(status) = o.current_status() else {
                    continue;
                };
                let Some(id) = K::remote_id(status) else {
                    continue;
                };
                let account = K::common_ref(status)
                    .account_name
                    .as_deref()
                    .unwrap_or(&o.management().account_ref.name);
                by_account
                    .entry(format!("{}/{account}", key.namespace))
                    .or_default()
                    .push((key, id, seen));
            }
            for (account, objects) in by_account {
                let Some(entry) = ctx.account(&account).filter(|a| a.ready) else {
                    continue;
                };
                // Half the interval: a list the reconciles made a moment ago serves, one from
                // the last tick does not.
                let listed = match ctx
                    .list_current::<K::Remote>(&account, &entry.client, every / 2)
                    .await
                {
                    Ok(l) => l,
                    // The account's own checks report it; the objects keep their state.
                    Err(e) => {
                        tracing::debug!(%account, kind = %K::kind(&()), error = %e, "poll list failed");
                        continue;
                    }
                };
                let digests: HashMap<String, u64> = listed
                    .iter()
                    .map(|r| (RemoteResource::id(r), super::digest(r)))
                    .collect();
                for (key, id, seen) in objects {
                    if digests.get(&id) != Some(&seen) {
                        let _ = tx.send((key.namespace, key.name));
                    }
                }
            }
        }
    }

    /// Releases held Secrets that no account names, for each namespace the fan-out reports,
    /// once the caches have listed (before that, "no account names it" could be wrong).
    async fn release_secrets(
        ctx: Arc<Context>,
        caches: Arc<ScopeCaches>,
        mut namespaces: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        caches.ready().await;
        while let Some(ns) = namespaces.recv().await {
            let mut batch = std::collections::BTreeSet::from([ns]);
            while let Ok(more) = namespaces.try_recv() {
                batch.insert(more);
            }
            for ns in batch {
                super::account::release_unused_secrets(&ctx, &ns).await;
            }
        }
    }

    /// What the caches keep of an object's metadata: what reconciles read. Managed fields,
    /// labels and other tools' annotations (kubectl's last-applied copy of the whole object,
    /// Argo CD's and Helm's marks) are dropped; the operator's own annotations, the finalizers
    /// and the identity stay. Writes never send the cached object back (status is applied, the
    /// finalizers are patched), so nothing dropped here is lost on the server.
    pub(super) fn trim_meta(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
        meta.managed_fields = None;
        meta.labels = None;
        if let Some(a) = meta.annotations.as_mut() {
            a.retain(|k, _| k.starts_with(ANNOTATION_PREFIX));
            if a.is_empty() {
                meta.annotations = None;
            }
        }
        if let Some(f) = meta.finalizers.as_mut() {
            f.shrink_to_fit();
        }
    }

    /// [`trim_meta`], and a managed object's conditions at their exact length (a decoded list
    /// of two or three has room for four).
    pub(super) fn trim_managed<K: Managed>(o: &mut K) {
        trim_meta(o.meta_mut());
        if let Some(s) = o.status_mut() {
            K::common(s).conditions.shrink_to_fit();
        }
    }

    /// [`trim_meta`] for the other kinds.
    fn trim<K: Resource>(o: &mut K) {
        trim_meta(o.meta_mut());
    }

    /// Runs one kind's watch into its store, handing each event to `on_event` after the store
    /// has applied it. `trim` drops from each object what the caches need not keep.
    fn watch<K, F>(
        client: &kube::Client,
        ns: Option<&str>,
        config: watcher::Config,
        writer: reflector::store::Writer<K>,
        listed: &Arc<tokio::sync::watch::Sender<usize>>,
        trim: fn(&mut K),
        on_event: F,
    ) -> Driver
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
        F: Fn(&watcher::Event<K>) + Send + 'static,
    {
        let events = watcher(api::<K>(client, ns), config)
            .default_backoff()
            .modify(trim);
        let listed = listed.clone();
        let mut first_list = true;
        reflector::reflector(writer, events)
            .for_each(move |ev| {
                if let Ok(ev) = ev {
                    if first_list && matches!(ev, watcher::Event::InitDone) {
                        first_list = false;
                        listed.send_modify(|n| *n += 1);
                    }
                    on_event(&ev);
                }
                futures::future::ready(())
            })
            .boxed()
    }

    /// The wakes of one kind as a stream of references.
    fn wakes<K: Resource<DynamicType = ()>>(
        rx: UnboundedReceiver<Wake>,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
        futures::stream::unfold(rx, |mut rx| async move {
            let (ns, name) = rx.recv().await?;
            Some((ObjectRef::new(&name).within(&ns), rx))
        })
    }

    /// A kind's wakes through its [`Gate`]: drained from the channel at once into the gate's
    /// queue, and handed to the controller a few at a time.
    fn gated<K: Resource<DynamicType = ()>>(
        rx: UnboundedReceiver<Wake>,
        gate: Arc<Gate>,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
        futures::stream::unfold((rx, gate, true), |(mut rx, gate, mut open)| async move {
            loop {
                while let Ok(w) = rx.try_recv() {
                    gate.push(w);
                }
                if let Some((ns, name)) = gate.take() {
                    return Some((ObjectRef::new(&name).within(&ns), (rx, gate, open)));
                }
                if !open && gate.len().0 == 0 {
                    return None;
                }
                tokio::select! {
                    w = rx.recv(), if open => match w {
                        Some(w) => gate.push(w),
                        None => open = false,
                    },
                    () = gate.room() => {}
                }
            }
        })
    }

    fn controller<K: Managed>(
        ctx: Arc<Context>,
        store: Store<K>,
        rx: UnboundedReceiver<Wake>,
        shutdown: Shutdown,
    ) -> Driver {
        // Twice the concurrency: a slot that frees finds the next request already there.
        let gate = Arc::new(Gate::new(2 * usize::from(ctx.settings.concurrency)));
        let starts = gate.clone();
        let dropped = gate.clone();
        Controller::for_stream(futures::stream::empty(), store)
            .with_config(controller::Config::default().concurrency(ctx.settings.concurrency))
            .reconcile_on(gated::<K>(rx, gate))
            .graceful_shutdown_on(shutdown)
            .run(
                move |obj, ctx: Arc<Context>| {
                    let meta = obj.meta();
                    starts.started(
                        meta.namespace.as_deref().unwrap_or_default(),
                        meta.name.as_deref().unwrap_or_default(),
                    );
                    measured::<K, _>(ctx.clone(), reconcile::<K>(obj, ctx))
                },
                error_policy::<K>,
                ctx,
            )
            .for_each(move |result| {
                // A request whose object is no longer cached never starts.
                if let Err(controller::Error::ObjectNotFound(r)) = result {
                    dropped.started(r.namespace.as_deref().unwrap_or_default(), &r.name);
                }
                futures::future::ready(())
            })
            .boxed()
    }

    fn account_controller(
        ctx: Arc<Context>,
        store: Store<DatabricksAccount>,
        rx: UnboundedReceiver<Wake>,
        shutdown: Shutdown,
    ) -> Driver {
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
        Controller::for_stream(futures::stream::empty(), store)
            .with_config(controller::Config::default().concurrency(ctx.settings.concurrency))
            .reconcile_on(wakes::<DatabricksAccount>(rx))
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
            .for_each(|_| futures::future::ready(()))
            .boxed()
    }

    /// A managed kind's store, watch, controller and sweeper, wired to the scope's fan-out.
    struct KindParts<K: Managed> {
        store: Store<K>,
        writer: reflector::store::Writer<K>,
        tx: UnboundedSender<Wake>,
        rx: UnboundedReceiver<Wake>,
    }

    /// What the scope does with each managed kind, whatever the kind.
    trait KindRunner: Send {
        /// The kind's cache, for every controller to read.
        fn cache(&self) -> Arc<dyn KindCache>;
        /// The kind and the channel its wakes go through.
        fn sender(&self) -> (String, UnboundedSender<Wake>);
        /// Its watch, controller and sweeper.
        fn start(
            self: Box<Self>,
            ctx: &Arc<Context>,
            fanout: &Arc<Fanout>,
            listed: &Arc<tokio::sync::watch::Sender<usize>>,
            shutdown: &Shutdown,
        ) -> Vec<Driver>;
    }

    impl<K: Managed> KindParts<K> {
        fn boxed() -> Box<dyn KindRunner> {
            Box::new(Self::new())
        }

        fn new() -> Self {
            let (store, writer) = reflector::store::<K>();
            let (tx, rx) = unbounded_channel();
            Self {
                store,
                writer,
                tx,
                rx,
            }
        }
    }

    impl<K: Managed> KindRunner for KindParts<K> {
        fn cache(&self) -> Arc<dyn KindCache> {
            Arc::new(self.store.clone())
        }

        fn sender(&self) -> (String, UnboundedSender<Wake>) {
            (K::kind(&()).into_owned(), self.tx.clone())
        }

        fn start(
            self: Box<Self>,
            ctx: &Arc<Context>,
            fanout: &Arc<Fanout>,
            listed: &Arc<tokio::sync::watch::Sender<usize>>,
            shutdown: &Shutdown,
        ) -> Vec<Driver> {
            let f = fanout.clone();
            let caches = fanout.caches.clone();
            vec![
                watch(
                    &ctx.client,
                    caches.namespace.as_deref(),
                    watcher::Config::default(),
                    self.writer,
                    listed,
                    trim_managed::<K>,
                    move |ev| f.on_managed::<K>(ev),
                ),
                controller::<K>(ctx.clone(), self.store.clone(), self.rx, shutdown.clone()),
                poller::<K>(ctx.clone(), caches.clone(), self.store.clone(), self.tx).boxed(),
                sweep::<K>(ctx.clone(), caches, self.store).boxed(),
            ]
        }
    }

    macro_rules! kinds {
        ($m:ident) => {
            $m!(
                DatabricksCredential,
                DatabricksStorageConfig,
                DatabricksKeyConfig,
                DatabricksNetwork,
                DatabricksVpcEndpoint,
                DatabricksPrivateAccessSettings,
                DatabricksNetworkConnectivityConfig,
                DatabricksWorkspace
            )
        };
    }

    fn run_scope(ctx: Arc<Context>, ns: Option<String>, shutdown: Shutdown) -> Driver {
        let client = ctx.client.clone();
        let nsr = ns.as_deref();
        let (accounts, accounts_writer) = reflector::store::<DatabricksAccount>();
        // Only Secrets that opt in are watched, so nothing else is ever read or cached.
        let (secrets, secrets_writer) = reflector::store::<KubeSecret>();
        let (accounts_tx, accounts_rx) = unbounded_channel::<Wake>();
        let (listed, listed_rx) = tokio::sync::watch::channel(0usize);
        let listed = Arc::new(listed);
        macro_rules! parts {
            ($($k:ident),*) => {
                vec![$(KindParts::<$k>::boxed(),)*]
            };
        }
        let kinds: Vec<Box<dyn KindRunner>> = kinds!(parts);
        let caches = Arc::new(ScopeCaches {
            namespace: ns.clone(),
            accounts: accounts.clone(),
            secrets,
            kinds: kinds.iter().map(|k| k.cache()).collect(),
            listed: listed_rx,
            refs: Mutex::default(),
        });
        ctx.register_scope(caches.clone());
        let mut senders: HashMap<String, UnboundedSender<Wake>> =
            kinds.iter().map(|k| k.sender()).collect();
        senders.insert("DatabricksAccount".into(), accounts_tx);
        let (unheld, unheld_rx) = unbounded_channel::<String>();
        let fanout = Arc::new(Fanout {
            ctx: ctx.clone(),
            caches,
            senders,
            seen: Mutex::default(),
            unheld,
        });
        let mut drivers: Vec<Driver> = Vec::new();
        let f = fanout.clone();
        drivers.push(watch(
            &client,
            nsr,
            watcher::Config::default(),
            accounts_writer,
            &listed,
            trim::<DatabricksAccount>,
            move |ev| f.on_account(ev),
        ));
        let f = fanout.clone();
        drivers.push(watch(
            &client,
            nsr,
            watcher::Config::default().labels(&format!("{SECRET_LABEL}=true")),
            secrets_writer,
            &listed,
            trim::<KubeSecret>,
            move |ev| f.on_secret(ev),
        ));
        drivers.push(account_controller(
            ctx.clone(),
            accounts.clone(),
            accounts_rx,
            shutdown.clone(),
        ));
        drivers
            .push(sweep::<DatabricksAccount>(ctx.clone(), fanout.caches.clone(), accounts).boxed());
        drivers.push(release_secrets(ctx.clone(), fanout.caches.clone(), unheld_rx).boxed());
        for kind in kinds {
            drivers.extend(kind.start(&ctx, &fanout, &listed, &shutdown));
        }
        async move {
            // The controllers end on shutdown; the watches and sweepers run until then.
            let all = futures::future::join_all(drivers);
            tokio::select! {
                _ = all => {}
                () = shutdown => {}
            }
        }
        .boxed()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A context whose Kubernetes client reaches nothing: for what needs no cluster.
    fn offline_context() -> Arc<Context> {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("no cluster"))
        });
        Context::new(
            kube::Client::new(service, "default"),
            Settings::default(),
            "test".into(),
        )
    }

    fn credential(id: &str) -> crate::databricks::models::Credential {
        serde_json::from_value(serde_json::json!({"credentials_id": id, "credentials_name": id}))
            .unwrap()
    }

    /// The caches keep what reconciles read and nothing else: other tools' labels and
    /// annotations go, the operator's annotations, finalizers, spec and status stay, and the
    /// conditions take no spare room.
    #[test]
    fn the_caches_keep_what_reconciles_read() {
        use crate::crd::{
            ANNOTATION_PREFIX, DatabricksCredential, FINALIZER, PAUSED_ANNOTATION,
            POLL_INTERVAL_ANNOTATION,
        };
        assert!(PAUSED_ANNOTATION.starts_with(ANNOTATION_PREFIX));
        assert!(POLL_INTERVAL_ANNOTATION.starts_with(ANNOTATION_PREFIX));
        let condition = |t: &str| {
            serde_json::json!({"type": t, "status": "True", "reason": "Available",
                "message": "ok", "lastTransitionTime": "2026-11-30T00:00:00Z"})
        };
        let mut o: DatabricksCredential = serde_json::from_value(serde_json::json!({
            "apiVersion": "account.databricks-operator.dev/v1alpha1",
            "kind": "DatabricksCredential",
            "metadata": {
                "name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app.kubernetes.io/instance": "team-a"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}",
                    "argocd.argoproj.io/tracking-id": "team-a:x",
                    PAUSED_ANNOTATION: "true",
                },
                "finalizers": [FINALIZER],
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"accountRef": {"name": "acct"}, "roleArn": "arn:aws:iam::123456789012:role/r"},
            "status": {"credentialsId": "id-1", "conditions": [condition("Ready"), condition("Synced")]},
        }))
        .unwrap();
        let before = o.clone();
        runner::trim_managed(&mut o);
        assert_eq!(o.metadata.labels, None);
        assert_eq!(o.metadata.managed_fields, None);
        assert_eq!(
            o.metadata
                .annotations
                .as_ref()
                .map(|a| a.keys().cloned().collect::<Vec<_>>()),
            Some(vec![PAUSED_ANNOTATION.to_string()])
        );
        assert_eq!(o.metadata.finalizers, before.metadata.finalizers);
        assert_eq!(o.metadata.uid, before.metadata.uid);
        assert_eq!(
            o.metadata.resource_version,
            before.metadata.resource_version
        );
        assert_eq!(o.spec, before.spec);
        assert_eq!(o.status, before.status);
        let conditions = &o.status.as_ref().unwrap().common.conditions;
        assert_eq!(conditions.capacity(), 2);
        // Without annotations of its own, an object keeps none.
        let mut bare = before.clone();
        bare.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        runner::trim_managed(&mut bare);
        assert_eq!(bare.metadata.annotations, None);
    }

    /// A reconcile that needs a list newer than the last one, asked for a moment ago, is told
    /// to come back after the pause instead of waiting in its slot; one that can use the cached
    /// list gets it at once. Neither calls the API (the client points nowhere).
    #[tokio::test]
    async fn a_reader_of_an_outdated_list_comes_back_after_the_pause() {
        use crate::databricks::models::Credential;
        use crate::databricks::{AccountConfig, Credentials};
        let ctx = offline_context();
        let client = AccountClient::new(AccountConfig::new(
            "https://127.0.0.1:9",
            "00000000-0000-0000-0000-000000000000",
            Credentials::OAuthM2M {
                client_id: "id".into(),
                client_secret: "secret".to_string().into(),
            },
        ))
        .unwrap();
        let slot = CacheSlot::default();
        let asked = Instant::now();
        *slot.list.lock().await = Some(Listed {
            at: asked,
            asked,
            items: Arc::new(vec![credential("a")]),
        });
        *lock(&slot.last_asked) = Some(asked);
        lock(&ctx.lists).insert(("ns/default".into(), Credential::COLLECTION), slot.clone());
        let age = Duration::from_secs(30);

        let fresh = ctx
            .list_current_or_later::<Credential>("ns/default", &client, age)
            .await
            .unwrap();
        assert_eq!(fresh.unwrap().len(), 1, "not out of date: the cached list");

        // A change after the list was asked for.
        tokio::time::sleep(Duration::from_millis(5)).await;
        ctx.expire::<Credential>("ns/default");
        let later = ctx
            .list_current_or_later::<Credential>("ns/default", &client, age)
            .await
            .unwrap();
        let pause = ctx.settings.busy_poll_interval.min(Duration::from_secs(4)) / 2;
        match later {
            Err(left) => assert!(left <= pause && left > pause / 2, "{left:?}"),
            Ok(l) => panic!("an out-of-date list was used: {l:?}"),
        }
    }

    /// What a create adds to the shared list: grown in place while no reader holds the list, a
    /// copy while one does (whose view stays as it was), and never twice.
    #[tokio::test]
    async fn a_created_object_joins_the_shared_list_without_copying_it_needlessly() {
        use crate::databricks::models::Credential;
        let ctx = offline_context();
        let slot = CacheSlot::default();
        *slot.list.lock().await = Some(Listed {
            at: Instant::now(),
            asked: Instant::now(),
            items: Arc::new(vec![credential("a")]),
        });
        lock(&ctx.lists).insert(("ns/default".into(), Credential::COLLECTION), slot.clone());
        let snapshot = || async {
            let guard = slot.list.lock().await;
            let items = guard.as_ref().unwrap().items.clone();
            items.downcast::<Vec<Credential>>().unwrap()
        };
        let ids = |l: &[Credential]| -> Vec<String> {
            l.iter().map(|c| c.credentials_id.clone()).collect()
        };

        let reader = snapshot().await;
        ctx.remember("ns/default", &credential("b")).await;
        assert_eq!(ids(&reader), ["a"], "a reader's view does not change");
        let copied = snapshot().await;
        assert_eq!(ids(&copied), ["a", "b"]);
        assert!(!Arc::ptr_eq(&reader, &copied));

        drop((reader, copied));
        let before = Arc::as_ptr(&snapshot().await);
        ctx.remember("ns/default", &credential("c")).await;
        ctx.remember("ns/default", &credential("c")).await;
        let after = snapshot().await;
        assert_eq!(ids(&after), ["a", "b", "c"]);
        assert_eq!(Arc::as_ptr(&after), before, "grown in place");

        // Another account's list, or none cached: nothing to add to.
        ctx.remember("ns/other", &credential("d")).await;
        assert!(!lock(&ctx.lists).contains_key(&("ns/other".into(), Credential::COLLECTION)));
    }

    /// The poller's digest tells a changed remote object from the same one, field by field.
    #[test]
    fn digest_follows_every_field() {
        use crate::databricks::models::{Network, VpcStatus};
        let a = Network {
            network_id: "n1".into(),
            vpc_status: Some(VpcStatus::Unattached),
            ..Network::default()
        };
        let mut b = a.clone();
        assert_eq!(digest(&a), digest(&b));
        b.vpc_status = Some(VpcStatus::Valid);
        assert_ne!(digest(&a), digest(&b));
        b.vpc_status = a.vpc_status.clone();
        b.workspace_id = Some(7);
        assert_ne!(digest(&a), digest(&b));
    }

    /// An object that keeps failing is retried less and less often, never sooner than the
    /// doubling from 0.8 s, never later than the configured maximum, and never gives up.
    #[test]
    fn error_backoff_doubles_with_jitter_up_to_the_maximum() {
        // 0.8, 1.6, 3.2, 6.4, 12.8 and 25.6 s stay under half the maximum; then the cap.
        let max = Duration::from_secs(60);
        for _ in 0..200 {
            let delays: Vec<Duration> = error_backoff(max).take(20).collect();
            assert_eq!(delays.len(), 20);
            for (i, d) in delays.iter().take(6).enumerate() {
                let low = Duration::from_millis(800) * 2u32.pow(u32::try_from(i).unwrap());
                assert!(*d >= low && *d <= low * 2, "attempt {i}: {d:?}");
            }
            for d in &delays[6..] {
                assert!(*d >= max / 2 && *d <= max, "{d:?}");
            }
        }
    }
}
