//! Authentication to the Account API (`account-api.md` §6): OAuth M2M, OAuth token federation
//! and legacy basic auth. Tokens are cached and refreshed ahead of expiry; concurrent callers share
//! one refresh.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::error::AuthError;

/// How to authenticate to the Account API.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// OAuth machine-to-machine: a service principal's client ID and secret.
    OAuthM2M {
        /// The service principal's application (client) ID.
        client_id: String,
        /// Its OAuth secret.
        client_secret: SecretString,
    },
    /// OAuth token federation: a JWT read from a file (such as a projected Kubernetes
    /// service-account token) is exchanged for an account token. No static secret.
    Federation {
        /// The service principal whose federation policy accepts the JWT (optional for
        /// account-wide policies).
        client_id: Option<String>,
        /// File holding the JWT; read again at every exchange because kubelet rotates it.
        token_file: PathBuf,
    },
    /// Legacy basic auth with an account admin's username and password.
    Basic {
        /// Username.
        username: String,
        /// Password.
        password: SecretString,
    },
}

impl Credentials {
    /// A short name of the method for logs and conditions.
    pub fn method(&self) -> &'static str {
        match self {
            Self::OAuthM2M { .. } => "oauth-m2m",
            Self::Federation { .. } => "oauth-federation",
            Self::Basic { .. } => "basic",
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Produces the `Authorization` header for API calls.
pub(crate) struct TokenSource {
    credentials: Credentials,
    token_endpoint: String,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

/// Largest token-endpoint answer read (bytes).
const MAX_TOKEN_BODY: usize = 64 << 10;

/// Refresh this long before expiry: a fifth of the lifetime, at most five minutes.
fn refresh_lead(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

impl TokenSource {
    pub(crate) fn new(
        credentials: Credentials,
        host: &str,
        account_id: &str,
        http: reqwest::Client,
    ) -> Self {
        let token_endpoint = format!(
            "{}/oidc/accounts/{}/v1/token",
            host.trim_end_matches('/'),
            account_id
        );
        Self::with_endpoint(credentials, token_endpoint, http)
    }

    /// A token source for another token endpoint with the same credentials (a workspace's own,
    /// `https://<workspace>/oidc/v1/token`, which takes the same grants).
    pub(crate) fn with_endpoint(
        credentials: Credentials,
        token_endpoint: String,
        http: reqwest::Client,
    ) -> Self {
        Self {
            credentials,
            token_endpoint,
            http,
            cached: Mutex::new(None),
        }
    }

    /// The credentials it presents.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The `Authorization` header: basic credentials, or a bearer token from the cache (refreshed
    /// when it is close to expiry; one caller refreshes while the others wait for its result).
    pub(crate) async fn header(&self) -> Result<String, AuthError> {
        if let Credentials::Basic { username, password } = &self.credentials {
            let raw = format!("{username}:{}", password.expose_secret());
            return Ok(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ));
        }
        let mut guard = self.cached.lock().await;
        let now = Instant::now();
        if let Some(c) = guard.as_ref()
            && now < c.refresh_at
        {
            return Ok(format!("Bearer {}", c.token.expose_secret()));
        }
        match self.fetch().await {
            Ok((token, lifetime)) => {
                let header = format!("Bearer {}", token.expose_secret());
                *guard = Some(Cached {
                    token,
                    refresh_at: crate::bounds::after(
                        lifetime.saturating_sub(refresh_lead(lifetime)),
                    ),
                    expires_at: crate::bounds::after(lifetime),
                });
                Ok(header)
            }
            // A refresh ahead of expiry that fails keeps the still-valid token in use.
            Err(e) => match guard.as_ref() {
                Some(c)
                    if c.expires_at.saturating_duration_since(now) > Duration::from_secs(10) =>
                {
                    tracing::warn!(error = %e, "token refresh failed; using the cached token until it expires");
                    Ok(format!("Bearer {}", c.token.expose_secret()))
                }
                _ => Err(e),
            },
        }
    }

    /// After the API refused `rejected` (the `Authorization` header of a call that got a 401):
    /// drops the cached token if it is still that one, so the next call fetches a new one. A token
    /// another caller has already replaced is kept, so concurrent 401s share one refresh. Returns
    /// whether a retry can present different credentials (never for basic auth).
    pub(crate) async fn invalidate(&self, rejected: &str) -> bool {
        if matches!(self.credentials, Credentials::Basic { .. }) {
            return false;
        }
        let mut guard = self.cached.lock().await;
        if guard
            .as_ref()
            .is_some_and(|c| rejected == format!("Bearer {}", c.token.expose_secret()))
        {
            *guard = None;
        }
        true
    }

    /// Fetches a token, retrying what may pass on its own (a 429 or 5xx, a connection failure, an
    /// unreadable token file) up to three times, after 0.1–0.2 s, 0.2–0.4 s and 0.4–0.8 s.
    async fn fetch(&self) -> Result<(SecretString, Duration), AuthError> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_times(3)
            .with_jitter();
        (|| self.fetch_once())
            .retry(policy)
            .when(AuthError::is_retryable)
            .await
    }

    /// One exchange with the token endpoint.
    async fn fetch_once(&self) -> Result<(SecretString, Duration), AuthError> {
        let endpoint = &self.token_endpoint;
        let mut resp = self.send().await?;
        let status = resp.status().as_u16();
        // A token answer is small; a larger one is cut and then fails to parse.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| AuthError::Transport {
            endpoint: endpoint.clone(),
            source,
        })? {
            let room = MAX_TOKEN_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room < chunk.len() {
                break;
            }
        }
        if !(200..300).contains(&status) {
            let e: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
            let code = e
                .error
                .or_else(|| {
                    e.error_code
                        .map(|c| c.to_string().trim_matches('"').to_string())
                })
                .unwrap_or_else(|| status.to_string());
            let message = e
                .error_description
                .or(e.message)
                .map(|m| crate::bounds::truncate(&m, 512))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            let code = crate::bounds::truncate(&code, 64);
            let message = if message.trim().is_empty() && (300..400).contains(&status) {
                "a redirect; the operator follows no redirects".to_string()
            } else if message.trim().is_empty() {
                "no detail in the answer".to_string()
            } else {
                message
            };
            return Err(AuthError::Refused {
                endpoint: endpoint.clone(),
                status,
                code,
                message,
            });
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| AuthError::Decode {
                endpoint: endpoint.clone(),
                source,
            })?;
        // Believed up to a day, whatever the server says.
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600).max(1))
            .min(crate::bounds::MAX_TOKEN_LIFETIME);
        Ok((SecretString::from(t.access_token), lifetime))
    }

    /// Sends the token request for the configured method.
    async fn send(&self) -> Result<reqwest::Response, AuthError> {
        let req = self.http.post(&self.token_endpoint);
        let req = match &self.credentials {
            Credentials::OAuthM2M {
                client_id,
                client_secret,
            } => req
                .basic_auth(client_id, Some(client_secret.expose_secret()))
                .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")]),
            Credentials::Federation {
                client_id,
                token_file,
            } => {
                let jwt = tokio::fs::read_to_string(token_file)
                    .await
                    .map_err(|source| AuthError::TokenFile {
                        path: token_file.display().to_string(),
                        source,
                    })?;
                let mut form = vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange".to_string(),
                    ),
                    ("subject_token", jwt.trim().to_string()),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:jwt".to_string(),
                    ),
                    ("scope", "all-apis".to_string()),
                ];
                if let Some(id) = client_id {
                    form.push(("client_id", id.clone()));
                }
                req.form(&form)
            }
            // Basic auth never reaches here: `header` answers it without a token.
            Credentials::Basic { .. } => req,
        };
        req.header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| AuthError::Transport {
                endpoint: self.token_endpoint.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret must not leak through `Debug` of anything that holds it.
    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = Credentials::OAuthM2M {
            client_id: "id".into(),
            client_secret: SecretString::from("s3cr3t-value"),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    /// Refresh starts well before expiry but not absurdly early for long tokens.
    #[test]
    fn refresh_lead_is_a_fifth_capped_at_five_minutes() {
        assert_eq!(
            refresh_lead(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_lead(Duration::from_secs(100)),
            Duration::from_secs(20)
        );
    }
}
