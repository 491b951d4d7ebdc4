//! A reconcile's decisions as pure functions: from what the object asks for, what its account and
//! dependencies say, and what the Account API showed, to what to do. Nothing here reads the
//! cluster or calls the API, so every kind's decisions are unit-tested below; `managed.rs` reads
//! what they need and carries them out.

use std::time::Duration;

use super::managed::{Managed, Resolved};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    DeletionPolicy, ManagementPolicy, PAUSED_ANNOTATION, PendingCreate, Reason, SentUpdate,
};
use crate::databricks::models::{self as m, Resource as RemoteResource};
use crate::databricks::{AccountClient, Error as ApiCallError};

/// A change the Account API makes to an existing object.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A workspace PATCH of the fields set (its update mask).
    Workspace {
        /// The workspace ID.
        id: i64,
        /// The fields to change; the others are left out.
        fields: m::WorkspaceUpdate,
    },
    /// Private access settings are replaced as a whole (PUT).
    PrivateAccess {
        /// The settings' ID.
        id: String,
        /// The whole new object.
        request: m::PrivateAccessSettingsRequest,
    },
    /// An NCC's private endpoint rules: the spec's that it lacks are created, the ones the spec
    /// no longer has are deleted.
    NccRules {
        /// The NCC's ID.
        id: String,
        /// Rules to create.
        create: Vec<m::CreatePrivateEndpointRule>,
        /// IDs of rules to delete.
        delete: Vec<String>,
    },
}

impl Update {
    /// What changes, for events and logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Workspace { id, fields } => {
                format!("workspace {id} fields {}", fields.update_mask())
            }
            Self::PrivateAccess { id, .. } => {
                format!("private access settings {id} (replaced as a whole)")
            }
            Self::NccRules { id, create, delete } => format!(
                "network connectivity configuration {id}: {} private endpoint rule(s) to create, {} to delete",
                create.len(),
                delete.len()
            ),
        }
    }

    /// The value sent for each field, for updates whose effect shows slowly and is followed
    /// (workspace PATCHes); `None` for the others, which show at once.
    pub fn followed_values(&self) -> Option<std::collections::BTreeMap<&'static str, String>> {
        match self {
            Self::Workspace { fields, .. } => Some(fields.values()),
            Self::PrivateAccess { .. } | Self::NccRules { .. } => None,
        }
    }

    /// Sends it.
    pub async fn send(&self, client: &AccountClient) -> Result<(), ApiCallError> {
        match self {
            Self::Workspace { id, fields } => client.update_workspace(*id, fields).await.map(drop),
            Self::PrivateAccess { id, request } => client
                .replace_private_access_settings(id, request)
                .await
                .map(drop),
            Self::NccRules { id, create, delete } => {
                for rule in delete {
                    client.delete_private_endpoint_rule(id, rule).await?;
                }
                for rule in create {
                    client.create_private_endpoint_rule(id, rule).await?;
                }
                Ok(())
            }
        }
    }
}

/// How this replica sees the object's DatabricksAccount.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountState {
    /// Checked, and its API answers.
    Ready,
    /// Not checked by this replica yet, but its status says Ready (right after a start).
    Unchecked,
    /// Not usable, and why.
    NotReady(String),
}

/// What the reconcile knows before it calls the API.
#[derive(Clone, Debug)]
pub struct Facts {
    /// The paused annotation is set.
    pub paused: bool,
    /// What is wrong with the object's annotations.
    pub annotation_problem: Option<String>,
    /// The account's state.
    pub account: AccountState,
    /// Time left before the API may be called again after a failure (same generation).
    pub gated: Option<Duration>,
    /// The dependencies' Databricks IDs, or why they cannot be had.
    pub dependencies: Result<Resolved, (Reason, String)>,
    /// The object's poll interval.
    pub poll: Duration,
}

/// A reconcile that stops before calling the API: the conditions it reports and when it looks again.
#[derive(Clone, Debug, PartialEq)]
pub struct Wait {
    /// The reason for `Synced` (and `Ready`, when `ready` is set).
    pub reason: Reason,
    /// For a person.
    pub message: String,
    /// `Ready` turns false too.
    pub ready: bool,
    /// A warning event is due when the reason is new.
    pub warn: bool,
    /// When to look again.
    pub requeue: Duration,
}

