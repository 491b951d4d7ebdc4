//! `DatabricksPrivateAccessSettings`: private access settings (PrivateLink front-end access rules).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DependencyRef, Management};
use super::region::AwsRegion;

/// Which endpoints may reach the workspace.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PrivateAccessLevel {
    /// Any VPC endpoint registered in the account.
    #[default]
    #[serde(rename = "ACCOUNT")]
    Account,
    /// Only the endpoints in `allowedVpcEndpoints`.
    #[serde(rename = "ENDPOINT")]
    Endpoint,
}

/// Private access settings. Changes are applied in place (the API replaces them as a whole) and
/// affect every workspace using them.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksPrivateAccessSettings",
    plural = "databricksprivateaccesssettings",
    shortname = "dbpas",
    category = "databricks",
    namespaced,
    status = "PrivateAccessSettingsStatus",
    doc = "Databricks private access settings (PrivateLink).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.privateAccessSettingsId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.privateAccessSettingsId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
pub struct DatabricksPrivateAccessSettingsSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name in Databricks (4–256 characters). Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = 256))]
    pub private_access_settings_name: Option<String>,
    /// AWS region; only workspaces in this region can use the settings. Cannot be changed.
    ///
    /// Any AWS region name is accepted (`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`); the Account API refuses
    /// one the account cannot use. Regions Databricks supports: `ap-northeast-1`, `ap-northeast-2`,
    /// `ap-south-1`, `ap-southeast-1`, `ap-southeast-2`, `ap-southeast-3`, `ca-central-1`,
    /// `eu-central-1`, `eu-west-1`, `eu-west-2`, `eu-west-3`, `sa-east-1`, `us-east-1`, `us-east-2`,
    /// `us-west-1`, `us-west-2`, and `us-gov-west-1` (GovCloud accounts only).
    #[x_kube(validation = Rule::new("self == oldSelf").message("region cannot be changed"))]
    pub region: AwsRegion,
    /// Whether the workspace can also be reached from the public internet (default false).
    #[serde(default)]
    pub public_access_enabled: bool,
    /// `ACCOUNT` (default): any endpoint of the account; `ENDPOINT`: only `allowedVpcEndpoints`.
    #[serde(default)]
    pub private_access_level: PrivateAccessLevel,
    /// With `ENDPOINT`: the endpoints allowed to reach the workspace (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub allowed_vpc_endpoints: Vec<DependencyRef>,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateAccessSettingsStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    /// Resolved Databricks IDs of the allowed endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_vpc_endpoint_ids: Vec<String>,
}
