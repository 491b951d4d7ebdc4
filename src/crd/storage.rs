//! `DatabricksStorageConfig`: a storage configuration (the workspace's root S3 bucket).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Management};

/// A storage configuration: the root S3 bucket of workspaces.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksStorageConfig",
    plural = "databricksstorageconfigs",
    shortname = "dbstorage",
    category = "databricks",
    namespaced,
    status = "StorageConfigStatus",
    doc = "A Databricks storage configuration (root S3 bucket).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.storageConfigurationId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.storageConfigurationId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.storageConfigurationName) == has(oldSelf.storageConfigurationName) && has(self.roleArn) == has(oldSelf.roleArn)").message("storageConfigurationName, roleArn cannot be added or removed after creation"))]
pub struct DatabricksStorageConfigSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// Name in Databricks. Defaults to `metadata.name`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageConfigurationName cannot be changed"))]
    pub storage_configuration_name: Option<String>,
    /// The root S3 bucket. Cannot be changed.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bucketName cannot be changed; create a new DatabricksStorageConfig instead"))]
    pub bucket_name: String,
    /// Optional IAM role for the workspace's default Unity Catalog storage. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws(-us-gov|-cn)?:iam::[0-9]{12}:role/.+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("roleArn cannot be changed"))]
    pub role_arn: Option<String>,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfigStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the storage configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
}
