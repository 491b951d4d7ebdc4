//! Fault injection: what the control API (`POST /__sim/faults`) and [`super::SimHandle::set_faults`]
//! accept, and the per-request decision the server takes from it.
//!
//! Count-based faults (`rate_limit`, `server_error`, `lost_response`) are consumed by the matching
//! API requests (paths under `/api/2.0/accounts/`; never the token endpoint nor `/__sim/`).

use serde::{Deserialize, Serialize};

pub use super::state::{
    BannedWorkspaces, CredentialPropagation, FailRule, NetworkWarning, NetworkWarnings,
    RunningClusters, StorageKeyRevert,
};

/// Every fault at once. `POST /__sim/faults` replaces the whole set; absent fields mean "no fault".
///
/// ```json
/// {
///   "rate_limit":   {"count": 2, "retry_after_seconds": 1, "path_contains": "/workspaces"},
///   "server_error": {"count": 1, "status": 503, "path_contains": null},
///   "latency_ms": 0,
///   "lost_response": {"count": 1, "route": "POST /credentials", "mode": "hang"},
///   "proxy_not_found": {"count": 1, "path_contains": "/credentials/"},
///   "credential_propagation": {"seconds": 10, "role_arn": null},
///   "fail_workspaces": [{"workspace_name_contains": "fail", "while_initial_credentials": true}],
///   "running_clusters": {"workspace_name_contains": "analytics"},
///   "storage_key_revert": {"after_ms": 5000},
///   "workspace_unauthorized": false,
///   "network_warnings": {"workspace_name_contains": "analytics",
///                        "warnings": [{"warning_type": "subnet", "warning_message": "..."}]},
///   "banned_workspaces": {"workspace_name_contains": "analytics", "message": "..."}
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answer the next `count` matching API calls with 429 and `Retry-After`.
    pub rate_limit: Option<RateLimit>,
    /// Answer the next `count` matching API calls with a 5xx.
    pub server_error: Option<ServerError>,
    /// Added latency for every API request, in milliseconds.
    pub latency_ms: u64,
    /// Commit the next `count` matching creates but lose or spoil the response.
    pub lost_response: Option<LostResponse>,
    /// Answer the next `count` matching API calls with a proxy's HTML 404 (nothing committed).
    pub proxy_not_found: Option<ProxyNotFound>,
    /// The IAM-propagation window for credential validation.
    pub credential_propagation: Option<CredentialPropagation>,
    /// Rules that make matching workspaces end FAILED.
    pub fail_workspaces: Vec<FailRule>,
    /// While set, updates of matching RUNNING workspaces are refused: classic compute runs there.
    pub running_clusters: Option<RunningClusters>,
    /// While set, a storage key set by a PATCH shows, then goes back.
    pub storage_key_revert: Option<StorageKeyRevert>,
    /// While set, every workspace's own token endpoint (and SCIM `Me` with basic auth) refuses
    /// the credentials with 401, as a workspace does for a principal it does not know.
    pub workspace_unauthorized: bool,
    /// While set, the network of a matching workspace that reaches RUNNING is WARNED with
    /// `warning_messages` instead of VALID.
    pub network_warnings: Option<NetworkWarnings>,
    /// While set, matching RUNNING workspaces are BANNED; cleared, they are RUNNING again.
    pub banned_workspaces: Option<BannedWorkspaces>,
}

/// 429 `REQUEST_LIMIT_EXCEEDED` for the next `count` matching calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    /// How many calls still get a 429.
    pub count: u32,
    /// The `Retry-After` header, in seconds.
    pub retry_after_seconds: u64,
    /// Only calls whose path contains this substring.
    pub path_contains: Option<String>,
}

/// A 5xx (or a 409 `ABORTED`) for the next `count` matching calls, before anything is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerError {
    /// How many calls still fail.
    pub count: u32,
    /// The status: 500, 502, 503 or 504 (503 when 0), or 409: `ABORTED`, the API's answer to a
    /// request that lost a race with a concurrent change (nothing is committed).
    pub status: u16,
    /// Only calls whose path contains this substring.
    pub path_contains: Option<String>,
    /// Only calls with this method (`POST`, `GET`, ...; any when unset).
    pub method: Option<String>,
}

