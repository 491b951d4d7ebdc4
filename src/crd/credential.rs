//! `DatabricksCredential`: a credential configuration (the cross-account IAM role).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Management};

/// A credential configuration: the cross-account IAM role Databricks assumes to create workspace
/// resources in your AWS account.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksCredential",
    plural = "databrickscredentials",
    shortname = "dbcred",
    category = "databricks",
    namespaced,
    status = "CredentialStatus",
    doc = "A Databricks credential configuration (cross-account IAM role).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.credentialsId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.credentialsId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.credentialsName) == has(oldSelf.credentialsName)").message("credentialsName cannot be added or removed after creation"))]
pub struct DatabricksCredentialSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name of the credential configuration in Databricks (unique in the account). Defaults to
    /// `metadata.name`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("credentialsName cannot be changed"))]
    pub credentials_name: Option<String>,
    /// ARN of the cross-account IAM role. Cannot be changed: create a new credential and point the
    /// workspace at it.
    #[schemars(regex(pattern = r"^arn:aws(-us-gov|-cn)?:iam::[0-9]{12}:role/.+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("roleArn cannot be changed; create a new DatabricksCredential instead"))]
    pub role_arn: String,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the credential configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
}
