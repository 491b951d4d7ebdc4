//! Wire models of the Account API's AWS provisioning objects (`account-api.md` §2).
//!
//! Responses are read leniently: every field the server may omit has a default, and every enum keeps
//! an `Unknown(String)` arm so a value the server adds later never breaks parsing. Requests skip the
//! fields that are not set.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a wire enum that serializes as its string and keeps unknown values.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know yet.
            Unknown(String),
        }

        impl $name {
            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unknown(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::Unknown(other.to_string()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }
    };
}

wire_enum!(
    /// `workspace_status`.
    WorkspaceStatus {
        NotProvisioned = "NOT_PROVISIONED",
        Provisioning = "PROVISIONING",
        Running = "RUNNING",
        Failed = "FAILED",
        Banned = "BANNED",
        Cancelling = "CANCELLING",
    }
);

wire_enum!(
    /// `pricing_tier`.
    PricingTier {
        CommunityEdition = "COMMUNITY_EDITION",
        Dedicated = "DEDICATED",
        Enterprise = "ENTERPRISE",
        Premium = "PREMIUM",
        Standard = "STANDARD",
        Unspecified = "UNKNOWN",
    }
);

wire_enum!(
    /// What a customer-managed key encrypts.
    KeyUseCase {
        ManagedServices = "MANAGED_SERVICES",
        Storage = "STORAGE",
    }
);

wire_enum!(
    /// `private_access_level` of private access settings.
    PrivateAccessLevel {
        Account = "ACCOUNT",
        Endpoint = "ENDPOINT",
    }
);

wire_enum!(
    /// `use_case` of a VPC endpoint registration.
    EndpointUseCase {
        DataplaneRelayAccess = "DATAPLANE_RELAY_ACCESS",
        GeneralAccess = "GENERAL_ACCESS",
        WorkspaceAccess = "WORKSPACE_ACCESS",
    }
);

wire_enum!(
    /// `vpc_status` of a network configuration.
    VpcStatus {
        Valid = "VALID",
        Broken = "BROKEN",
        Unattached = "UNATTACHED",
        Warned = "WARNED",
    }
);

wire_enum!(
    /// `compute_mode` of a workspace.
    ComputeMode {
        Hybrid = "HYBRID",
        Serverless = "SERVERLESS",
    }
);

wire_enum!(
    /// `storage_mode` of a workspace: the customer's root bucket, or Databricks-hosted default
    /// storage (serverless workspaces).
    StorageMode {
        CustomerHosted = "CUSTOMER_HOSTED",
        DefaultStorage = "DEFAULT_STORAGE",
    }
);

// ------------------------------------------------------------------------------------------------
// Credentials

/// The cross-account IAM role of a credential configuration.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct StsRole {
    /// ARN of the cross-account role.
    #[serde(default)]
    pub role_arn: String,
    /// Legacy: always the account ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `aws_credentials` of a credential configuration.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct AwsCredentials {
    /// The STS role.
    #[serde(default)]
    pub sts_role: StsRole,
}

/// A credential configuration.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct Credential {
    /// Databricks ID.
    #[serde(default)]
    pub credentials_id: String,
    /// Name.
    #[serde(default)]
    pub credentials_name: String,
    /// The IAM role.
    #[serde(default)]
    pub aws_credentials: AwsCredentials,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `POST /credentials`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateCredential {
    /// Name.
    pub credentials_name: String,
    /// The IAM role.
    pub aws_credentials: AwsCredentials,
}

// ------------------------------------------------------------------------------------------------
// Storage configurations

/// `root_bucket_info`.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct RootBucketInfo {
    /// S3 bucket name.
    #[serde(default)]
    pub bucket_name: String,
}

