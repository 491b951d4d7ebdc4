//! `DatabricksAccount`: where and how to call the Account API.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

fn default_host() -> String {
    crate::databricks::config::DEFAULT_HOST.to_string()
}

/// A key in a Secret of the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeys {
    /// Name of the Secret in the account's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// OAuth machine-to-machine with a service principal's client ID and secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthM2MAuth {
    /// Secret holding the keys `client-id` and `client-secret`. It must carry the label
    /// `account.databricks-operator.dev/account-secret: "true"`; the operator reads no other Secret.
    pub secret_ref: SecretKeys,
    /// Key of the client ID in the Secret: always `client-id` (the only key read).
    #[serde(default = "default_client_id_key")]
    #[schemars(extend("enum" = ["client-id"]))]
    pub client_id_key: String,
    /// Key of the client secret in the Secret: always `client-secret` (the only key sent).
    #[serde(default = "default_client_secret_key")]
    #[schemars(extend("enum" = ["client-secret"]))]
    pub client_secret_key: String,
}

fn default_client_id_key() -> String {
    "client-id".into()
}
fn default_client_secret_key() -> String {
    "client-secret".into()
}
fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}
/// OAuth token federation: the operator exchanges its own projected service-account token (the
/// file its `--federation-token-file` names, mounted by the chart) for an account token. No static
/// secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederationAuth {
    /// The service principal whose federation policy accepts the token (omit for an account-wide policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub client_id: Option<String>,
    /// Not accepted: the token file is the operator's configuration, never a custom resource's.
    /// Objects that set it are refused (`InvalidSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("false").message("tokenPath is not accepted: the operator exchanges its own token file (--federation-token-file); remove the field"))]
    pub token_path: Option<String>,
}

/// Legacy basic auth with an account admin's username and password.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// Secret holding the keys `username` and `password`. It must carry the label
    /// `account.databricks-operator.dev/account-secret: "true"`; the operator reads no other Secret.
    pub secret_ref: SecretKeys,
    /// Key of the username in the Secret: always `username` (the only key read).
    #[serde(default = "default_username_key")]
    #[schemars(extend("enum" = ["username"]))]
    pub username_key: String,
    /// Key of the password in the Secret: always `password` (the only key sent).
    #[serde(default = "default_password_key")]
    #[schemars(extend("enum" = ["password"]))]
    pub password_key: String,
}

/// Exactly one authentication method.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["oauthM2M"]}, {"required": ["federation"]}, {"required": ["basic"]}]))]
pub struct AccountAuth {
    /// OAuth M2M (recommended).
    #[serde(default, rename = "oauthM2M", skip_serializing_if = "Option::is_none")]
    pub oauth_m2m: Option<OAuthM2MAuth>,
    /// OAuth token federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationAuth>,
    /// Legacy basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
}

impl AccountAuth {
    /// The Secret the method reads, if any.
    pub fn secret_name(&self) -> Option<&str> {
        match (&self.oauth_m2m, &self.basic) {
            (Some(m), _) => Some(&m.secret_ref.name),
            (None, Some(b)) => Some(&b.secret_ref.name),
            (None, None) => None,
        }
    }
}

/// A CA bundle in a ConfigMap of the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253))]
    pub config_map: String,
    /// Key holding PEM certificates.
    #[serde(default = "default_ca_key")]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Where and how to call the Databricks Account API. Other objects name it in `accountRef`.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "account.databricks-operator.dev",
    version = "v1alpha1",
    kind = "DatabricksAccount",
    plural = "databricksaccounts",
    shortname = "dbacct",
    category = "databricks",
    namespaced,
    status = "AccountStatus",
    doc = "A Databricks account: the Account API host, the account ID and how to authenticate.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.accountId"}"#,
    printcolumn = r#"{"name":"Auth","type":"string","jsonPath":".status.authMethod"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.inUseBy) || oldSelf.status.inUseBy == 0 || (self.spec.host == oldSelf.spec.host && self.spec.accountId == oldSelf.spec.accountId)").message("host and accountId cannot change while objects use this account: every object would be created again in the other account and the old ones left running")
)]
#[serde(rename_all = "camelCase")]
pub struct DatabricksAccountSpec {
    /// Account console host. `https://accounts.cloud.databricks.com` (default), the GovCloud hosts, or
    /// `http://127.0.0.1:PORT` for the local simulator (plain http only for loopback).
    #[serde(default = "default_host")]
    #[schemars(regex(pattern = r"^https?://[^/\s]+/?$"))]
    pub host: String,
    /// The Databricks account ID (a UUID).
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub account_id: String,
    /// How to authenticate: exactly one of `oauthM2M`, `federation`, `basic`.
    pub auth: AccountAuth,
    /// Client-side request rate limit for this account, requests per second (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub rate_limit: Option<u32>,
    /// Extra CA certificates to trust (for a TLS-intercepting proxy or a private simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleRef>,
}

/// What the operator observed about the account.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Conditions and bookkeeping.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The authentication method in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The host the operator's client is bound to. While objects use the account it cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The account ID the operator's client is bound to. While objects use the account it cannot
    /// change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// How many objects in the namespace name this account in `accountRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use_by: Option<u32>,
}
