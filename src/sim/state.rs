//! The simulated account: every object, its validation and the workspace state machine.
//!
//! Pure and synchronous: every operation takes the current time (`now`, epoch milliseconds) as an
//! argument, and time-driven transitions (PROVISIONING → RUNNING, CANCELLING → gone, VPC endpoint
//! `pending` → `available`) are computed lazily by [`Store::tick`] at request time, so tests are
//! deterministic and no background task is needed.
//!
//! Objects are kept in their wire form (`serde_json::Map`), so the simulator checks the real JSON
//! shapes independently of any client model.

use std::collections::{BTreeMap, HashMap};

mod fidelity;
mod ncc;
pub use fidelity::{
    BannedWorkspaces, DATAPLANE_RELAY_ACCESS, DEFAULT_BANNED_MESSAGE, DEFAULT_NETWORK_WARNING,
    GENERAL_ACCESS, NetworkWarning, NetworkWarnings, QUOTA_ERROR_CODE, Quotas, WORKSPACE_ACCESS,
    endpoint_service_id,
};
pub use ncc::{NCC_PAGE_SIZE, ncc_route};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// AWS regions the simulated account accepts unless configured otherwise
/// ([`StoreConfig::regions`]): the regions Databricks lists for workspaces on AWS, GovCloud included
/// (account-api.md §11.10). A real account may see fewer (GovCloud is a separate account host) or
/// more (a region added since), so the list is a setting, not a rule.
pub const DEFAULT_REGIONS: &[&str] = &[
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-west-1",
];

/// The regions accepted by default, as owned strings.
pub fn default_regions() -> Vec<String> {
    DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect()
}

/// Fields a SERVERLESS workspace cannot have, on create or PATCH. Terraform's docs say
/// `credentials_id` and `storage_configuration_id` "must not be set", and the SRA leaves
/// `network_id` out too (account-api.md §11.9). Whether the server refuses them (and with which
/// message) or ignores them is unconfirmed: the simulator refuses, the stricter reading, so a client
/// that mixes them finds out here. Private access settings and keys are accepted: nothing says
/// either way.
pub const SERVERLESS_EXCLUDES: &[&str] =
    &["credentials_id", "storage_configuration_id", "network_id"];

/// The simulator's refusal of [`SERVERLESS_EXCLUDES`] on a SERVERLESS workspace (our wording: the
/// real message is unconfirmed).
pub const SERVERLESS_MIXED_MESSAGE: &str =
    "A SERVERLESS workspace cannot have credentials, storage or a network";

/// The exact plain-text error of a create with `deployment_name` when the account has no prefix.
pub const NO_PREFIX_MESSAGE: &str = "Failed parameter validation checks: Deployment name cannot be used until a deployment name prefix is defined. Please contact your Databricks representative";

/// The exact plain-text error of the IAM-propagation fault.
pub const CREDENTIAL_VALIDATION_MESSAGE: &str = "Failed credential validation checks: please use a valid cross account IAM role with permissions setup correctly";

/// Status message of a workspace that is running.
pub const RUNNING_MESSAGE: &str = "Workspace is running.";
/// Status message of a workspace right after create.
pub const NOT_PROVISIONED_MESSAGE: &str = "Workspace has not yet begun provisioning.";
/// Status message of a workspace being provisioned.
pub const PROVISIONING_MESSAGE: &str = "Workspace resources are being set up.";
/// Status message of a workspace being deleted.
pub const CANCELLING_MESSAGE: &str = "Workspace is being deleted.";
/// Default status message of a workspace that failed (fault injection).
pub const DEFAULT_FAILURE_MESSAGE: &str = "Workspace failed to launch: the security group does not allow the required egress. Check the network configuration.";

/// An API error as the service returns it: an HTTP status, an `error_code` and a message, either as a
/// JSON body `{"error_code","message"}` or (as the real Account API does for several validation
/// failures) as a `text/plain` body `CODE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The `error_code` (for example `MALFORMED_REQUEST`).
    pub code: &'static str,
    /// The human-readable message.
    pub message: String,
    /// Whether the body is `text/plain` `CODE: message` instead of JSON.
    pub plain_text: bool,
}

impl ApiError {
    /// A JSON 400 `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
            plain_text: false,
        }
    }
    /// A plain-text 400 `MALFORMED_REQUEST: message`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "MALFORMED_REQUEST",
            message: message.into(),
            plain_text: true,
        }
    }
    /// A JSON 400 `INVALID_STATE`.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "INVALID_STATE",
            message: message.into(),
            plain_text: false,
        }
    }
    /// A JSON 404 `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
            plain_text: false,
        }
    }
}

/// The configuration kinds (every object except workspaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/credentials`
    Credential,
    /// `/storage-configurations`
    Storage,
    /// `/customer-managed-keys`
    Key,
    /// `/networks`
    Network,
    /// `/vpc-endpoints`
    VpcEndpoint,
    /// `/private-access-settings`
    PrivateAccess,
}

impl Kind {
    /// All configuration kinds, in a stable order.
    pub const ALL: [Kind; 6] = [
        Kind::Credential,
        Kind::Storage,
        Kind::Key,
        Kind::Network,
        Kind::VpcEndpoint,
        Kind::PrivateAccess,
    ];

    /// The path segment under `/api/2.0/accounts/{account_id}/`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Credential => "credentials",
            Kind::Storage => "storage-configurations",
            Kind::Key => "customer-managed-keys",
            Kind::Network => "networks",
            Kind::VpcEndpoint => "vpc-endpoints",
            Kind::PrivateAccess => "private-access-settings",
        }
    }

    /// Parse a path segment.
    pub fn from_path(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == segment)
    }

    /// The JSON key of the object's ID (also the workspace field that references it, for most kinds).
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Credential => "credentials_id",
            Kind::Storage => "storage_configuration_id",
            Kind::Key => "customer_managed_key_id",
            Kind::Network => "network_id",
            Kind::VpcEndpoint => "vpc_endpoint_id",
            Kind::PrivateAccess => "private_access_settings_id",
        }
    }

    /// The camelCase ID name used in `MALFORMED_REQUEST: Invalid <name>: <value>` errors.
    pub fn camel_id(self) -> &'static str {
        match self {
            Kind::Credential => "credentialsId",
            Kind::Storage => "storageConfigurationId",
            Kind::Key => "customerManagedKeyId",
            Kind::Network => "networkId",
            Kind::VpcEndpoint => "vpcEndpointId",
            Kind::PrivateAccess => "privateAccessSettingsId",
        }
    }

    /// The name used in `Unable to delete, <Kind> is being used by active workspace <id>`.
    pub fn display(self) -> &'static str {
        match self {
            Kind::Credential => "Credential",
            Kind::Storage => "Storage configuration",
            Kind::Key => "Customer-managed key",
            Kind::Network => "Network",
            Kind::VpcEndpoint => "VPC endpoint",
            Kind::PrivateAccess => "Private access settings",
        }
    }

    /// The JSON key of the object's name.
    fn name_field(self) -> &'static str {
        match self {
            Kind::Credential => "credentials_name",
            Kind::Storage => "storage_configuration_name",
            Kind::Key => "customer_managed_key_name",
            Kind::Network => "network_name",
            Kind::VpcEndpoint => "vpc_endpoint_name",
            Kind::PrivateAccess => "private_access_settings_name",
        }
    }
}

/// A rule that makes matching workspaces end `FAILED` instead of `RUNNING`. Every condition that is
/// set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailRule {
    /// The workspace name contains this substring.
    pub workspace_name_contains: Option<String>,
    /// The workspace uses exactly this credentials ID.
    pub credentials_id: Option<String>,
    /// The role ARN of the workspace's credential contains this substring.
    pub role_arn_contains: Option<String>,
    /// Only while the workspace still uses the credential it was created with: a PATCH to another
    /// credential lets the next provisioning succeed.
    pub while_initial_credentials: bool,
    /// The `workspace_status_message` (a default message when unset).
    pub message: Option<String>,
    /// The network `error_messages[].error_type` (`securityGroup` when unset).
    pub error_type: Option<String>,
}

/// The IAM-propagation fault: credential creates (and workspace creates using such a credential) fail
/// with the plain-text credential-validation error for `seconds` after the role ARN is first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialPropagation {
    /// Length of the window after a role ARN is first seen.
    pub seconds: u64,
    /// Only this role ARN (every role when unset).
    pub role_arn: Option<String>,
}

/// The running-clusters fault: a PATCH of a matching RUNNING workspace is refused, as Databricks
/// refuses an update while classic compute runs in the workspace (account-api.md §4.4: "the
/// request will fail").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningClusters {
    /// Only workspaces whose name contains this (every workspace when unset).
    pub workspace_name_contains: Option<String>,
}

/// The storage-key revert fault: a PATCH that sets `storage_customer_managed_key_id` is accepted
/// and shown, then the field silently goes back to its previous value after `after_ms`
/// (account-api.md §4.4: a storage key change "might revert silently" on failure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageKeyRevert {
    /// How long the new key shows before it goes back (ms).
    pub after_ms: u64,
}

/// The refusal of an update while classic compute runs. **Unconfirmed:** no source we have quotes
/// the production text or code; the code follows the other state refusals (`INVALID_STATE`) and
/// the text the legacy API doc's precondition (no running all-purpose or job clusters, pools or
/// classic SQL warehouses in the workspace).
pub const RUNNING_CLUSTERS_MESSAGE: &str = "Workspace cannot be updated while it has running compute resources. Terminate all clusters, instance pools and classic SQL warehouses in the workspace, then retry the update.";

/// Timings and account settings of a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The account ID put in every object.
    pub account_id: String,
    /// The account's deployment-name prefix.
    pub deployment_prefix: Option<String>,
    /// How long a workspace stays PROVISIONING (ms).
    pub provisioning_ms: u64,
    /// How long a deleted workspace stays CANCELLING (ms).
    pub deletion_ms: u64,
    /// How long a VPC endpoint stays `pending` (ms).
    pub endpoint_pending_ms: u64,
    /// How long the objects of a removed workspace stay "in use" (ms).
    pub in_use_linger_ms: u64,
    /// How long a PATCH of `custom_tags` takes to show on the workspace (ms; 0: at once).
    /// Databricks documents that tags "can take up to an hour" (account-api.md §4.4).
    pub tags_apply_ms: u64,
    /// The AWS regions the account accepts (others: 400 `INVALID_PARAMETER_VALUE`).
    pub regions: Vec<String>,
    /// Regions where workspaces refuse customer-managed keys. Empty by default: older Databricks
    /// pages said us-west-1 had no CMK support, the current regions page lists it
    /// (account-api.md §11.10), so the rule is only turned on to test how a refusal is reported.
    pub no_cmk_regions: Vec<String>,
    /// AWS VPC endpoint IDs (or `prefix*` patterns) that connect to the region's secure cluster
    /// connectivity relay service; every other endpoint connects to the workspace (front-end and
    /// REST API) service. It decides a registration's `use_case` (`DATAPLANE_RELAY_ACCESS` or
    /// `GENERAL_ACCESS`) and `aws_endpoint_service_id`, as Databricks derives them from the AWS
    /// endpoint. Empty (default): the simulator does not know the services, registers every
    /// endpoint as `WORKSPACE_ACCESS`, and locks it to relay when a network first lists it in
    /// `dataplane_relay`.
    pub relay_endpoints: Vec<String>,
    /// The account's object quotas (`None`, default: unlimited).
    pub quotas: Option<Quotas>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Provisioning,
    Running,
    Failed,
    Banned,
    Cancelling,
}

#[derive(Debug, Clone)]
struct WorkspaceRec {
    /// Wire fields except `workspace_status` and `workspace_status_message`.
    body: Map<String, Value>,
    phase: Phase,
    phase_since: u64,
    message: String,
    /// Whether it ever reached RUNNING (a storage key can then no longer change on FAILED).
    ever_running: bool,
    initial_credentials_id: Option<String>,
    /// Tags accepted by a PATCH, and when they show.
    pending_tags: Option<(Value, u64)>,
    /// A storage key change that goes back: the previous value, and when.
    revert_storage_key: Option<(Value, u64)>,
}

