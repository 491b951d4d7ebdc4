//! `DatabricksVpcEndpoint`: a VPC endpoint registration (PrivateLink).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Management};
use super::region::AwsRegion;

/// A VPC endpoint registration: an AWS interface endpoint made known to Databricks for PrivateLink.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksVpcEndpoint",
    plural = "databricksvpcendpoints",
    shortname = "dbvpce",
    category = "databricks",
    namespaced,
    status = "VpcEndpointStatus",
    doc = "A Databricks VPC endpoint registration (AWS PrivateLink).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.vpcEndpointId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.vpcEndpointId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.vpcEndpointName) == has(oldSelf.vpcEndpointName)").message("vpcEndpointName cannot be added or removed after creation"))]
pub struct DatabricksVpcEndpointSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name in Databricks. Defaults to `metadata.name`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vpcEndpointName cannot be changed"))]
    pub vpc_endpoint_name: Option<String>,
    /// The AWS endpoint ID (`vpce-...`). Cannot be changed.
    #[schemars(regex(pattern = r"^vpce-[0-9a-f]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("awsVpcEndpointId cannot be changed"))]
    pub aws_vpc_endpoint_id: String,
    /// AWS region of the endpoint. Cannot be changed.
    ///
    /// Any AWS region name is accepted (`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`); the Account API refuses
    /// one the account cannot use. Regions Databricks supports: `ap-northeast-1`, `ap-northeast-2`,
    /// `ap-south-1`, `ap-southeast-1`, `ap-southeast-2`, `ap-southeast-3`, `ca-central-1`,
    /// `eu-central-1`, `eu-west-1`, `eu-west-2`, `eu-west-3`, `sa-east-1`, `us-east-1`, `us-east-2`,
    /// `us-west-1`, `us-west-2`, and `us-gov-west-1` (GovCloud accounts only).
    #[x_kube(validation = Rule::new("self == oldSelf").message("region cannot be changed"))]
    pub region: AwsRegion,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcEndpointStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// State as AWS reports it (`pending`, `available`, `rejected`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `WORKSPACE_ACCESS`, `DATAPLANE_RELAY_ACCESS` or `GENERAL_ACCESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_case: Option<String>,
}
