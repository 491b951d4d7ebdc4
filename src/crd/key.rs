//! `DatabricksKeyConfig`: a customer-managed key configuration (AWS KMS).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Management};

/// What a key encrypts.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum KeyUseCase {
    /// Notebooks, secrets and queries in the control plane.
    #[serde(rename = "MANAGED_SERVICES")]
    ManagedServices,
    /// The workspace's root S3 bucket and, optionally, cluster EBS volumes.
    #[serde(rename = "STORAGE")]
    Storage,
}

/// A customer-managed key configuration.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksKeyConfig",
    plural = "databrickskeyconfigs",
    shortname = "dbkey",
    category = "databricks",
    namespaced,
    status = "KeyConfigStatus",
    doc = "A Databricks customer-managed key configuration (AWS KMS key).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.customerManagedKeyId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.customerManagedKeyId) || (self.spec.accountRef == oldSelf.spec.accountRef && has(self.spec.externalId) == has(oldSelf.spec.externalId) && (!has(self.spec.externalId) || self.spec.externalId == oldSelf.spec.externalId))").message("accountRef and externalId cannot change once the object has a Databricks ID: that would create it again in another account, or adopt another object, and leave this one running")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.keyAlias) == has(oldSelf.keyAlias) && has(self.reuseKeyForClusterVolumes) == has(oldSelf.reuseKeyForClusterVolumes)").message("keyAlias, reuseKeyForClusterVolumes cannot be added or removed after creation"))]
pub struct DatabricksKeyConfigSpec {
    /// Account, deletion and management policies, adoption.
    #[serde(flatten)]
    pub management: Management,
    /// What the key encrypts: `MANAGED_SERVICES`, `STORAGE`, or both (each once). Cannot be changed.
    #[schemars(length(min = 1, max = 2), extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("useCases cannot be changed"))]
    pub use_cases: Vec<KeyUseCase>,
    /// ARN of the KMS key. Cannot be changed.
    #[schemars(regex(pattern = r"^arn:aws(-us-gov|-cn)?:kms:[a-z0-9-]+:[0-9]{12}:key/.+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("keyArn cannot be changed; create a new DatabricksKeyConfig instead"))]
    pub key_arn: String,
    /// Alias of the KMS key, e.g. `alias/databricks`. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^alias/.+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("keyAlias cannot be changed"))]
    pub key_alias: Option<String>,
    /// With `STORAGE`: whether the key also encrypts cluster EBS volumes (default true). Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("reuseKeyForClusterVolumes cannot be changed"))]
    pub reuse_key_for_cluster_volumes: Option<bool>,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyConfigStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Databricks ID of the key configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_key_id: Option<String>,
    /// Region of the key as Databricks reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_region: Option<String>,
}