/// A storage configuration (root S3 bucket).
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct StorageConfiguration {
    /// Databricks ID.
    #[serde(default)]
    pub storage_configuration_id: String,
    /// Name.
    #[serde(default)]
    pub storage_configuration_name: String,
    /// The bucket.
    #[serde(default)]
    pub root_bucket_info: RootBucketInfo,
    /// Optional IAM role for the workspace catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `POST /storage-configurations`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateStorageConfiguration {
    /// Name.
    pub storage_configuration_name: String,
    /// The bucket.
    pub root_bucket_info: RootBucketInfo,
    /// Optional IAM role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

// ------------------------------------------------------------------------------------------------
// Customer-managed keys

/// `aws_key_info`.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct AwsKeyInfo {
    /// KMS key ARN.
    #[serde(default)]
    pub key_arn: String,
    /// KMS key alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_alias: Option<String>,
    /// Region of the key (always in responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_region: Option<String>,
    /// Whether the key also encrypts cluster EBS volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_key_for_cluster_volumes: Option<bool>,
}

/// A customer-managed key configuration.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct CustomerManagedKey {
    /// Databricks ID.
    #[serde(default)]
    pub customer_managed_key_id: String,
    /// What the key encrypts.
    #[serde(default)]
    pub use_cases: Vec<KeyUseCase>,
    /// The AWS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_key_info: Option<AwsKeyInfo>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `POST /customer-managed-keys`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateCustomerManagedKey {
    /// What the key encrypts.
    pub use_cases: Vec<KeyUseCase>,
    /// The AWS key.
    pub aws_key_info: AwsKeyInfo,
}

// ------------------------------------------------------------------------------------------------
// Networks

/// Databricks VPC endpoint IDs a network uses for PrivateLink.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct NetworkVpcEndpoints {
    /// Front-end (REST API) endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_api: Vec<String>,
    /// Back-end (secure cluster connectivity relay) endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataplane_relay: Vec<String>,
}

impl NetworkVpcEndpoints {
    /// True when neither list has an entry.
    pub fn is_empty(&self) -> bool {
        self.rest_api.is_empty() && self.dataplane_relay.is_empty()
    }
}

/// One network validation error.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct NetworkHealth {
    /// `credentials`, `networkAcl`, `securityGroup`, `subnet` or `vpc`.
    #[serde(default)]
    pub error_type: String,
    /// The message.
    #[serde(default)]
    pub error_message: String,
}

/// One network validation warning.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct NetworkWarning {
    /// `securityGroup` or `subnet`.
    #[serde(default)]
    pub warning_type: String,
    /// The message.
    #[serde(default)]
    pub warning_message: String,
}

/// A network configuration (customer-managed VPC).
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct Network {
    /// Databricks ID.
    #[serde(default)]
    pub network_id: String,
    /// Name.
    #[serde(default)]
    pub network_name: String,
    /// AWS VPC ID.
    #[serde(default)]
    pub vpc_id: String,
    /// AWS subnet IDs.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// AWS security group IDs.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// PrivateLink endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoints: Option<NetworkVpcEndpoints>,
    /// Validation status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_status: Option<VpcStatus>,
    /// Validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<NetworkHealth>,
    /// Validation warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warning_messages: Vec<NetworkWarning>,
    /// Attached workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `POST /networks`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateNetwork {
    /// Name.
    pub network_name: String,
    /// AWS VPC ID.
    pub vpc_id: String,
    /// AWS subnet IDs.
    pub subnet_ids: Vec<String>,
    /// AWS security group IDs.
    pub security_group_ids: Vec<String>,
    /// PrivateLink endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_endpoints: Option<NetworkVpcEndpoints>,
}

// ------------------------------------------------------------------------------------------------
// VPC endpoints

/// A VPC endpoint registration (PrivateLink).
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct VpcEndpoint {
    /// Databricks ID.
    #[serde(default)]
    pub vpc_endpoint_id: String,
    /// Name.
    #[serde(default)]
    pub vpc_endpoint_name: String,
    /// The AWS `vpce-...` ID.
    #[serde(default)]
    pub aws_vpc_endpoint_id: String,
    /// AWS region.
    #[serde(default)]
    pub region: String,
    /// State as AWS reports it (`pending`, `available`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// What the endpoint is used for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_case: Option<EndpointUseCase>,
    /// AWS account of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    /// The endpoint service it connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_service_id: Option<String>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// `POST /vpc-endpoints`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateVpcEndpoint {
    /// Name.
    pub vpc_endpoint_name: String,
    /// The AWS `vpce-...` ID.
    pub aws_vpc_endpoint_id: String,
    /// AWS region.
    pub region: String,
}

