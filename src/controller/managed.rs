//! The reconcile loop every managed kind shares: dereference, observe, create exactly once,
//! update, report, and delete in dependency order.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::plan::{
    self, AccountState, Act, Change, DeletePlan, Facts, Observed, Plan, Precheck, Update, Wait,
};
use super::{Context, ObjKey};
use crate::bounds;
use crate::crd::{
    CommonStatus, DependencyRef, FIELD_MANAGER, FINALIZER, Management, ManagementPolicy,
    PAUSED_ANNOTATION, POLL_INTERVAL_ANNOTATION, PendingCreate, Reason, SECRET_LABEL, SentUpdate,
};
use crate::databricks::models::Resource as RemoteResource;
use crate::databricks::{AccountClient, Error as ApiCallError};

/// Errors that end a reconcile early (Kubernetes API failures); the controller retries them with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A status could not be serialized.
    #[error("serializing status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Whether the write lost a race with a newer version of the object (retry at once).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(e)) if e.code == 409)
    }
}

/// The kinds that can be a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepKind {
    /// `DatabricksCredential`.
    Credential,
    /// `DatabricksStorageConfig`.
    Storage,
    /// `DatabricksKeyConfig`.
    Key,
    /// `DatabricksNetwork`.
    Network,
    /// `DatabricksVpcEndpoint`.
    VpcEndpoint,
    /// `DatabricksPrivateAccessSettings`.
    PrivateAccess,
    /// `DatabricksNetworkConnectivityConfig`.
    Ncc,
}

impl DepKind {
    /// Kind name, as the kind's type declares it (so it is written once, in `crd`).
    pub fn kind(self) -> std::borrow::Cow<'static, str> {
        use crate::crd::{
            DatabricksCredential, DatabricksKeyConfig, DatabricksNetwork,
            DatabricksNetworkConnectivityConfig, DatabricksPrivateAccessSettings,
            DatabricksStorageConfig, DatabricksVpcEndpoint,
        };
        match self {
            Self::Credential => DatabricksCredential::kind(&()),
            Self::Storage => DatabricksStorageConfig::kind(&()),
            Self::Key => DatabricksKeyConfig::kind(&()),
            Self::Network => DatabricksNetwork::kind(&()),
            Self::VpcEndpoint => DatabricksVpcEndpoint::kind(&()),
            Self::PrivateAccess => DatabricksPrivateAccessSettings::kind(&()),
            Self::Ncc => DatabricksNetworkConnectivityConfig::kind(&()),
        }
    }
}

/// One dependency of an object: which kind, which spec field, and the reference.
#[derive(Clone, Debug)]
pub struct Dep {
    /// The kind referenced.
    pub kind: DepKind,
    /// The spec field, for messages and for [`Resolved`].
    pub field: &'static str,
    /// The reference.
    pub reference: DependencyRef,
    /// The region the referenced object must be in, when only objects of the referrer's region
    /// serve it (checked for references by name, before any API call).
    pub region: Option<String>,
}

/// Databricks IDs of the dependencies, by spec field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved(pub HashMap<&'static str, Vec<String>>);

impl Resolved {
    /// The ID of a single-valued field.
    pub fn one(&self, field: &str) -> Option<String> {
        self.0.get(field).and_then(|v| v.first().cloned())
    }

    /// The IDs of a list field.
    pub fn all(&self, field: &str) -> Vec<String> {
        self.0.get(field).cloned().unwrap_or_default()
    }
}

/// What an observation of the remote object concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Usable now.
    pub ready: bool,
    /// Why (or why not).
    pub reason: Reason,
    /// For a person.
    pub message: String,
    /// Something is in flight: observe again soon.
    pub busy: bool,
}

impl Observation {
    /// Ready and idle.
    pub fn available(message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: Reason::Available,
            message: message.into(),
            busy: false,
        }
    }
}

/// What a kind supplies to the shared reconcile loop.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The API object.
    type Remote: RemoteResource + Clone + Debug + Send + Sync;
    /// The status type.
    type Status: Default + Clone + Debug + PartialEq + Serialize + Send + Sync;

    /// The spec's shared fields.
    fn management(&self) -> &Management;
    /// The current status.
    fn current_status(&self) -> Option<&Self::Status>;
    /// The current status, to change (the caches trim it).
    fn status_mut(&mut self) -> Option<&mut Self::Status>;
    /// The shared part of a status.
    fn common(status: &mut Self::Status) -> &mut CommonStatus;
    /// The shared part of a status, to read.
    fn common_ref(status: &Self::Status) -> &CommonStatus;
    /// The Databricks ID in a status.
    fn remote_id(status: &Self::Status) -> Option<String>;
    /// Sets the Databricks ID in a status.
    fn set_remote_id(status: &mut Self::Status, id: Option<String>);
    /// The dependencies named in the spec.
    fn dependencies(&self) -> Vec<Dep> {
        Vec::new()
    }
    /// The name the object has (or gets) in Databricks.
    fn desired_name(&self) -> String;
    /// Whether Databricks names of this kind identify objects (keys have no name).
    fn named() -> bool {
        true
    }
    /// The create request.
    fn create_request(&self, deps: &Resolved) -> <Self::Remote as RemoteResource>::Create;
    /// Whether a remote object is the one this spec describes (by name, or content for unnamed kinds).
    fn matches(&self, remote: &Self::Remote) -> bool;
    /// Fields the spec changed that the API cannot change in the remote object's current state.
    fn immutable_changes(&self, remote: &Self::Remote, deps: &Resolved) -> Vec<&'static str>;
    /// The change the API can make to bring the remote object to the spec, if any is needed.
    fn desired_update(&self, _remote: &Self::Remote, _deps: &Resolved) -> Option<Update> {
        None
    }
    /// The last update sent, for kinds whose updates show slowly and are followed until they do
    /// (workspaces); see [`plan::follow_update`].
    fn sent_update(_status: &Self::Status) -> Option<&SentUpdate> {
        None
    }
    /// Records the last update sent (kinds that follow their updates).
    fn set_sent_update(_status: &mut Self::Status, _sent: SentUpdate) {}
    /// Why the remote object takes no update in its current state, if it does not (a workspace
    /// that is provisioning).
    fn update_blocked(_remote: &Self::Remote) -> Option<String> {
        None
    }
    /// What Databricks warns about in a usable remote object (a network's validation warnings),
    /// if anything: `Ready` stays true and names it, and a `Warning` event says it when it is new.
    fn warnings(_remote: &Self::Remote) -> Option<String> {
        None
    }
    /// Extra context for a failed remote object (for example a network's error messages).
    fn explain(
        &self,
        _client: &AccountClient,
        _remote: &Self::Remote,
    ) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
    /// Fills the kind's status fields from the remote object and says whether it is usable.
    fn observe(
        &self,
        remote: &Self::Remote,
        deps: &Resolved,
        status: &mut Self::Status,
        host: &str,
        explanation: Option<String>,
    ) -> Observation;
    /// Whether a delete completes only when the object is gone (workspaces).
    fn waits_for_removal() -> bool {
        false
    }
    /// Whether the remote object is already being removed.
    fn removing(_remote: &Self::Remote) -> bool {
        false
    }
    /// The kind as a dependency of others.
    fn dep_kind() -> Option<DepKind>;
    /// The region the object lives in, for kinds whose users must share it.
    fn region(&self) -> Option<String> {
        None
    }
    /// Removes what the remote object holds that its delete would refuse (an NCC's rules),
    /// just before the delete.
    fn before_delete(
        &self,
        _client: &AccountClient,
        _id: &str,
    ) -> impl Future<Output = Result<(), ApiCallError>> + Send {
        async { Ok(()) }
    }
    /// What is wrong with the spec that the schema could not refuse (CEL rules on servers older
    /// than 1.25), as a message for the `InvalidSpec` condition.
    fn spec_problem(&self) -> Option<String> {
        None
    }
    /// Marks out of date the shared lists of kinds whose remote objects change when this one
    /// does (a workspace changes its network's `vpc_status`), so their next observation is fresh.
    fn invalidate_related(_ctx: &Context, _account: &str) {}
    /// The deployment name of a remote object that should answer on its own host now (a RUNNING
    /// workspace), for the `Reachable` condition.
    fn reach_target(_remote: &Self::Remote) -> Option<String> {
        None
    }
}

