//! The HTTP client of the Account API: rate limit, auth, retries, error parsing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::TokenSource;
use super::config::{AccountConfig, validate_host};
use super::error::{ApiError, ConfigError, Error};
use super::models::{
    PrivateAccessSettings, PrivateAccessSettingsRequest, Resource, Workspace, WorkspaceUpdate,
};
use super::ratelimit::RateLimiter;

/// What one HTTP exchange did, for metrics. `status` is the HTTP status, or `transport` when no
/// answer came.
#[derive(Clone, Debug)]
pub struct CallRecord<'a> {
    /// `credentials.create`, `workspaces.list`, ...
    pub operation: &'a str,
    /// `200`, `429`, `transport`, ...
    pub status: &'a str,
    /// Time of the exchange.
    pub elapsed: Duration,
    /// Time held back by the client-side rate limit before sending.
    pub throttled: Duration,
}

/// Decides, right before each write (POST, PATCH, PUT, DELETE), whether it may be sent: a replica
/// that may have lost its leader lease sends none.
pub trait WriteGate: Send + Sync {
    /// Whether a write may be sent now.
    fn allows_writes(&self) -> bool;
}

/// Receives a record of every HTTP exchange (for Prometheus metrics).
pub trait CallObserver: Send + Sync {
    /// One exchange finished.
    fn observe(&self, record: &CallRecord<'_>);
}

struct Inner {
    http: reqwest::Client,
    host: String,
    account_id: String,
    tokens: TokenSource,
    /// The resolver overrides, to tell which workspace hosts stay on this machine.
    resolve: super::resolve::ResolveOverrides,
    limiter: RateLimiter,
    /// Delays between attempts of one call: from 250–500 ms, doubling, at most 5–10 s.
    retry: ExponentialBuilder,
    /// Total time one call may spend retrying.
    retry_budget: Duration,
    observer: Option<Arc<dyn CallObserver>>,
    gate: Option<Arc<dyn WriteGate>>,
}

/// A client of one Databricks account. Cheap to clone; clones share the token cache and the rate
/// limit.
#[derive(Clone)]
pub struct AccountClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AccountClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountClient")
            .field("host", &self.inner.host)
            .field("account_id", &self.inner.account_id)
            .finish_non_exhaustive()
    }
}