// ------------------------------------------------------------------------------------------------
// Private access settings

/// Private access settings.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct PrivateAccessSettings {
    /// Databricks ID.
    #[serde(default)]
    pub private_access_settings_id: String,
    /// Name.
    #[serde(default)]
    pub private_access_settings_name: String,
    /// AWS region.
    #[serde(default)]
    pub region: String,
    /// Whether the workspace can also be reached over the public internet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_enabled: Option<bool>,
    /// `ACCOUNT` or `ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_level: Option<PrivateAccessLevel>,
    /// With `ENDPOINT`: the Databricks VPC endpoint IDs allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_vpc_endpoint_ids: Vec<String>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// `POST /private-access-settings` and `PUT /private-access-settings/{id}` (full replace).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivateAccessSettingsRequest {
    /// Name.
    pub private_access_settings_name: String,
    /// AWS region.
    pub region: String,
    /// Public access.
    pub public_access_enabled: bool,
    /// `ACCOUNT` or `ENDPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_access_level: Option<PrivateAccessLevel>,
    /// Allowed endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_vpc_endpoint_ids: Vec<String>,
}

// ------------------------------------------------------------------------------------------------
// Workspaces

/// A workspace.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct Workspace {
    /// Databricks ID (an integer).
    #[serde(default)]
    pub workspace_id: i64,
    /// Name.
    #[serde(default)]
    pub workspace_name: String,
    /// AWS region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// Deployment name, with the account prefix the server added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// Pricing tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_tier: Option<PricingTier>,
    /// Credential configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    /// Storage configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    /// Network configuration (empty for a Databricks-managed VPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Private access settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    /// Key for managed services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_services_customer_managed_key_id: Option<String>,
    /// Key for workspace storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_customer_managed_key_id: Option<String>,
    /// Network connectivity configuration (serverless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status: Option<WorkspaceStatus>,
    /// Status message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status_message: Option<String>,
    /// Compute mode (`HYBRID`, the default, is classic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_mode: Option<ComputeMode>,
    /// Storage mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_mode: Option<StorageMode>,
    /// Owning account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `POST /workspaces`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CreateWorkspace {
    /// Name.
    pub workspace_name: String,
    /// AWS region.
    pub aws_region: String,
    /// Deployment name (needs an account prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// Pricing tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing_tier: Option<PricingTier>,
    /// Credential configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    /// Storage configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    /// Network configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Private access settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    /// Key for managed services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_services_customer_managed_key_id: Option<String>,
    /// Key for workspace storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_customer_managed_key_id: Option<String>,
    /// Network connectivity configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, String>,
    /// `SERVERLESS` for a workspace without credentials, storage or network; unset (the API's
    /// default, `HYBRID`) for a classic one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_mode: Option<ComputeMode>,
}

/// The fields of a workspace that `PATCH` can change. Only the fields that are set are sent, and
/// they make the `update_mask`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkspaceUpdate {
    /// AWS region (failed workspaces only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// Credential configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    /// Storage configuration (failed workspaces only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    /// Network configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Private access settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    /// Key for managed services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_services_customer_managed_key_id: Option<String>,
    /// Key for workspace storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_customer_managed_key_id: Option<String>,
    /// Network connectivity configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// Tags (replaced as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_tags: Option<BTreeMap<String, String>>,
}

impl WorkspaceUpdate {
    /// The `update_mask`: the names of the fields that are set, sorted, comma-separated.
    pub fn update_mask(&self) -> String {
        let mut fields = self.field_names();
        fields.sort_unstable();
        fields.join(",")
    }