/// Writes a status with server-side apply, only when it differs from the current one.
pub async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
    resource_version: Option<&str>,
) -> Result<Option<String>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    if tracing::enabled!(target: "databricks_account_operator::status", tracing::Level::DEBUG) {
        tracing::debug!(
            target: "databricks_account_operator::status",
            object = %format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any()),
            changed = %changed_fields(current, status).join(","),
            "status write"
        );
    }
    // The resourceVersion makes the write conditional: a reconcile that started from a cached
    // object older than the last write (for example one without the Databricks ID yet) fails
    // with a conflict instead of erasing what the newer write recorded.
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": obj.name_any(), "resourceVersion": resource_version},
        "status": serde_json::to_value(status)?,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(written.resource_version())
}

/// The top-level status fields (and condition types) in which `new` differs from `old`: what a
/// status write changes, for the `databricks_account_operator::status` debug log.
fn changed_fields<S: Serialize>(old: Option<&S>, new: &S) -> Vec<String> {
    use serde_json::Value;
    let as_map = |v: Option<Value>| match v {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let old = as_map(old.and_then(|o| serde_json::to_value(o).ok()));
    let new = as_map(serde_json::to_value(new).ok());
    let conditions = |m: &serde_json::Map<String, Value>| -> Vec<(String, Value)> {
        m.get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let t = c.get("type").and_then(Value::as_str).unwrap_or("?");
                (t.to_string(), c.clone())
            })
            .collect()
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changed = Vec::new();
    for k in keys {
        if old.get(k) == new.get(k) {
            continue;
        }
        if k == "conditions" {
            let (o, n) = (conditions(&old), conditions(&new));
            let mut types: Vec<&String> = o.iter().chain(n.iter()).map(|(t, _)| t).collect();
            types.sort();
            types.dedup();
            for t in types {
                let find =
                    |l: &[(String, Value)]| l.iter().find(|(x, _)| x == t).map(|(_, c)| c.clone());
                if find(&o) != find(&n) {
                    changed.push(format!("conditions[{t}]"));
                }
            }
        } else {
            changed.push(k.clone());
        }
    }
    changed
}

