//! What the account and AWS decide behind the API: which endpoint service a VPC endpoint connects
//! to (and so its `use_case`), the account's object quotas, network validation warnings and bans.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, Kind};

/// `use_case` of an endpoint of the workspace (front-end and REST API) service.
pub const GENERAL_ACCESS: &str = "GENERAL_ACCESS";
/// `use_case` of an endpoint of the secure cluster connectivity relay service.
pub const DATAPLANE_RELAY_ACCESS: &str = "DATAPLANE_RELAY_ACCESS";
/// `use_case` the simulator gives every endpoint when it does not know the endpoint services
/// ([`super::StoreConfig::relay_endpoints`] empty): the older value, locked to relay when a network
/// first lists the endpoint in `dataplane_relay`.
pub const WORKSPACE_ACCESS: &str = "WORKSPACE_ACCESS";

/// Whether an endpoint with `use_case` may be listed in the network's `list` (`rest_api` or
/// `dataplane_relay`).
pub fn fits_list(list: &str, use_case: &str) -> bool {
    match list {
        "dataplane_relay" => use_case == DATAPLANE_RELAY_ACCESS,
        _ => use_case == GENERAL_ACCESS || use_case == WORKSPACE_ACCESS,
    }
}

/// Whether an AWS endpoint ID matches one of `patterns`: an exact ID, or `prefix*`.
pub fn matches_any(patterns: &[String], aws_id: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => aws_id.starts_with(prefix),
        None => p == aws_id,
    })
}

/// The AWS service name of the region's workspace or relay endpoint service. Databricks publishes
/// one fixed name per region and service; these stand-ins are fixed the same way (derived from the
/// region), so every endpoint of one service in one region shows the same name.
pub fn endpoint_service_id(region: &str, relay: bool) -> String {
    let which = if relay { "relay" } else { "workspace" };
    // FNV-1a, twice with different seeds, for 17 stable hex digits.
    let hash = |seed: u64| {
        format!("{region}/{which}").bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let a = hash(0xcbf2_9ce4_8422_2325);
    let b = hash(0x8422_2325_cbf2_9ce4);
    format!("com.amazonaws.vpce.{region}.vpce-svc-{a:016x}{:x}", b & 0xf)
}

/// The per-account object limits of Databricks' resource-limits page (AWS, Enterprise tier).
/// Storage configurations and networks have no published limit and are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Credential configurations (55 on Enterprise, 11 on Premium).
    pub credentials: usize,
    /// Customer-managed key configurations (110).
    pub customer_managed_keys: usize,
    /// VPC endpoint registrations (110).
    pub vpc_endpoints: usize,
    /// Private access settings (55).
    pub private_access_settings: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            credentials: 55,
            customer_managed_keys: 110,
            vpc_endpoints: 110,
            private_access_settings: 55,
        }
    }
}

/// The error code of a create beyond a quota. **Inferred:** the limits page gives the numbers but
/// no source we have quotes the refusal; account-api.md §9 suggests 400 `RESOURCE_LIMIT_EXCEEDED`
/// or `QUOTA_EXCEEDED`, and the simulator answers the first, as JSON.
pub const QUOTA_ERROR_CODE: &str = "RESOURCE_LIMIT_EXCEEDED";

impl Quotas {
    /// The limit of `kind`, if it has one.
    pub fn limit(&self, kind: Kind) -> Option<usize> {
        match kind {
            Kind::Credential => Some(self.credentials),
            Kind::Key => Some(self.customer_managed_keys),
            Kind::VpcEndpoint => Some(self.vpc_endpoints),
            Kind::PrivateAccess => Some(self.private_access_settings),
            Kind::Storage | Kind::Network => None,
        }
    }

    /// Refuses one more object of `kind` when the account has `count` already and that is the
    /// limit (the error shape is inferred, see [`QUOTA_ERROR_CODE`]).
    pub fn check(&self, kind: Kind, count: usize) -> Result<(), ApiError> {
        match self.limit(kind) {
            Some(limit) if count >= limit => Err(ApiError {
                status: 400,
                code: QUOTA_ERROR_CODE,
                message: format!(
                    "The account has reached its limit of {limit} {} configurations. Delete unused ones or contact Databricks to raise the limit.",
                    kind.display()
                ),
                plain_text: false,
            }),
            _ => Ok(()),
        }
    }
}

/// One network validation warning (`warning_messages[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkWarning {
    /// `securityGroup` or `subnet`.
    pub warning_type: String,
    /// The text.
    pub warning_message: String,
}