/// What the checks before any API call decide.
#[derive(Clone, Debug, PartialEq)]
pub enum Precheck {
    /// Go on with these dependency IDs.
    Go(Resolved),
    /// Look again after this long, writing nothing.
    Hold(Duration),
    /// Report and look again.
    Wait(Wait),
}

/// Why the spec would move an object that has a Databricks ID to another account or another
/// remote object, if it would: such edits are reported and never followed.
pub fn moved<K: Managed>(obj: &K, status: &K::Status) -> Option<String> {
    let id = K::remote_id(status)?;
    let mgmt = obj.management();
    let noun = <K::Remote as RemoteResource>::NOUN;
    if let Some(bound) = &K::common_ref(status).account_name
        && *bound != mgmt.account_ref.name
    {
        return Some(format!(
            "spec.accountRef changed from {bound:?} to {:?}, but {noun} {id} belongs to the account of {bound:?}; an object never moves between accounts: revert accountRef, or create a new object",
            mgmt.account_ref.name
        ));
    }
    match &mgmt.external_id {
        Some(ext) if *ext != id => Some(format!(
            "spec.externalId {ext:?} differs from {noun} {id} that this object manages; it cannot change once the object has an ID: revert it, or create a new object to adopt {ext:?}"
        )),
        _ => None,
    }
}

/// The checks before any API call, in the order a person fixes them: paused, a broken
/// annotation or a forbidden move, the account, the backoff after a failure, the dependencies.
pub fn precheck<K: Managed>(obj: &K, status: &K::Status, facts: Facts) -> Precheck {
    if facts.paused {
        return Precheck::Wait(Wait {
            reason: Reason::Paused,
            message: format!("paused by the {PAUSED_ANNOTATION} annotation: no API calls"),
            ready: false,
            warn: false,
            requeue: facts.poll,
        });
    }
    let has_id = K::remote_id(status).is_some();
    if let Some(problem) = facts.annotation_problem {
        return Precheck::Wait(Wait {
            reason: Reason::InvalidSpec,
            message: problem,
            ready: !has_id,
            warn: true,
            requeue: facts.poll,
        });
    }
    if let Some(problem) = obj.spec_problem() {
        return Precheck::Wait(Wait {
            reason: Reason::InvalidSpec,
            message: format!("{problem}; no API call is made until the spec is fixed"),
            ready: !has_id,
            warn: true,
            requeue: facts.poll,
        });
    }
    if let Some(problem) = moved(obj, status) {
        return Precheck::Wait(Wait {
            reason: Reason::ImmutableFieldChanged,
            message: problem,
            ready: !has_id,
            warn: true,
            requeue: facts.poll,
        });
    }
    match facts.account {
        AccountState::Ready => {}
        // A failing check writes the account's status, which wakes this object again.
        AccountState::Unchecked => return Precheck::Hold(Duration::from_secs(2)),
        AccountState::NotReady(why) => {
            return Precheck::Wait(Wait {
                reason: Reason::WaitingForDependency,
                message: format!(
                    "waiting for DatabricksAccount {:?} to be Ready: {why}",
                    obj.management().account_ref.name
                ),
                ready: true,
                warn: false,
                requeue: Duration::from_secs(10),
            });
        }
    }
    if let Some(left) = facts.gated {
        return Precheck::Hold(left);
    }
    match facts.dependencies {
        Ok(deps) => Precheck::Go(deps),
        Err((reason, message)) => Precheck::Wait(Wait {
            reason,
            message,
            ready: true,
            warn: false,
            requeue: facts.poll,
        }),
    }
}