impl WorkspaceRec {
    fn id(&self) -> i64 {
        self.body
            .get("workspace_id")
            .and_then(Value::as_i64)
            .unwrap_or_default()
    }
    fn str_field(&self, key: &str) -> Option<&str> {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    fn wire(&self) -> Value {
        let mut body = self.body.clone();
        let status = match self.phase {
            Phase::Provisioning => "PROVISIONING",
            Phase::Running => "RUNNING",
            Phase::Failed => "FAILED",
            Phase::Banned => "BANNED",
            Phase::Cancelling => "CANCELLING",
        };
        body.insert("workspace_status".into(), json!(status));
        body.insert("workspace_status_message".into(), json!(self.message));
        Value::Object(body)
    }
    /// The configuration objects this workspace references.
    fn references(&self) -> Vec<(Kind, String)> {
        let mut refs = Vec::new();
        for (kind, field) in [
            (Kind::Credential, "credentials_id"),
            (Kind::Storage, "storage_configuration_id"),
            (Kind::Network, "network_id"),
            (Kind::Key, "managed_services_customer_managed_key_id"),
            (Kind::Key, "storage_customer_managed_key_id"),
            (Kind::PrivateAccess, "private_access_settings_id"),
        ] {
            if let Some(id) = self.str_field(field) {
                refs.push((kind, id.to_string()));
            }
        }
        refs
    }
}

#[derive(Debug, Clone)]
struct Linger {
    workspace_id: i64,
    refs: Vec<(Kind, String)>,
    until: u64,
}

/// All objects of the simulated account.
#[derive(Debug, Clone)]
pub struct Store {
    config: StoreConfig,
    objects: BTreeMap<Kind, Vec<Map<String, Value>>>,
    /// VPC endpoint ID → creation time (for `pending` → `available`).
    endpoint_created: HashMap<String, u64>,
    workspaces: Vec<WorkspaceRec>,
    lingers: Vec<Linger>,
    role_first_seen: HashMap<String, u64>,
    /// Workspace-failure rules (fault injection).
    pub fail_rules: Vec<FailRule>,
    /// IAM-propagation window (fault injection).
    pub propagation: Option<CredentialPropagation>,
    /// Running classic compute refuses workspace updates (fault injection).
    pub running_clusters: Option<RunningClusters>,
    /// Storage key changes go back after a while (fault injection).
    pub storage_key_revert: Option<StorageKeyRevert>,
    /// Networks of matching workspaces end WARNED (fault injection).
    pub network_warnings: Option<NetworkWarnings>,
    /// Matching RUNNING workspaces are BANNED while set (fault injection).
    pub banned: Option<BannedWorkspaces>,
    /// Network connectivity configurations and their rules (`ncc.rs`).
    nccs: Vec<ncc::NccRec>,
}

/// The fields a PATCH may touch, with the state rules of account-api.md §4.4.
const PATCHABLE: &[&str] = &[
    "credentials_id",
    "storage_configuration_id",
    "aws_region",
    "network_id",
    "managed_services_customer_managed_key_id",
    "storage_customer_managed_key_id",
    "private_access_settings_id",
    "custom_tags",
    "network_connectivity_config_id",
    "expected_workspace_status",
];

/// Output-only workspace fields a client may echo back in a PATCH body; ignored.
const WORKSPACE_OUTPUT_ONLY: &[&str] = &[
    "workspace_id",
    "account_id",
    "creation_time",
    "workspace_status",
    "workspace_status_message",
    "cloud",
    "storage_mode",
];

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::malformed("Cannot parse request body: expected a JSON object"))
}

fn opt_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::malformed(format!(
            "Cannot parse request body: field {key} must be a string"
        ))),
    }
}

fn req_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    opt_str(body, key)?.ok_or_else(|| ApiError::invalid(format!("Missing required field: {key}")))
}

fn str_list(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::malformed(format!(
                        "Cannot parse request body: {key} must be a list of strings"
                    ))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::malformed(format!(
            "Cannot parse request body: {key} must be a list of strings"
        ))),
    }
}

/// Validate `custom_tags`: a map of strings, keys 1-127 characters, values at most 255.
pub fn check_custom_tags(tags: &Value) -> Result<(), ApiError> {
    let Some(map) = tags.as_object() else {
        return Err(ApiError::malformed(
            "Cannot parse request body: custom_tags must be a map of strings",
        ));
    };
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            return Err(ApiError::malformed(
                "Cannot parse request body: custom_tags must be a map of strings",
            ));
        };
        let klen = k.chars().count();
        if klen == 0 || klen > 127 {
            return Err(ApiError::invalid(format!(
                "Invalid custom tag key '{k}': keys must be 1 to 127 characters"
            )));
        }
        if v.chars().count() > 255 {
            return Err(ApiError::invalid(format!(
                "Invalid custom tag value for key '{k}': values must be at most 255 characters"
            )));
        }
    }
    Ok(())
}