/// A request whose effect is committed but whose response is lost or spoiled: the TCP connection
/// is closed, held open without an answer, answered with a 5xx (as a proxy does when the backend
/// is slow), or answered 200 with an empty body or without the new object's ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LostResponse {
    /// How many matching requests still lose their response.
    pub count: u32,
    /// The route template, for example `POST /credentials` or `DELETE /networks/{id}` (any
    /// successful create when unset).
    pub route: Option<String>,
    /// 500-599: answer that status after committing (`mode` is then ignored); 409: answer 409
    /// `RESOURCE_ALREADY_EXISTS` after committing, as the API does to a second request that made
    /// the same object (a retry by a proxy or a client). 0 (default): `mode`.
    pub status: u16,
    /// What happens to the response when `status` is 0.
    pub mode: LostMode,
}

/// How a committed request's response is lost when no status is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostMode {
    /// Close the connection without a response.
    #[default]
    Close,
    /// Keep the connection open without answering for a minute, then close it (a client's own
    /// timeout ends it first).
    Hang,
    /// Answer 200 `application/json` with an empty body.
    EmptyBody,
    /// Answer 200 with the object minus its ID field.
    NoId,
}

/// What the server does instead of the committed request's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Answer this status (a 5xx, or 409 `RESOURCE_ALREADY_EXISTS`).
    Status(u16),
    /// Lose it as [`LostMode`] says.
    Mode(LostMode),
}

/// A proxy in front of the API answering 404 with an HTML page, for the next `count` calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyNotFound {
    /// How many calls still get the HTML 404.
    pub count: u32,
    /// Only calls whose path contains this substring.
    pub path_contains: Option<String>,
}

/// What the server must do to one API request before (or instead of) handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// Answer 429 with this `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// Answer with this 5xx status.
    ServerError {
        /// The status code.
        status: u16,
    },
    /// Answer 404 with an HTML page, as a proxy that does not know the path.
    ProxyNotFound,
}

fn scoped(path_contains: Option<&str>, path: &str) -> bool {
    path_contains.is_none_or(|p| path.contains(p))
}

impl Faults {
    /// Consume a rate-limit or server-error fault for this request, if one applies.
    pub fn take_injected(&mut self, method: &str, path: &str) -> Option<Injected> {
        if let Some(r) = &mut self.rate_limit
            && r.count > 0
            && scoped(r.path_contains.as_deref(), path)
        {
            r.count -= 1;
            return Some(Injected::RateLimited {
                retry_after: r.retry_after_seconds,
            });
        }
        if let Some(e) = &mut self.server_error
            && e.count > 0
            && scoped(e.path_contains.as_deref(), path)
            && e.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
        {
            e.count -= 1;
            let status = if e.status == 409 || (500..=599).contains(&e.status) {
                e.status
            } else {
                503
            };
            return Some(Injected::ServerError { status });
        }
        if let Some(p) = &mut self.proxy_not_found
            && p.count > 0
            && scoped(p.path_contains.as_deref(), path)
        {
            p.count -= 1;
            return Some(Injected::ProxyNotFound);
        }
        None
    }

