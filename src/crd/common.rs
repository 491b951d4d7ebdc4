//! Pieces every managed kind shares: account reference, policies, dependency references, status
//! and conditions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind.
pub const GROUP: &str = "account.databricks-operator.dev";
/// Finalizer that holds an object until its remote counterpart is handled.
pub const FINALIZER: &str = "account.databricks-operator.dev/cleanup";
/// The prefix of the operator's annotations: the caches keep only these (see `trim_meta`).
pub const ANNOTATION_PREFIX: &str = "account.databricks-operator.dev/";
/// Annotation: `"true"` stops every API call for the object.
pub const PAUSED_ANNOTATION: &str = "account.databricks-operator.dev/paused";
/// Annotation: the object's observation interval (`30s`, `5m`, `1h`).
pub const POLL_INTERVAL_ANNOTATION: &str = "account.databricks-operator.dev/poll-interval";
/// Label that opts a Secret in for this operator: only Secrets labelled `"true"` are watched and
/// read, and only their documented keys are sent.
pub const SECRET_LABEL: &str = "account.databricks-operator.dev/account-secret";
/// Finalizer kept on an opted-in Secret while a `DatabricksAccount` names it, so that a namespace
/// delete cannot remove the credentials the account's objects are deleted with.
pub const SECRET_FINALIZER: &str = "account.databricks-operator.dev/account-secret-in-use";
/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "databricks-account-operator";

/// A reference to an object in the same namespace, by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalRef {
    /// Name of the object in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

fn default_account_ref() -> LocalRef {
    LocalRef {
        name: "default".into(),
    }
}

/// What happens to the Databricks object when the Kubernetes object is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Databricks object too.
    Delete,
    /// Leave the Databricks object in place.
    Orphan,
}

/// How far the operator may act on the Databricks object.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete as the spec says.
    #[default]
    Full,
    /// Only read the object (found by `externalId` or by name) and report it; never write or delete.
    ObserveOnly,
}

/// Fields every managed kind has.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Management {
    /// The DatabricksAccount in this namespace whose API manages this object. Defaults to `default`.
    #[serde(default = "default_account_ref")]
    pub account_ref: LocalRef,
    /// `Delete` removes the Databricks object with this one; `Orphan` leaves it. Defaults to the
    /// operator's `--default-deletion-policy` (itself `Delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// `Full` (default) manages the object; `ObserveOnly` only reads and reports it.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// The Databricks ID of an existing object to adopt instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub external_id: Option<String>,
}

impl Default for Management {
    fn default() -> Self {
        Self {
            account_ref: default_account_ref(),
            deletion_policy: None,
            management_policy: ManagementPolicy::Full,
            external_id: None,
        }
    }
}

/// A dependency: either another object of this operator in the same namespace (`name`), or the
/// Databricks ID of an object managed elsewhere (`id`). Exactly one of the two.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(extend("oneOf" = [{"required": ["name"]}, {"required": ["id"]}]))]
pub struct DependencyRef {
    /// Name of the object in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Databricks ID of an object not managed in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub id: Option<String>,
}

impl DependencyRef {
    /// A reference by name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            id: None,
        }
    }
}

/// One condition, as `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A PascalCase reason from a closed set.
    pub reason: String,
    /// What happened and what to do, for a person.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A create the operator has started but not seen the answer of. While it is set, the operator
/// looks the object up by name (and content) before it creates again.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// The name the object is created with.
    pub name: String,
    /// When the create was started (RFC 3339).
    pub since: String,
}

/// An update the operator sent to Databricks.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SentUpdate {
    /// The API fields it set (its update mask), sorted.
    pub fields: Vec<String>,
    /// The value sent for each field (IDs; tags as compact JSON).
    pub values: BTreeMap<String, String>,
    /// The `metadata.generation` it was sent for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
    /// When the workspace was first seen RUNNING with every field applied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

/// Status fields every managed kind has.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (usable now) and `Synced` (last exchange with the API succeeded); on a workspace
    /// also `Reachable` (it answered a login and an authenticated call on its own host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Set while a create is in flight (see the field's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
    /// The DatabricksAccount the Databricks ID belongs to. The object never moves to another
    /// account: a changed `accountRef` is reported, not followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
}