/// The network-warnings fault: when a matching workspace reaches RUNNING, its network shows
/// `vpc_status` `WARNED` with `warning_messages` instead of `VALID` (the network still works).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkWarnings {
    /// Only workspaces whose name contains this (every workspace when unset).
    pub workspace_name_contains: Option<String>,
    /// The warnings ([`DEFAULT_NETWORK_WARNING`] on a security group when empty).
    pub warnings: Vec<NetworkWarning>,
}

/// The warning a network gets when the fault names none. **Unconfirmed** text: no source we have
/// quotes a production warning.
pub const DEFAULT_NETWORK_WARNING: &str = "The security group allows inbound traffic from 0.0.0.0/0; Databricks recommends allowing only traffic within the security group.";

impl NetworkWarnings {
    /// Whether a workspace named `name` gets the warnings.
    pub fn applies_to(&self, name: &str) -> bool {
        self.workspace_name_contains
            .as_deref()
            .is_none_or(|s| name.contains(s))
    }

    /// `warning_messages` as the network shows them.
    pub fn wire(&self) -> Value {
        if self.warnings.is_empty() {
            json!([{"warning_type": "securityGroup", "warning_message": DEFAULT_NETWORK_WARNING}])
        } else {
            json!(self.warnings)
        }
    }
}

/// The ban fault: while set, matching RUNNING workspaces are `BANNED` with a message; once cleared
/// (or no longer matching) they are RUNNING again (account-api.md §4.1: RUNNING → BANNED,
/// BANNED → RUNNING).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BannedWorkspaces {
    /// Only workspaces whose name contains this (every workspace when unset).
    pub workspace_name_contains: Option<String>,
    /// The `workspace_status_message` ([`DEFAULT_BANNED_MESSAGE`] when unset).
    pub message: Option<String>,
}

/// The message of a banned workspace when the fault names none. **Unconfirmed** text.
pub const DEFAULT_BANNED_MESSAGE: &str =
    "Workspace has been banned for violating the terms of service. Contact Databricks support.";

impl BannedWorkspaces {
    /// Whether a workspace named `name` is banned.
    pub fn applies_to(&self, name: &str) -> bool {
        self.workspace_name_contains
            .as_deref()
            .is_none_or(|s| name.contains(s))
    }

    /// The status message of a banned workspace.
    pub fn message(&self) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| DEFAULT_BANNED_MESSAGE.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exact ID and a prefix pattern both select relay endpoints; nothing else does.
    #[test]
    fn relay_patterns_match_ids_and_prefixes() {
        let p = vec!["vpce-relay*".to_string(), "vpce-0abc".to_string()];
        assert!(matches_any(&p, "vpce-relay-1"));
        assert!(matches_any(&p, "vpce-0abc"));
        assert!(!matches_any(&p, "vpce-0abcd"));
        assert!(!matches_any(&p, "vpce-rest-1"));
        assert!(!matches_any(&[], "vpce-relay-1"));
    }

    /// A service name is fixed per region and service, as AWS service names are.
    #[test]
    fn endpoint_service_names_are_fixed_per_region_and_service() {
        let relay = endpoint_service_id("us-east-1", true);
        assert_eq!(relay, endpoint_service_id("us-east-1", true));
        assert_ne!(relay, endpoint_service_id("us-east-1", false));
        assert_ne!(relay, endpoint_service_id("eu-west-1", true));
        let suffix = relay
            .strip_prefix("com.amazonaws.vpce.us-east-1.vpce-svc-")
            .unwrap();
        assert_eq!(suffix.len(), 17);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// The limits page's numbers are the defaults; kinds without a limit are never refused.
    #[test]
    fn quotas_refuse_the_object_beyond_the_limit() {
        let q = Quotas::default();
        assert_eq!(q.limit(Kind::Credential), Some(55));
        assert_eq!(q.limit(Kind::Key), Some(110));
        assert_eq!(q.limit(Kind::VpcEndpoint), Some(110));
        assert_eq!(q.limit(Kind::PrivateAccess), Some(55));
        assert!(q.check(Kind::Credential, 54).is_ok());
        let e = q.check(Kind::Credential, 55).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.plain_text),
            (400, QUOTA_ERROR_CODE, false)
        );
        assert!(e.message.contains("55"), "{}", e.message);
        assert!(q.check(Kind::Network, 100_000).is_ok());
    }
}
