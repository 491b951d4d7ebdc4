//! `DatabricksNetworkConnectivityConfig`: serverless egress for the workspaces of one region.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Management};
use super::region::AwsRegion;

/// A network connectivity configuration (NCC): the stable egress IPs and the private endpoints to
/// your resources that serverless compute of the workspaces bound to it use.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksNetworkConnectivityConfig",
    plural = "databricksnetworkconnectivityconfigs",
    shortname = "dbncc",
    category = "databricks",
    namespaced,
    status = "NetworkConnectivityConfigStatus",
    doc = "A Databricks network connectivity configuration: serverless egress (stable IPs, private endpoints) for the workspaces of one region.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.networkConnectivityConfigId"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.networkConnectivityConfigId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) == has(oldSelf.name)").message("name cannot be added or removed after creation"))]
pub struct DatabricksNetworkConnectivityConfigSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name in Databricks (3–30 letters, digits, `-` or `_`). Defaults to `metadata.name`.
    /// Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-zA-Z_-]{3,30}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("name cannot be changed"))]
    pub name: Option<String>,
    /// AWS region; only workspaces in this region can use it. Cannot be changed.
    ///
    /// Any AWS region name is accepted (`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`); the Account API refuses
    /// one the account cannot use. Regions Databricks supports: `ap-northeast-1`, `ap-northeast-2`,
    /// `ap-south-1`, `ap-southeast-1`, `ap-southeast-2`, `ap-southeast-3`, `ca-central-1`,
    /// `eu-central-1`, `eu-west-1`, `eu-west-2`, `eu-west-3`, `sa-east-1`, `us-east-1`, `us-east-2`,
    /// `us-west-1`, `us-west-2`, and `us-gov-west-1` (GovCloud accounts only).
    #[x_kube(validation = Rule::new("self == oldSelf").message("region cannot be changed"))]
    pub region: AwsRegion,
    /// Private endpoints from serverless compute to your resources. A rule added here is created;
    /// a rule removed here is deleted in Databricks (an established one is deactivated first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30))]
    pub private_endpoint_rules: Vec<PrivateEndpointRuleSpec>,
}

/// A private endpoint to one of your resources: an NLB-backed endpoint service (with the domain
/// names it serves), or S3 buckets.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpointRuleSpec {
    /// The AWS endpoint service: `com.amazonaws.vpce.<region>.vpce-svc-…` for an NLB service,
    /// `com.amazonaws.<region>.s3` for S3 (may be omitted for S3: Databricks fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^com\.amazonaws\.[a-z0-9.-]+$"))]
    pub endpoint_service: Option<String>,
    /// Domain names reachable through an NLB endpoint service (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub domain_names: Vec<String>,
    /// S3 bucket names, in the NCC's region (S3 rules only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub resource_names: Vec<String>,
}

/// One private endpoint rule as Databricks reports it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpointRuleStatus {
    /// Databricks ID of the rule.
    pub rule_id: String,
    /// The endpoint service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_service: Option<String>,
    /// `CREATING`, `PENDING` (awaiting approval on your endpoint service), `ESTABLISHED`,
    /// `REJECTED`, `DISCONNECTED`, `EXPIRED` or `CREATE_FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// The AWS VPC endpoint Databricks created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// Why the rule failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConnectivityConfigStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the NCC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// The stable IP CIDR blocks serverless traffic leaves from (may be empty: Databricks now
    /// publishes one list for all accounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_cidr_blocks: Vec<String>,
    /// The private endpoint rules and their states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_endpoint_rules: Vec<PrivateEndpointRuleStatus>,
}