/// What the lookup in the account found for this object.
#[derive(Debug)]
pub enum Observed<'a, R> {
    /// The object with the ID the status (or `spec.externalId`) names.
    Found(&'a R),
    /// That ID is not in the account.
    Missing(String),
    /// No ID yet: the account's objects of this kind, to find this one's by name (or content).
    Listed(&'a [R]),
}

/// What to do with the remote object once it is looked up. (One is made per reconcile and
/// consumed at once: boxing the larger variants would buy nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Plan<R: RemoteResource> {
    /// It exists: make the change, if any, then report it.
    Sync {
        /// The remote object.
        remote: R,
        /// What to change.
        change: Change,
    },
    /// Nothing exists yet: create it with this request.
    Create(R::Create),
    /// An earlier attempt's create went through but its answer was lost: take that object.
    Adopt(R),
    /// Another object already has the name; this one did not create it.
    NameConflict {
        /// The other object's ID.
        id: String,
        /// The custom resource that manages it, if one does (`Kind/namespace/name`).
        owner: Option<String>,
    },
    /// The object this one created was deleted outside Kubernetes: forget its ID, create again.
    Recreate {
        /// The ID that is gone.
        id: String,
    },
    /// What the spec names does not exist and this object may not create it: `Ready` false.
    NotFound {
        /// For a person.
        message: String,
        /// The reason for `Synced` (true: nothing is wrong with the reconcile itself).
        synced: Reason,
    },
}

/// A change to an existing remote object.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// None is needed.
    None,
    /// The spec changed fields the API cannot change on this object now.
    Immutable(Vec<&'static str>),
    /// The API can make it.
    Update(Update),
}

/// How far behind ours Databricks' clock may be when an object's `creation_time` is compared
/// with the start of a create attempt.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Whether `remote` can be what this object's create attempt (`pending`) made when its answer
/// was lost: it has the name (keys: the key and use cases), the content the spec asks for (when
/// the dependencies are known), it was created after the attempt began (for the kinds whose
/// answers say when), and no other custom resource manages it (`owner` says which does).
pub fn adoptable<K: Managed>(
    obj: &K,
    pending: &PendingCreate,
    remote: &K::Remote,
    deps: Option<&Resolved>,
    owner: &dyn Fn(&str) -> Option<String>,
) -> bool {
    let began = pending
        .since
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() - i64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(0));
    obj.matches(remote)
        && deps.is_none_or(|d| obj.immutable_changes(remote, d).is_empty())
        && match (began, remote.created_ms()) {
            (Some(began), Some(created)) => created >= began,
            _ => true,
        }
        && owner(&remote.id()).is_none()
}

/// Decides what to do with the remote object. `owner` names the custom resource (other than
/// this one) that manages a remote ID, if one does.
pub fn plan<K: Managed>(
    obj: &K,
    status: &K::Status,
    deps: &Resolved,
    observed: Observed<'_, K::Remote>,
    owner: &dyn Fn(&str) -> Option<String>,
) -> Plan<K::Remote> {
    let mgmt = obj.management();
    let observe_only = mgmt.management_policy == ManagementPolicy::ObserveOnly;
    let noun = <K::Remote as RemoteResource>::NOUN;
    match observed {
        Observed::Found(remote) => Plan::Sync {
            remote: remote.clone(),
            change: change(obj, remote, deps),
        },
        Observed::Missing(id) => {
            let adopting =
                mgmt.external_id.as_deref() == Some(id.as_str()) && K::remote_id(status).is_none();
            if observe_only || adopting {
                Plan::NotFound {
                    message: format!("{noun} {id} does not exist in the account"),
                    synced: Reason::Synced,
                }
            } else {
                Plan::Recreate { id }
            }
        }
        Observed::Listed(listed) => {
            let found = listed.iter().find(|r| obj.matches(r));
            if observe_only {
                return match found {
                    Some(r) => Plan::Sync {
                        remote: r.clone(),
                        change: change(obj, r, deps),
                    },
                    None => Plan::NotFound {
                        message: format!(
                            "observe-only: no {noun} named {:?} in the account (set spec.externalId to name one by ID)",
                            obj.desired_name()
                        ),
                        synced: Reason::ObserveOnly,
                    },
                };
            }
            // After a create whose answer was lost, only what that attempt can have made.
            if let Some(pending) = &K::common_ref(status).pending_create
                && let Some(r) = listed
                    .iter()
                    .find(|r| adoptable(obj, pending, r, Some(deps), owner))
            {
                return Plan::Adopt(r.clone());
            }
            match found {
                Some(r) if K::named() => Plan::NameConflict {
                    id: r.id(),
                    owner: owner(&r.id()),
                },
                // Unnamed kinds (keys) may hold several objects with the same content.
                _ => Plan::Create(obj.create_request(deps)),
            }
        }
    }
}

