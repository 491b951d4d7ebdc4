//! Whether a RUNNING workspace answers (the "Create a workspace using the Account API" guide's last
//! step): a workspace-level token from the workspace's own token endpoint, with the account's
//! credentials, and one cheap authenticated call, SCIM `Me`.
//!
//! The host is never taken from a custom resource: it is the deployment name the Account API
//! reports, which must be one DNS label, under the Databricks workspace domain of the account's
//! cloud (see [`workspace_host`]).

use super::auth::{Credentials, TokenSource};
use super::error::AuthError;

/// The domains Databricks serves AWS workspaces under: commercial, GovCloud, GovCloud DoD.
pub const WORKSPACE_DOMAINS: [&str; 3] = [
    "cloud.databricks.com",
    "cloud.databricks.us",
    "cloud.databricks.mil",
];

/// The path of the authenticated call that proves a workspace answers.
pub const SCIM_ME_PATH: &str = "/api/2.0/preview/scim/v2/Me";

/// The time limit of one check (token and SCIM `Me` together).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest SCIM `Me` answer read (bytes); the rest is not needed.
const MAX_ME_BODY: usize = 64 << 10;

/// The workspace domain for an account host: the domain after `accounts.` (or `accounts-dod.`)
/// when it is a Databricks workspace domain, otherwise (a local simulator, a proxy) the
/// commercial one.
pub fn workspace_domain(account_host: &str) -> &'static str {
    let host = url::Url::parse(account_host)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    host.split_once('.')
        .filter(|(first, _)| first.starts_with("accounts"))
        .and_then(|(_, rest)| WORKSPACE_DOMAINS.iter().find(|d| **d == rest))
        .copied()
        .unwrap_or(WORKSPACE_DOMAINS[0])
}

/// Whether `account_host` is a Databricks account host (`accounts*.` under a workspace domain):
/// its workspaces live on the internet under that domain.
pub fn is_databricks_account_host(account_host: &str) -> bool {
    let host = url::Url::parse(account_host)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    host.split_once('.').is_some_and(|(first, rest)| {
        first.starts_with("accounts") && WORKSPACE_DOMAINS.contains(&rest)
    })
}

/// `https://<deployment>.<domain>`, or why the deployment name cannot be a host label (then
/// nothing is called).
pub fn workspace_host(account_host: &str, deployment_name: &str) -> Result<String, String> {
    let label_ok = !deployment_name.is_empty()
        && deployment_name.len() <= 63
        && !deployment_name.starts_with('-')
        && !deployment_name.ends_with('-')
        && deployment_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !label_ok {
        return Err(format!(
            "the deployment name {:?} is not a host name label; the workspace is not called",
            crate::bounds::truncate(deployment_name, 80)
        ));
    }
    Ok(format!(
        "https://{deployment_name}.{}",
        workspace_domain(account_host)
    ))
}

/// Why a workspace does not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Its host name does not resolve (yet: DNS for a new workspace can take minutes).
    Dns(String),
    /// The TLS handshake failed (an unknown CA, a certificate for another name).
    Tls(String),
    /// It refused the credentials: the token endpoint or SCIM `Me` answered 401 or 403.
    Unauthorized(String),
    /// Anything else: refused connections, timeouts, 5xx, unexpected answers.
    Unavailable(String),
}

impl Unreachable {
    /// For a person.
    pub fn message(&self) -> &str {
        match self {
            Self::Dns(m) | Self::Tls(m) | Self::Unauthorized(m) | Self::Unavailable(m) => m,
        }
    }
}

/// Classifies a failed exchange by what broke: name resolution, TLS, or anything else.
pub(crate) fn classify_transport(what: &str, e: &reqwest::Error) -> Unreachable {
    let text = format!("{what}: {}", super::error::describe(e));
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<super::resolve::NoSuchHost>() || c.to_string().starts_with("dns error") {
            return Unreachable::Dns(text);
        }
        if is_tls(c) {
            return Unreachable::Tls(text);
        }
        cause = c.source();
    }
    Unreachable::Unavailable(text)
}

/// Whether `e` is a rustls error, also inside `io::Error`s (the TLS stream wraps it in one, and
/// the HTTPS connector wraps that in another; `source()` skips both wrapped values).
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_tls(inner),
        None => false,
    }
}