/// Adds or removes the finalizer with a merge patch guarded by `resourceVersion`.
///
/// Why not kube-runtime's `finalizer()` helper: it removes the finalizer as soon as the
/// `Event::Cleanup` reconcile returns `Ok`, so a cleanup that must wait and look again (the
/// dependency-ordered delete waits for referrers to go, a workspace takes minutes to cancel, a
/// lost create is looked up first: [`Step::Requeue`]) would have to return an error, counted and
/// backed off as a failure, with its event. Ours keeps three outcomes (release, requeue, error),
/// and after a release it forgets the object's state and waits until the cache has seen the
/// release, which the helper gives no place for. A 404 on removal (already gone) is success here,
/// an error there. ObserveOnly and Orphan objects would fit either: their cleanup only releases.
pub(super) async fn set_finalizer<K>(api: &Api<K>, obj: &K, present: bool) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut finalizers: Vec<String> = obj.finalizers().to_vec();
    finalizers.retain(|f| f != FINALIZER);
    if present {
        finalizers.push(FINALIZER.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing to release.
        Err(kube::Error::Api(e)) if e.code == 404 && !present => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The steps of a reconcile that decide the outcome.
enum Step {
    Requeue(Duration),
    Release,
}

/// The object's poll interval: its annotation when valid, the operator's otherwise.
fn poll_interval<K: Resource>(obj: &K, ctx: &Context) -> Duration {
    obj.annotations()
        .get(POLL_INTERVAL_ANNOTATION)
        .and_then(|v| annotated_poll_interval(v, ctx).ok())
        .unwrap_or(ctx.settings.poll_interval)
}

fn annotated_poll_interval(value: &str, ctx: &Context) -> Result<Duration, String> {
    bounds::parse_duration(
        value,
        ctx.settings.min_annotated_poll_interval,
        bounds::POLL_INTERVAL_MAX,
    )
}

/// What is wrong with the object's annotations, if anything.
fn annotation_problem<K: Resource>(obj: &K, ctx: &Context) -> Option<String> {
    let v = obj.annotations().get(POLL_INTERVAL_ANNOTATION)?;
    annotated_poll_interval(v, ctx)
        .err()
        .map(|e| format!("annotation {POLL_INTERVAL_ANNOTATION}: {e}; fix or remove it"))
}

fn paused<K: Resource>(obj: &K) -> bool {
    obj.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Publishes an `events.k8s.io/v1` Event about `obj`: one object per event, so each names what
/// it reports (a second `Created` shows the new ID instead of joining the first one's series), and
/// nothing is cached per object (kube-runtime's recorder keeps every event for minutes).
async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    let ns = obj.namespace().unwrap_or_default();
    let ev = Event {
        metadata: ObjectMeta {
            // `name.<random>` as kubectl names events (a `generateName` ending in "." is refused).
            // Object names are ASCII, at most 253 long; the event's must fit in 253 too.
            name: Some(format!(
                "{}.{}",
                obj.name_any().chars().take(200).collect::<String>(),
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            )),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        reason: Some(reason.into()),
        action: Some(action.into()),
        note: Some(bounds::message(&note)),
        regarding: Some(obj.object_ref(&())),
        reporting_controller: Some(crate::crd::FIELD_MANAGER.into()),
        reporting_instance: Some(bounds::truncate(&ctx.instance, 128)),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    match events.create(&PostParams::default(), &ev).await {
        Ok(_) => {}
        // A namespace being deleted takes no new events: nothing is wrong.
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {
            tracing::debug!(namespace = %ns, reason, "no event: the namespace is being deleted");
        }
        Err(e) => tracing::warn!(error = %e, reason, "cannot publish event"),
    }
}

/// Resolves the dependencies from the caches: the IDs, or why not (a dependency that is missing
/// or not Ready, or one managed through another account).
fn resolve(
    ctx: &Context,
    ns: &str,
    account: &str,
    deps: &[Dep],
) -> Result<Resolved, (Reason, String)> {
    let mut resolved = Resolved::default();
    for dep in deps {
        let id = match (&dep.reference.id, &dep.reference.name) {
            (Some(id), None) => id.clone(),
            (None, Some(name)) => {
                let kind = dep.kind.kind();
                let field = dep.field;
                let Some(view) = ctx.dependency(ns, dep.kind, name) else {
                    return Err((
                        Reason::WaitingForDependency,
                        format!("{kind} {name:?} (spec.{field}) does not exist in namespace {ns}"),
                    ));
                };
                if view.account != account {
                    return Err((
                        Reason::InvalidSpec,
                        format!(
                            "{kind} {name:?} (spec.{field}) is managed through DatabricksAccount {:?}, but this object uses {account:?}; both must use the same account",
                            view.account
                        ),
                    ));
                }
                if let (Some(want), Some(have)) = (&dep.region, &view.region)
                    && want != have
                {
                    return Err((
                        Reason::InvalidSpec,
                        format!(
                            "{kind} {name:?} (spec.{field}) is in region {have}, but this object is in {want}; it serves only its own region: use one in {want}"
                        ),
                    ));
                }
                match view.id {
                    Some(id) if view.ready => id,
                    _ => {
                        // Its reason, not its message: the message changes at every step of
                        // its progress, and each change would be a status write here too.
                        let why = view.reason.map_or_else(
                            || "not reconciled yet".to_string(),
                            |r| format!("its reason is {r}; see its conditions"),
                        );
                        return Err((
                            Reason::WaitingForDependency,
                            format!(
                                "waiting for {kind} {name:?} (spec.{field}) to be Ready: {why}"
                            ),
                        ));
                    }
                }
            }
            _ => {
                return Err((
                    Reason::InvalidSpec,
                    format!("spec.{}: set exactly one of name and id", dep.field),
                ));
            }
        };
        resolved.0.entry(dep.field).or_default().push(id);
    }
    Ok(resolved)
}

/// Reconciles one object of a managed kind.
pub async fn reconcile<K: Managed>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Dependencies, referrers and accounts come from the caches: wait for their first list.
    ctx.caches_ready().await;
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    if obj.meta().deletion_timestamp.is_some() {
        if !obj.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let step = cleanup(&*obj, &ctx, &api, &ns).await;
        ctx.until_cached(&ObjKey::of(&*obj), Duration::from_secs(2))
            .await;
        return match step? {
            Step::Release => {
                set_finalizer(&api, &*obj, false).await?;
                let key = ObjKey::of(&*obj);
                ctx.forget(&key);
                ctx.until_released(&key, Duration::from_secs(2)).await;
                Ok(Action::await_change())
            }
            Step::Requeue(d) => Ok(Action::requeue(bounds::requeue(d))),
        };
    }
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        // The finalizer goes on first; the update it makes triggers the next reconcile.
        set_finalizer(&api, &*obj, true).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let step = apply(&*obj, &ctx, &api, &ns).await;
    ctx.until_cached(&ObjKey::of(&*obj), Duration::from_secs(2))
        .await;
    match step? {
        Step::Requeue(d) => Ok(Action::requeue(bounds::requeue(d))),
        Step::Release => Ok(Action::await_change()),
    }
}

struct Run<'a, K: Managed> {
    obj: &'a K,
    ctx: &'a Context,
    api: &'a Api<K>,
    key: ObjKey,
    /// The DatabricksAccount whose API this run uses.
    account: String,
    generation: Option<i64>,
    status: K::Status,
    /// The object's resourceVersion after this run's last write.
    resource_version: Option<String>,
    /// The status this run last wrote.
    written: Option<K::Status>,
}

impl<K: Managed> Run<'_, K> {
    fn set(&mut self, type_: &str, ok: bool, reason: Reason, message: impl Into<String>) {
        let g = self.generation;
        K::common(&mut self.status).set_condition(type_, ok, reason, message, g);
    }

    /// Publishes an event about the object.
    /// Records an event, and the same line in the log: INFO for what changed in Databricks
    /// (created, adopted, updated, deleted; the note names the Databricks ID), WARN for a
    /// failure or a wait that needs someone.
    async fn event(&self, warning: bool, reason: &str, action: &str, note: String) {
        if warning {
            tracing::warn!(object = %self.key, reason, action, "{note}");
        } else {
            tracing::info!(object = %self.key, reason, action, "{note}");
        }
        publish(self.ctx, self.obj, warning, reason, action, note).await;
    }

    async fn write(&mut self) -> Result<(), Error> {
        let current = self.written.as_ref().or(self.obj.current_status());
        if let Some(rv) = write_status(
            self.api,
            self.obj,
            current,
            &self.status,
            self.resource_version.as_deref(),
        )
        .await?
        {
            self.ctx.wrote(&self.key, rv.clone());
            self.resource_version = Some(rv);
            self.written = Some(self.status.clone());
        }
        let ready = K::common(&mut self.status).is_ready();
        let age = self.obj.meta().creation_timestamp.as_ref().and_then(|t| {
            std::time::Duration::try_from(k8s_openapi::jiff::Timestamp::now() - t.0).ok()
        });
        self.ctx.metrics.readiness(&self.key, Some(ready), age);
        Ok(())
    }

    /// Reports why the reconcile stops before calling the API, and says when to look again.
    async fn wait(&mut self, w: Wait) -> Result<Step, Error> {
        let first = K::common(&mut self.status)
            .condition("Synced")
            .is_none_or(|c| c.reason != w.reason.as_str());
        if w.ready {
            self.set("Ready", false, w.reason, &w.message);
        }
        self.set("Synced", false, w.reason, &w.message);
        self.write().await?;
        if w.warn && first {
            self.event(true, w.reason.as_str(), "Update", w.message)
                .await;
        }
        Ok(Step::Requeue(w.requeue))
    }

    /// Reports that another remote object has the name, and holds off until the spec changes or
    /// the poll interval passes.
    async fn name_conflict(
        &mut self,
        id: &str,
        owner: Option<&str>,
        poll: Duration,
    ) -> Result<Step, Error> {
        let noun = <K::Remote as RemoteResource>::NOUN;
        let name = self.obj.desired_name();
        let msg = match owner {
            Some(owner) => format!(
                "a {noun} named {name:?} already exists (ID {id}), managed by {owner}; names must be unique: choose another name"
            ),
            None => format!(
                "a {noun} named {name:?} already exists (ID {id}) and was not created by this object; set spec.externalId to {id} to adopt it, or choose another name"
            ),
        };
        let first = K::common(&mut self.status)
            .condition("Ready")
            .is_none_or(|c| c.reason != Reason::NameConflict.as_str());
        self.set("Ready", false, Reason::NameConflict, &msg);
        self.set("Synced", false, Reason::NameConflict, &msg);
        self.write().await?;
        if first {
            self.event(true, "NameConflict", "Create", msg).await;
        }
        self.ctx.gate(&self.key, self.generation, poll);
        Ok(Step::Requeue(poll))
    }

    /// Reports an API failure and says when to try again.
    async fn api_failure(&mut self, err: &ApiCallError, action: &str) -> Result<Step, Error> {
        let poll = poll_interval(self.obj, self.ctx);
        let mut message = format!("{action} failed: {err}");
        if err.api().is_some_and(|a| a.is_quota_exceeded()) {
            message.push_str(&format!(
                "; the account has reached Databricks' limit on the number of {} objects: delete unused ones in the account, or ask Databricks to raise the limit; the operator tries again every {} s",
                <K::Remote as RemoteResource>::NOUN,
                poll.as_secs()
            ));
        }
        let (reason, next) = if err.is_auth() {
            // The account's credentials may have been rotated or revoked: have it checked now.
            self.ctx.nudge_account(&self.key.namespace, &self.account);
            (
                Reason::AuthenticationFailed,
                self.ctx.backoff(&self.key, None),
            )
        } else if err.is_retryable()
            || err
                .api()
                // A 404 that is not the API's own "does not exist" comes from something in the
                // way (a proxy, a gateway): worth another try soon, not a verdict on the spec.
                .is_some_and(|a| a.status >= 500 || (a.status == 404 && !a.is_not_found()))
        {
            (
                Reason::ApiUnavailable,
                self.ctx.backoff(&self.key, err.retry_after()),
            )
        } else if err.api().is_some_and(|a| a.is_quota_exceeded()) {
            // Only someone can make room; the poll interval is often enough to notice it.
            (Reason::QuotaExceeded, poll)
        } else {
            (Reason::ApiRejected, poll)
        };
        // Our own status write (and any watched change) triggers a reconcile at once: the gate
        // keeps it from calling the API again before the backoff, unless the spec changes.
        self.ctx.gate(&self.key, self.generation, next);
        let first = K::common(&mut self.status)
            .condition("Synced")
            .is_none_or(|c| c.reason != reason.as_str() || c.message != message);
        if K::remote_id(&self.status).is_none() {
            self.set("Ready", false, reason, &message);
        }
        self.set("Synced", false, reason, &message);
        self.write().await?;
        if first {
            // Logged by the event, as a warning.
            self.event(true, reason.as_str(), action, message).await;
        } else {
            tracing::info!(object = %self.key, reason = reason.as_str(), error = %err, "API call failed again");
        }
        Ok(Step::Requeue(next))
    }
}

async fn apply<K: Managed>(obj: &K, ctx: &Context, api: &Api<K>, ns: &str) -> Result<Step, Error> {
    let generation = obj.meta().generation;
    let mut status = obj.current_status().cloned().unwrap_or_default();
    K::common(&mut status).observed_generation = generation;
    let mgmt = obj.management().clone();
    // Written by an older version: an object with an ID was created through the account named now.
    if K::remote_id(&status).is_some() && K::common(&mut status).account_name.is_none() {
        K::common(&mut status).account_name = Some(mgmt.account_ref.name.clone());
    }
    let mut run = Run {
        obj,
        ctx,
        api,
        key: ObjKey::of(obj),
        account: mgmt.account_ref.name.clone(),
        generation,
        status,
        resource_version: obj.resource_version(),
        written: None,
    };
    let poll = poll_interval(obj, ctx);
    let account_key = format!("{ns}/{}", mgmt.account_ref.name);
    let account = ctx.account(&account_key);
    let account_state = match &account {
        Some(a) if a.ready => AccountState::Ready,
        Some(a) => AccountState::NotReady(a.message.clone()),
        // Right after a start, this replica has not checked the account yet, but its status
        // says it works: wait for the check instead of flipping a Ready object to not Ready.
        None if ctx
            .account_object(ns, &mgmt.account_ref.name)
            .is_some_and(|a| {
                a.meta().deletion_timestamp.is_none()
                    && a.status
                        .as_ref()
                        .and_then(|s| s.common.condition("Ready"))
                        .is_some_and(|c| c.status == "True")
            }) =>
        {
            AccountState::Unchecked
        }
        None => AccountState::NotReady("not reconciled yet".into()),
    };
    let facts = Facts {
        paused: paused(obj),
        annotation_problem: annotation_problem(obj, ctx),
        account: account_state,
        gated: ctx.gated(&run.key, generation),
        dependencies: resolve(ctx, ns, &mgmt.account_ref.name, &obj.dependencies()),
        poll,
    };
    let deps = match plan::precheck(obj, &run.status, facts) {
        Precheck::Go(deps) => deps,
        Precheck::Hold(d) => return Ok(Step::Requeue(d)),
        Precheck::Wait(w) => return run.wait(w).await,
    };
    let Some(account) = account.filter(|a| a.ready) else {
        // The checks above found it Ready; it cannot have changed since.
        return Ok(Step::Requeue(Duration::from_secs(2)));
    };
    let client = &account.client;

    // Observe, through one list per kind and account shared by all objects.
    let known_id = K::remote_id(&run.status).or_else(|| mgmt.external_id.clone());
    let pending = K::common(&mut run.status).pending_create.is_some();
    let max_age = match &known_id {
        // At rest, no older than the poll interval; in flight (not Ready: a workspace
        // provisioning, an endpoint pending), no older than the busy poll, so that a hundred
        // workspaces provisioning cost one list per busy poll rather than a read each.
        Some(_) if K::common(&mut run.status).is_ready() => poll,
        Some(_) => ctx.settings.busy_poll_interval.min(poll),
        None if mgmt.management_policy == ManagementPolicy::ObserveOnly => poll,
        // After a create whose answer was lost, only a list made now shows what it did.
        None if pending => Duration::ZERO,
        None => Duration::from_secs(5),
    };
    // Reading an object's state needs a list made after any change another kind's made to it;
    // a name lookup before a create does not.
    let listed = match if known_id.is_some() {
        ctx.list_current_or_later::<K::Remote>(&account_key, client, max_age)
            .await
    } else {
        ctx.list::<K::Remote>(&account_key, client, max_age)
            .await
            .map(Ok)
    } {
        Ok(Ok(l)) => l,
        // The next list is due after a pause: come back then, without holding a slot that a
        // create of this kind could use meanwhile. Nothing was learnt, so nothing is written.
        Ok(Err(pause)) => return Ok(Step::Requeue(pause)),
        Err(e) => return run.api_failure(&e, "list").await,
    };
    let single;
    let observed = match &known_id {
        None => Observed::Listed(listed.as_slice()),
        Some(id) => match listed.iter().find(|r| &r.id() == id) {
            Some(r) => Observed::Found(r),
            // The shared list may predate the object: confirm with a read of its own.
            None => match client.get::<K::Remote>(id).await {
                Ok(r) => {
                    single = r;
                    Observed::Found(&single)
                }
                Err(e) if e.is_not_found() => Observed::Missing(id.clone()),
                Err(e) => return run.api_failure(&e, "read").await,
            },
        },
    };
    let uid = obj.uid().unwrap_or_default();
    let owner = |id: &str| ctx.owner(ns, &K::kind(&()), id, &uid);
    let mut decided = plan::plan(obj, &run.status, &deps, observed, &owner);
    if let Plan::Recreate { id } = &decided {
        let noun = <K::Remote as RemoteResource>::NOUN;
        let msg = format!("{noun} {id} was deleted outside Kubernetes; creating it again");
        run.event(true, "RemoteDeleted", "Observe", msg).await;
        K::set_remote_id(&mut run.status, None);
        ctx.invalidate::<K::Remote>(&account_key);
        let fresh = match ctx
            .list::<K::Remote>(&account_key, client, Duration::ZERO)
            .await
        {
            Ok(l) => l,
            Err(e) => return run.api_failure(&e, "list").await,
        };
        decided = plan::plan(
            obj,
            &run.status,
            &deps,
            Observed::Listed(fresh.as_slice()),
            &owner,
        );
    }
    // The plan owns what it took from the list. Letting go of the list now, before the calls
    // below wait in the rate limiter, lets the next create add to it in place (see
    // `Context::remember`) instead of copying it.
    drop(listed);

    // Act: create exactly once, or take what an earlier attempt created.
    let (mut remote, change) = match decided {
        Plan::Sync { remote, change } => (remote, change),
        Plan::NotFound { message, synced } => {
            run.set("Ready", false, Reason::NotFound, &message);
            run.set("Synced", true, synced, &message);
            run.write().await?;
            return Ok(Step::Requeue(poll));
        }
        Plan::NameConflict { id, owner } => {
            return run.name_conflict(&id, owner.as_deref(), poll).await;
        }
        Plan::Adopt(found) => {
            K::common(&mut run.status).pending_create = None;
            let noun = <K::Remote as RemoteResource>::NOUN;
            run.event(false, "Adopted", "Create", format!("found {noun} {} created by an earlier attempt whose answer was lost; adopted it", found.id())).await;
            let change = plan::change(obj, &found, &deps);
            (found, change)
        }
        Plan::Create(request) => {
            // Two objects asking for one name in one account: the first creates, the other is told.
            if K::named()
                && let Err(holder) = ctx.claim_name(
                    client.account_id(),
                    <K::Remote as RemoteResource>::COLLECTION,
                    &obj.desired_name(),
                    &run.key,
                )
            {
                let noun = <K::Remote as RemoteResource>::NOUN;
                return run
                    .wait(Wait {
                        reason: Reason::NameConflict,
                        message: format!(
                            "{holder} is creating a {noun} named {:?} in this account right now; names must be unique: choose another name, or adopt that object with spec.externalId once it has an ID",
                            obj.desired_name()
                        ),
                        ready: true,
                        warn: true,
                        requeue: Duration::from_secs(5),
                    })
                    .await;
            }
            match create(&mut run, client, &account_key, &request).await? {
                Ok(created) => {
                    let change = plan::change(obj, &created, &deps);
                    (created, change)
                }
                Err(step) => return Ok(step),
            }
        }
        // A list made just now lacks the object too: look again soon.
        Plan::Recreate { .. } => return Ok(Step::Requeue(ctx.settings.busy_poll_interval)),
    };
    K::set_remote_id(&mut run.status, Some(remote.id()));
    K::common(&mut run.status).account_name = Some(mgmt.account_ref.name.clone());

    // Update what the API can update; report what it cannot; follow what was sent until
    // Databricks shows it, without sending it again.
    let observe_only = mgmt.management_policy == ManagementPolicy::ObserveOnly;
    let mut synced = Synced {
        ok: true,
        reason: if observe_only {
            Reason::ObserveOnly
        } else {
            Reason::Synced
        },
        message: String::from(if observe_only {
            "observe-only: read from Databricks, never written"
        } else {
            "in sync with Databricks"
        }),
    };
    let follow = |status: &K::Status, remote: &K::Remote, change: Change| {
        plan::follow_update(
            change,
            K::sent_update(status),
            generation,
            K::update_blocked(remote).as_deref(),
            k8s_openapi::jiff::Timestamp::now(),
            ctx.settings.apply_limits,
        )
    };
    // What a fresh read shows of an update already sent: a wait, or done; nothing is sent twice
    // in one reconcile.
    let settle = |status: &mut K::Status, remote: &K::Remote, synced: &mut Synced| {
        match follow(status, remote, plan::change(obj, remote, &deps)) {
            Act::Wait { reason, message } => {
                *synced = Synced {
                    ok: false,
                    reason,
                    message,
                };
            }
            Act::Applied => mark_applied::<K>(status),
            // Nothing left to send (someone else sent it): the next reconcile decides on what
            // it reads then.
            Act::Change(_) => {}
        }
    };
    match follow(&run.status, &remote, change) {
        Act::Change(Change::None) => {}
        Act::Change(Change::Immutable(fields)) => {
            synced = Synced {
                ok: false,
                reason: Reason::ImmutableFieldChanged,
                message: format!(
                    "spec field(s) {} changed, but Databricks cannot change them on an existing {}; revert the change, or create a new object and point its users at it",
                    fields.join(", "),
                    <K::Remote as RemoteResource>::NOUN
                ),
            };
        }
        Act::Change(Change::Update(update)) => 'sent: {
            if let Err(e) = update.send(client).await {
                // The list read may predate the object's last move (a workspace back to
                // PROVISIONING): Databricks then refuses with INVALID_STATE. Read the object now;
                // if it takes no update in its state, that is a wait, not a rejection.
                if e.api().is_some_and(|a| a.error_code == "INVALID_STATE") {
                    ctx.invalidate::<K::Remote>(&account_key);
                    if let Ok(fresh) = client.get::<K::Remote>(&remote.id()).await
                        && K::update_blocked(&fresh).is_some()
                    {
                        tracing::info!(object = %run.key, error = %e, "update refused while the object takes none; waiting");
                        remote = fresh;
                        settle(&mut run.status, &remote, &mut synced);
                        break 'sent;
                    }
                }
                return run.api_failure(&e, "update").await;
            }
            if let Some(values) = update.followed_values() {
                let record = plan::record_sent(
                    K::sent_update(&run.status),
                    &values,
                    generation,
                    k8s_openapi::jiff::Timestamp::now(),
                );
                K::set_sent_update(&mut run.status, record);
            }
            run.event(
                false,
                "Updated",
                "Update",
                format!("updated {}", update.describe()),
            )
            .await;
            ctx.invalidate::<K::Remote>(&account_key);
            match client.get::<K::Remote>(&remote.id()).await {
                Ok(r) => remote = r,
                Err(e) => return run.api_failure(&e, "read").await,
            }
            settle(&mut run.status, &remote, &mut synced);
        }
        Act::Applied => mark_applied::<K>(&mut run.status),
        Act::Wait { reason, message } => {
            synced = Synced {
                ok: false,
                reason,
                message,
            };
        }
    }
    let explanation = obj.explain(client, &remote).await;
    let host = client.host().to_string();
    let mut observation = obj.observe(&remote, &deps, &mut run.status, &host, explanation);
    // A workspace re-provisioning for an update the operator sent says so.
    let following = matches!(synced.reason, Reason::Updating | Reason::UpdatePending);
    if synced.reason == Reason::Updating
        && !observation.ready
        && observation.reason == Reason::Provisioning
    {
        observation.reason = Reason::Updating;
        observation.message = format!("{}; {}", observation.message, synced.message);
    }
    if obj.current_status() != Some(&run.status) {
        K::invalidate_related(ctx, &account_key);
    }
    let before = K::common(&mut run.status)
        .condition("Ready")
        .map(|c| c.message.clone());
    run.set(
        "Ready",
        observation.ready,
        observation.reason,
        &observation.message,
    );
    if let Some(warnings) = K::warnings(&remote) {
        let now = K::common(&mut run.status)
            .condition("Ready")
            .map(|c| c.message.clone());
        // Once per set of warnings: the Ready message names them.
        if before != now {
            let noun = <K::Remote as RemoteResource>::NOUN;
            let note = bounds::message(&format!(
                "Databricks validated {noun} {} with warnings (it works): {warnings}",
                remote.id()
            ));
            run.event(true, "ValidationWarnings", "Observe", note).await;
        }
    }
    let Synced {
        ok,
        reason,
        message,
    } = synced;
    let changed = K::common(&mut run.status)
        .condition("Synced")
        .is_none_or(|c| c.reason != reason.as_str());
    // An update in progress is news (the `Updated` event said so), not a warning.
    if !ok && changed && !following {
        run.event(true, reason.as_str(), "Update", message.clone())
            .await;
    }
    run.set("Synced", ok, reason, message);
    let reach_next = reach(&mut run, client, &remote, poll).await;
    run.write().await?;
    ctx.succeeded(&run.key);
    ctx.ungate(&run.key);
    let busy = observation.busy || following;
    // At rest, the kind's poller follows the remote object through the shared list and wakes
    // this object when it changes; its own requeue is a safety net. An object with its own poll
    // interval (the annotation) keeps to it.
    let at_rest = !busy && observation.ready && ok && poll == ctx.settings.poll_interval;
    ctx.set_polled(&run.key, at_rest.then(|| super::digest(&remote)));
    let next = if busy {
        ctx.settings.busy_poll_interval.min(poll)
    } else if at_rest {
        bounds::requeue(poll.saturating_mul(super::RESYNC_POLLS))
    } else {
        poll
    };
    Ok(Step::Requeue(reach_next.map_or(next, |r| r.min(next))))
}

