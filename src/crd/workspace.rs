//! `DatabricksWorkspace`: a workspace and the configurations it uses.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DependencyRef, Management, SentUpdate};
use super::region::AwsRegion;

/// Pricing tier of a workspace.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PricingTier {
    /// Standard.
    #[serde(rename = "STANDARD")]
    Standard,
    /// Premium.
    #[serde(rename = "PREMIUM")]
    Premium,
    /// Enterprise.
    #[serde(rename = "ENTERPRISE")]
    Enterprise,
    /// Dedicated.
    #[serde(rename = "DEDICATED")]
    Dedicated,
}

/// `SERVERLESS` for a serverless workspace: Databricks-hosted compute and default storage, no
/// credentials, storage configuration or network. Omit for a classic workspace, which needs
/// credentials and a storage configuration. Cannot be changed.
// The type's doc, not the field's, is what `kubectl explain` shows for an optional enum field.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ComputeMode {
    /// Serverless compute and Databricks-hosted default storage: no credential, storage
    /// configuration or network of yours.
    #[serde(rename = "SERVERLESS")]
    Serverless,
}

/// Why a classic workspace spec is refused (by the CEL rule on 1.25+, by the operator before).
pub const CLASSIC_NEEDS: &str = "a classic workspace (no computeMode) needs credentials and storageConfiguration; set computeMode: SERVERLESS for a workspace without them";
/// Why a serverless workspace spec is refused.
pub const SERVERLESS_TAKES_NONE: &str = "a SERVERLESS workspace takes no credentials, storageConfiguration or network: Databricks provides its compute, storage and network; remove them, or remove computeMode for a classic workspace";

/// A Databricks workspace on AWS.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksWorkspace",
    plural = "databricksworkspaces",
    shortname = "dbws",
    category = "databricks",
    namespaced,
    status = "WorkspaceStatus",
    doc = "A Databricks workspace on AWS.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"integer","jsonPath":".status.workspaceId"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.workspaceStatus"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.computeMode"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.workspaceUrl"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.workspaceId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.workspaceName) == has(oldSelf.workspaceName) && has(self.deploymentName) == has(oldSelf.deploymentName) && has(self.pricingTier) == has(oldSelf.pricingTier) && has(self.computeMode) == has(oldSelf.computeMode)").message("workspaceName, deploymentName, pricingTier, computeMode cannot be added or removed after creation"))]