/// The change an existing remote object needs; observe-only objects are never changed.
pub fn change<K: Managed>(obj: &K, remote: &K::Remote, deps: &Resolved) -> Change {
    let immutable = obj.immutable_changes(remote, deps);
    if !immutable.is_empty() {
        return Change::Immutable(immutable);
    }
    if obj.management().management_policy == ManagementPolicy::ObserveOnly {
        return Change::None;
    }
    obj.desired_update(remote, deps)
        .map_or(Change::None, Change::Update)
}

/// How long Databricks may take to show an update it accepted before the operator reports that
/// it was not applied (account-api.md §4.4: a credential or network change re-provisions for up
/// to 20 minutes; tags "can take up to an hour").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyLimits {
    /// Any field but the tags.
    pub update: Duration,
    /// `custom_tags`.
    pub tags: Duration,
}

impl Default for ApplyLimits {
    fn default() -> Self {
        Self {
            update: Duration::from_secs(20 * 60),
            tags: Duration::from_secs(60 * 60),
        }
    }
}

impl ApplyLimits {
    /// The time the slowest of these fields may take.
    pub fn for_fields<S: AsRef<str>>(&self, fields: &[S]) -> Duration {
        fields
            .iter()
            .map(|f| {
                if f.as_ref() == "custom_tags" {
                    self.tags
                } else {
                    self.update
                }
            })
            .max()
            .unwrap_or(self.update)
    }
}

/// What a reconcile does about the change a remote object needs, once the update last sent (for
/// the kinds that record one) and the remote object's state are taken into account.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// As [`change`] decided: nothing, fields that cannot change, or an update to send now (only
    /// the fields not sent already).
    Change(Change),
    /// Everything sent is shown and the remote object is settled: note when.
    Applied,
    /// Send nothing; `Synced` is false with this reason and message.
    Wait {
        /// `Updating`, `UpdatePending` or `UpdateNotApplied`.
        reason: Reason,
        /// For a person: what is pending, since when, and what to do.
        message: String,
    },
}