/// The `Reachable` condition of a kind that has one (workspaces): checks, when due, that the
/// RUNNING workspace answers on its own host, and sets the condition from the outcome. Returns the
/// time until the next check, if one is scheduled. Calls neither the Account API nor the
/// Kubernetes API server.
async fn reach<K: Managed>(
    run: &mut Run<'_, K>,
    client: &AccountClient,
    remote: &K::Remote,
    poll: Duration,
) -> Option<Duration> {
    let ctx = run.ctx;
    let running = K::reach_target(remote);
    let Some(target) = running.clone().filter(|t| client.checks_workspace(t)) else {
        // Not RUNNING: checked again at once when it is; until then a workspace that answered
        // is no longer said to. A simulator's workspace that no resolver override covers is
        // never checked.
        ctx.set_reach_memo(&run.key, None);
        let answered = K::common(&mut run.status)
            .condition("Reachable")
            .is_some_and(|c| c.status == "True");
        if running.is_none() && answered {
            run.set(
                "Reachable",
                false,
                Reason::WorkspaceUnavailable,
                "the workspace is not RUNNING; it is checked again once it is",
            );
        }
        return None;
    };
    let limits = plan::reach::ReachLimits {
        poll,
        max_backoff: ctx.settings.busy_poll_interval,
        window: ctx.settings.reachable_timeout,
    };
    let memo = ctx.reach_memo(&run.key);
    if let Err(wait) =
        plan::reach::reach_due(&target, memo.as_ref(), tokio::time::Instant::now(), limits)
    {
        return Some(wait);
    }
    let outcome = client.probe_workspace(&target).await;
    let url = crate::databricks::workspace::workspace_host(client.host(), &target)
        .unwrap_or_else(|_| format!("workspace {target:?}"));
    let (memo, condition, next) = plan::reach::reach_after(
        memo.as_ref(),
        &target,
        &url,
        outcome.map(drop),
        tokio::time::Instant::now(),
        limits,
    );
    ctx.set_reach_memo(&run.key, Some(memo));
    let changed = K::common(&mut run.status)
        .condition("Reachable")
        .is_none_or(|c| c.reason != condition.reason.as_str());
    run.set(
        "Reachable",
        condition.ok,
        condition.reason,
        &condition.message,
    );
    if changed {
        // A person must act on refused credentials or a broken TLS path; DNS and a workspace
        // still starting are news, not warnings.
        let warning = matches!(condition.reason, Reason::TlsError | Reason::Unauthorized);
        run.event(
            warning,
            condition.reason.as_str(),
            "CheckReachable",
            condition.message,
        )
        .await;
    }
    Some(next)
}