    /// Names of the fields that are set.
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut push = |set: bool, name: &'static str| {
            if set {
                v.push(name);
            }
        };
        push(self.aws_region.is_some(), "aws_region");
        push(self.credentials_id.is_some(), "credentials_id");
        push(
            self.storage_configuration_id.is_some(),
            "storage_configuration_id",
        );
        push(self.network_id.is_some(), "network_id");
        push(
            self.private_access_settings_id.is_some(),
            "private_access_settings_id",
        );
        push(
            self.managed_services_customer_managed_key_id.is_some(),
            "managed_services_customer_managed_key_id",
        );
        push(
            self.storage_customer_managed_key_id.is_some(),
            "storage_customer_managed_key_id",
        );
        push(
            self.network_connectivity_config_id.is_some(),
            "network_connectivity_config_id",
        );
        push(self.custom_tags.is_some(), "custom_tags");
        v
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.field_names().is_empty()
    }

    /// The value of each field that is set, as text: IDs as they are, tags as compact JSON (keys
    /// sorted), so that two updates setting a field to the same value give the same text.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        let ids = [
            ("aws_region", &self.aws_region),
            ("credentials_id", &self.credentials_id),
            ("storage_configuration_id", &self.storage_configuration_id),
            ("network_id", &self.network_id),
            (
                "private_access_settings_id",
                &self.private_access_settings_id,
            ),
            (
                "managed_services_customer_managed_key_id",
                &self.managed_services_customer_managed_key_id,
            ),
            (
                "storage_customer_managed_key_id",
                &self.storage_customer_managed_key_id,
            ),
            (
                "network_connectivity_config_id",
                &self.network_connectivity_config_id,
            ),
        ];
        for (name, value) in ids {
            if let Some(value) = value {
                v.insert(name, value.clone());
            }
        }
        if let Some(tags) = &self.custom_tags {
            v.insert(
                "custom_tags",
                serde_json::to_string(tags).unwrap_or_default(),
            );
        }
        v
    }

    /// Unsets every field `keep` refuses.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let clear = |name: &str, field: &mut Option<String>| {
            if !keep(name) {
                *field = None;
            }
        };
        clear("aws_region", &mut self.aws_region);
        clear("credentials_id", &mut self.credentials_id);
        clear(
            "storage_configuration_id",
            &mut self.storage_configuration_id,
        );
        clear("network_id", &mut self.network_id);
        clear(
            "private_access_settings_id",
            &mut self.private_access_settings_id,
        );
        clear(
            "managed_services_customer_managed_key_id",
            &mut self.managed_services_customer_managed_key_id,
        );
        clear(
            "storage_customer_managed_key_id",
            &mut self.storage_customer_managed_key_id,
        );
        clear(
            "network_connectivity_config_id",
            &mut self.network_connectivity_config_id,
        );
        if !keep("custom_tags") {
            self.custom_tags = None;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Network connectivity configurations (account-api.md §11; the SDKs' settings service)

wire_enum!(
    /// `connection_state` of a private endpoint rule. Only `ESTABLISHED` carries traffic.
    RuleConnectionState {
        Creating = "CREATING",
        Pending = "PENDING",
        Established = "ESTABLISHED",
        Rejected = "REJECTED",
        Disconnected = "DISCONNECTED",
        Expired = "EXPIRED",
        CreateFailed = "CREATE_FAILED",
    }
);

/// A private endpoint rule to a customer resource (an NLB endpoint service or S3 buckets).
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct PrivateEndpointRule {
    /// Databricks ID of the rule.
    #[serde(default)]
    pub rule_id: String,
    /// The NCC it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_connectivity_config_id: Option<String>,
    /// Full AWS endpoint service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_service: Option<String>,
    /// Domain names reachable through an NLB endpoint service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_names: Vec<String>,
    /// S3 bucket names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// State of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<RuleConnectionState>,
    /// Why a create failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The AWS VPC endpoint Databricks created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// Deleted, and waiting to be purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
}

/// `POST .../network-connectivity-configs/{id}/private-endpoint-rules` (flat body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CreatePrivateEndpointRule {
    /// Full AWS endpoint service name (for S3 the server may fill it in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_service: Option<String>,
    /// Domain names (NLB endpoint services only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domain_names: Vec<String>,
    /// S3 bucket names (S3 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// `egress_config.default_rules.aws_stable_ip_rule`.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct AwsStableIpRule {
    /// CIDR blocks serverless traffic comes from.
    #[serde(default)]
    pub cidr_blocks: Vec<String>,
}

/// `egress_config.default_rules`.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct EgressDefaultRules {
    /// Stable IPs (AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_stable_ip_rule: Option<AwsStableIpRule>,
}