/// Why a condition is what it is: a closed set, shown as the condition's reason and used as the
/// event reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The object exists and is usable.
    Available,
    /// A create is in flight.
    Creating,
    /// A workspace is being provisioned, or an endpoint is pending.
    Provisioning,
    /// A changed field is being applied.
    Updating,
    /// A spec change waits until the workspace takes updates again (it is provisioning).
    UpdatePending,
    /// Databricks accepted an update but did not show it applied within the bounded time.
    UpdateNotApplied,
    /// A dependency is missing or not Ready.
    WaitingForDependency,
    /// The IAM role is not yet visible to Databricks; retried for a bounded window.
    CredentialValidationPending,
    /// Deletion waits for objects that still use this one.
    InUse,
    /// Deletion is in progress.
    Deleting,
    /// The paused annotation is set.
    Paused,
    /// Observe-only: read and reported, never written.
    ObserveOnly,
    /// A field the API cannot change was changed.
    ImmutableFieldChanged,
    /// The API refused the request; a retry would not help.
    ApiRejected,
    /// A create was refused because the account has reached a Databricks object quota.
    QuotaExceeded,
    /// The API could not be reached or answered with a transient failure; retried with backoff.
    ApiUnavailable,
    /// The workspace failed to provision.
    ProvisioningFailed,
    /// The workspace is banned.
    Banned,
    /// The workspace is being cancelled.
    Cancelling,
    /// The name is taken by an object this resource did not create.
    NameConflict,
    /// The account credentials were refused.
    AuthenticationFailed,
    /// The account's host is not on the operator's allow-list; nothing is sent to it.
    HostNotAllowed,
    /// The object does not exist in Databricks (observe-only or adoption).
    NotFound,
    /// The spec cannot be used as it is (for example a missing Secret key).
    InvalidSpec,
    /// The last exchange with the API succeeded.
    Synced,
    /// `Reachable`: the workspace answered a login and an authenticated call.
    Reachable,
    /// `Reachable`: the workspace's host name does not resolve yet.
    DnsPending,
    /// `Reachable`: the TLS handshake with the workspace failed.
    TlsError,
    /// `Reachable`: the workspace refused the account's credentials.
    Unauthorized,
    /// `Reachable`: the workspace does not answer (refused, timed out, 5xx).
    WorkspaceUnavailable,
}

impl Reason {
    /// The PascalCase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "Available",
            Self::Creating => "Creating",
            Self::Provisioning => "Provisioning",
            Self::Updating => "Updating",
            Self::UpdatePending => "UpdatePending",
            Self::UpdateNotApplied => "UpdateNotApplied",
            Self::WaitingForDependency => "WaitingForDependency",
            Self::CredentialValidationPending => "CredentialValidationPending",
            Self::InUse => "InUse",
            Self::Deleting => "Deleting",
            Self::Paused => "Paused",
            Self::ObserveOnly => "ObserveOnly",
            Self::ImmutableFieldChanged => "ImmutableFieldChanged",
            Self::ApiRejected => "ApiRejected",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::ApiUnavailable => "ApiUnavailable",
            Self::ProvisioningFailed => "ProvisioningFailed",
            Self::Banned => "Banned",
            Self::Cancelling => "Cancelling",
            Self::NameConflict => "NameConflict",
            Self::AuthenticationFailed => "AuthenticationFailed",
            Self::HostNotAllowed => "HostNotAllowed",
            Self::NotFound => "NotFound",
            Self::InvalidSpec => "InvalidSpec",
            Self::Synced => "Synced",
            Self::Reachable => "Reachable",
            Self::DnsPending => "DnsPending",
            Self::TlsError => "TlsError",
            Self::Unauthorized => "Unauthorized",
            Self::WorkspaceUnavailable => "WorkspaceUnavailable",
        }
    }
}

impl CommonStatus {
    /// The condition of a type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether `Ready` is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }

    /// Sets a condition, keeping `lastTransitionTime` unless the status flips.
    pub fn set_condition(
        &mut self,
        type_: &str,
        ok: bool,
        reason: Reason,
        message: impl Into<String>,
        generation: Option<i64>,
    ) {
        let status = if ok { "True" } else { "False" };
        let message = crate::bounds::message(&message.into());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status.into();
                c.reason = reason.as_str().into();
                c.message = message;
                c.observed_generation = generation;
            }
            None => self.conditions.push(Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.as_str().into(),
                message,
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }
}