/// Notes that Databricks shows every field of the last update sent.
fn mark_applied<K: Managed>(status: &mut K::Status) {
    if let Some(mut record) = K::sent_update(status).cloned() {
        record.applied_at = Some(k8s_openapi::jiff::Timestamp::now().to_string());
        K::set_sent_update(status, record);
    }
}

/// What the `Synced` condition says at the end of a reconcile.
#[derive(Debug)]
struct Synced {
    ok: bool,
    reason: Reason,
    message: String,
}

/// Creates the remote object once: the pending marker is stored before the call, so that an
/// attempt whose answer is lost is followed by a lookup (see [`plan::plan`]) instead of a second
/// create. The ID is written with the rest of the reconcile's status.
async fn create<K: Managed>(
    run: &mut Run<'_, K>,
    client: &AccountClient,
    account_key: &str,
    request: &<K::Remote as RemoteResource>::Create,
) -> Result<Result<K::Remote, Step>, Error> {
    let ctx = run.ctx;
    let obj = run.obj;
    let noun = <K::Remote as RemoteResource>::NOUN;
    K::common(&mut run.status).pending_create = Some(PendingCreate {
        name: obj.desired_name(),
        since: k8s_openapi::jiff::Timestamp::now().to_string(),
    });
    run.set(
        "Ready",
        false,
        Reason::Creating,
        format!("creating the {noun}"),
    );
    run.write().await?;
    let result = client.create::<K::Remote>(request).await;
    // The name stays claimed while the outcome is unknown: the lookup that follows settles it.
    if !result.as_ref().is_err_and(ApiCallError::is_outcome_unknown) {
        ctx.release_names(&run.key);
    }
    match result {
        Ok(created) => {
            K::common(&mut run.status).pending_create = None;
            K::set_remote_id(&mut run.status, Some(created.id()));
            K::common(&mut run.status).account_name = Some(run.account.clone());
            // The shared list stays usable for the next create: it gains what was just created.
            ctx.remember(account_key, &created).await;
            ctx.propagation_done(&run.key);
            run.event(
                false,
                "Created",
                "Create",
                format!("created {noun} {}", created.id()),
            )
            .await;
            Ok(Ok(created))
        }
        Err(e) if e.is_outcome_unknown() => {
            // The pending marker stays: the next attempt looks the object up before it creates.
            ctx.invalidate::<K::Remote>(account_key);
            let msg = if e
                .api()
                .is_some_and(crate::databricks::ApiError::is_already_exists)
            {
                format!(
                    "Databricks says the {noun} exists already ({e}); looking it up by name: it is adopted if this object's create made it, reported as a name conflict otherwise"
                )
            } else {
                format!(
                    "the answer to the create was lost or unusable ({e}); looking it up by name before trying again"
                )
            };
            run.set("Synced", false, Reason::ApiUnavailable, &msg);
            run.write().await?;
            let next = ctx.backoff(&run.key, None);
            ctx.gate(&run.key, run.generation, next);
            Ok(Err(Step::Requeue(next)))
        }
        Err(e) if e.is_credential_propagation() => {
            K::common(&mut run.status).pending_create = None;
            let elapsed = ctx.propagation_elapsed(&run.key);
            if elapsed >= ctx.settings.credential_propagation_window {
                return run.api_failure(&e, "create").await.map(Err);
            }
            let msg = format!(
                "Databricks cannot use the IAM role yet ({}); IAM changes take a while to propagate, retrying for up to {} s",
                e.api().map(|a| a.message.as_str()).unwrap_or_default(),
                ctx.settings.credential_propagation_window.as_secs(),
            );
            run.set("Ready", false, Reason::CredentialValidationPending, &msg);
            run.set("Synced", false, Reason::CredentialValidationPending, &msg);
            run.write().await?;
            let next = ctx.backoff(&run.key, None).min(Duration::from_secs(30));
            ctx.gate(&run.key, run.generation, next);
            Ok(Err(Step::Requeue(next)))
        }
        Err(e) => {
            K::common(&mut run.status).pending_create = None;
            run.api_failure(&e, "create").await.map(Err)
        }
    }
}