/// `egress_config.target_rules`.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct EgressTargetRules {
    /// Private endpoint rules (AWS).
    #[serde(default)]
    pub aws_private_endpoint_rules: Vec<PrivateEndpointRule>,
}

/// `egress_config` of an NCC.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct EgressConfig {
    /// Default rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rules: Option<EgressDefaultRules>,
    /// Target rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rules: Option<EgressTargetRules>,
}

/// A network connectivity configuration: serverless egress rules for the workspaces of a region.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
pub struct NetworkConnectivityConfig {
    /// Databricks ID.
    #[serde(default)]
    pub network_connectivity_config_id: String,
    /// Name (3-30 letters, digits, `-`, `_`).
    #[serde(default)]
    pub name: String,
    /// Cloud region.
    #[serde(default)]
    pub region: String,
    /// Egress configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_config: Option<EgressConfig>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

impl NetworkConnectivityConfig {
    /// Its private endpoint rules, as the NCC reports them.
    pub fn rules(&self) -> &[PrivateEndpointRule] {
        self.egress_config
            .as_ref()
            .and_then(|e| e.target_rules.as_ref())
            .map_or(&[], |t| t.aws_private_endpoint_rules.as_slice())
    }

    /// Its stable egress CIDR blocks.
    pub fn cidr_blocks(&self) -> &[String] {
        self.egress_config
            .as_ref()
            .and_then(|e| e.default_rules.as_ref())
            .and_then(|d| d.aws_stable_ip_rule.as_ref())
            .map_or(&[], |r| r.cidr_blocks.as_slice())
    }
}

/// `POST /network-connectivity-configs` (flat body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CreateNetworkConnectivityConfig {
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
}

/// One page of a paginated list (`{items, next_page_token}`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Page<T> {
    /// The objects of this page.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    /// Token of the next page; absent or empty on the last.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

// ------------------------------------------------------------------------------------------------
// The common shape the client and the controllers use.

/// What every object kind of the provisioning API has in common.
pub trait Resource: serde::de::DeserializeOwned + std::hash::Hash + Send + Sync + 'static {
    /// Path segment of the collection, e.g. `credentials`.
    const COLLECTION: &'static str;
    /// Human name used in messages, e.g. `credential configuration`.
    const NOUN: &'static str;
    /// The create request.
    type Create: Serialize + std::fmt::Debug + PartialEq + Send + Sync;
    /// The Databricks ID as it appears in a path.
    fn id(&self) -> String;
    /// The object's name.
    fn name(&self) -> &str;
    /// When the object was created (`creation_time`, epoch milliseconds), for the kinds whose
    /// answers say (VPC endpoints and private access settings do not).
    fn created_ms(&self) -> Option<i64> {
        None
    }
    /// Whether the list answers `{items, next_page_token}` pages instead of a bare array.
    const PAGED: bool = false;
}

macro_rules! resource {
    ($ty:ty, $create:ty, $coll:literal, $noun:literal, |$s:ident| $id:expr, $name:ident $(, created: $created:ident)? $(, paged: $paged:literal)?) => {
        impl Resource for $ty {
            $(const PAGED: bool = $paged;)?
            const COLLECTION: &'static str = $coll;
            const NOUN: &'static str = $noun;
            type Create = $create;
            fn id(&self) -> String {
                let $s = self;
                $id
            }
            fn name(&self) -> &str {
                &self.$name
            }
            $(
                fn created_ms(&self) -> Option<i64> {
                    self.$created
                }
            )?
        }
    };
}