fn tls_config(ca_bundle_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_bundle_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ConfigError::CaBundle(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ConfigError::CaBundle(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ConfigError::CaBundle("no PEM certificate found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::CaBundle(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl AccountClient {
    /// Builds a client. Fails on an unusable host or CA bundle.
    pub fn new(config: AccountConfig) -> Result<Self, ConfigError> {
        Self::with_observer(config, None)
    }

    /// Builds a client that reports every HTTP exchange to `observer`.
    pub fn with_observer(
        config: AccountConfig,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<Self, ConfigError> {
        Self::with_hooks(config, observer, None)
    }

    /// Builds a client that reports every exchange to `observer` and asks `gate` before each write.
    /// Refuses a host the configuration's allow-list does not name, before any request.
    pub fn with_hooks(
        config: AccountConfig,
        observer: Option<Arc<dyn CallObserver>>,
        gate: Option<Arc<dyn WriteGate>>,
    ) -> Result<Self, ConfigError> {
        let host = validate_host(&config.host)?;
        if let Some(allowed) = &config.allowed_hosts
            && !allowed.allows(&host)
        {
            return Err(ConfigError::HostNotAllowed {
                host,
                allowed: allowed.describe(),
            });
        }
        if config.account_id.trim().is_empty() {
            return Err(ConfigError::Missing("account_id"));
        }
        let resolve = config.resolve.clone();
        let mut builder = reqwest::Client::builder();
        if !config.resolve.is_empty() {
            builder = builder.dns_resolver(std::sync::Arc::new(config.resolve.clone()));
        }
        let http = builder
            .use_preconfigured_tls(tls_config(config.ca_bundle_pem.as_deref())?)
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            // A redirect could lead anywhere, downgrade to http:// or replay a body: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent(config.user_agent_comment.as_deref()))
            .build()
            .map_err(ConfigError::Http)?;
        let tokens = TokenSource::new(config.credentials, &host, &config.account_id, http.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                host,
                account_id: config.account_id,
                tokens,
                resolve,
                limiter: RateLimiter::new(config.rate_limit),
                retry: ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(250))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter()
                    .without_max_times(),
                retry_budget: config.retry_budget,
                observer,
                gate,
            }),
        })
    }

    /// The host this client calls.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The account ID.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// The path of a collection, or of one object in it. The ID is one path segment: it is
    /// percent-encoded so that it can neither add segments (`acct/id`, `../workspaces/1`) nor a
    /// query; an empty or dot-segment ID names no object and is refused without a request.
    fn path(&self, method: &Method, collection: &str, id: Option<&str>) -> Result<String, Error> {
        let base = format!(
            "/api/2.0/accounts/{}/{collection}",
            encode_segment(&self.inner.account_id)
        );
        match id {
            None => Ok(base),
            Some(id @ ("" | "." | "..")) => Err(Error::Api(ApiError {
                status: 400,
                error_code: "MALFORMED_REQUEST".into(),
                message: format!("Invalid ID {id:?}: refused by the client, not sent"),
                method: method.to_string(),
                path: format!("{base}/{id}"),
                retry_after: None,
                json: false,
            })),
            Some(id) => Ok(format!("{base}/{}", encode_segment(id))),
        }
    }

    /// Lists every object of a kind: one bare array for the provisioning kinds, pages for the
    /// kinds that have them ([`Resource::PAGED`]).
    pub async fn list<R: Resource>(&self) -> Result<Vec<R>, Error> {
        let op = format!("{}.list", R::COLLECTION);
        let path = self.path(&Method::GET, R::COLLECTION, None)?;
        let mut items: Vec<R> = if R::PAGED {
            self.pages(&path, &op).await?
        } else {
            self.json(Method::GET, &path, None, None::<&()>, &op)
                .await?
        };
        // Decoding grows the list by doubling; a list the operator shares and keeps for a poll
        // interval is worth one copy at its exact size (up to half of it was spare room).
        items.shrink_to_fit();
        Ok(items)
    }

    /// Follows `next_page_token` to the end, at most [`crate::bounds::MAX_PAGES`] pages: a server
    /// that never stops must not keep the client (and its memory) busy forever.
    async fn pages<T: DeserializeOwned>(&self, path: &str, op: &str) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..crate::bounds::MAX_PAGES {
            let query = token.as_deref().map(|t| [("page_token", t)]);
            let page: super::models::Page<T> = self
                .json(
                    Method::GET,
                    path,
                    query.as_ref().map(|q| &q[..]),
                    None::<&()>,
                    op,
                )
                .await?;
            out.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(Error::Decode {
            method: Method::GET.to_string(),
            path: path.to_string(),
            status: 200,
            detail: format!(
                "more than {} pages; refusing to read further",
                crate::bounds::MAX_PAGES
            ),
        })
    }

    /// The private endpoint rules of a network connectivity configuration.
    pub async fn list_private_endpoint_rules(
        &self,
        ncc_id: &str,
    ) -> Result<Vec<super::models::PrivateEndpointRule>, Error> {
        let path = self.rules_path(&Method::GET, ncc_id, None)?;
        self.pages(&path, "private-endpoint-rules.list").await
    }

    /// Adds a private endpoint rule to a network connectivity configuration.
    pub async fn create_private_endpoint_rule(
        &self,
        ncc_id: &str,
        rule: &super::models::CreatePrivateEndpointRule,
    ) -> Result<super::models::PrivateEndpointRule, Error> {
        let path = self.rules_path(&Method::POST, ncc_id, None)?;
        self.json(
            Method::POST,
            &path,
            None,
            Some(rule),
            "private-endpoint-rules.create",
        )
        .await
    }

    /// Deletes (or, for an established one, deactivates) a private endpoint rule.
    pub async fn delete_private_endpoint_rule(
        &self,
        ncc_id: &str,
        rule_id: &str,
    ) -> Result<(), Error> {
        let path = self.rules_path(&Method::DELETE, ncc_id, Some(rule_id))?;
        self.send(
            Method::DELETE,
            &path,
            None,
            None::<&()>,
            "private-endpoint-rules.delete",
        )
        .await
        .map(drop)
    }

    fn rules_path(
        &self,
        method: &Method,
        ncc_id: &str,
        rule: Option<&str>,
    ) -> Result<String, Error> {
        let ncc = self.path(method, "network-connectivity-configs", Some(ncc_id))?;
        Ok(match rule {
            None => format!("{ncc}/private-endpoint-rules"),
            Some(r) if r.is_empty() || r == "." || r == ".." => {
                return Err(Error::Api(ApiError {
                    status: 400,
                    error_code: "MALFORMED_REQUEST".into(),
                    message: format!("Invalid rule ID {r:?}: refused by the client, not sent"),
                    method: method.to_string(),
                    path: format!("{ncc}/private-endpoint-rules/{r}"),
                    retry_after: None,
                    json: false,
                }));
            }
            Some(r) => format!("{ncc}/private-endpoint-rules/{}", encode_segment(r)),
        })
    }

    /// Reads one object.
    pub async fn get<R: Resource>(&self, id: &str) -> Result<R, Error> {
        let op = format!("{}.get", R::COLLECTION);
        self.json(
            Method::GET,
            &self.path(&Method::GET, R::COLLECTION, Some(id))?,
            None,
            None::<&()>,
            &op,
        )
        .await
    }

    /// Creates an object. A failure after the request was sent is [`Error::OutcomeUnknown`]; so is
    /// an answer that cannot be read or names no object ([`Error::is_outcome_unknown`]).
    pub async fn create<R: Resource>(&self, request: &R::Create) -> Result<R, Error> {
        let op = format!("{}.create", R::COLLECTION);
        let path = self.path(&Method::POST, R::COLLECTION, None)?;
        let created: R = self
            .json(Method::POST, &path, None, Some(request), &op)
            .await?;
        let id = created.id();
        if id.is_empty() || id == "0" {
            return Err(Error::Decode {
                method: Method::POST.to_string(),
                path,
                status: 200,
                detail: "the answer names no ID".into(),
            });
        }
        Ok(created)
    }

    /// Deletes an object. A 404 is returned as an error; callers treat it as done.
    pub async fn delete<R: Resource>(&self, id: &str) -> Result<(), Error> {
        let op = format!("{}.delete", R::COLLECTION);
        self.send(
            Method::DELETE,
            &self.path(&Method::DELETE, R::COLLECTION, Some(id))?,
            None,
            None::<&()>,
            &op,
        )
        .await
        .map(drop)
    }

    /// Patches a workspace with the fields set in `update` (sent as `update_mask`). Returns the
    /// workspace when the server answers with it (the legacy API answers `{}`).
    pub async fn update_workspace(
        &self,
        workspace_id: i64,
        update: &WorkspaceUpdate,
    ) -> Result<Option<Workspace>, Error> {
        let path = self.path(
            &Method::PATCH,
            "workspaces",
            Some(&workspace_id.to_string()),
        )?;
        let mask = update.update_mask();
        let (_, body) = self
            .send(
                Method::PATCH,
                &path,
                Some(&[("update_mask", mask.as_str())]),
                Some(update),
                "workspaces.update",
            )
            .await?;
        Ok(parse_optional::<Workspace>(&body).filter(|w| w.workspace_id != 0))
    }

    /// Replaces private access settings as a whole (`PUT`).
    pub async fn replace_private_access_settings(
        &self,
        id: &str,
        request: &PrivateAccessSettingsRequest,
    ) -> Result<Option<PrivateAccessSettings>, Error> {
        let path = self.path(&Method::PUT, "private-access-settings", Some(id))?;
        let (_, body) = self
            .send(
                Method::PUT,
                &path,
                None,
                Some(request),
                "private-access-settings.replace",
            )
            .await?;
        Ok(parse_optional::<PrivateAccessSettings>(&body)
            .filter(|p| !p.private_access_settings_id.is_empty()))
    }

    /// Whether [`Self::probe_workspace`] checks the workspace with this deployment name: always
    /// for an account on a Databricks account host; for another account host (a local
    /// simulator), only when a resolver override covers the workspace host, so that a simulator's
    /// workspaces never send its credentials to a real Databricks host of the same name.
    pub fn checks_workspace(&self, deployment_name: &str) -> bool {
        if super::workspace::is_databricks_account_host(&self.inner.host) {
            return true;
        }
        match super::workspace::workspace_host(&self.inner.host, deployment_name) {
            Ok(url) => url
                .strip_prefix("https://")
                .is_some_and(|h| self.inner.resolve.covers(h)),
            // Reported by the check, which calls nothing.
            Err(_) => true,
        }
    }

    /// Whether the workspace with this deployment name (as the API reports it) answers: a
    /// workspace token from its own token endpoint with this account's credentials (basic auth
    /// needs none) and one SCIM `Me` call, through the same TLS roots, resolver and redirect
    /// policy as the Account API. Not rate-limited as Account API calls are: it calls the
    /// workspace, not the account. Returns the workspace URL that answered.
    pub async fn probe_workspace(
        &self,
        deployment_name: &str,
    ) -> Result<String, super::workspace::Unreachable> {
        let host = super::workspace::workspace_host(&self.inner.host, deployment_name)
            .map_err(super::workspace::Unreachable::Unavailable)?;
        if !self.checks_workspace(deployment_name) {
            return Err(super::workspace::Unreachable::Unavailable(format!(
                "{host} is not checked: the account is not on a Databricks account host and no resolver override covers the workspace"
            )));
        }
        // Not reported to the CallObserver: its records are Account API exchanges (the metrics
        // and the API-errors alert count them), and a workspace whose DNS is pending is no
        // Account API outage.
        // A workspace that accepts connections and never answers must not hold the reconcile.
        let probe =
            super::workspace::probe(&self.inner.http, self.inner.tokens.credentials(), &host);
        match tokio::time::timeout(super::workspace::PROBE_TIMEOUT, probe).await {
            Ok(r) => r.map(|()| host),
            Err(_) => Err(super::workspace::Unreachable::Unavailable(format!(
                "{host} did not answer within {} s",
                super::workspace::PROBE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// A cheap call that proves the host, account and credentials work.
    pub async fn check(&self) -> Result<(), Error> {
        self.list::<super::models::Credential>().await.map(drop)
    }

    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&[(&str, &str)]>,
        body: Option<&B>,
        op: &str,
    ) -> Result<T, Error> {
        let (status, bytes) = self.send(method.clone(), path, query, body, op).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            method: method.to_string(),
            path: path.to_string(),
            status,
            detail: e.to_string(),
        })
    }

    /// Sends one request with rate limiting, auth and retries; returns status and body of a 2xx.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&[(&str, &str)]>,
        body: Option<&B>,
        op: &str,
    ) -> Result<(u16, Vec<u8>), Error> {
        let inner = &self.inner;
        let started = Instant::now();
        let url = format!("{}{}", inner.host, path);
        // A list answers with every object of a kind; anything else with one object or an error.
        let list = method == Method::GET && op.ends_with(".list");
        let limit = if list {
            crate::bounds::MAX_LIST_BODY_BYTES
        } else {
            crate::bounds::MAX_BODY_BYTES
        };
        self.fence(&method, path)?;
        let reauthenticated = AtomicBool::new(false);
        let (method, url, reauthenticated) = (&method, &url, &reauthenticated);
        let attempt = || async move {
            loop {
                // A list serves every reconcile waiting for it: it goes ahead of the queue.
                let throttled = if list {
                    inner.limiter.acquire_first().await
                } else {
                    inner.limiter.acquire().await
                };
                // Checked again after the wait: the lease may have gone meanwhile.
                self.fence(method, path)?;
                let outcome = self.exchange(method, url, path, query, body, limit).await;
                let elapsed = started.elapsed();
                let mut sent_auth = None;
                let (status_label, result) = match outcome {
                    Ok((status, bytes, _, _)) if (200..300).contains(&status) => {
                        // Every answer of this API is JSON or empty. Anything else (a login page
                        // after a redirect) must not pass for success, even where the body is not
                        // used.
                        let result = match check_json_or_empty(&bytes) {
                            Ok(()) => Ok((status, bytes)),
                            Err(detail) => Err(Error::Decode {
                                method: method.to_string(),
                                path: path.to_string(),
                                status,
                                detail,
                            }),
                        };
                        (status.to_string(), result)
                    }
                    Ok((status, bytes, retry_after, auth)) => {
                        sent_auth = Some(auth);
                        let e = ApiError::parse(status, method.as_str(), path, &bytes, retry_after);
                        (status.to_string(), Err(Error::Api(e)))
                    }
                    Err(e) => ("transport".to_string(), Err(e)),
                };
                if let Some(o) = &inner.observer {
                    o.observe(&CallRecord {
                        operation: op,
                        status: &status_label,
                        elapsed,
                        throttled,
                    });
                }
                let err = match result {
                    Ok(ok) => return Ok(ok),
                    Err(e) => e,
                };
                // A rejected bearer token may have been revoked or expired early: fetch a new one
                // once per call, and repeat at once.
                if let Error::Api(api) = &err
                    && api.status == 401
                    && let Some(auth) = &sent_auth
                    && !reauthenticated.swap(true, Ordering::Relaxed)
                    && inner.tokens.invalidate(auth).await
                {
                    continue;
                }
                return Err(err);
            }
        };
        attempt
            .retry(inner.retry)
            .when(|err| is_retried(method, err))
            // `Retry-After` is a floor, and the call gives up rather than wait past its budget.
            .adjust(|err, next| {
                let wait = next?.max(err.retry_after().unwrap_or_default());
                (crate::bounds::add(started.elapsed(), wait) <= inner.retry_budget).then_some(wait)
            })
            .notify(|err, wait| {
                tracing::debug!(operation = op, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            })
            .await
    }

    /// Refuses a write the [`WriteGate`] does not allow now.
    fn fence(&self, method: &Method, path: &str) -> Result<(), Error> {
        match &self.inner.gate {
            Some(gate) if *method != Method::GET && !gate.allows_writes() => Err(Error::Fenced {
                method: method.to_string(),
                path: path.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// One HTTP exchange. Returns status, body, `Retry-After` and the `Authorization` header sent,
    /// or a transport error classified by whether the request may have reached the server.
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        method: &Method,
        url: &str,
        path: &str,
        query: Option<&[(&str, &str)]>,
        body: Option<&B>,
        limit: usize,
    ) -> Result<(u16, Vec<u8>, Option<Duration>, String), Error> {
        let inner = &self.inner;
        let auth = inner.tokens.header().await?;
        // Fetching a token can take a while: the lease may have gone meanwhile.
        self.fence(method, path)?;
        let mut req = inner
            .http
            .request(method.clone(), url)
            .header(http::header::AUTHORIZATION, &auth)
            .header(http::header::ACCEPT, "application/json");
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source: reqwest::Error| {
            // A connection that was never made cannot have delivered the request. Anything later
            // may have: a create must not be repeated blindly.
            if method == Method::POST && !source.is_connect() {
                Error::OutcomeUnknown {
                    method: method.to_string(),
                    path: path.to_string(),
                    source,
                }
            } else {
                Error::Transport {
                    method: method.to_string(),
                    path: path.to_string(),
                    source,
                }
            }
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let too_large = || Error::Decode {
            method: method.to_string(),
            path: path.to_string(),
            status,
            detail: format!("the answer is larger than {limit} bytes; not read"),
        };
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        // The chunks are kept as they come and joined once: growing one buffer by doubling would
        // hold up to twice the cap, plus the copy.
        let mut chunks = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            total = total.saturating_add(chunk.len());
            if total > limit {
                return Err(too_large());
            }
            chunks.push(chunk);
        }
        let mut bytes = Vec::with_capacity(total);
        for c in chunks {
            bytes.extend_from_slice(&c);
        }
        Ok((status, bytes, retry_after, auth))
    }
}

/// Whether a failed attempt is tried again (within the call's budget).
fn is_retried(method: &Method, err: &Error) -> bool {
    match err {
        // A create that may have been committed is resolved by the caller, which looks it up
        // before it tries again.
        _ if err.is_outcome_unknown() => false,
        Error::OutcomeUnknown { .. } | Error::Decode { .. } | Error::Fenced { .. } => false,
        // A read may also be repeated after a 500 or 502: it changes nothing.
        Error::Api(api) => {
            api.is_retryable() || (*method == Method::GET && matches!(api.status, 500 | 502))
        }
        Error::Transport { .. } => true,
        Error::Auth(a) => a.is_retryable(),
    }
}

/// `databricks-account-operator/VERSION`, with a comment such as the replica's identity. The
/// comment keeps only characters a header allows.
fn user_agent(comment: Option<&str>) -> String {
    let base = concat!("databricks-account-operator/", env!("CARGO_PKG_VERSION"));
    match comment {
        Some(c) => {
            let c: String = c
                .chars()
                .filter(|ch| ch.is_ascii_graphic() && !matches!(ch, '(' | ')' | '\\'))
                .take(128)
                .collect();
            format!("{base} ({c})")
        }
        None => base.to_string(),
    }
}

/// `Retry-After` as seconds or an HTTP date, at most [`crate::bounds::MAX_RETRY_AFTER`].
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let wait = if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
        // Longer than u64 still means "a long time".
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
        let now = jiff::Timestamp::now();
        Duration::try_from(at.duration_since(now)).unwrap_or_default()
    };
    Some(wait.min(crate::bounds::MAX_RETRY_AFTER))
}

/// Everything but the URL-unreserved characters (RFC 3986 §2.3) is encoded, so the result is
/// exactly one path segment. `url`'s path-segment set would leave sub-delimiters such as `=` and
/// `;` raw, which some servers read as parameters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `raw` as one path segment.
fn encode_segment(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, SEGMENT).to_string()
}

/// Checks that a successful answer is JSON or empty; the error is the parser's message.
fn check_json_or_empty(body: &[u8]) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Parses an optional JSON answer: an empty body or `{}` of the legacy API gives `None`.
fn parse_optional<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ID is one segment whatever it holds: separators, sub-delimiters and UTF-8 are encoded.
    #[test]
    fn segments_encode_all_but_unreserved_characters() {
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_segment("a/b;c=d:e@f"), "a%2Fb%3Bc%3Dd%3Ae%40f");
        assert_eq!(encode_segment("é %"), "%C3%A9%20%25");
    }

    /// `Retry-After` in either form, never beyond ten minutes, whatever the server says.
    #[test]
    fn retry_after_is_parsed_and_bounded() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(crate::bounds::MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(crate::bounds::MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let soon = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(120))
            .unwrap();
        let header = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let got = parse_retry_after(&header).unwrap();
        assert!(
            got > Duration::from_secs(100) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        let far = "Tue, 31 Dec 2999 23:59:59 GMT";
        assert_eq!(parse_retry_after(far), Some(crate::bounds::MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after(""), None);
    }
}