async fn cleanup<K: Managed>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    ns: &str,
) -> Result<Step, Error> {
    let mgmt = obj.management().clone();
    let generation = obj.meta().generation;
    let mut status = obj.current_status().cloned().unwrap_or_default();
    // The remote object is deleted through the account it belongs to, whatever accountRef says now.
    let bound_account = K::remote_id(&status)
        .and(K::common(&mut status).account_name.clone())
        .unwrap_or_else(|| mgmt.account_ref.name.clone());
    let mut run = Run {
        obj,
        ctx,
        api,
        key: ObjKey::of(obj),
        account: bound_account.clone(),
        generation,
        status,
        resource_version: obj.resource_version(),
        written: None,
    };
    let noun = <K::Remote as RemoteResource>::NOUN;
    let users = K::dep_kind()
        .map(|kind| ctx.referrers(ns, kind, &obj.name_any()))
        .unwrap_or_default();
    let decided = plan::plan_delete(
        obj,
        &run.status,
        paused(obj),
        ctx.settings.default_deletion_policy,
        &users,
        poll_interval(obj, ctx),
    );
    let mut id = match decided {
        DeletePlan::Release => return Ok(Step::Release),
        DeletePlan::Orphan(id) => {
            if let Some(id) = id {
                run.event(
                    false,
                    "Orphaned",
                    "Delete",
                    format!("left {noun} {id} in Databricks"),
                )
                .await;
            }
            return Ok(Step::Release);
        }
        DeletePlan::Wait(w) => return run.wait(w).await,
        DeletePlan::FindPending => None,
        DeletePlan::Delete(id) => Some(id),
    };
    let account_key = format!("{ns}/{bound_account}");
    // Any client of the account serves a delete, even one whose account is not Ready any more
    // (its Secret was removed first in a namespace delete): the API says if it refuses.
    let Some(account) = ctx.account(&account_key) else {
        if ctx.account_object(ns, &bound_account).is_none() {
            // The account is gone: the remote object cannot be reached; never wedge the delete.
            let id = id.unwrap_or_else(|| "(pending create)".into());
            run.event(
                true,
                "Orphaned",
                "Delete",
                format!(
                    "DatabricksAccount {:?} does not exist, so {noun} {id} cannot be deleted in Databricks; it is left there",
                    bound_account
                ),
            )
            .await;
            return Ok(Step::Release);
        }
        // The account says why it cannot connect (a missing Secret, by name).
        let why = ctx
            .account_object(ns, &bound_account)
            .and_then(|a| {
                a.status
                    .as_ref()?
                    .common
                    .condition("Ready")
                    .and_then(|c| Some(c.message.split_once("cannot connect: ")?.1.to_string()))
            })
            .unwrap_or_else(|| {
                format!("its Secret must exist and carry the label {SECRET_LABEL}=true")
            });
        let msg =
            format!("deletion waits for DatabricksAccount {bound_account:?} to connect: {why}");
        run.set("Synced", false, Reason::WaitingForDependency, &msg);
        run.write().await?;
        return Ok(Step::Requeue(Duration::from_secs(10)));
    };
    let client = &account.client;
    if id.is_none()
        && let Some(pending) = K::common(&mut run.status).pending_create.clone()
    {
        // A create whose answer was lost: find what it made, and only that.
        let uid = obj.uid().unwrap_or_default();
        let owner = |id: &str| ctx.owner(ns, &K::kind(&()), id, &uid);
        match ctx
            .list::<K::Remote>(&account_key, client, Duration::ZERO)
            .await
        {
            Ok(l) => {
                id = l
                    .iter()
                    .find(|r| plan::adoptable(obj, &pending, r, None, &owner))
                    .map(RemoteResource::id);
            }
            Err(e) => return run.api_failure(&e, "list").await,
        }
    }
    let Some(id) = id else {
        return Ok(Step::Release);
    };
    if K::waits_for_removal() {
        // Objects that take a while to go (workspaces cancelling) are watched through the shared
        // list, like objects in flight; one missing from it is confirmed gone by a read of its own.
        let (listed, asked) = match ctx
            .list_asked::<K::Remote>(&account_key, client, ctx.settings.busy_poll_interval)
            .await
        {
            Ok(l) => l,
            Err(e) => return run.api_failure(&e, "list").await,
        };
        let deleted = ctx.deleted_at(&run.key);
        let before_delete = deleted.is_some_and(|d| asked < d);
        let current = match listed.iter().find(|r| r.id() == id) {
            Some(r) => Some(r.clone()),
            // Absent from a list asked for after this process's DELETE was accepted: gone.
            None if deleted.is_some() && !before_delete => None,
            None => match client.get::<K::Remote>(&id).await {
                Ok(r) => Some(r),
                Err(e) => match gone::<K>(ctx, client, &account_key, &id, &e).await {
                    Ok(true) => None,
                    Ok(false) => return run.api_failure(&e, "read").await,
                    Err(e) => return run.api_failure(&e, "list").await,
                },
            },
        };
        match current {
            None => {
                run.event(false, "Deleted", "Delete", format!("{noun} {id} is gone"))
                    .await;
                return Ok(Step::Release);
            }
            // Being removed; or accepted for removal after the list was asked for (the shared
            // list refreshes within the busy poll, and is not dropped at every delete).
            Some(r) if K::removing(&r) || before_delete => {
                run.set(
                    "Ready",
                    false,
                    Reason::Deleting,
                    format!("{noun} {id} is being deleted"),
                );
                run.write().await?;
                return Ok(Step::Requeue(ctx.settings.busy_poll_interval));
            }
            Some(_) => {}
        }
    }
    if let Err(e) = obj.before_delete(client, &id).await {
        return match gone::<K>(ctx, client, &account_key, &id, &e).await {
            Ok(true) => Ok(Step::Release),
            Ok(false) => run.api_failure(&e, "delete").await,
            Err(e) => run.api_failure(&e, "list").await,
        };
    }
    match client.delete::<K::Remote>(&id).await {
        Ok(()) => {
            ctx.deleted(&run.key);
            if !K::waits_for_removal() {
                ctx.invalidate::<K::Remote>(&account_key);
            }
            K::invalidate_related(ctx, &account_key);
            ctx.succeeded(&run.key);
            if K::waits_for_removal() {
                run.event(
                    false,
                    "Deleting",
                    "Delete",
                    format!("deletion of {noun} {id} started"),
                )
                .await;
                run.set(
                    "Ready",
                    false,
                    Reason::Deleting,
                    format!("{noun} {id} is being deleted"),
                );
                run.write().await?;
                Ok(Step::Requeue(ctx.settings.busy_poll_interval))
            } else {
                run.event(false, "Deleted", "Delete", format!("deleted {noun} {id}"))
                    .await;
                Ok(Step::Release)
            }
        }
        Err(e) if e.is_in_use() => {
            let msg = format!("Databricks still counts {noun} {id} as in use ({e}); retrying");
            run.set("Ready", false, Reason::InUse, &msg);
            run.write().await?;
            Ok(Step::Requeue(
                ctx.backoff(&run.key, None).min(Duration::from_secs(30)),
            ))
        }
        Err(e) => match gone::<K>(ctx, client, &account_key, &id, &e).await {
            Ok(true) => Ok(Step::Release),
            Ok(false) => run.api_failure(&e, "delete").await,
            Err(e) => run.api_failure(&e, "list").await,
        },
    }
}