fn classify_auth(e: AuthError) -> Unreachable {
    let text = crate::bounds::truncate(&e.to_string(), 512);
    match &e {
        AuthError::Transport { source, .. } => {
            classify_transport("workspace token endpoint", source)
        }
        AuthError::Refused { status, code, .. }
            if matches!(status, 401 | 403)
                || (*status == 400
                    && matches!(code.as_str(), "invalid_client" | "invalid_grant")) =>
        {
            Unreachable::Unauthorized(text)
        }
        AuthError::TokenFile { .. } => Unreachable::Unauthorized(text),
        AuthError::Refused { .. } | AuthError::Decode { .. } => Unreachable::Unavailable(text),
    }
}

/// Logs in to the workspace at `host` with `credentials` (a fresh workspace token each time: a
/// probe is rare, and a token for one workspace is not kept) and calls SCIM `Me`.
pub(crate) async fn probe(
    http: &reqwest::Client,
    credentials: &Credentials,
    host: &str,
) -> Result<(), Unreachable> {
    let tokens = TokenSource::with_endpoint(
        credentials.clone(),
        format!("{host}/oidc/v1/token"),
        http.clone(),
    );
    let auth = tokens.header().await.map_err(classify_auth)?;
    let url = format!("{host}{SCIM_ME_PATH}");
    let sent = http
        .get(&url)
        .header(http::header::AUTHORIZATION, &auth)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await;
    let mut resp = sent.map_err(|e| classify_transport("SCIM Me", &e))?;
    let status = resp.status().as_u16();
    // Read a bounded part of the answer, for the message of a failure.
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ME_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            break;
        }
    }
    if (200..300).contains(&status) {
        return Ok(());
    }
    let detail = super::error::ApiError::parse(status, "GET", SCIM_ME_PATH, &body, None);
    let text = crate::bounds::truncate(&format!("SCIM Me at {host}: {detail}"), 512);
    Err(match status {
        401 | 403 => Unreachable::Unauthorized(text),
        _ => Unreachable::Unavailable(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host comes from the API's deployment name, under the cloud's workspace domain only:
    /// nothing in it can point the operator's credentials at another server.
    #[test]
    fn workspace_hosts_are_databricks_hosts_only() {
        let com = "https://accounts.cloud.databricks.com";
        assert_eq!(
            workspace_host(com, "acme-prod").unwrap(),
            "https://acme-prod.cloud.databricks.com"
        );
        assert_eq!(
            workspace_host("https://accounts.cloud.databricks.us", "gov").unwrap(),
            "https://gov.cloud.databricks.us"
        );
        assert_eq!(
            workspace_host("https://accounts-dod.cloud.databricks.mil", "dod").unwrap(),
            "https://dod.cloud.databricks.mil"
        );
        assert_eq!(
            workspace_host("http://127.0.0.1:8085", "dbc-1").unwrap(),
            "https://dbc-1.cloud.databricks.com"
        );
        assert_eq!(
            workspace_host("https://accounts.evil.example", "x").unwrap(),
            "https://x.cloud.databricks.com"
        );
        assert!(is_databricks_account_host(com));
        assert!(is_databricks_account_host(
            "https://accounts-dod.cloud.databricks.mil"
        ));
        assert!(!is_databricks_account_host("http://127.0.0.1:8085"));
        assert!(!is_databricks_account_host(
            "https://accounts.cloud.databricks.com.evil.example"
        ));
        for bad in [
            "",
            "evil.example/",
            "a.b",
            "x@evil.example",
            "x:443",
            "-x",
            "UPPER",
            "x#",
            &"a".repeat(64),
        ] {
            assert!(workspace_host(com, bad).is_err(), "{bad:?}");
        }
    }

    /// A refused login is `Unauthorized`; a token endpoint that is down is not.
    #[test]
    fn token_refusals_are_told_apart() {
        let refused = |status, code: &str| {
            classify_auth(AuthError::Refused {
                endpoint: "e".into(),
                status,
                code: code.into(),
                message: "m".into(),
            })
        };
        assert!(matches!(
            refused(401, "invalid_client"),
            Unreachable::Unauthorized(_)
        ));
        assert!(matches!(
            refused(400, "invalid_client"),
            Unreachable::Unauthorized(_)
        ));
        assert!(matches!(
            refused(503, "TEMPORARILY_UNAVAILABLE"),
            Unreachable::Unavailable(_)
        ));
    }
}
