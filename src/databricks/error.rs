//! Errors of the Account API client (`account-api.md` §3).

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

/// An error answer from the Account API: the HTTP status plus what the body said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error_code` (a string, or a number rendered as a string), or the HTTP reason phrase
    /// when the body carried none.
    pub error_code: String,
    /// The message.
    pub message: String,
    /// HTTP method of the request.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// `Retry-After`, when the server sent one.
    pub retry_after: Option<Duration>,
    /// Whether the body was a JSON error of the API, rather than a proxy's page, plain text or
    /// nothing: only such a body can confirm that an object does not exist.
    pub json: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} returned {} {}: {}",
            self.method, self.path, self.status, self.error_code, self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[derive(Deserialize)]
struct JsonErrorBody {
    #[serde(default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    /// Legacy 1.2-style bodies and OAuth servers.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("UNKNOWN")
        .to_ascii_uppercase()
        .replace(' ', "_")
}

/// Splits `CODE: message` where CODE is `[A-Z_]+`.
fn split_code(text: &str) -> Option<(&str, &str)> {
    let (code, rest) = text.split_once(": ")?;
    if !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        Some((code, rest))
    } else {
        None
    }
}

fn html_pre(text: &str) -> Option<String> {
    let start = text.find("<pre>")? + "<pre>".len();
    let end = text[start..].find("</pre>")? + start;
    Some(text[start..end].trim().to_string())
}

/// Longest error message kept from an answer (bytes).
const MAX_API_MESSAGE: usize = 4096;

impl ApiError {
    /// Parses an error body in any of the shapes the Account API uses: JSON (`error_code` string or
    /// number, or legacy `error`), `text/plain` `CODE: message`, HTML (`<pre>` text), or empty.
    pub fn parse(
        status: u16,
        method: &str,
        path: &str,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let mut json = false;
        let (error_code, message) = if text.is_empty() {
            (reason(status), reason_text(status))
        } else if let Ok(j) = serde_json::from_str::<JsonErrorBody>(text) {
            json = true;
            let code = match j.error_code {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => j.error.clone().unwrap_or_else(|| reason(status)),
            };
            let message = j
                .message
                .or(j.error_description)
                .or(j.error)
                .unwrap_or_else(|| reason_text(status));
            (code, message)
        } else if let Some((code, msg)) = split_code(text) {
            (code.to_string(), msg.to_string())
        } else if let Some(pre) = html_pre(text) {
            (reason(status), pre)
        } else if text.starts_with('<') {
            (reason(status), reason_text(status))
        } else {
            (reason(status), text.to_string())
        };
        Self {
            status,
            error_code: crate::bounds::truncate(&error_code, 128),
            message: crate::bounds::truncate(&message, MAX_API_MESSAGE),
            method: method.to_string(),
            path: path.to_string(),
            retry_after,
            json,
        }
    }

    /// The API itself says the object does not exist: a JSON error body with
    /// `RESOURCE_DOES_NOT_EXIST` or `NOT_FOUND` under a 4xx status, or a JSON 404 with no code.
    /// A 404 page from a proxy, a plain-text or an empty 404, a 404 for an unknown route
    /// (`ENDPOINT_NOT_FOUND`) and any 5xx confirm nothing.
    pub fn is_not_found(&self) -> bool {
        let code_says = matches!(
            self.error_code.as_str(),
            "RESOURCE_DOES_NOT_EXIST" | "NOT_FOUND"
        );
        self.json
            && ((400..500).contains(&self.status) && code_says
                || self.status == 404 && self.error_code.is_empty())
    }

    /// The object is still used by a workspace (`INVALID_STATE: Unable to delete, ... is being used by
    /// active workspace N`, or the GCP wording).
    pub fn is_in_use(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("is being used by active workspace")
            || m.contains("while it is attached to a workspace")
            || m.contains("is associated with")
            // Network connectivity configurations with rules or workspaces (account-api.md §11.7).
            || m.contains("is unable to be deleted because it")
    }