#[x_kube(validation = Rule::new("has(self.computeMode) || (has(self.credentials) && has(self.storageConfiguration))").message(CLASSIC_NEEDS))]
#[x_kube(validation = Rule::new("!has(self.computeMode) || (!has(self.credentials) && !has(self.storageConfiguration) && !has(self.network))").message(SERVERLESS_TAKES_NONE))]
pub struct DatabricksWorkspaceSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Workspace name (1–100 characters). Defaults to `metadata.name`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("workspaceName cannot be changed"))]
    pub workspace_name: Option<String>,
    /// AWS region of the workspace's compute plane. Only a FAILED workspace can move region.
    ///
    /// Any AWS region name is accepted (`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`); the Account API refuses
    /// one the account cannot use. Regions Databricks supports: `ap-northeast-1`, `ap-northeast-2`,
    /// `ap-south-1`, `ap-southeast-1`, `ap-southeast-2`, `ap-southeast-3`, `ca-central-1`,
    /// `eu-central-1`, `eu-west-1`, `eu-west-2`, `eu-west-3`, `sa-east-1`, `us-east-1`, `us-east-2`,
    /// `us-west-1`, `us-west-2`, and `us-gov-west-1` (GovCloud accounts only).
    pub aws_region: AwsRegion,
    /// The workspace's subdomain (needs a deployment-name prefix on the account; Databricks adds
    /// the prefix). Lowercase letters, digits and hyphens, or `EMPTY` for the prefix alone. When
    /// omitted Databricks generates `dbc-xxxxxxxx-xxxx`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        regex(pattern = r"^(EMPTY|[a-z0-9]([a-z0-9-]*[a-z0-9])?)$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("deploymentName cannot be changed"))]
    pub deployment_name: Option<String>,
    /// Pricing tier. When omitted Databricks uses the account's default. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("pricingTier cannot be changed"))]
    pub pricing_tier: Option<PricingTier>,
    /// AWS tags for the workspace's resources (keys 1–127, values up to 255 characters). They can
    /// be changed, not all removed: Databricks cannot remove every tag, so an empty map on a
    /// workspace this operator created with tags is reported as `ImmutableFieldChanged` (on one
    /// adopted with `externalId`, no tags here leaves its tags alone). Databricks may take up to an
    /// hour to show a change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50, "additionalProperties" = {"type": "string", "maxLength": 255}))]
    pub custom_tags: BTreeMap<String, String>,
    /// `SERVERLESS` for a serverless workspace (Databricks-hosted compute and default storage, no
    /// credentials, storage configuration or network). Omit for a classic workspace, which needs
    /// credentials and a storage configuration. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("computeMode cannot be changed"))]
    pub compute_mode: Option<ComputeMode>,
    /// The network connectivity configuration for serverless egress (a
    /// `DatabricksNetworkConnectivityConfig` name or a Databricks ID), in the workspace's region.
    /// Can be added or switched, not removed: Databricks cannot unbind one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config: Option<DependencyRef>,
    /// The credential configuration (a `DatabricksCredential` name or a Databricks ID). Required
    /// for a classic workspace, not allowed for a serverless one. Can be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<DependencyRef>,
    /// The storage configuration. Required for a classic workspace, not allowed for a serverless
    /// one. Only a FAILED workspace can change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration: Option<DependencyRef>,
    /// The network configuration for a customer-managed VPC. Omit for a Databricks-managed VPC
    /// (and for a serverless workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DependencyRef>,
    /// Private access settings, for PrivateLink. Can be added, not removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings: Option<DependencyRef>,
    /// Key configuration for managed services (its use cases must include `MANAGED_SERVICES`). Can be added or rotated, not removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_services_key: Option<DependencyRef>,
    /// Key configuration for workspace storage (its use cases must include `STORAGE`). Can be added once, not removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<DependencyRef>,
}

impl DatabricksWorkspaceSpec {
    /// Whether the spec asks for a serverless workspace.
    pub fn serverless(&self) -> bool {
        self.compute_mode == Some(ComputeMode::Serverless)
    }

    /// What the CEL rules above refuse, for API servers that do not run them (before 1.25).
    pub fn problem(&self) -> Option<&'static str> {
        if self.serverless() {
            (self.credentials.is_some()
                || self.storage_configuration.is_some()
                || self.network.is_some())
            .then_some(SERVERLESS_TAKES_NONE)
        } else {
            (self.credentials.is_none() || self.storage_configuration.is_none())
                .then_some(CLASSIC_NEEDS)
        }
    }
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks workspace ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    /// `NOT_PROVISIONED`, `PROVISIONING`, `RUNNING`, `FAILED`, `BANNED` or `CANCELLING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status: Option<String>,
    /// Databricks' message for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status_message: Option<String>,
    /// The deployment name, with the prefix Databricks added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// The workspace URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_url: Option<String>,
    /// The pricing tier Databricks reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_tier: Option<String>,
    /// `SERVERLESS` or `HYBRID` (classic; also shown when Databricks reports no mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_mode: Option<String>,
    /// Where the workspace's root storage lives: `CUSTOMER_HOSTED` (your bucket) or
    /// `DEFAULT_STORAGE` (Databricks-hosted, serverless), as Databricks reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_mode: Option<String>,
    /// Resolved Databricks IDs of the dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    /// Resolved storage configuration ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    /// Resolved network ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Resolved private access settings ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    /// Resolved managed-services key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_services_customer_managed_key_id: Option<String>,
    /// Resolved storage key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_customer_managed_key_id: Option<String>,
    /// The network connectivity configuration the workspace is bound to, as Databricks reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// The last update (PATCH) the operator sent. While the workspace does not show it yet, it is
    /// not sent again: Databricks applies some changes slowly (a credential or network change
    /// re-provisions for up to 20 minutes; tags take up to an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<SentUpdate>,
}
