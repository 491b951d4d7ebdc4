//! `DatabricksNetwork`: a network configuration (customer-managed VPC).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DependencyRef, Management};

/// PrivateLink endpoints of a network: references to `DatabricksVpcEndpoint` objects or Databricks
/// VPC endpoint IDs.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkVpcEndpointRefs {
    /// Front-end (REST API) endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
    pub rest_api: Vec<DependencyRef>,
    /// Back-end (secure cluster connectivity relay) endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
    pub dataplane_relay: Vec<DependencyRef>,
}

/// A network configuration: the VPC, subnets and security groups of a customer-managed VPC.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksNetwork",
    plural = "databricksnetworks",
    shortname = "dbnet",
    category = "databricks",
    namespaced,
    status = "NetworkStatus",
    doc = "A Databricks network configuration (customer-managed VPC).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.networkId"}"#,
    printcolumn = r#"{"name":"VPC Status","type":"string","jsonPath":".status.vpcStatus"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.networkId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.networkName) == has(oldSelf.networkName) && has(self.vpcEndpoints) == has(oldSelf.vpcEndpoints)").message("networkName, vpcEndpoints cannot be added or removed after creation"))]
pub struct DatabricksNetworkSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name in Databricks (4–256 characters). Defaults to `metadata.name`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = 256))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("networkName cannot be changed"))]
    pub network_name: Option<String>,
    /// The AWS VPC ID. Cannot be changed.
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vpcId cannot be changed; create a new DatabricksNetwork and point the workspace at it"))]
    pub vpc_id: String,
    /// At least two subnets in different availability zones, not used by any other network
    /// configuration. Cannot be changed.
    #[schemars(length(min = 2), inner(regex(pattern = r"^subnet-[0-9a-f]+$")))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("subnetIds cannot be changed; create a new DatabricksNetwork and point the workspace at it"))]
    pub subnet_ids: Vec<String>,
    /// One to five security groups. Cannot be changed.
    #[schemars(length(min = 1, max = 5), inner(regex(pattern = r"^sg-[0-9a-f]+$")))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("securityGroupIds cannot be changed; create a new DatabricksNetwork and point the workspace at it"))]
    pub security_group_ids: Vec<String>,
    /// PrivateLink endpoints (front-end `restApi`, back-end `dataplaneRelay`). Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vpcEndpoints cannot be changed"))]
    pub vpc_endpoints: Option<NetworkVpcEndpointRefs>,
}

/// One network validation message.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMessage {
    /// What the message is about (`subnet`, `securityGroup`, `vpc`, `networkAcl`, `credentials`).
    #[serde(rename = "type")]
    pub type_: String,
    /// The message.
    pub message: String,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the network configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// `VALID`, `BROKEN`, `UNATTACHED` or `WARNED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_status: Option<String>,
    /// Validation errors reported by Databricks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<NetworkMessage>,
    /// Validation warnings reported by Databricks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warning_messages: Vec<NetworkMessage>,
    /// The workspace using the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    /// Resolved Databricks IDs of the front-end endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_api_endpoint_ids: Vec<String>,
    /// Resolved Databricks IDs of the back-end endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataplane_relay_endpoint_ids: Vec<String>,
}