    /// A create beyond one of the account's object quotas (the limits page: credentials,
    /// keys, VPC endpoints, private access settings). **Inferred** codes: no source we have
    /// quotes the refusal; `RESOURCE_LIMIT_EXCEEDED` and `QUOTA_EXCEEDED` are both taken.
    pub fn is_quota_exceeded(&self) -> bool {
        matches!(
            self.error_code.as_str(),
            "RESOURCE_LIMIT_EXCEEDED" | "QUOTA_EXCEEDED"
        )
    }

    /// The IAM-propagation race: `Failed credential(s) validation checks`.
    pub fn is_credential_propagation(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        self.status == 400
            && (m.contains("failed credential validation checks")
                || m.contains("failed credentials validation checks"))
    }

    /// 401 or 403.
    pub fn is_auth(&self) -> bool {
        self.status == 401 || self.status == 403
    }

    /// A rate limit: 429, or a rate-limit code under any status.
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
            || matches!(
                self.error_code.as_str(),
                "REQUEST_LIMIT_EXCEEDED" | "RESOURCE_EXHAUSTED" | "TOO_MANY_REQUESTS"
            )
    }

    /// Worth retrying soon: 429, 503, 504, the rate-limit codes even under another status, and
    /// a 409 `ABORTED`.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 503 | 504)
            || self.is_rate_limited()
            || self.error_code == "TEMPORARILY_UNAVAILABLE"
            || self.is_aborted()
    }

    /// 409 `ABORTED`: the request lost a race with a concurrent change and nothing was done.
    /// The SDKs map it to ResourceConflict; where the Account API answers it is **inferred**.
    pub fn is_aborted(&self) -> bool {
        self.status == 409 && self.error_code == "ABORTED"
    }

    /// 409 `ALREADY_EXISTS` or `RESOURCE_ALREADY_EXISTS`: what the request would create exists
    /// (made by another request, perhaps an earlier attempt of this one). **Inferred** like
    /// [`ApiError::is_aborted`].
    pub fn is_already_exists(&self) -> bool {
        self.status == 409
            && matches!(
                self.error_code.as_str(),
                "ALREADY_EXISTS" | "RESOURCE_ALREADY_EXISTS"
            )
    }

    /// The workspace ID named in an in-use message, if any.
    pub fn in_use_by_workspace(&self) -> Option<i64> {
        let idx = self.message.find("active workspace ")? + "active workspace ".len();
        let digits: String = self.message[idx..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    }
}

fn reason_text(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("unknown status")
        .to_string()
}

/// A transport error with its causes, and what kind of failure it was: reqwest's own text drops
/// the cause (a timeout reads as "error decoding response body").
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "transport error"
    };
    let mut text = format!("{kind}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    crate::bounds::truncate(&text, 512)
}

/// Errors of the token sources.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the credentials or answered with an error.
    #[error("token endpoint {endpoint} refused the request: {status} {code}: {message}")]
    Refused {
        /// The token endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// OAuth `error`.
        code: String,
        /// OAuth `error_description` or body.
        message: String,
    },
    /// The token endpoint could not be reached.
    #[error("cannot reach token endpoint {endpoint}: {}", describe(source))]
    Transport {
        /// The token endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint's answer was not a token.
    #[error("token endpoint {endpoint} returned an unreadable answer: {source}")]
    Decode {
        /// The token endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The federated identity token could not be read.
    #[error("cannot read the identity token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl AuthError {
    /// Whether a later attempt may succeed without a change of configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refused { status, .. } => matches!(status, 429 | 500..=599),
            Self::Transport { .. } | Self::TokenFile { .. } => true,
            Self::Decode { .. } => false,
        }
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The host is not a usable URL.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// The host is not on the operator's allow-list: no request is sent to it.
    #[error(
        "host {host} is not on the operator's allow-list ({allowed}); ask the operator's administrators to add it (--allowed-hosts, chart value allowedHosts)"
    )]
    HostNotAllowed {
        /// The host as given.
        host: String,
        /// The allowed hosts.
        allowed: String,
    },
    /// The CA bundle could not be used.
    #[error("invalid CA bundle: {0}")]
    CaBundle(String),
    /// The configuration file could not be read or lacks the profile.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Any error of an Account API call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A create request may or may not have reached the server: the connection failed after it
    /// was sent. The caller should look the object up (by name) before creating it again.
    #[error(
        "outcome unknown for {method} {path}: the connection failed after the request was sent ({})",
        describe(source)
    )]
    OutcomeUnknown {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server could not be reached, or the exchange failed for a request that is safe to repeat.
    #[error(
        "cannot reach the Account API for {method} {path}: {}",
        describe(source)
    )]
    Transport {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A successful status with a body that is not the expected JSON (for example a login page).
    #[error(
        "{method} {path} returned {status} with a body that is not the expected JSON ({detail}); is the host an account console host?"
    )]
    Decode {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// What went wrong.
        detail: String,
    },
    /// Getting a token failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A write was not sent: this replica may no longer hold the leader lease.
    #[error("{method} {path} not sent: this replica does not hold the leader lease")]
    Fenced {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
    },
}