resource!(
    Credential,
    CreateCredential,
    "credentials",
    "credential configuration",
    |s| s.credentials_id.clone(),
    credentials_name,
    created: creation_time
);
resource!(
    StorageConfiguration,
    CreateStorageConfiguration,
    "storage-configurations",
    "storage configuration",
    |s| s.storage_configuration_id.clone(),
    storage_configuration_name,
    created: creation_time
);
resource!(
    CustomerManagedKey,
    CreateCustomerManagedKey,
    "customer-managed-keys",
    "key configuration",
    |s| s.customer_managed_key_id.clone(),
    customer_managed_key_id,
    created: creation_time
);
resource!(
    Network,
    CreateNetwork,
    "networks",
    "network configuration",
    |s| s.network_id.clone(),
    network_name,
    created: creation_time
);
resource!(
    VpcEndpoint,
    CreateVpcEndpoint,
    "vpc-endpoints",
    "VPC endpoint registration",
    |s| s.vpc_endpoint_id.clone(),
    vpc_endpoint_name
);
resource!(
    PrivateAccessSettings,
    PrivateAccessSettingsRequest,
    "private-access-settings",
    "private access settings",
    |s| s.private_access_settings_id.clone(),
    private_access_settings_name
);
resource!(
    Workspace,
    CreateWorkspace,
    "workspaces",
    "workspace",
    |s| s.workspace_id.to_string(),
    workspace_name,
    created: creation_time
);

resource!(
    NetworkConnectivityConfig,
    CreateNetworkConnectivityConfig,
    "network-connectivity-configs",
    "network connectivity configuration",
    |s| s.network_connectivity_config_id.clone(),
    name,
    created: creation_time,
    paged: true
);

#[cfg(test)]
mod tests {
    use super::*;

    /// A value the server adds later must not break parsing of the whole object.
    #[test]
    fn unknown_enum_values_are_kept() {
        let w: Workspace = serde_json::from_str(
            r#"{"workspace_id": 538037098245817, "workspace_name": "a", "workspace_status": "HIBERNATING", "pricing_tier": "PREMIUM"}"#,
        )
        .unwrap();
        assert_eq!(
            w.workspace_status,
            Some(WorkspaceStatus::Unknown("HIBERNATING".into()))
        );
        assert_eq!(w.pricing_tier, Some(PricingTier::Premium));
        assert_eq!(w.workspace_id, 538037098245817);
        assert_eq!(
            serde_json::to_value(&w.workspace_status).unwrap(),
            "HIBERNATING"
        );
    }

    /// The mask names exactly the fields that are set, sorted, as the API expects.
    #[test]
    fn update_mask_lists_set_fields_sorted() {
        let u = WorkspaceUpdate {
            network_id: Some("n".into()),
            credentials_id: Some("c".into()),
            custom_tags: Some(BTreeMap::new()),
            ..Default::default()
        };
        assert_eq!(u.update_mask(), "credentials_id,custom_tags,network_id");
        let body = serde_json::to_value(&u).unwrap();
        assert_eq!(body.as_object().unwrap().len(), 3);
        assert!(WorkspaceUpdate::default().is_empty());
    }

    /// Responses missing optional fields still parse.
    #[test]
    fn sparse_network_response_parses() {
        let n: Network = serde_json::from_str(
            r#"{"network_id":"n1","network_name":"net","vpc_status":"BROKEN",
                "error_messages":[{"error_type":"securityGroup","error_message":"sg-1 has no egress"}]}"#,
        )
        .unwrap();
        assert_eq!(n.vpc_status, Some(VpcStatus::Broken));
        assert_eq!(n.error_messages[0].error_type, "securityGroup");
        assert!(n.subnet_ids.is_empty());
    }

    /// The record of an update compares values as text: the same tags in another insertion
    /// order must read the same, and what `retain` drops must leave the mask.
    #[test]
    fn update_values_are_stable_text_and_retain_narrows_the_mask() {
        let mut u = WorkspaceUpdate {
            credentials_id: Some("c-2".into()),
            custom_tags: Some(BTreeMap::from([
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ])),
            ..Default::default()
        };
        let v = u.values();
        assert_eq!(v["credentials_id"], "c-2");
        assert_eq!(v["custom_tags"], r#"{"a":"1","b":"2"}"#);
        assert_eq!(v.len(), 2);
        u.retain(|f| f != "custom_tags");
        assert_eq!(u.update_mask(), "credentials_id");
        u.retain(|_| false);
        assert!(u.is_empty());
    }
}