/// Whether an error answering a read or delete of `id` shows the object is gone: the API says
/// so in its own words, or, for any other 404 (a proxy's page, an unknown route), a list made
/// now lacks it. Anything else is not proof, and the finalizer stays.
async fn gone<K: Managed>(
    ctx: &Context,
    client: &AccountClient,
    account_key: &str,
    id: &str,
    err: &ApiCallError,
) -> Result<bool, ApiCallError> {
    if err.is_not_found() {
        return Ok(true);
    }
    if err.api().is_none_or(|a| a.status != 404) {
        return Ok(false);
    }
    let fresh = ctx
        .list::<K::Remote>(account_key, client, Duration::ZERO)
        .await?;
    Ok(!fresh.iter().any(|r| r.id() == id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DatabricksWorkspace;

    /// The status debug log names exactly the fields and conditions a write changes.
    #[test]
    fn changed_fields_names_fields_and_condition_types() {
        let old = serde_json::json!({
            "id": "a", "same": 1,
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]
        });
        let new = serde_json::json!({
            "id": "b", "same": 1, "added": true,
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Synced", "status": "True"}]
        });
        assert_eq!(
            changed_fields(Some(&old), &new),
            ["added", "conditions[Ready]", "id"]
        );
        assert_eq!(changed_fields(Some(&new), &new), Vec::<String>::new());
        assert_eq!(
            changed_fields(None, &serde_json::json!({"id": "x"})),
            ["id"]
        );
    }

    /// Deleting a credential must wait for the workspaces that name it, and only those: the
    /// dependencies a workspace declares are exactly the fields its spec names.
    #[test]
    fn dependencies_follow_the_named_fields() {
        let ws: DatabricksWorkspace = serde_json::from_value(serde_json::json!({
            "apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksWorkspace",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"workspaceName": "w", "awsRegion": "us-west-2",
                     "credentials": {"name": "cred"}, "storageConfiguration": {"id": "s-1"},
                     "managedServicesKey": {"name": "key"}}
        }))
        .unwrap();
        let deps: Vec<(DepKind, &str, Option<String>)> = ws
            .dependencies()
            .into_iter()
            .map(|d| (d.kind, d.field, d.reference.name))
            .collect();
        assert_eq!(
            deps,
            vec![
                (DepKind::Credential, "credentials", Some("cred".into())),
                (DepKind::Storage, "storageConfiguration", None),
                (DepKind::Key, "managedServicesKey", Some("key".into())),
            ]
        );
    }
}