fn list(fields: &[&str]) -> String {
    fields.join(", ")
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 120 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Decides what to do about `change` given the update last `sent` (if the kind records one),
/// why the remote object takes no update now (`blocked`, a workspace provisioning), and the time.
/// An update is never sent again while Databricks may still be applying it: a field counts as
/// sent when the last update set it to the value wanted now. Past the limit, the reconcile says
/// so (`UpdateNotApplied`) instead of sending it again; a new value is sent as usual.
pub fn follow_update(
    change: Change,
    sent: Option<&SentUpdate>,
    generation: Option<i64>,
    blocked: Option<&str>,
    now: Timestamp,
    limits: ApplyLimits,
) -> Act {
    let since = |s: &SentUpdate| {
        s.sent_at
            .parse::<Timestamp>()
            .ok()
            .and_then(|t| Duration::try_from(now - t).ok())
            .unwrap_or_default()
    };
    match change {
        Change::Update(Update::Workspace { id, mut fields }) => {
            let values = fields.values();
            // Sent with this value, and either still being applied or shown since and wanted
            // again by the same spec (a value that went back is reported, not sent again, until
            // the spec changes).
            let already = |f: &str| {
                sent.is_some_and(|s| {
                    s.values.get(f).map(String::as_str) == values.get(f).map(String::as_str)
                        && (s.applied_at.is_none() || s.generation == generation)
                })
            };
            let pending: Vec<&str> = values.keys().copied().filter(|f| already(f)).collect();
            let new: Vec<&str> = values.keys().copied().filter(|f| !already(f)).collect();
            if let Some(why) = blocked {
                return Act::Wait {
                    reason: if new.is_empty() {
                        Reason::Updating
                    } else {
                        Reason::UpdatePending
                    },
                    message: if new.is_empty() {
                        format!(
                            "the update of {} is being applied: {why}; it is not sent again",
                            list(&pending)
                        )
                    } else {
                        format!(
                            "the spec changes {}, but {why} and Databricks takes no update until it is RUNNING (or FAILED); the operator sends it then",
                            list(&new)
                        )
                    },
                };
            }
            if !new.is_empty() {
                fields.retain(|f| !already(f));
                return Act::Change(Change::Update(Update::Workspace { id, fields }));
            }
            // Everything wanted was sent already; `sent` is set since `already` held.
            let Some(s) = sent else {
                return Act::Change(Change::None);
            };
            let elapsed = since(s);
            let limit = limits.for_fields(&pending);
            let reverted = s
                .applied_at
                .as_deref()
                .map(|t| format!(" (it showed them at {t}, then went back)"))
                .unwrap_or_default();
            if elapsed < limit {
                Act::Wait {
                    reason: Reason::Updating,
                    message: format!(
                        "sent {} at {}; Databricks does not show it yet{reverted}; waiting up to {} before reporting it not applied, without sending it again",
                        list(&pending),
                        s.sent_at,
                        minutes(limit)
                    ),
                }
            } else {
                Act::Wait {
                    reason: Reason::UpdateNotApplied,
                    message: format!(
                        "Databricks accepted the update of {} at {} but does not show it after {}{reverted}; it is not sent again for these values. Check the workspace in the account console (a storage key change can revert), then edit the spec to have it sent again",
                        list(&pending),
                        s.sent_at,
                        minutes(elapsed)
                    ),
                }
            }
        }
        Change::None if sent.is_some_and(|s| s.applied_at.is_none()) => match (blocked, sent) {
            (Some(why), Some(s)) => Act::Wait {
                reason: Reason::Updating,
                message: format!(
                    "Databricks shows the update of {} sent at {}; {why} while it applies it",
                    s.fields.join(", "),
                    s.sent_at
                ),
            },
            _ => Act::Applied,
        },
        other => Act::Change(other),
    }
}

/// The record of an update just sent: the fields and values sent now, plus those of the previous
/// record still being applied (they were not sent again, so the record must keep them).
pub fn record_sent(
    previous: Option<&SentUpdate>,
    values: &std::collections::BTreeMap<&'static str, String>,
    generation: Option<i64>,
    now: Timestamp,
) -> SentUpdate {
    let mut kept = previous
        .filter(|p| p.applied_at.is_none())
        .map(|p| p.values.clone())
        .unwrap_or_default();
    for (k, v) in values {
        kept.insert((*k).to_string(), v.clone());
    }
    SentUpdate {
        fields: kept.keys().cloned().collect(),
        values: kept,
        generation,
        sent_at: now.to_string(),
        applied_at: None,
    }
}

/// What a delete does.
#[derive(Clone, Debug, PartialEq)]
pub enum DeletePlan {
    /// Nothing exists remotely: release the finalizer.
    Release,
    /// Leave the remote object (this ID, if any) in Databricks and release.
    Orphan(Option<String>),
    /// Not yet.
    Wait(Wait),
    /// A create whose answer was lost: find what it made, then delete that.
    FindPending,
    /// Delete the remote object with this ID.
    Delete(String),
}

/// Decides what a delete does, before any API call. `users` are the objects that still name
/// this one; `default_policy` applies when the spec sets none.
pub fn plan_delete<K: Managed>(
    obj: &K,
    status: &K::Status,
    paused: bool,
    default_policy: DeletionPolicy,
    users: &[String],
    poll: Duration,
) -> DeletePlan {
    let mgmt = obj.management();
    if paused {
        return DeletePlan::Wait(Wait {
            reason: Reason::Paused,
            message: "deletion waits: the paused annotation is set".into(),
            ready: false,
            warn: false,
            requeue: poll,
        });
    }
    let policy = mgmt.deletion_policy.unwrap_or(default_policy);
    if policy == DeletionPolicy::Orphan || mgmt.management_policy == ManagementPolicy::ObserveOnly {
        return DeletePlan::Orphan(K::remote_id(status));
    }
    if !users.is_empty() {
        return DeletePlan::Wait(Wait {
            reason: Reason::InUse,
            message: format!(
                "cannot delete yet: still used by {}; it is deleted once they are gone",
                users.join(", ")
            ),
            ready: true,
            warn: false,
            requeue: Duration::from_secs(5),
        });
    }
    match K::remote_id(status) {
        Some(id) => DeletePlan::Delete(id),
        None if K::common_ref(status).pending_create.is_some() => DeletePlan::FindPending,
        // Nothing was ever created (or started): nothing to delete, whatever else is broken.
        None => DeletePlan::Release,
    }
}

pub mod reach;

#[cfg(test)]
mod tests;