impl Error {
    /// The API error, if the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    /// See [`ApiError::is_not_found`].
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }

    /// See [`ApiError::is_in_use`].
    pub fn is_in_use(&self) -> bool {
        self.api().is_some_and(ApiError::is_in_use)
    }

    /// See [`ApiError::is_credential_propagation`].
    pub fn is_credential_propagation(&self) -> bool {
        self.api().is_some_and(ApiError::is_credential_propagation)
    }

    /// Whether the same request may succeed later without any change: rate limits, unavailable
    /// servers, transport failures and transient token failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.is_retryable(),
            Self::Transport { .. } | Self::OutcomeUnknown { .. } => true,
            Self::Decode { .. } | Self::Fenced { .. } => false,
            Self::Auth(e) => e.is_retryable(),
        }
    }

    /// Whether the credentials were refused.
    pub fn is_auth(&self) -> bool {
        match self {
            Self::Api(e) => e.is_auth(),
            // 404 from the token endpoint: the account ID names no account.
            Self::Auth(AuthError::Refused { status, .. }) => {
                matches!(status, 400 | 401 | 403 | 404)
            }
            _ => false,
        }
    }

    /// The server's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }

    /// Whether the request was a create whose outcome is unknown: no usable answer came, a 5xx
    /// answered it, or the answer could not be read or named no object.
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Self::OutcomeUnknown { .. } => true,
            Self::Decode { method, .. } => method == "POST",
            // A create answered with a 5xx may have been committed before the failure (a proxy
            // timing out on a slow backend): never repeated blindly. A 409 "already exists"
            // may be about what an earlier attempt made: the lookup by name settles it.
            Self::Api(e) => e.method == "POST" && (e.status >= 500 || e.is_already_exists()),
            _ => false,
        }
    }

    /// A fixed, low-cardinality label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api(e) if e.is_not_found() => "NotFound",
            Self::Api(e) if e.is_rate_limited() => "RateLimited",
            Self::Api(e) if e.is_auth() => "Unauthorized",
            Self::Api(e) if e.status >= 500 => "ServerError",
            Self::Api(_) => "Rejected",
            Self::OutcomeUnknown { .. } => "OutcomeUnknown",
            Self::Transport { .. } => "Transport",
            Self::Decode { .. } => "BadResponse",
            Self::Auth(_) => "AuthFailed",
            Self::Fenced { .. } => "Fenced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> ApiError {
        ApiError::parse(
            status,
            "POST",
            "/api/2.0/accounts/a/networks",
            body.as_bytes(),
            None,
        )
    }

    /// A 409 `ABORTED` did nothing and is retried; a 409 "already exists" to a create is looked
    /// up by name like a lost answer, never retried blindly; other 409s are neither.
    #[test]
    fn conflicts_are_told_apart() {
        let aborted = parse(409, r#"{"error_code":"ABORTED","message":"concurrent"}"#);
        assert!(aborted.is_aborted() && aborted.is_retryable() && !aborted.is_already_exists());
        assert!(!Error::Api(aborted).is_outcome_unknown());
        for code in ["ALREADY_EXISTS", "RESOURCE_ALREADY_EXISTS"] {
            let exists = parse(
                409,
                &format!(r#"{{"error_code":"{code}","message":"exists"}}"#),
            );
            assert!(exists.is_already_exists() && !exists.is_retryable());
            assert!(Error::Api(exists).is_outcome_unknown());
        }
        let other = parse(409, r#"{"error_code":"CONFLICT","message":"?"}"#);
        assert!(!other.is_aborted() && !other.is_already_exists() && !other.is_retryable());
        let exists_400 = parse(
            400,
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"x"}"#,
        );
        assert!(!exists_400.is_already_exists());
    }

    /// The standard JSON shape keeps code and message.
    #[test]
    fn json_error_body_is_parsed() {
        let e = parse(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad subnet"}"#,
        );
        assert_eq!(e.error_code, "INVALID_PARAMETER_VALUE");
        assert_eq!(e.message, "bad subnet");
        assert!(!e.is_retryable());
    }

    /// Some endpoints send a numeric `error_code`.
    #[test]
    fn numeric_error_code_is_kept_as_text() {
        let e = parse(
            403,
            r#"{"error_code": 403, "message": "Invalid access token."}"#,
        );
        assert_eq!(e.error_code, "403");
        assert!(e.is_auth());
    }

    /// The Account API often answers validation failures in plain text.
    #[test]
    fn plain_text_code_and_message_are_split() {
        let e = parse(
            400,
            "INVALID_STATE: Unable to delete, Network is being used by active workspace 538037098245817",
        );
        assert_eq!(e.error_code, "INVALID_STATE");
        assert!(e.is_in_use());
        assert_eq!(e.in_use_by_workspace(), Some(538037098245817));
    }

    /// An HTML page yields its `<pre>` text and the reason phrase as code.
    #[test]
    fn html_error_body_uses_pre_text() {
        let e = parse(
            502,
            "<html><body><pre>upstream connect error</pre></body></html>",
        );
        assert_eq!(e.error_code, "BAD_GATEWAY");
        assert_eq!(e.message, "upstream connect error");
    }

    /// An empty body still gives a readable error.
    #[test]
    fn empty_body_uses_status_text() {
        let e = parse(503, "");
        assert_eq!(e.error_code, "SERVICE_UNAVAILABLE");
        assert_eq!(e.message, "Service Unavailable");
        assert!(e.is_retryable());
    }

    /// Both spellings of the IAM-propagation error are recognised, nothing else is.
    #[test]
    fn credential_propagation_is_recognised() {
        let a = parse(
            400,
            "MALFORMED_REQUEST: Failed credential validation checks: please use a valid cross account IAM role with permissions setup correctly",
        );
        let b = parse(
            400,
            "MALFORMED_REQUEST: Failed credentials validation checks: Spot Cancellation, Create Placement Group",
        );
        let c = parse(400, "MALFORMED_REQUEST: Invalid credentialsId: x");
        assert!(a.is_credential_propagation());
        assert!(b.is_credential_propagation());
        assert!(!c.is_credential_propagation());
    }

    /// Only the API's own JSON answer confirms an object is gone: a finalizer released on a
    /// proxy's 404 page would leak the object.
    #[test]
    fn not_found_only_when_the_api_says_so() {
        assert!(
            parse(
                404,
                r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"x"}"#
            )
            .is_not_found()
        );
        assert!(!parse(404, "").is_not_found());
        assert!(!parse(404, "<html><body><h1>404 Not Found</h1></body></html>").is_not_found());
        assert!(!parse(404, "Not Found").is_not_found());
        assert!(
            parse(
                400,
                r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"x"}"#
            )
            .is_not_found()
        );
        assert!(!parse(400, r#"{"error_code":"INVALID_STATE","message":"x"}"#).is_not_found());
        assert!(parse(404, r#"{"message":"x"}"#).is_not_found());
        // A gateway's "no such route" and a server error that happens to say NOT_FOUND.
        assert!(!parse(404, r#"{"error_code":"ENDPOINT_NOT_FOUND","message":"x"}"#).is_not_found());
        assert!(!parse(500, r#"{"error_code":"NOT_FOUND","message":"x"}"#).is_not_found());
        assert!(!parse(503, r#"{"error_code":"RESOURCE_DOES_NOT_EXIST"}"#).is_not_found());
    }

    /// A rate-limit code under another status is still retried.
    #[test]
    fn rate_limit_codes_are_retryable_under_any_status() {
        assert!(
            parse(
                400,
                r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#
            )
            .is_retryable()
        );
        assert!(!parse(500, r#"{"error_code":"INTERNAL_ERROR","message":"x"}"#).is_retryable());
    }
}