    /// Whether the response to this (successful) request must be lost, and how. Consumes one
    /// count.
    pub fn take_lost_response(&mut self, route: &str) -> Option<Lost> {
        if let Some(l) = &mut self.lost_response
            && l.count > 0
            && l.route
                .as_deref()
                .map_or(route.starts_with("POST "), |r| r == route)
        {
            l.count -= 1;
            return Some(if l.status == 409 || (500..=599).contains(&l.status) {
                Lost::Status(l.status)
            } else {
                Lost::Mode(l.mode)
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counted faults must stop after their count, or clients would never recover.
    #[test]
    fn a_rate_limit_applies_to_exactly_the_next_n_matching_calls() {
        let mut f = Faults {
            rate_limit: Some(RateLimit {
                count: 2,
                retry_after_seconds: 3,
                path_contains: Some("/networks".into()),
            }),
            ..Faults::default()
        };
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/credentials"),
            None
        );
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/networks"),
            Some(Injected::RateLimited { retry_after: 3 })
        );
        assert!(
            f.take_injected("POST", "/api/2.0/accounts/a/networks/x")
                .is_some()
        );
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/networks"),
            None
        );
    }

    /// A bogus status falls back to 503 rather than producing a success.
    #[test]
    fn a_server_error_with_an_invalid_status_uses_503() {
        let mut f = Faults {
            server_error: Some(ServerError {
                count: 1,
                status: 200,
                path_contains: None,
                method: None,
            }),
            ..Faults::default()
        };
        assert_eq!(
            f.take_injected("POST", "/x"),
            Some(Injected::ServerError { status: 503 })
        );
        assert_eq!(f.take_injected("POST", "/x"), None);
    }

    /// Lost responses only hit the named route.
    #[test]
    fn a_lost_response_matches_its_route_only() {
        let mut f: Faults = serde_json::from_str(
            r#"{"lost_response": {"count": 1, "route": "POST /credentials"}}"#,
        )
        .unwrap();
        assert_eq!(f.take_lost_response("POST /networks"), None);
        assert_eq!(
            f.take_lost_response("POST /credentials"),
            Some(Lost::Mode(LostMode::Close))
        );
        assert_eq!(f.take_lost_response("POST /credentials"), None);
    }

    /// A status wins over the mode; the mode names what happens otherwise.
    #[test]
    fn a_lost_response_answers_its_status_or_its_mode() {
        let mut f: Faults = serde_json::from_str(
            r#"{"lost_response": {"count": 2, "mode": "no_id", "status": 502}}"#,
        )
        .unwrap();
        assert_eq!(
            f.take_lost_response("POST /networks"),
            Some(Lost::Status(502))
        );
        f.lost_response.as_mut().unwrap().status = 0;
        assert_eq!(f.take_lost_response("DELETE /networks/{id}"), None);
        assert_eq!(
            f.take_lost_response("POST /workspaces"),
            Some(Lost::Mode(LostMode::NoId))
        );
        assert_eq!(f.take_lost_response("POST /networks"), None);
    }

    /// 409s: `ABORTED` before anything is committed, `RESOURCE_ALREADY_EXISTS` after; any other
    /// 4xx is not a server error and falls back to 503 or the mode.
    #[test]
    fn conflicts_are_injected_before_or_after_the_commit() {
        let mut f: Faults = serde_json::from_str(
            r#"{"server_error": {"count": 2, "status": 409, "method": "POST"}, "lost_response": {"count": 2, "status": 409, "mode": "close"}}"#,
        )
        .unwrap();
        assert_eq!(f.take_injected("GET", "/api/2.0/accounts/a/networks"), None);
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/networks"),
            Some(Injected::ServerError { status: 409 })
        );
        assert_eq!(
            f.take_lost_response("POST /networks"),
            Some(Lost::Status(409))
        );
        f.server_error.as_mut().unwrap().status = 400;
        f.lost_response.as_mut().unwrap().status = 400;
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/networks"),
            Some(Injected::ServerError { status: 503 })
        );
        assert_eq!(
            f.take_lost_response("POST /networks"),
            Some(Lost::Mode(LostMode::Close))
        );
    }

    /// The proxy's 404 is counted and scoped like the other injected answers.
    #[test]
    fn a_proxy_not_found_applies_to_its_paths_only() {
        let mut f: Faults = serde_json::from_str(
            r#"{"proxy_not_found": {"count": 1, "path_contains": "/credentials/"}}"#,
        )
        .unwrap();
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/credentials"),
            None
        );
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/credentials/c1"),
            Some(Injected::ProxyNotFound)
        );
        assert_eq!(
            f.take_injected("POST", "/api/2.0/accounts/a/credentials/c1"),
            None
        );
    }
}