/// Compute the response `deployment_name` from the requested one and the account prefix
/// (account-api.md §4.3): `prefix-name`, or just `prefix` for the reserved value `EMPTY`.
pub fn resolve_deployment_name(requested: &str, prefix: Option<&str>) -> Result<String, ApiError> {
    let Some(prefix) = prefix else {
        return Err(ApiError::malformed(NO_PREFIX_MESSAGE));
    };
    let full = if requested == "EMPTY" {
        prefix.to_string()
    } else {
        format!("{prefix}-{requested}")
    };
    let valid_chars = full
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_chars || full.starts_with('-') || full.ends_with('-') || full.contains("--") {
        return Err(ApiError::malformed(format!(
            "Failed parameter validation checks: Deployment name {full} is invalid: only lowercase letters, digits and single hyphens are allowed, and it cannot start or end with a hyphen"
        )));
    }
    if full.len() > 64 {
        return Err(ApiError::malformed(format!(
            "Failed parameter validation checks: Deployment name {full} is longer than 64 characters"
        )));
    }
    Ok(full)
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A random positive workspace ID of 15-16 digits (below 2^53, so JSON numbers stay exact everywhere).
fn random_workspace_id() -> i64 {
    rand::rng().random_range(100_000_000_000_000..9_000_000_000_000_000)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Store {
    /// An empty account.
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            objects: Kind::ALL.into_iter().map(|k| (k, Vec::new())).collect(),
            endpoint_created: HashMap::new(),
            workspaces: Vec::new(),
            lingers: Vec::new(),
            role_first_seen: HashMap::new(),
            fail_rules: Vec::new(),
            propagation: None,
            running_clusters: None,
            storage_key_revert: None,
            network_warnings: None,
            banned: None,
            nccs: Vec::new(),
        }
    }

    /// The account settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn check_region(&self, region: &str) -> Result<(), ApiError> {
        if self.config.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(ApiError::invalid(format!(
                "Region {region} is not supported. Supported regions: {}",
                self.config.regions.join(", ")
            )))
        }
    }

    fn list_of(&self, kind: Kind) -> &[Map<String, Value>] {
        self.objects.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    fn list_mut(&mut self, kind: Kind) -> &mut Vec<Map<String, Value>> {
        self.objects.entry(kind).or_default()
    }

    fn find(&self, kind: Kind, id: &str) -> Option<&Map<String, Value>> {
        self.list_of(kind)
            .iter()
            .find(|o| o.get(kind.id_field()).and_then(Value::as_str) == Some(id))
    }

    fn find_mut(&mut self, kind: Kind, id: &str) -> Option<&mut Map<String, Value>> {
        self.list_mut(kind)
            .iter_mut()
            .find(|o| o.get(kind.id_field()).and_then(Value::as_str) == Some(id))
    }

    fn require(&self, kind: Kind, id: &str) -> Result<&Map<String, Value>, ApiError> {
        self.find(kind, id)
            .ok_or_else(|| ApiError::malformed(format!("Invalid {}: {id}", kind.camel_id())))
    }

    /// The deployment names of the workspaces RUNNING for at least `delay_ms` at `now` (their
    /// hosts resolve; see `workspaces.rs`). Call [`Self::tick`] first.
    pub fn reachable_deployments(&self, now: u64, delay_ms: u64) -> Vec<String> {
        self.workspaces
            .iter()
            .filter(|w| w.phase == Phase::Running && now >= w.phase_since.saturating_add(delay_ms))
            .filter_map(|w| w.str_field("deployment_name").map(str::to_string))
            .collect()
    }

    fn workspace_idx(&self, id: i64) -> Option<usize> {
        self.workspaces.iter().position(|w| w.id() == id)
    }

    /// Apply every time-driven transition due at `now`.
    pub fn tick(&mut self, now: u64) {
        self.tick_nccs(now);
        // VPC endpoints: pending -> available.
        let pending = self.config.endpoint_pending_ms;
        let created = self.endpoint_created.clone();
        for ep in self.list_mut(Kind::VpcEndpoint) {
            let id = ep
                .get("vpc_endpoint_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(t) = created.get(id)
                && now >= t + pending
            {
                ep.insert("state".into(), json!("available"));
            }
        }
        // Workspaces: accepted tags show; a reverting storage key goes back.
        for ws in &mut self.workspaces {
            if let Some((tags, due)) = ws.pending_tags.take() {
                if now >= due {
                    ws.body.insert("custom_tags".into(), tags);
                } else {
                    ws.pending_tags = Some((tags, due));
                }
            }
            if let Some((old, due)) = ws.revert_storage_key.take() {
                if now >= due {
                    if old.is_null() {
                        ws.body.remove("storage_customer_managed_key_id");
                    } else {
                        ws.body
                            .insert("storage_customer_managed_key_id".into(), old);
                    }
                } else {
                    ws.revert_storage_key = Some((old, due));
                }
            }
        }
        // Workspaces: provisioning ends; cancelled ones disappear.
        for i in 0..self.workspaces.len() {
            let ws = &self.workspaces[i];
            if ws.phase == Phase::Provisioning
                && now >= ws.phase_since + self.config.provisioning_ms
                && ws.str_field("expected_workspace_status") != Some("PROVISIONING")
            {
                self.finish_provisioning(i, now);
            }
        }
        // Workspaces: a ban starts on RUNNING ones and ends when the fault no longer names them.
        let banned = self.banned.clone();
        for ws in &mut self.workspaces {
            let name = ws.str_field("workspace_name").unwrap_or_default();
            let ban = banned.as_ref().filter(|b| b.applies_to(name));
            match (ws.phase, ban) {
                (Phase::Running, Some(b)) => {
                    ws.phase = Phase::Banned;
                    ws.phase_since = now;
                    ws.message = b.message();
                }
                (Phase::Banned, None) => {
                    ws.phase = Phase::Running;
                    ws.phase_since = now;
                    ws.message = RUNNING_MESSAGE.to_string();
                }
                _ => {}
            }
        }
        let deletion = self.config.deletion_ms;
        let linger = self.config.in_use_linger_ms;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.workspaces)
            .into_iter()
            .partition(|w| w.phase == Phase::Cancelling && now >= w.phase_since + deletion);
        self.workspaces = kept;
        for ws in gone {
            if let Some(net) = ws.str_field("network_id")
                && let Some(n) = self.find_mut(Kind::Network, net)
                && n.get("workspace_id").and_then(Value::as_i64) == Some(ws.id())
            {
                n.remove("workspace_id");
                n.remove("warning_messages");
                n.insert("vpc_status".into(), json!("UNATTACHED"));
            }
            if linger > 0 {
                self.lingers.push(Linger {
                    workspace_id: ws.id(),
                    refs: ws.references(),
                    until: ws.phase_since + deletion + linger,
                });
            }
        }
        self.lingers.retain(|l| now < l.until);
    }

    fn failure_for(&self, ws: &WorkspaceRec) -> Option<FailRule> {
        let name = ws.str_field("workspace_name").unwrap_or_default();
        let cred = ws.str_field("credentials_id");
        let role = cred
            .and_then(|c| self.find(Kind::Credential, c))
            .and_then(|c| c.get("aws_credentials"))
            .and_then(|a| a.get("sts_role"))
            .and_then(|s| s.get("role_arn"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.fail_rules
            .iter()
            .find(|r| {
                r.workspace_name_contains
                    .as_deref()
                    .is_none_or(|s| name.contains(s))
                    && r.credentials_id.as_deref().is_none_or(|c| cred == Some(c))
                    && r.role_arn_contains
                        .as_deref()
                        .is_none_or(|s| role.contains(s))
                    && (!r.while_initial_credentials
                        || cred.map(str::to_string) == ws.initial_credentials_id)
            })
            .cloned()
    }

    fn finish_provisioning(&mut self, idx: usize, now: u64) {
        let Some(ws) = self.workspaces.get(idx) else {
            return;
        };
        let failure = self.failure_for(ws);
        let warnings = self
            .network_warnings
            .as_ref()
            .filter(|w| w.applies_to(ws.str_field("workspace_name").unwrap_or_default()))
            .map(NetworkWarnings::wire);
        let network = ws.str_field("network_id").map(str::to_string);
        let ws_id = ws.id();
        let deadline = ws.phase_since + self.config.provisioning_ms;
        let mut net_update = None;
        if let Some(ws) = self.workspaces.get_mut(idx) {
            ws.phase_since = deadline.min(now);
            match &failure {
                Some(rule) => {
                    ws.phase = Phase::Failed;
                    ws.message = rule
                        .message
                        .clone()
                        .unwrap_or_else(|| DEFAULT_FAILURE_MESSAGE.to_string());
                    net_update = Some((
                        "BROKEN",
                        json!([{
                            "error_type": rule.error_type.clone().unwrap_or_else(|| "securityGroup".into()),
                            "error_message": ws.message,
                        }]),
                    ));
                }
                None => {
                    ws.phase = Phase::Running;
                    ws.ever_running = true;
                    ws.message = RUNNING_MESSAGE.to_string();
                    net_update = Some((
                        if warnings.is_some() {
                            "WARNED"
                        } else {
                            "VALID"
                        },
                        json!([]),
                    ));
                }
            }
        }
        if let (Some(net), Some((status, errors))) = (network, net_update)
            && let Some(n) = self.find_mut(Kind::Network, &net)
        {
            n.insert("vpc_status".into(), json!(status));
            n.insert("workspace_id".into(), json!(ws_id));
            if errors.as_array().is_some_and(Vec::is_empty) {
                n.remove("error_messages");
            } else {
                n.insert("error_messages".into(), errors);
            }
            match warnings.filter(|_| status == "WARNED") {
                Some(w) => n.insert("warning_messages".into(), w),
                None => n.remove("warning_messages"),
            };
        }
    }

    fn check_propagation(&mut self, role_arn: &str, now: u64) -> Result<(), ApiError> {
        let first = *self
            .role_first_seen
            .entry(role_arn.to_string())
            .or_insert(now);
        if let Some(p) = &self.propagation
            && p.role_arn.as_deref().is_none_or(|r| r == role_arn)
            && now < first + p.seconds * 1000
        {
            return Err(ApiError::malformed(CREDENTIAL_VALIDATION_MESSAGE));
        }
        Ok(())
    }

    /// Every live object of one kind, as `GET /{kind}` returns them.
    pub fn list(&self, kind: Kind) -> Vec<Value> {
        self.list_of(kind)
            .iter()
            .map(|o| Value::Object(o.clone()))
            .collect()
    }

    /// One object, as `GET /{kind}/{id}` returns it.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Value, ApiError> {
        self.find(kind, id)
            .map(|o| Value::Object(o.clone()))
            .ok_or_else(|| ApiError::not_found(format!("{} {id} does not exist.", kind.display())))
    }

    fn base_object(&self, kind: Kind, now: u64) -> Map<String, Value> {
        let mut obj = Map::new();
        obj.insert(kind.id_field().into(), json!(new_uuid()));
        obj.insert("account_id".into(), json!(self.config.account_id));
        obj.insert("creation_time".into(), json!(now));
        obj
    }

    /// `POST /{kind}`: validate and store a configuration object.
    pub fn create(&mut self, kind: Kind, body: &Value, now: u64) -> Result<Value, ApiError> {
        let body = as_object(body)?;
        if let Some(q) = &self.config.quotas {
            q.check(kind, self.list_of(kind).len())?;
        }
        let obj = match kind {
            Kind::Credential => self.build_credential(body, now)?,
            Kind::Storage => self.build_storage(body, now)?,
            Kind::Key => self.build_key(body, now)?,
            Kind::Network => self.build_network(body, now)?,
            Kind::VpcEndpoint => self.build_endpoint(body, now)?,
            Kind::PrivateAccess => {
                let mut obj = self.base_object(kind, now);
                obj.remove("creation_time");
                self.fill_pas(&mut obj, body, None)?;
                obj
            }
        };
        if kind == Kind::Network && self.config.relay_endpoints.is_empty() {
            self.claim_endpoints(&obj);
        }
        if kind == Kind::VpcEndpoint
            && let Some(id) = obj.get("vpc_endpoint_id").and_then(Value::as_str)
        {
            self.endpoint_created.insert(id.to_string(), now);
        }
        self.list_mut(kind).push(obj.clone());
        Ok(Value::Object(obj))
    }

    fn build_credential(
        &mut self,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, ApiError> {
        let name = req_str(body, "credentials_name")?;
        let role_arn = body
            .get("aws_credentials")
            .and_then(|a| a.get("sts_role"))
            .and_then(|s| s.get("role_arn"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid("Missing required field: aws_credentials.sts_role.role_arn")
            })?;
        if !(role_arn.starts_with("arn:aws") && role_arn.contains(":role/")) {
            return Err(ApiError::invalid(format!(
                "Invalid role ARN {role_arn}: expected arn:aws:iam::<account>:role/<name>"
            )));
        }
        if self
            .list_of(Kind::Credential)
            .iter()
            .any(|c| c.get("credentials_name").and_then(Value::as_str) == Some(name))
        {
            return Err(ApiError::invalid(format!(
                "Credential configuration name {name} already exists in this account"
            )));
        }
        self.check_propagation(role_arn, now)?;
        let mut obj = self.base_object(Kind::Credential, now);
        obj.insert("credentials_name".into(), json!(name));
        obj.insert(
            "aws_credentials".into(),
            json!({"sts_role": {"role_arn": role_arn, "external_id": self.config.account_id}}),
        );
        Ok(obj)
    }

    fn build_storage(
        &self,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, ApiError> {
        let name = req_str(body, "storage_configuration_name")?;
        let bucket = body
            .get("root_bucket_info")
            .and_then(|b| b.get("bucket_name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid("Missing required field: root_bucket_info.bucket_name")
            })?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(ApiError::invalid(format!(
                "Invalid S3 bucket name: {bucket}"
            )));
        }
        let mut obj = self.base_object(Kind::Storage, now);
        obj.insert("storage_configuration_name".into(), json!(name));
        obj.insert("root_bucket_info".into(), json!({"bucket_name": bucket}));
        if let Some(role) = opt_str(body, "role_arn")? {
            obj.insert("role_arn".into(), json!(role));
        }
        Ok(obj)
    }

    fn build_key(
        &self,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, ApiError> {
        let use_cases = str_list(body, "use_cases")?;
        if use_cases.is_empty() {
            return Err(ApiError::invalid("Missing required field: use_cases"));
        }
        for u in &use_cases {
            if u != "MANAGED_SERVICES" && u != "STORAGE" {
                return Err(ApiError::invalid(format!(
                    "Invalid use case {u}: expected MANAGED_SERVICES or STORAGE"
                )));
            }
        }
        let info = body
            .get("aws_key_info")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::invalid("Missing required field: aws_key_info"))?;
        let key_arn = req_str(info, "key_arn")
            .map_err(|_| ApiError::invalid("Missing required field: aws_key_info.key_arn"))?;
        let parts: Vec<&str> = key_arn.split(':').collect();
        if parts.len() < 6 || !parts[0].starts_with("arn") || parts[2] != "kms" {
            return Err(ApiError::invalid(format!(
                "Invalid KMS key ARN {key_arn}: expected arn:aws:kms:<region>:<account>:key/<id>"
            )));
        }
        let region = opt_str(info, "key_region")?.unwrap_or(parts[3]);
        let mut key_info = Map::new();
        key_info.insert("key_arn".into(), json!(key_arn));
        if let Some(alias) = opt_str(info, "key_alias")? {
            key_info.insert("key_alias".into(), json!(alias));
        }
        key_info.insert("key_region".into(), json!(region));
        if let Some(reuse) = info
            .get("reuse_key_for_cluster_volumes")
            .and_then(Value::as_bool)
        {
            key_info.insert("reuse_key_for_cluster_volumes".into(), json!(reuse));
        }
        let mut obj = self.base_object(Kind::Key, now);
        obj.insert("use_cases".into(), json!(use_cases));
        obj.insert("aws_key_info".into(), Value::Object(key_info));
        Ok(obj)
    }

    fn build_network(
        &self,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, ApiError> {
        let name = req_str(body, "network_name")?;
        let vpc_id = req_str(body, "vpc_id")?;
        let subnets = str_list(body, "subnet_ids")?;
        let sgs = str_list(body, "security_group_ids")?;
        if subnets.len() < 2 {
            return Err(ApiError::invalid(
                "A network configuration needs at least 2 subnet_ids",
            ));
        }
        if sgs.is_empty() || sgs.len() > 5 {
            return Err(ApiError::invalid(
                "A network configuration needs 1 to 5 security_group_ids",
            ));
        }
        for other in self.list_of(Kind::Network) {
            let other_id = other
                .get("network_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let used = |key: &str, wanted: &[String]| -> Option<String> {
                other.get(key).and_then(Value::as_array).and_then(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .find(|s| wanted.iter().any(|w| w == s))
                        .map(str::to_string)
                })
            };
            if let Some(s) = used("subnet_ids", &subnets) {
                return Err(ApiError::invalid(format!(
                    "Subnet {s} is already used by network configuration {other_id}"
                )));
            }
            if let Some(s) = used("security_group_ids", &sgs) {
                return Err(ApiError::invalid(format!(
                    "Security group {s} is already used by network configuration {other_id}"
                )));
            }
        }
        let mut obj = self.base_object(Kind::Network, now);
        obj.insert("network_name".into(), json!(name));
        obj.insert("vpc_id".into(), json!(vpc_id));
        obj.insert("subnet_ids".into(), json!(subnets));
        obj.insert("security_group_ids".into(), json!(sgs));
        if let Some(eps) = body.get("vpc_endpoints").filter(|v| !v.is_null()) {
            let eps = eps.as_object().ok_or_else(|| {
                ApiError::malformed("Cannot parse request body: vpc_endpoints must be an object")
            })?;
            let rest = str_list(eps, "rest_api")?;
            let relay = str_list(eps, "dataplane_relay")?;
            for (list, ids) in [("rest_api", &rest), ("dataplane_relay", &relay)] {
                for id in ids {
                    let Some(ep) = self.find(Kind::VpcEndpoint, id) else {
                        return Err(ApiError::malformed(format!(
                            "vpc_endpoints malformed parameters: VPC Endpoint {id} does not exist"
                        )));
                    };
                    // Known services: the endpoint's own use case. Otherwise: what the networks
                    // that list it already made of it.
                    let used_as = if self.config.relay_endpoints.is_empty() {
                        self.endpoint_use(id)
                    } else {
                        ep.get("use_case").and_then(Value::as_str)
                    };
                    if let Some(used_as) = used_as
                        && !fidelity::fits_list(list, used_as)
                    {
                        return Err(ApiError::malformed(format!(
                            "vpc_endpoints malformed parameters: VPC Endpoint {id} with use_case {used_as} cannot be attached in {list} list"
                        )));
                    }
                }
            }
            if rest.iter().any(|r| relay.contains(r)) {
                return Err(ApiError::malformed(
                    "vpc_endpoints malformed parameters: a VPC Endpoint cannot be attached in both rest_api and dataplane_relay lists",
                ));
            }
            obj.insert(
                "vpc_endpoints".into(),
                json!({"rest_api": rest, "dataplane_relay": relay}),
            );
        }
        obj.insert("vpc_status".into(), json!("UNATTACHED"));
        Ok(obj)
    }

    /// The use case an endpoint is locked to by the networks that reference it, if any (when the
    /// endpoint services are not known).
    fn endpoint_use(&self, id: &str) -> Option<&'static str> {
        for n in self.list_of(Kind::Network) {
            let eps = n.get("vpc_endpoints");
            let has = |list: &str| {
                eps.and_then(|e| e.get(list))
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(id)))
            };
            if has("dataplane_relay") {
                return Some("DATAPLANE_RELAY_ACCESS");
            }
            if has("rest_api") {
                return Some("WORKSPACE_ACCESS");
            }
        }
        None
    }

    fn claim_endpoints(&mut self, network: &Map<String, Value>) {
        let relay: Vec<String> = network
            .get("vpc_endpoints")
            .and_then(|e| e.get("dataplane_relay"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for id in relay {
            if let Some(ep) = self.find_mut(Kind::VpcEndpoint, &id) {
                ep.insert("use_case".into(), json!("DATAPLANE_RELAY_ACCESS"));
            }
        }
    }

    fn build_endpoint(
        &self,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, ApiError> {
        let name = req_str(body, "vpc_endpoint_name")?;
        let aws_id = req_str(body, "aws_vpc_endpoint_id")?;
        if !aws_id.starts_with("vpce-") {
            return Err(ApiError::invalid(format!(
                "Invalid aws_vpc_endpoint_id {aws_id}: expected vpce-..."
            )));
        }
        let region = req_str(body, "region")?;
        self.check_region(region)?;
        let mut obj = self.base_object(Kind::VpcEndpoint, now);
        obj.remove("creation_time");
        obj.insert("vpc_endpoint_name".into(), json!(name));
        obj.insert("aws_vpc_endpoint_id".into(), json!(aws_id));
        obj.insert("region".into(), json!(region));
        obj.insert("aws_account_id".into(), json!("414351767826"));
        let (service, use_case) = if self.config.relay_endpoints.is_empty() {
            (
                format!("com.amazonaws.vpce.{region}.vpce-svc-{}", random_hex(17)),
                WORKSPACE_ACCESS,
            )
        } else if fidelity::matches_any(&self.config.relay_endpoints, aws_id) {
            (endpoint_service_id(region, true), DATAPLANE_RELAY_ACCESS)
        } else {
            (endpoint_service_id(region, false), GENERAL_ACCESS)
        };
        obj.insert("aws_endpoint_service_id".into(), json!(service));
        obj.insert("state".into(), json!("pending"));
        obj.insert("use_case".into(), json!(use_case));
        Ok(obj)
    }

    fn fill_pas(
        &self,
        obj: &mut Map<String, Value>,
        body: &Map<String, Value>,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        let name = req_str(body, "private_access_settings_name")?;
        let region = req_str(body, "region")?;
        self.check_region(region)?;
        let public = match body.get("public_access_enabled") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::malformed(
                    "Cannot parse request body: public_access_enabled must be a boolean",
                ));
            }
        };
        let level = opt_str(body, "private_access_level")?.unwrap_or("ACCOUNT");
        if level != "ACCOUNT" && level != "ENDPOINT" {
            return Err(ApiError::invalid(format!(
                "Invalid private_access_level {level}: expected ACCOUNT or ENDPOINT"
            )));
        }
        let allowed = str_list(body, "allowed_vpc_endpoint_ids")?;
        for ep in &allowed {
            self.require(Kind::VpcEndpoint, ep)?;
        }
        if let Some(id) = id
            && let Some(ws) = self.workspaces.iter().find(|w| {
                w.str_field("private_access_settings_id") == Some(id)
                    && w.str_field("aws_region") != Some(region)
            })
        {
            return Err(ApiError::invalid(format!(
                "Private access settings region {region} does not match the region of workspace {}",
                ws.id()
            )));
        }
        obj.insert("private_access_settings_name".into(), json!(name));
        obj.insert("region".into(), json!(region));
        obj.insert("public_access_enabled".into(), json!(public));
        obj.insert("private_access_level".into(), json!(level));
        if allowed.is_empty() {
            obj.remove("allowed_vpc_endpoint_ids");
        } else {
            obj.insert("allowed_vpc_endpoint_ids".into(), json!(allowed));
        }
        Ok(())
    }

    /// `PUT /private-access-settings/{id}`: complete overwrite; returns the object.
    pub fn replace_pas(&mut self, id: &str, body: &Value) -> Result<Value, ApiError> {
        let body = as_object(body)?;
        let mut obj = self.find(Kind::PrivateAccess, id).cloned().ok_or_else(|| {
            ApiError::not_found(format!("Private access settings {id} does not exist."))
        })?;
        self.fill_pas(&mut obj, body, Some(id))?;
        if let Some(slot) = self.find_mut(Kind::PrivateAccess, id) {
            *slot = obj.clone();
        }
        Ok(Value::Object(obj))
    }

    /// Who keeps an object in use: an active workspace (any non-removed one, CANCELLING included), a
    /// lingering removed workspace, or (for VPC endpoints) a network.
    fn in_use_by(&self, kind: Kind, id: &str) -> Option<String> {
        let target = (kind, id.to_string());
        if let Some(ws) = self
            .workspaces
            .iter()
            .find(|w| w.references().contains(&target))
        {
            return Some(format!("active workspace {}", ws.id()));
        }
        if let Some(l) = self.lingers.iter().find(|l| l.refs.contains(&target)) {
            return Some(format!("active workspace {}", l.workspace_id));
        }
        if kind == Kind::VpcEndpoint {
            for n in self.list_of(Kind::Network) {
                let eps = n.get("vpc_endpoints");
                let used = ["rest_api", "dataplane_relay"].iter().any(|list| {
                    eps.and_then(|e| e.get(*list))
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(id)))
                });
                if used {
                    let nid = n
                        .get("network_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    return Some(format!("network configuration {nid}"));
                }
            }
            for p in self.list_of(Kind::PrivateAccess) {
                if p.get("allowed_vpc_endpoint_ids")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(id)))
                {
                    let pid = p
                        .get("private_access_settings_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    return Some(format!("private access settings {pid}"));
                }
            }
        }
        None
    }

    /// `DELETE /{kind}/{id}`: remove an unused object; returns it.
    pub fn delete(&mut self, kind: Kind, id: &str) -> Result<Value, ApiError> {
        let obj = self.get(kind, id)?;
        if let Some(user) = self.in_use_by(kind, id) {
            return Err(ApiError::invalid_state(format!(
                "Unable to delete, {} is being used by {user}",
                kind.display()
            )));
        }
        self.list_mut(kind)
            .retain(|o| o.get(kind.id_field()).and_then(Value::as_str) != Some(id));
        self.endpoint_created.remove(id);
        Ok(obj)
    }

    /// Every live workspace, as `GET /workspaces` returns them.
    pub fn list_workspaces(&self) -> Vec<Value> {
        self.workspaces.iter().map(WorkspaceRec::wire).collect()
    }

    /// One workspace, as `GET /workspaces/{id}` returns it.
    pub fn get_workspace(&self, id: i64) -> Result<Value, ApiError> {
        self.workspace_idx(id)
            .and_then(|i| self.workspaces.get(i))
            .map(WorkspaceRec::wire)
            .ok_or_else(|| ApiError::not_found(format!("Workspace {id} does not exist.")))
    }

    fn check_key_slot(
        &self,
        field: &str,
        key_id: &str,
        use_case: &str,
        region: &str,
    ) -> Result<(), ApiError> {
        let key = self.require(Kind::Key, key_id)?;
        let ok = key
            .get("use_cases")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(use_case)));
        if !ok {
            return Err(ApiError::invalid(format!(
                "Customer-managed key {key_id} used as {field} must have use case {use_case}"
            )));
        }
        if self.config.no_cmk_regions.iter().any(|r| r == region) {
            return Err(ApiError::invalid(format!(
                "Customer-managed keys are not supported in region {region}"
            )));
        }
        Ok(())
    }

    fn check_network_free(&self, network_id: &str, this: Option<i64>) -> Result<(), ApiError> {
        self.require(Kind::Network, network_id)?;
        if let Some(ws) = self
            .workspaces
            .iter()
            .find(|w| w.str_field("network_id") == Some(network_id) && Some(w.id()) != this)
        {
            return Err(ApiError::invalid(format!(
                "Network {network_id} is already used by workspace {}",
                ws.id()
            )));
        }
        Ok(())
    }

    fn check_pas(&self, pas_id: &str, region: &str) -> Result<(), ApiError> {
        let pas = self.require(Kind::PrivateAccess, pas_id)?;
        let pas_region = pas
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if pas_region != region {
            return Err(ApiError::invalid(format!(
                "Private access settings {pas_id} is in region {pas_region}, but the workspace is in region {region}"
            )));
        }
        Ok(())
    }

    fn credential_role(&self, cred_id: &str) -> Option<String> {
        self.find(Kind::Credential, cred_id)
            .and_then(|c| c.get("aws_credentials"))
            .and_then(|a| a.get("sts_role"))
            .and_then(|s| s.get("role_arn"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// `POST /workspaces`: validate, store and start provisioning a workspace. The response shows
    /// `NOT_PROVISIONED`; GETs show `PROVISIONING` until the provisioning time has passed.
    pub fn create_workspace(&mut self, body: &Value, now: u64) -> Result<Value, ApiError> {
        let body = as_object(body)?;
        let name = req_str(body, "workspace_name")?;
        if name.chars().count() > 100 {
            return Err(ApiError::invalid(
                "workspace_name must be 1 to 100 characters",
            ));
        }
        let region = req_str(body, "aws_region")?;
        self.check_region(region)?;
        let compute_mode = opt_str(body, "compute_mode")?;
        if let Some(m) = compute_mode
            && m != "HYBRID"
            && m != "SERVERLESS"
        {
            return Err(ApiError::invalid(format!(
                "Invalid compute_mode {m}: expected HYBRID or SERVERLESS"
            )));
        }
        let serverless = compute_mode == Some("SERVERLESS");
        let mut out = Map::new();
        let ws_id = loop {
            let id = random_workspace_id();
            if self.workspace_idx(id).is_none() {
                break id;
            }
        };
        out.insert("workspace_id".into(), json!(ws_id));
        out.insert("workspace_name".into(), json!(name));
        out.insert("account_id".into(), json!(self.config.account_id));
        out.insert("aws_region".into(), json!(region));
        out.insert("cloud".into(), json!("aws"));
        if let Some(m) = compute_mode {
            out.insert("compute_mode".into(), json!(m));
        }
        for field in ["credentials_id", "storage_configuration_id"] {
            match opt_str(body, field)? {
                Some(v) => {
                    out.insert(field.into(), json!(v));
                }
                None if !serverless => {
                    return Err(ApiError::invalid(format!(
                        "Missing required field: {field}"
                    )));
                }
                None => {}
            }
        }
        if serverless
            && SERVERLESS_EXCLUDES
                .iter()
                .any(|f| body.get(*f).is_some_and(|v| !is_empty_value(v)))
        {
            return Err(ApiError::invalid(SERVERLESS_MIXED_MESSAGE));
        }
        // [inferred] The SRA refuses serverless in GovCloud at plan time ("not currently available
        // there"); the server's own answer is unconfirmed.
        if serverless && region.starts_with("us-gov-") {
            return Err(ApiError::invalid(format!(
                "SERVERLESS workspaces are not available in region {region}"
            )));
        }
        if serverless {
            out.insert("storage_mode".into(), json!("DEFAULT_STORAGE"));
        }
        if let Some(c) = opt_str(body, "credentials_id")? {
            self.require(Kind::Credential, c)?;
        }
        if let Some(s) = opt_str(body, "storage_configuration_id")? {
            self.require(Kind::Storage, s)?;
            out.insert("storage_mode".into(), json!("CUSTOMER_HOSTED"));
        }
        if let Some(n) = opt_str(body, "network_id")? {
            self.check_network_free(n, None)?;
            out.insert("network_id".into(), json!(n));
        }
        for (field, use_case) in [
            (
                "managed_services_customer_managed_key_id",
                "MANAGED_SERVICES",
            ),
            ("storage_customer_managed_key_id", "STORAGE"),
        ] {
            if let Some(k) = opt_str(body, field)? {
                self.check_key_slot(field, k, use_case, region)?;
                out.insert(field.into(), json!(k));
            }
        }
        if let Some(p) = opt_str(body, "private_access_settings_id")? {
            self.check_pas(p, region)?;
            out.insert("private_access_settings_id".into(), json!(p));
        }
        if let Some(ncc) = opt_str(body, "network_connectivity_config_id")? {
            self.check_ncc(ncc, region, None)?;
            out.insert("network_connectivity_config_id".into(), json!(ncc));
        }
        let tier = opt_str(body, "pricing_tier")?.unwrap_or("PREMIUM");
        if ![
            "COMMUNITY_EDITION",
            "DEDICATED",
            "ENTERPRISE",
            "PREMIUM",
            "STANDARD",
            "UNKNOWN",
        ]
        .contains(&tier)
        {
            return Err(ApiError::invalid(format!("Invalid pricing_tier {tier}")));
        }
        out.insert("pricing_tier".into(), json!(tier));
        if let Some(tags) = body.get("custom_tags").filter(|v| !v.is_null()) {
            check_custom_tags(tags)?;
            if !is_empty_value(tags) {
                out.insert("custom_tags".into(), tags.clone());
            }
        }
        if let Some(exp) = opt_str(body, "expected_workspace_status")? {
            if exp != "PROVISIONING" && exp != "RUNNING" {
                return Err(ApiError::invalid(format!(
                    "Invalid expected_workspace_status {exp}: expected PROVISIONING or RUNNING"
                )));
            }
            out.insert("expected_workspace_status".into(), json!(exp));
        }
        let deployment = match opt_str(body, "deployment_name")? {
            Some(d) => resolve_deployment_name(d, self.config.deployment_prefix.as_deref())?,
            None => loop {
                let d = format!("dbc-{}-{}", random_hex(8), random_hex(4));
                if !self.deployment_taken(&d) {
                    break d;
                }
            },
        };
        if self.deployment_taken(&deployment) {
            return Err(ApiError::invalid(format!(
                "Deployment name {deployment} is already in use by another workspace"
            )));
        }
        out.insert("deployment_name".into(), json!(deployment));
        out.insert("creation_time".into(), json!(now));
        if let Some(c) = opt_str(body, "credentials_id")?
            && let Some(role) = self.credential_role(c)
        {
            self.check_propagation(&role, now)?;
        }
        if let Some(n) = opt_str(body, "network_id")?
            && let Some(net) = self.find_mut(Kind::Network, n)
        {
            net.insert("workspace_id".into(), json!(ws_id));
        }
        let rec = WorkspaceRec {
            initial_credentials_id: opt_str(body, "credentials_id")?.map(str::to_string),
            body: out,
            phase: Phase::Provisioning,
            phase_since: now,
            message: PROVISIONING_MESSAGE.to_string(),
            ever_running: false,
            pending_tags: None,
            revert_storage_key: None,
        };
        let mut response = rec.wire();
        if let Some(o) = response.as_object_mut() {
            o.insert("workspace_status".into(), json!("NOT_PROVISIONED"));
            o.insert(
                "workspace_status_message".into(),
                json!(NOT_PROVISIONED_MESSAGE),
            );
        }
        self.workspaces.push(rec);
        Ok(response)
    }

    fn deployment_taken(&self, name: &str) -> bool {
        self.workspaces
            .iter()
            .any(|w| w.str_field("deployment_name") == Some(name))
    }

    /// `PATCH /workspaces/{id}[?update_mask=a,b]`: apply the allowed changes of account-api.md §4.4.
    ///
    /// With a mask only the listed fields are considered (a listed field absent from the body means
    /// "clear it", which is refused for the fields that cannot be removed); without one (legacy) every
    /// non-empty body field is. Output-only fields and unchanged values are ignored. A FAILED
    /// workspace restarts provisioning; a RUNNING one with a Databricks-managed VPC re-provisions, with
    /// a customer-managed VPC it stays RUNNING.
    pub fn update_workspace(
        &mut self,
        id: i64,
        body: &Value,
        update_mask: Option<&str>,
        now: u64,
    ) -> Result<Value, ApiError> {
        let body = as_object(body)?;
        let idx = self
            .workspace_idx(id)
            .ok_or_else(|| ApiError::not_found(format!("Workspace {id} does not exist.")))?;
        let ws = self.workspaces[idx].clone();
        let state = ws.phase;
        // The (field, new value) pairs requested.
        let mut requested: Vec<(String, Value)> = Vec::new();
        match update_mask.filter(|m| !m.is_empty() && *m != "*") {
            Some(mask) => {
                for field in mask.split(',') {
                    if field.is_empty() {
                        continue;
                    }
                    let value = body.get(field).cloned().unwrap_or(Value::Null);
                    requested.push((field.to_string(), value));
                }
            }
            None => {
                for (k, v) in body {
                    if WORKSPACE_OUTPUT_ONLY.contains(&k.as_str()) || is_empty_value(v) {
                        continue;
                    }
                    requested.push((k.clone(), v.clone()));
                }
            }
        }
        // A workspace paused by expected_workspace_status=PROVISIONING can be resumed by PATCHing
        // that field alone; otherwise only RUNNING and FAILED workspaces accept updates.
        let only_expected_requested = !requested.is_empty()
            && requested
                .iter()
                .all(|(f, _)| f == "expected_workspace_status");
        let paused = state == Phase::Provisioning && only_expected_requested;
        if state != Phase::Running && state != Phase::Failed && !paused {
            let status = match state {
                Phase::Provisioning => "PROVISIONING",
                Phase::Banned => "BANNED",
                _ => "CANCELLING",
            };
            return Err(ApiError::invalid_state(format!(
                "Workspace {id} cannot be updated while its status is {status}"
            )));
        }
        let running = state == Phase::Running;
        if running
            && !only_expected_requested
            && let Some(rc) = &self.running_clusters
            && rc.workspace_name_contains.as_deref().is_none_or(|n| {
                ws.str_field("workspace_name")
                    .is_some_and(|name| name.contains(n))
            })
        {
            return Err(ApiError::invalid_state(RUNNING_CLUSTERS_MESSAGE));
        }
        let region = opt_str(body, "aws_region")?
            .filter(|_| requested.iter().any(|(f, _)| f == "aws_region"))
            .or(ws.str_field("aws_region"))
            .unwrap_or_default()
            .to_string();
        let mut changes: Vec<(String, Value)> = Vec::new();
        for (field, value) in requested {
            let current = ws.body.get(&field).cloned().unwrap_or(Value::Null);
            let unchanged =
                current == value || (is_empty_value(&current) && is_empty_value(&value));
            if !PATCHABLE.contains(&field.as_str()) {
                if unchanged || WORKSPACE_OUTPUT_ONLY.contains(&field.as_str()) {
                    continue;
                }
                return Err(ApiError::invalid(format!(
                    "Field {field} cannot be updated"
                )));
            }
            if unchanged {
                continue;
            }
            if ws.str_field("compute_mode") == Some("SERVERLESS")
                && SERVERLESS_EXCLUDES.contains(&field.as_str())
            {
                return Err(ApiError::invalid(SERVERLESS_MIXED_MESSAGE));
            }
            let new_str = value.as_str().filter(|s| !s.is_empty());
            let removing = is_empty_value(&value);
            match field.as_str() {
                "custom_tags" => {
                    if !value.is_null() {
                        check_custom_tags(&value)?;
                    }
                    if removing {
                        // An empty custom tags map: update not applied.
                        continue;
                    }
                }
                "credentials_id" => {
                    let c = new_str
                        .ok_or_else(|| ApiError::invalid("credentials_id cannot be removed"))?;
                    self.require(Kind::Credential, c)?;
                    if let Some(role) = self.credential_role(c) {
                        self.check_propagation(&role, now)?;
                    }
                }
                "storage_configuration_id" => {
                    if running {
                        return Err(ApiError::invalid(
                            "storage_configuration_id can only be updated on a FAILED workspace",
                        ));
                    }
                    let s = new_str.ok_or_else(|| {
                        ApiError::invalid("storage_configuration_id cannot be removed")
                    })?;
                    self.require(Kind::Storage, s)?;
                }
                "aws_region" => {
                    if running {
                        return Err(ApiError::invalid(
                            "aws_region can only be updated on a FAILED workspace",
                        ));
                    }
                    self.check_region(new_str.unwrap_or_default())?;
                }
                "network_id" => {
                    let n =
                        new_str.ok_or_else(|| ApiError::invalid("network_id cannot be removed"))?;
                    if running && ws.str_field("network_id").is_none() {
                        return Err(ApiError::invalid(
                            "A RUNNING workspace with a Databricks-managed VPC cannot be converted to a customer-managed VPC",
                        ));
                    }
                    self.check_network_free(n, Some(id))?;
                }
                "managed_services_customer_managed_key_id" => {
                    let k = new_str.ok_or_else(|| {
                        ApiError::invalid(
                            "managed_services_customer_managed_key_id cannot be removed",
                        )
                    })?;
                    self.check_key_slot(&field, k, "MANAGED_SERVICES", &region)?;
                }
                "storage_customer_managed_key_id" => {
                    let k = new_str.ok_or_else(|| {
                        ApiError::invalid("storage_customer_managed_key_id cannot be removed")
                    })?;
                    if running && ws.str_field("storage_customer_managed_key_id").is_some() {
                        return Err(ApiError::invalid(
                            "storage_customer_managed_key_id can only be added to a RUNNING workspace that has none",
                        ));
                    }
                    if !running && ws.ever_running {
                        return Err(ApiError::invalid(
                            "storage_customer_managed_key_id cannot be updated on a FAILED workspace that was ever RUNNING",
                        ));
                    }
                    self.check_key_slot(&field, k, "STORAGE", &region)?;
                }
                "private_access_settings_id" => {
                    let p = new_str.ok_or_else(|| {
                        ApiError::invalid("cannot remove private access setting from workspace")
                    })?;
                    self.check_pas(p, &region)?;
                }
                "network_connectivity_config_id" => {
                    let n = new_str.ok_or_else(|| {
                        ApiError::invalid(
                            "network_connectivity_config_id cannot be removed, only added or switched",
                        )
                    })?;
                    self.check_ncc(n, &region, Some(id))?;
                }
                "expected_workspace_status" => {
                    let e = new_str.unwrap_or_default();
                    if e != "PROVISIONING" && e != "RUNNING" {
                        return Err(ApiError::invalid(format!(
                            "Invalid expected_workspace_status {e}: expected PROVISIONING or RUNNING"
                        )));
                    }
                }
                _ => {}
            }
            changes.push((field, value));
        }
        // A changed region must still match every referenced key and PAS (checked above for the new
        // values; check the kept ones too).
        if changes.iter().any(|(f, _)| f == "aws_region") {
            let kept = |f: &str| {
                if changes.iter().any(|(c, _)| c == f) {
                    None
                } else {
                    ws.str_field(f).map(str::to_string)
                }
            };
            if let Some(p) = kept("private_access_settings_id") {
                self.check_pas(&p, &region)?;
            }
            for (f, u) in [
                (
                    "managed_services_customer_managed_key_id",
                    "MANAGED_SERVICES",
                ),
                ("storage_customer_managed_key_id", "STORAGE"),
            ] {
                if let Some(k) = kept(f) {
                    self.check_key_slot(f, &k, u, &region)?;
                }
            }
        }
        if changes.is_empty() {
            return Ok(ws.wire());
        }
        let old_network = ws.str_field("network_id").map(str::to_string);
        let customer_vpc = old_network.is_some();
        let only_expected = changes
            .iter()
            .all(|(f, _)| f == "expected_workspace_status");
        let tags_delay = self.config.tags_apply_ms;
        let revert = self.storage_key_revert.clone();
        let rec = &mut self.workspaces[idx];
        for (field, value) in &changes {
            match field.as_str() {
                "custom_tags" if tags_delay > 0 => {
                    // The same tags again keep their time; new ones start over.
                    let due = match &rec.pending_tags {
                        Some((pending, due)) if pending == value => *due,
                        _ => now.saturating_add(tags_delay),
                    };
                    rec.pending_tags = Some((value.clone(), due));
                    continue;
                }
                "storage_customer_managed_key_id" => {
                    if let Some(r) = &revert {
                        let old = rec.body.get(field).cloned().unwrap_or(Value::Null);
                        rec.revert_storage_key = Some((old, now.saturating_add(r.after_ms)));
                    }
                }
                _ => {}
            }
            rec.body.insert(field.clone(), value.clone());
        }
        let new_network = rec.str_field("network_id").map(str::to_string);
        // FAILED: re-provision. RUNNING: only a Databricks-managed VPC re-provisions.
        if !running || (!customer_vpc && !only_expected) {
            rec.phase = Phase::Provisioning;
            rec.phase_since = now;
            rec.message = PROVISIONING_MESSAGE.to_string();
        }
        let wire = rec.wire();
        if old_network != new_network {
            if let Some(old) = old_network
                && let Some(n) = self.find_mut(Kind::Network, &old)
            {
                n.remove("workspace_id");
                n.remove("error_messages");
                n.remove("warning_messages");
                n.insert("vpc_status".into(), json!("UNATTACHED"));
            }
            if let Some(new) = new_network
                && let Some(n) = self.find_mut(Kind::Network, &new)
            {
                n.insert("workspace_id".into(), json!(id));
                if running {
                    n.insert("vpc_status".into(), json!("VALID"));
                }
            }
        }
        // A FAILED workspace re-provisions; its network waits for the new outcome.
        if !running
            && let Some(net) = self.workspaces[idx]
                .str_field("network_id")
                .map(str::to_string)
            && let Some(n) = self.find_mut(Kind::Network, &net)
        {
            n.insert("vpc_status".into(), json!("UNATTACHED"));
            n.remove("error_messages");
            n.remove("warning_messages");
        }
        Ok(wire)
    }

    /// `DELETE /workspaces/{id}`: the workspace goes CANCELLING and disappears after the deletion
    /// time. Returns the workspace as it is now (CANCELLING).
    pub fn delete_workspace(&mut self, id: i64, now: u64) -> Result<Value, ApiError> {
        let idx = self
            .workspace_idx(id)
            .ok_or_else(|| ApiError::not_found(format!("Workspace {id} does not exist.")))?;
        let rec = &mut self.workspaces[idx];
        if rec.phase != Phase::Cancelling {
            rec.phase = Phase::Cancelling;
            rec.phase_since = now;
            rec.message = CANCELLING_MESSAGE.to_string();
        }
        Ok(rec.wire())
    }

    /// Every live object per kind, keyed by path segment (`credentials`, ..., `workspaces`).
    pub fn snapshot(&self) -> Value {
        let mut out = Map::new();
        for kind in Kind::ALL {
            out.insert(kind.path().into(), Value::Array(self.list(kind)));
        }
        out.insert("workspaces".into(), Value::Array(self.list_workspaces()));
        out.insert(
            "network-connectivity-configs".into(),
            Value::Array(self.nccs.iter().map(|n| n.wire()).collect()),
        );
        Value::Object(out)
    }

    /// The name of a configuration object (for logs).
    pub fn name_of(kind: Kind, obj: &Value) -> Option<&str> {
        obj.get(kind.name_field()).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "acct";

    fn store(prefix: Option<&str>) -> Store {
        Store::new(StoreConfig {
            account_id: ACCT.into(),
            deployment_prefix: prefix.map(str::to_string),
            provisioning_ms: 1000,
            deletion_ms: 500,
            endpoint_pending_ms: 200,
            in_use_linger_ms: 0,
            tags_apply_ms: 0,
            regions: default_regions(),
            no_cmk_regions: Vec::new(),
            relay_endpoints: Vec::new(),
            quotas: None,
        })
    }

    fn id_of(v: &Value, field: &str) -> String {
        v[field].as_str().unwrap().to_string()
    }

    fn cred(s: &mut Store, name: &str) -> String {
        let v = s
            .create(
                Kind::Credential,
                &json!({"credentials_name": name, "aws_credentials": {"sts_role": {"role_arn": format!("arn:aws:iam::123456789012:role/{name}")}}}),
                0,
            )
            .unwrap();
        id_of(&v, "credentials_id")
    }

    fn storage(s: &mut Store) -> String {
        let v = s
            .create(
                Kind::Storage,
                &json!({"storage_configuration_name": "root", "root_bucket_info": {"bucket_name": "my-bucket"}}),
                0,
            )
            .unwrap();
        id_of(&v, "storage_configuration_id")
    }

    fn network(s: &mut Store, n: u32) -> String {
        let v = s
            .create(
                Kind::Network,
                &json!({"network_name": format!("net{n}"), "vpc_id": "vpc-1",
                        "subnet_ids": [format!("subnet-a{n}"), format!("subnet-b{n}")],
                        "security_group_ids": [format!("sg-{n}")]}),
                0,
            )
            .unwrap();
        id_of(&v, "network_id")
    }

    fn key(s: &mut Store, use_cases: &[&str]) -> String {
        let v = s
            .create(
                Kind::Key,
                &json!({"use_cases": use_cases, "aws_key_info": {"key_arn": "arn:aws:kms:us-east-1:123456789012:key/abc"}}),
                0,
            )
            .unwrap();
        id_of(&v, "customer_managed_key_id")
    }

    fn workspace(s: &mut Store, name: &str, extra: Value) -> Result<Value, ApiError> {
        let c = cred(s, &format!("cred-{name}"));
        let st = storage(s);
        let mut body = json!({"workspace_name": name, "aws_region": "us-east-1", "credentials_id": c, "storage_configuration_id": st});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        s.create_workspace(&body, 0)
    }

    fn status(s: &Store, id: i64) -> String {
        s.get_workspace(id).unwrap()["workspace_status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The seed flow relies on the create response and the later GETs telling provisioning apart.
    #[test]
    fn a_workspace_is_provisioning_until_the_provisioning_time_then_running() {
        let mut s = store(None);
        let ws = workspace(&mut s, "w", json!({})).unwrap();
        assert_eq!(ws["workspace_status"], "NOT_PROVISIONED");
        let id = ws["workspace_id"].as_i64().unwrap();
        assert!(id > 0);
        s.tick(999);
        assert_eq!(status(&s, id), "PROVISIONING");
        s.tick(1000);
        assert_eq!(status(&s, id), "RUNNING");
        assert_eq!(
            s.get_workspace(id).unwrap()["workspace_status_message"],
            RUNNING_MESSAGE
        );
    }

    /// `expected_workspace_status=PROVISIONING` pauses provisioning.
    #[test]
    fn expected_status_provisioning_keeps_the_workspace_provisioning() {
        let mut s = store(None);
        let ws = workspace(
            &mut s,
            "w",
            json!({"expected_workspace_status": "PROVISIONING"}),
        )
        .unwrap();
        let id = ws["workspace_id"].as_i64().unwrap();
        s.tick(100_000);
        assert_eq!(status(&s, id), "PROVISIONING");
    }

    /// Deletion must be refused while a workspace (even a CANCELLING one) uses the network.
    #[test]
    fn deleting_a_network_used_by_a_workspace_is_refused() {
        let mut s = store(None);
        let n = network(&mut s, 1);
        let ws = workspace(&mut s, "w", json!({"network_id": n})).unwrap();
        let id = ws["workspace_id"].as_i64().unwrap();
        let err = s.delete(Kind::Network, &n).unwrap_err();
        assert_eq!(err.code, "INVALID_STATE");
        assert_eq!(
            err.message,
            format!("Unable to delete, Network is being used by active workspace {id}")
        );
        s.delete_workspace(id, 10).unwrap();
        s.tick(100);
        assert_eq!(status(&s, id), "CANCELLING");
        assert!(s.delete(Kind::Network, &n).is_err());
        s.tick(510);
        assert_eq!(s.get_workspace(id).unwrap_err().status, 404);
        assert_eq!(s.delete(Kind::Network, &n).unwrap()["network_id"], json!(n));
        assert_eq!(s.get(Kind::Network, &n).unwrap_err().status, 404);
    }

    /// With a linger, dependents stay in use for a while after the workspace is gone.
    #[test]
    fn dependents_stay_in_use_during_the_linger_window() {
        let mut s = store(None);
        s.config.in_use_linger_ms = 1000;
        let ws = workspace(&mut s, "w", json!({})).unwrap();
        let id = ws["workspace_id"].as_i64().unwrap();
        let c = id_of(&ws, "credentials_id");
        s.delete_workspace(id, 0).unwrap();
        s.tick(600);
        assert_eq!(s.get_workspace(id).unwrap_err().status, 404);
        let err = s.delete(Kind::Credential, &c).unwrap_err();
        assert!(
            err.message
                .contains("Credential is being used by active workspace")
        );
        s.tick(1600);
        assert!(s.delete(Kind::Credential, &c).is_ok());
    }

    /// Without an account prefix the exact plain-text error of the real service is returned.
    #[test]
    fn a_deployment_name_without_a_prefix_is_refused_as_plain_text() {
        let mut s = store(None);
        let err = workspace(&mut s, "w", json!({"deployment_name": "abc"})).unwrap_err();
        assert!(err.plain_text);
        assert_eq!(err.code, "MALFORMED_REQUEST");
        assert_eq!(err.message, NO_PREFIX_MESSAGE);
    }

    /// The response carries the prefixed name, `EMPTY` means the prefix alone, and names are unique.
    #[test]
    fn deployment_names_are_prefixed_and_unique() {
        let mut s = store(Some("acme"));
        let ws = workspace(&mut s, "w1", json!({"deployment_name": "team-1"})).unwrap();
        assert_eq!(ws["deployment_name"], "acme-team-1");
        let ws = workspace(&mut s, "w2", json!({"deployment_name": "EMPTY"})).unwrap();
        assert_eq!(ws["deployment_name"], "acme");
        let err = workspace(&mut s, "w3", json!({"deployment_name": "team-1"})).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(resolve_deployment_name("Bad_Name", Some("acme")).is_err());
        assert!(resolve_deployment_name(&"a".repeat(60), Some("acme")).is_err());
    }

    /// An omitted deployment name is generated as `dbc-xxxxxxxx-xxxx`.
    #[test]
    fn an_omitted_deployment_name_is_generated() {
        let mut s = store(None);
        let ws = workspace(&mut s, "w", json!({})).unwrap();
        let d = ws["deployment_name"].as_str().unwrap();
        let parts: Vec<&str> = d.split('-').collect();
        assert_eq!(parts[0], "dbc");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 4);
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// Subnets and security groups belong to one network configuration only.
    #[test]
    fn reusing_a_subnet_in_another_network_is_refused() {
        let mut s = store(None);
        network(&mut s, 1);
        let err = s
            .create(
                Kind::Network,
                &json!({"network_name": "n2", "vpc_id": "vpc-1", "subnet_ids": ["subnet-a1", "subnet-x"], "security_group_ids": ["sg-9"]}),
                0,
            )
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("subnet-a1"), "{}", err.message);
        let err = s
            .create(
                Kind::Network,
                &json!({"network_name": "n3", "vpc_id": "vpc-1", "subnet_ids": ["subnet-only"], "security_group_ids": ["sg-9"]}),
                0,
            )
            .unwrap_err();
        assert!(err.message.contains("at least 2"));
    }

    /// Keys must carry the use case of their slot; where the account is set to refuse keys in a
    /// region, a workspace there with a key is refused, naming the region.
    #[test]
    fn keys_are_checked_for_use_case_and_region() {
        let mut s = store(None);
        s.config.no_cmk_regions = vec!["us-west-1".into()];
        let ms = key(&mut s, &["MANAGED_SERVICES"]);
        let err =
            workspace(&mut s, "w", json!({"storage_customer_managed_key_id": ms})).unwrap_err();
        assert!(err.message.contains("STORAGE"));
        let err = workspace(
            &mut s,
            "w2",
            json!({"aws_region": "us-west-1", "managed_services_customer_managed_key_id": ms}),
        )
        .unwrap_err();
        assert!(err.message.contains("us-west-1"));
        assert!(
            workspace(
                &mut s,
                "w3",
                json!({"managed_services_customer_managed_key_id": ms})
            )
            .is_ok()
        );
        let err = s
            .create(Kind::Key, &json!({"use_cases": ["BOGUS"], "aws_key_info": {"key_arn": "arn:aws:kms:us-east-1:1:key/x"}}), 0)
            .unwrap_err();
        assert_eq!(err.status, 400);
    }

    /// By default every listed region takes keys, the regions added since the seed included; a
    /// region missing from the configured list is refused with the list.
    #[test]
    fn regions_come_from_the_configuration() {
        let mut s = store(None);
        let ms = key(&mut s, &["MANAGED_SERVICES"]);
        for region in ["us-west-1", "sa-east-1", "eu-west-3", "ap-southeast-3"] {
            let name = format!("w-{region}");
            let extra =
                json!({"aws_region": region, "managed_services_customer_managed_key_id": ms});
            workspace(&mut s, &name, extra).unwrap();
        }
        s.config.regions = vec!["eu-west-3".into()];
        let err = workspace(&mut s, "w-east", json!({})).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("us-east-1 is not supported"), "{err}");
        assert!(
            err.message.contains("Supported regions: eu-west-3"),
            "{err}"
        );
    }

    /// A SERVERLESS workspace needs no credential, storage or network, gets Databricks' default
    /// storage and runs; mixing in classic fields, on create or PATCH, is refused; a classic one
    /// still needs its credential.
    #[test]
    fn serverless_workspaces_take_no_customer_resources() {
        let mut s = store(None);
        let ws = s
            .create_workspace(
                &json!({"workspace_name": "sl", "aws_region": "eu-west-3", "compute_mode": "SERVERLESS"}),
                0,
            )
            .unwrap();
        assert_eq!(ws["compute_mode"], "SERVERLESS");
        assert_eq!(ws["storage_mode"], "DEFAULT_STORAGE");
        assert!(ws.get("credentials_id").is_none(), "{ws}");
        let id = ws["workspace_id"].as_i64().unwrap();
        s.tick(5_000);
        assert_eq!(status(&s, id), "RUNNING");

        let c = cred(&mut s, "c");
        let st = storage(&mut s);
        let n = network(&mut s, 1);
        for (field, value) in [
            ("credentials_id", &c),
            ("storage_configuration_id", &st),
            ("network_id", &n),
        ] {
            let mut body = json!({"workspace_name": "mixed", "aws_region": "us-east-1", "compute_mode": "SERVERLESS"});
            body[field] = json!(value);
            let err = s.create_workspace(&body, 0).unwrap_err();
            assert_eq!(
                (err.status, err.message.as_str()),
                (400, SERVERLESS_MIXED_MESSAGE),
                "{field}"
            );
            let err = s
                .update_workspace(id, &json!({field: value}), Some(field), 5_000)
                .unwrap_err();
            assert_eq!(
                (err.status, err.message.as_str()),
                (400, SERVERLESS_MIXED_MESSAGE),
                "PATCH {field}"
            );
        }
        let err = s
            .create_workspace(&json!({"workspace_name": "gov", "aws_region": "us-gov-west-1", "compute_mode": "SERVERLESS"}), 0)
            .unwrap_err();
        assert!(
            err.message
                .contains("not available in region us-gov-west-1"),
            "{err}"
        );
        let err = s
            .create_workspace(&json!({"workspace_name": "classic", "aws_region": "us-east-1", "storage_configuration_id": st}), 0)
            .unwrap_err();
        assert!(err.message.contains("credentials_id"), "{err}");
        let classic = workspace(&mut s, "classic", json!({})).unwrap();
        assert_eq!(classic["storage_mode"], "CUSTOMER_HOSTED");
        assert_eq!(s.list_workspaces().len(), 2, "nothing refused was created");
    }

    /// References to unknown IDs get the camelCase plain-text error.
    #[test]
    fn an_unknown_reference_is_refused_with_the_camel_case_id_name() {
        let mut s = store(None);
        let c = cred(&mut s, "c");
        let err = s
            .create_workspace(
                &json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": c, "storage_configuration_id": "nope"}),
                0,
            )
            .unwrap_err();
        assert!(err.plain_text);
        assert_eq!(err.message, "Invalid storageConfigurationId: nope");
    }

    /// Credential names are unique per account; other kinds allow duplicates.
    #[test]
    fn a_duplicate_credential_name_is_refused() {
        let mut s = store(None);
        cred(&mut s, "same");
        let err = s
            .create(
                Kind::Credential,
                &json!({"credentials_name": "same", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/x"}}}),
                0,
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "Credential configuration name same already exists in this account"
        );
        storage(&mut s);
        storage(&mut s);
        assert_eq!(s.list(Kind::Storage).len(), 2);
    }

    /// The IAM-propagation window refuses a role until it has been known long enough.
    #[test]
    fn a_new_role_fails_validation_during_the_propagation_window() {
        let mut s = store(None);
        s.propagation = Some(CredentialPropagation {
            seconds: 5,
            role_arn: None,
        });
        let body = json!({"credentials_name": "c", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/r"}}});
        let err = s.create(Kind::Credential, &body, 1000).unwrap_err();
        assert_eq!(err.message, CREDENTIAL_VALIDATION_MESSAGE);
        assert!(err.plain_text);
        assert!(s.create(Kind::Credential, &body, 5999).is_err());
        assert!(s.create(Kind::Credential, &body, 6000).is_ok());
    }

    /// A failure tied to the initial credential is fixed by patching in another credential.
    #[test]
    fn a_failed_workspace_patched_with_a_new_credential_reaches_running() {
        let mut s = store(None);
        s.fail_rules.push(FailRule {
            workspace_name_contains: Some("bad".into()),
            while_initial_credentials: true,
            ..FailRule::default()
        });
        let n = network(&mut s, 1);
        let ws = workspace(&mut s, "bad-ws", json!({"network_id": n})).unwrap();
        let id = ws["workspace_id"].as_i64().unwrap();
        s.tick(1000);
        assert_eq!(status(&s, id), "FAILED");
        let net = s.get(Kind::Network, &n).unwrap();
        assert_eq!(net["vpc_status"], "BROKEN");
        assert_eq!(net["error_messages"][0]["error_type"], "securityGroup");
        // workspace_name is not updatable in any state.
        let err = s
            .update_workspace(
                id,
                &json!({"workspace_name": "x"}),
                Some("workspace_name"),
                1100,
            )
            .unwrap_err();
        assert_eq!(err.status, 400);
        let c2 = cred(&mut s, "fixed");
        let patched = s
            .update_workspace(
                id,
                &json!({"credentials_id": c2}),
                Some("credentials_id"),
                1100,
            )
            .unwrap();
        assert_eq!(patched["workspace_status"], "PROVISIONING");
        assert_eq!(patched["credentials_id"], json!(c2));
        s.tick(2100);
        assert_eq!(status(&s, id), "RUNNING");
        assert_eq!(s.get(Kind::Network, &n).unwrap()["vpc_status"], "VALID");
    }

    /// §4.4 RUNNING column: storage configuration and region are FAILED-only; a second storage key is refused.
    #[test]
    fn a_running_workspace_refuses_fields_outside_the_allow_list() {
        let mut s = store(None);
        let ws = workspace(&mut s, "w", json!({})).unwrap();
        let id = ws["workspace_id"].as_i64().unwrap();
        s.tick(1000);
        let st = storage(&mut s);
        let err = s
            .update_workspace(id, &json!({"storage_configuration_id": st}), None, 1001)
            .unwrap_err();
        assert!(err.message.contains("FAILED"));
        let k = key(&mut s, &["STORAGE"]);
        let k2 = key(&mut s, &["STORAGE"]);
        assert!(
            s.update_workspace(
                id,
                &json!({"storage_customer_managed_key_id": k}),
                None,
                1001
            )
            .is_ok()
        );
        s.tick(3000);
        assert!(
            s.update_workspace(
                id,
                &json!({"storage_customer_managed_key_id": k2}),
                None,
                3001
            )
            .is_err()
        );
        let n = network(&mut s, 7);
        let err = s
            .update_workspace(id, &json!({"network_id": n}), None, 3001)
            .unwrap_err();
        assert!(err.message.contains("Databricks-managed"));
    }

    /// Databricks-managed VPC re-provisions on a running update; customer-managed stays RUNNING; empty tags are a no-op.
    #[test]
    fn running_updates_reprovision_only_databricks_managed_vpcs() {
        let mut s = store(None);
        let managed = workspace(&mut s, "m", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        let n = network(&mut s, 1);
        let custom = workspace(&mut s, "c", json!({"network_id": n})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        s.tick(1000);
        let v = s
            .update_workspace(
                managed,
                &json!({"custom_tags": {}}),
                Some("custom_tags"),
                1000,
            )
            .unwrap();
        assert_eq!(v["workspace_status"], "RUNNING");
        let v = s
            .update_workspace(
                managed,
                &json!({"custom_tags": {"team": "a"}}),
                Some("custom_tags"),
                1000,
            )
            .unwrap();
        assert_eq!(v["workspace_status"], "PROVISIONING");
        assert_eq!(v["custom_tags"]["team"], "a");
        let v = s
            .update_workspace(custom, &json!({"custom_tags": {"team": "b"}}), None, 1000)
            .unwrap();
        assert_eq!(v["workspace_status"], "RUNNING");
        let err = s
            .update_workspace(custom, &json!({"custom_tags": {"": "x"}}), None, 1000)
            .unwrap_err();
        assert!(err.message.contains("1 to 127"));
    }

    /// Tags show only after the configured delay; the same tags sent again keep their time, so a
    /// client that resends at every poll is not what makes them show.
    #[test]
    fn tags_show_after_their_delay() {
        let mut s = store(None);
        s.config.tags_apply_ms = 30_000;
        let n = network(&mut s, 1);
        let id = workspace(&mut s, "t", json!({"network_id": n})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        s.tick(1000);
        let tags = json!({"custom_tags": {"team": "a"}});
        let v = s
            .update_workspace(id, &tags, Some("custom_tags"), 1000)
            .unwrap();
        assert_eq!(v["workspace_status"], "RUNNING");
        assert!(
            v.get("custom_tags").is_none_or(|t| t.get("team").is_none()),
            "{v}"
        );
        s.update_workspace(id, &tags, Some("custom_tags"), 20_000)
            .unwrap();
        s.tick(30_999);
        assert!(
            s.get_workspace(id).unwrap()["custom_tags"]
                .get("team")
                .is_none()
        );
        s.tick(31_000);
        assert_eq!(s.get_workspace(id).unwrap()["custom_tags"]["team"], "a");
    }

    /// The storage-key revert fault: the key shows, then silently goes back.
    #[test]
    fn a_storage_key_change_can_revert() {
        let mut s = store(None);
        s.storage_key_revert = Some(StorageKeyRevert { after_ms: 5000 });
        let id = workspace(&mut s, "k", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        s.tick(1000);
        let k = key(&mut s, &["STORAGE"]);
        s.update_workspace(
            id,
            &json!({"storage_customer_managed_key_id": k}),
            Some("storage_customer_managed_key_id"),
            1000,
        )
        .unwrap();
        s.tick(5999);
        assert_eq!(
            s.get_workspace(id).unwrap()["storage_customer_managed_key_id"],
            json!(k)
        );
        s.tick(6000);
        assert!(
            s.get_workspace(id).unwrap()["storage_customer_managed_key_id"].is_null(),
            "the key went back"
        );
    }

    /// The running-clusters fault refuses a RUNNING workspace's update with its text, and only
    /// for the workspaces it names.
    #[test]
    fn running_clusters_refuse_updates_of_the_named_workspaces() {
        let mut s = store(None);
        s.running_clusters = Some(RunningClusters {
            workspace_name_contains: Some("busy".into()),
        });
        let busy = workspace(&mut s, "busy", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        let idle = workspace(&mut s, "idle", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        s.tick(1000);
        let tags = json!({"custom_tags": {"team": "a"}});
        let err = s
            .update_workspace(busy, &tags, Some("custom_tags"), 1000)
            .unwrap_err();
        assert_eq!((err.status, err.code), (400, "INVALID_STATE"));
        assert_eq!(err.message, RUNNING_CLUSTERS_MESSAGE);
        assert!(
            s.update_workspace(idle, &tags, Some("custom_tags"), 1000)
                .is_ok()
        );
    }

    /// A PAS must be in the workspace region, and cannot be removed once set.
    #[test]
    fn private_access_settings_must_match_the_region_and_cannot_be_removed() {
        let mut s = store(None);
        let p = s
            .create(
                Kind::PrivateAccess,
                &json!({"private_access_settings_name": "pas", "region": "eu-west-1"}),
                0,
            )
            .unwrap();
        assert_eq!(p["private_access_level"], "ACCOUNT");
        assert_eq!(p["public_access_enabled"], false);
        let pid = id_of(&p, "private_access_settings_id");
        let err = workspace(&mut s, "w", json!({"private_access_settings_id": pid})).unwrap_err();
        assert!(err.message.contains("region"));
        let ok = workspace(
            &mut s,
            "w2",
            json!({"aws_region": "eu-west-1", "private_access_settings_id": pid}),
        )
        .unwrap();
        let id = ok["workspace_id"].as_i64().unwrap();
        s.tick(1000);
        let err = s
            .update_workspace(id, &json!({}), Some("private_access_settings_id"), 1000)
            .unwrap_err();
        assert!(err.message.contains("cannot remove"));
        let replaced = s
            .replace_pas(&pid, &json!({"private_access_settings_name": "pas2", "region": "eu-west-1", "public_access_enabled": true}))
            .unwrap();
        assert_eq!(replaced["private_access_settings_name"], "pas2");
        assert_eq!(replaced["public_access_enabled"], true);
        assert!(
            s.replace_pas(
                &pid,
                &json!({"private_access_settings_name": "p", "region": "us-east-1"})
            )
            .is_err()
        );
    }

    /// VPC endpoints become available after the pending time and take the relay use case from networks.
    #[test]
    fn vpc_endpoints_become_available_and_take_their_use_case_from_networks() {
        let mut s = store(None);
        let ep = s
            .create(Kind::VpcEndpoint, &json!({"vpc_endpoint_name": "relay", "aws_vpc_endpoint_id": "vpce-1", "region": "us-east-1"}), 0)
            .unwrap();
        assert_eq!(ep["state"], "pending");
        assert_eq!(ep["use_case"], "WORKSPACE_ACCESS");
        let id = id_of(&ep, "vpc_endpoint_id");
        s.tick(200);
        assert_eq!(s.get(Kind::VpcEndpoint, &id).unwrap()["state"], "available");
        s.create(
            Kind::Network,
            &json!({"network_name": "n", "vpc_id": "v", "subnet_ids": ["a", "b"], "security_group_ids": ["sg"], "vpc_endpoints": {"rest_api": [], "dataplane_relay": [id]}}),
            0,
        )
        .unwrap();
        assert_eq!(
            s.get(Kind::VpcEndpoint, &id).unwrap()["use_case"],
            "DATAPLANE_RELAY_ACCESS"
        );
        let err = s
            .create(
                Kind::Network,
                &json!({"network_name": "n2", "vpc_id": "v", "subnet_ids": ["c", "d"], "security_group_ids": ["sg2"], "vpc_endpoints": {"rest_api": [id]}}),
                0,
            )
            .unwrap_err();
        assert!(err.plain_text);
        assert!(
            err.message
                .starts_with("vpc_endpoints malformed parameters")
        );
        let err = s.delete(Kind::VpcEndpoint, &id).unwrap_err();
        assert_eq!(err.code, "INVALID_STATE");
    }

    fn endpoint(s: &mut Store, aws_id: &str) -> Value {
        s.create(
            Kind::VpcEndpoint,
            &json!({"vpc_endpoint_name": aws_id, "aws_vpc_endpoint_id": aws_id, "region": "us-east-1"}),
            0,
        )
        .unwrap()
    }

    fn network_with(s: &mut Store, n: u32, endpoints: Value) -> Result<Value, ApiError> {
        s.create(
            Kind::Network,
            &json!({"network_name": format!("net{n}"), "vpc_id": "vpc-1",
                    "subnet_ids": [format!("subnet-a{n}"), format!("subnet-b{n}")],
                    "security_group_ids": [format!("sg-{n}")], "vpc_endpoints": endpoints}),
            0,
        )
    }

    /// With the endpoint services known, the use case comes from the AWS endpoint, as Databricks
    /// derives it; a network listing an endpoint in the other list gets the real plain-text refusal.
    #[test]
    fn known_endpoint_services_decide_the_use_case_and_the_list() {
        let mut s = store(None);
        s.config.relay_endpoints = vec!["vpce-relay*".into()];
        let relay = endpoint(&mut s, "vpce-relay-1");
        let rest = endpoint(&mut s, "vpce-rest-1");
        assert_eq!(relay["use_case"], DATAPLANE_RELAY_ACCESS);
        assert_eq!(rest["use_case"], GENERAL_ACCESS);
        assert_eq!(
            relay["aws_endpoint_service_id"],
            endpoint_service_id("us-east-1", true)
        );
        assert_eq!(
            rest["aws_endpoint_service_id"],
            endpoint_service_id("us-east-1", false)
        );
        let (relay, rest) = (
            id_of(&relay, "vpc_endpoint_id"),
            id_of(&rest, "vpc_endpoint_id"),
        );
        let err = network_with(
            &mut s,
            1,
            json!({"rest_api": [relay], "dataplane_relay": []}),
        )
        .unwrap_err();
        assert!(err.plain_text);
        assert_eq!((err.status, err.code), (400, "MALFORMED_REQUEST"));
        assert_eq!(
            err.message,
            format!(
                "vpc_endpoints malformed parameters: VPC Endpoint {relay} with use_case DATAPLANE_RELAY_ACCESS cannot be attached in rest_api list"
            )
        );
        let err = network_with(&mut s, 2, json!({"dataplane_relay": [rest]})).unwrap_err();
        assert!(
            err.message.ends_with(
                "with use_case GENERAL_ACCESS cannot be attached in dataplane_relay list"
            ),
            "{}",
            err.message
        );
        // Listed right, the network is registered and the endpoints keep their use case.
        network_with(
            &mut s,
            3,
            json!({"rest_api": [rest], "dataplane_relay": [relay]}),
        )
        .unwrap();
        assert_eq!(
            s.get(Kind::VpcEndpoint, &rest).unwrap()["use_case"],
            GENERAL_ACCESS
        );
    }

    /// Without the services the fallback stays: an endpoint serves the first list that names it.
    #[test]
    fn unknown_endpoint_services_fall_back_to_the_first_list() {
        let mut s = store(None);
        let ep = endpoint(&mut s, "vpce-relay-1");
        assert_eq!(ep["use_case"], WORKSPACE_ACCESS);
        let id = id_of(&ep, "vpc_endpoint_id");
        network_with(&mut s, 1, json!({"dataplane_relay": [id]})).unwrap();
        let err = network_with(&mut s, 2, json!({"rest_api": [id]})).unwrap_err();
        assert!(
            err.message.contains(
                "with use_case DATAPLANE_RELAY_ACCESS cannot be attached in rest_api list"
            )
        );
    }

    /// A warned network works: the workspace runs, the network says WARNED and why; a workspace
    /// the fault does not name gets a VALID network.
    #[test]
    fn a_network_warning_fault_makes_the_network_warned_when_the_workspace_runs() {
        let mut s = store(None);
        s.network_warnings = Some(NetworkWarnings {
            workspace_name_contains: Some("warn".into()),
            warnings: vec![NetworkWarning {
                warning_type: "subnet".into(),
                warning_message: "subnet is small".into(),
            }],
        });
        let warned = network(&mut s, 1);
        let valid = network(&mut s, 2);
        let w = workspace(&mut s, "warn-me", json!({"network_id": warned})).unwrap();
        workspace(&mut s, "plain", json!({"network_id": valid})).unwrap();
        s.tick(1000);
        assert_eq!(status(&s, w["workspace_id"].as_i64().unwrap()), "RUNNING");
        let n = s.get(Kind::Network, &warned).unwrap();
        assert_eq!(n["vpc_status"], "WARNED");
        assert_eq!(
            n["warning_messages"],
            json!([{"warning_type": "subnet", "warning_message": "subnet is small"}])
        );
        let n = s.get(Kind::Network, &valid).unwrap();
        assert_eq!(n["vpc_status"], "VALID");
        assert!(n.get("warning_messages").is_none());
        // Without warnings named, a security-group warning.
        assert_eq!(
            NetworkWarnings::default().wire()[0]["warning_type"],
            "securityGroup"
        );
    }

    /// RUNNING → BANNED while the fault names the workspace, BANNED → RUNNING when it is
    /// cleared; a banned workspace refuses updates and can still be deleted.
    #[test]
    fn a_ban_fault_bans_running_workspaces_until_it_is_cleared() {
        let mut s = store(None);
        s.banned = Some(BannedWorkspaces {
            workspace_name_contains: Some("bad".into()),
            message: Some("Banned: abuse".into()),
        });
        let bad = workspace(&mut s, "bad", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        let good = workspace(&mut s, "good", json!({})).unwrap()["workspace_id"]
            .as_i64()
            .unwrap();
        s.tick(500);
        assert_eq!(
            status(&s, bad),
            "PROVISIONING",
            "only RUNNING ones are banned"
        );
        s.tick(1000);
        assert_eq!(status(&s, bad), "BANNED");
        assert_eq!(
            s.get_workspace(bad).unwrap()["workspace_status_message"],
            "Banned: abuse"
        );
        assert_eq!(status(&s, good), "RUNNING");
        let err = s
            .update_workspace(
                bad,
                &json!({"custom_tags": {"a": "b"}}),
                Some("custom_tags"),
                1100,
            )
            .unwrap_err();
        assert_eq!(err.code, "INVALID_STATE");
        assert!(err.message.contains("BANNED"), "{}", err.message);
        s.banned = None;
        s.tick(1200);
        assert_eq!(status(&s, bad), "RUNNING");
        assert_eq!(
            s.get_workspace(bad).unwrap()["workspace_status_message"],
            RUNNING_MESSAGE
        );
        s.banned = Some(BannedWorkspaces::default());
        s.tick(1300);
        assert_eq!(status(&s, good), "BANNED");
        assert_eq!(
            s.get_workspace(good).unwrap()["workspace_status_message"],
            DEFAULT_BANNED_MESSAGE
        );
        assert_eq!(
            s.delete_workspace(good, 1300).unwrap()["workspace_status"],
            "CANCELLING"
        );
    }

    /// Quotas count live objects of the limited kinds: the one beyond is refused with the
    /// inferred code, and a delete makes room again.
    #[test]
    fn quotas_refuse_creates_beyond_the_limit() {
        let mut s = store(None);
        s.config.quotas = Some(Quotas {
            credentials: 2,
            ..Quotas::default()
        });
        let first = cred(&mut s, "c1");
        cred(&mut s, "c2");
        let err = s
            .create(
                Kind::Credential,
                &json!({"credentials_name": "c3", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::123456789012:role/c3"}}}),
                0,
            )
            .unwrap_err();
        assert_eq!((err.status, err.code), (400, QUOTA_ERROR_CODE));
        assert_eq!(s.list(Kind::Credential).len(), 2, "nothing was created");
        // Networks have no published limit.
        for n in 0..3 {
            network(&mut s, n);
        }
        s.delete(Kind::Credential, &first).unwrap();
        cred(&mut s, "c3");
    }

    /// Custom tag limits follow the API docs.
    #[test]
    fn custom_tag_lengths_are_enforced() {
        assert!(check_custom_tags(&json!({"k": "v"})).is_ok());
        assert!(check_custom_tags(&json!({"": "v"})).is_err());
        assert!(check_custom_tags(&json!({"k".repeat(128): "v"})).is_err());
        assert!(check_custom_tags(&json!({"k": "v".repeat(256)})).is_err());
        assert!(check_custom_tags(&json!({"k": 1})).is_err());
    }

    /// The snapshot lists every kind, including workspaces.
    #[test]
    fn the_snapshot_holds_every_kind() {
        let mut s = store(None);
        workspace(&mut s, "w", json!({})).unwrap();
        let snap = s.snapshot();
        assert_eq!(snap["credentials"].as_array().unwrap().len(), 1);
        assert_eq!(snap["workspaces"].as_array().unwrap().len(), 1);
        assert_eq!(snap["networks"].as_array().unwrap().len(), 0);
    }
}
