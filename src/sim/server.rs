//! HTTP side of the simulator: the accept loop (plain TCP or TLS), routing, authentication, fault
//! injection, request counting and the `/__sim/` control API.
//!
//! The server runs its own accept loop on hyper so that a handler can make its connection task drop
//! the connection without writing any response (the "lost response" fault).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

use super::SimConfig;
use super::faults::{Faults, Injected, Lost, LostMode};
use super::state::{ApiError, Kind, Store};

/// How many API requests were answered, per route template (`POST /credentials`,
/// `GET /workspaces/{id}`, `POST /oidc/v1/token`) and HTTP status. Lost responses count as status 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// One entry per (route, status), sorted.
    pub entries: Vec<RequestCount>,
}

/// One API request as the simulator answered it, with the client's `User-Agent` (so a test can
/// tell which replica sent what).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Milliseconds since the Unix epoch, when the answer was decided.
    pub at_ms: u64,
    /// Method and route template, for example `POST /credentials`.
    pub route: String,
    /// HTTP status (0 for a lost response).
    pub status: u16,
    /// The `User-Agent` header.
    pub user_agent: String,
}

/// The request log keeps this many entries (the oldest go first).
const MAX_LOGGED_REQUESTS: usize = 100_000;

/// One counter of [`RequestCounts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// Method and route template, for example `POST /credentials`.
    pub route: String,
    /// HTTP status (0 for a lost response).
    pub status: u16,
    /// Number of requests.
    pub count: u64,
}

impl RequestCounts {
    /// Requests of `route` answered with `status`.
    pub fn get(&self, route: &str, status: u16) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.route == route && e.status == status)
            .map(|e| e.count)
            .sum()
    }

    /// Requests of `route`, whatever the status.
    pub fn total(&self, route: &str) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.route == route)
            .map(|e| e.count)
            .sum()
    }
}

/// How long a hanging response (lost-response fault, mode `hang`) holds its connection.
const HANG: Duration = Duration::from_secs(60);

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub base_url: String,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    tokens: Mutex<HashMap<String, Instant>>,
    counts: Mutex<BTreeMap<(String, u16), u64>>,
    log: Mutex<std::collections::VecDeque<LoggedRequest>>,
    /// The account's request budget: tokens left and when they were counted.
    budget: Mutex<(f64, Instant)>,
}

/// How the response to a committed request is lost, if it is (the fault lock is released here).
fn take_lost(shared: &Shared, route: &str) -> Option<Lost> {
    lock(&shared.faults).take_lost_response(route)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Shared {
    pub fn new(config: SimConfig, base_url: String, store: Store) -> Self {
        let config_burst = f64::from(config.rate_limit.unwrap_or(0));
        Self {
            config,
            base_url,
            store: Mutex::new(store),
            faults: Mutex::new(Faults::default()),
            tokens: Mutex::new(HashMap::new()),
            counts: Mutex::new(BTreeMap::new()),
            log: Mutex::new(std::collections::VecDeque::new()),
            budget: Mutex::new((config_burst, Instant::now())),
        }
    }

    /// Takes one request from the account's budget; false when it is spent.
    fn within_rate_limit(&self) -> bool {
        let Some(rate) = self.config.rate_limit.filter(|r| *r > 0) else {
            return true;
        };
        let rate = f64::from(rate);
        let burst = rate;
        let mut b = lock(&self.budget);
        let now = Instant::now();
        let refill = now.saturating_duration_since(b.1).as_secs_f64() * rate;
        *b = ((b.0 + refill).min(burst), now);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn snapshot(&self) -> Value {
        let mut store = lock(&self.store);
        store.tick(now_ms());
        store.snapshot()
    }

    pub fn request_counts(&self) -> RequestCounts {
        RequestCounts {
            entries: lock(&self.counts)
                .iter()
                .map(|((route, status), count)| RequestCount {
                    route: route.clone(),
                    status: *status,
                    count: *count,
                })
                .collect(),
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        {
            let mut store = lock(&self.store);
            store.fail_rules = faults.fail_workspaces.clone();
            store.propagation = faults.credential_propagation.clone();
            store.running_clusters = faults.running_clusters.clone();
            store.storage_key_revert = faults.storage_key_revert.clone();
            store.network_warnings = faults.network_warnings.clone();
            store.banned = faults.banned_workspaces.clone();
        }
        *lock(&self.faults) = faults;
    }

    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Every API request answered, oldest first (at most the last 100,000).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.log).iter().cloned().collect()
    }

    fn log(&self, route: &str, status: u16, user_agent: &str) {
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOGGED_REQUESTS {
            log.pop_front();
        }
        log.push_back(LoggedRequest {
            at_ms: now_ms(),
            route: route.to_string(),
            status,
            user_agent: user_agent.to_string(),
        });
    }

    fn count(&self, route: &str, status: u16) {
        *lock(&self.counts)
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    fn issue_token(&self) -> String {
        let mut bytes = [0u8; 24];
        rand::rng().fill(&mut bytes);
        let token = format!("dsim{}", URL_SAFE_NO_PAD.encode(bytes));
        let mut tokens = lock(&self.tokens);
        let now = Instant::now();
        tokens.retain(|_, exp| *exp > now);
        let expiry = now
            .checked_add(self.config.token_ttl.min(Duration::from_secs(86400 * 365)))
            .unwrap_or(now);
        tokens.insert(token.clone(), expiry);
        token
    }

    fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    /// The deployment names whose hosts resolve now (see `workspaces.rs`).
    pub fn published_workspaces(&self) -> Vec<String> {
        let delay = self
            .config
            .workspace_hosts
            .as_ref()
            .map(|h| u64::try_from(h.dns_delay.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let now = now_ms();
        let mut store = lock(&self.store);
        store.tick(now);
        store.reachable_deployments(now, delay)
    }

    fn oidc_base(&self) -> String {
        format!("{}/oidc/accounts/{}", self.base_url, self.config.account_id)
    }
}

/// Serve connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    workspace_hosts: bool,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => serve_connection(s, shared, shutdown, workspace_hosts).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        },
                        None => serve_connection(stream, shared, shutdown, workspace_hosts).await,
                    }
                });
            }
        }
    }
}

async fn serve_connection<S>(
    io: S,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    workspace_hosts: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let kill_for_handlers = kill.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let kill = kill_for_handlers.clone();
        async move {
            Ok::<_, Infallible>(if workspace_hosts {
                workspace(shared, req).await
            } else {
                handle(shared, kill, req).await
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = kill.notified() => tracing::info!("dropped a connection without a response (lost-response fault)"),
        _ = shutdown.changed() => {}
    }
}

fn response(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

fn error_json(status: u16, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error_code": code, "message": message}))
}

fn api_error_response(e: &ApiError) -> Response<Body> {
    if e.plain_text {
        response(
            e.status,
            "text/plain; charset=utf-8",
            format!("{}: {}", e.code, e.message),
        )
    } else {
        error_json(e.status, e.code, &e.message)
    }
}

async fn read_body(req: Request<Incoming>) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(Body::new(req.into_body()), 16 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::malformed(format!("Cannot parse request body: {e}")))
}

async fn handle(shared: Arc<Shared>, kill: Arc<Notify>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(rest) = path.strip_prefix("/__sim/") {
        return control(&shared, &method, rest, req).await;
    }
    if path == "/.well-known/databricks-config" && method == Method::GET {
        return json_response(
            200,
            &json!({
                "oidc_endpoint": shared.oidc_base(),
                "account_id": shared.config.account_id,
                "cloud": "aws",
                "host_type": "accounts",
            }),
        );
    }
    if let Some(rest) = path.strip_prefix("/oidc/accounts/") {
        return oidc(&shared, &method, rest, req).await;
    }
    if let Some(rest) = path.strip_prefix("/api/2.0/accounts/") {
        let rest = rest.to_string();
        return api(&shared, &kill, method, &path, &rest, req).await;
    }
    error_json(
        404,
        "ENDPOINT_NOT_FOUND",
        &format!("No API found for '{method} {path}'"),
    )
}

async fn oidc(
    shared: &Shared,
    method: &Method,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some((acct, tail)) = rest.split_once('/') else {
        return error_json(404, "ENDPOINT_NOT_FOUND", "No OIDC endpoint here");
    };
    if acct != shared.config.account_id {
        return error_json(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("Account {acct} does not exist"),
        );
    }
    let base = shared.oidc_base();
    match (method, tail) {
        (&Method::GET, ".well-known/oauth-authorization-server") => json_response(
            200,
            &json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/v1/authorize"),
                "token_endpoint": format!("{base}/v1/token"),
                "jwks_uri": format!("{base}/v1/keys"),
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["all-apis", "offline_access"],
            }),
        ),
        (&Method::POST, "v1/token") => {
            let resp = token(shared, req).await;
            shared.count("POST /oidc/v1/token", resp.status().as_u16());
            resp
        }
        _ => error_json(
            404,
            "ENDPOINT_NOT_FOUND",
            &format!("No API found for '{method} /oidc/accounts/{rest}'"),
        ),
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The request's `User-Agent`, for the request log (which process sent what).
fn user_agent(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Whether a subject token is a well-formed JWT whose payload decodes to a JSON object.
fn well_formed_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return false;
    }
    let payload = parts[1].trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v.is_object())
}

async fn token(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let basic = basic_credentials(&req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return oauth_error(400, "invalid_request", &e.message),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "all-apis".to_string());
    let cfg = &shared.config;
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let (id, secret) = match basic {
                Some(pair) => pair,
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
            if id != cfg.client_id || secret != cfg.client_secret {
                return oauth_error(401, "invalid_client", "Client authentication failed");
            }
        }
        Some("urn:ietf:params:oauth:grant-type:token-exchange") => {
            let subject = form.get("subject_token").map(String::as_str).unwrap_or("");
            if !well_formed_jwt(subject) {
                return oauth_error(
                    400,
                    "invalid_request",
                    "subject_token is not a well-formed JWT",
                );
            }
            if let Some(id) = form.get("client_id")
                && id != &cfg.client_id
            {
                return oauth_error(
                    401,
                    "invalid_client",
                    "Unknown client_id for token federation",
                );
            }
        }
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Grant type {other} is not supported"),
            );
        }
        None => return oauth_error(400, "invalid_request", "Missing grant_type"),
    }
    json_response(
        200,
        &json!({
            "access_token": shared.issue_token(),
            "token_type": "Bearer",
            "expires_in": cfg.token_ttl.as_secs(),
            "scope": scope,
        }),
    )
}

/// A request to a workspace's own host (`Host: <deployment>.cloud.databricks.com`): its token
/// endpoint and SCIM `Me`, for workspaces whose host is published. Counted as
/// `POST /workspace/oidc/v1/token` and `GET /workspace/scim/v2/Me`.
async fn workspace(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))
        .unwrap_or_default();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let published = super::workspaces::deployment_of(&host)
        .filter(|d| shared.published_workspaces().iter().any(|p| p == d));
    let Some(deployment) = published else {
        return error_json(
            404,
            "ENDPOINT_NOT_FOUND",
            &format!("No workspace is served at host {host:?}"),
        );
    };
    let refused = shared.faults().workspace_unauthorized;
    let user_agent = user_agent(&req);
    let (route, resp) = match (&method, path.as_str()) {
        (&Method::POST, "/oidc/v1/token") => (
            "POST /workspace/oidc/v1/token",
            if refused {
                oauth_error(401, "invalid_client", "Client authentication failed")
            } else {
                token(&shared, req).await
            },
        ),
        (&Method::GET, "/api/2.0/preview/scim/v2/Me") => (
            "GET /workspace/scim/v2/Me",
            if !refused && authenticated(&shared, &req) {
                let user = match basic_credentials(&req) {
                    Some((user, _)) => user,
                    None => shared.config.client_id.clone(),
                };
                json_response(
                    200,
                    &json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "id": format!("sim-{deployment}-principal"),
                        "userName": user,
                        "active": true,
                    }),
                )
            } else {
                error_json(
                    401,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API.",
                )
            },
        ),
        _ => (
            "workspace other",
            error_json(
                404,
                "ENDPOINT_NOT_FOUND",
                &format!("No API found for '{method} {path}'"),
            ),
        ),
    };
    let status = resp.status().as_u16();
    shared.count(route, status);
    shared.log(route, status, &user_agent);
    resp
}

fn authenticated(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return shared.token_valid(token.trim());
    }
    match basic_credentials(req) {
        Some((user, pass)) => user == shared.config.username && pass == shared.config.password,
        None => false,
    }
}

/// The route template and the parsed target of an API path (after `/api/2.0/accounts/`).
enum Target {
    List(Option<Kind>),
    One(Option<Kind>, String),
    /// `/network-connectivity-configs` and below: the segments after it.
    Ncc(Vec<String>),
}

fn route_of(method: &Method, segments: &[&str]) -> (String, Option<Target>) {
    let kind_seg = segments.first().copied().unwrap_or("");
    if kind_seg == "network-connectivity-configs" {
        let rest: Vec<String> = segments[1..].iter().map(|s| s.to_string()).collect();
        return match crate::state::ncc_route(&rest) {
            Some(template) => (format!("{method} {template}"), Some(Target::Ncc(rest))),
            None => (format!("{method} /{}", segments.join("/")), None),
        };
    }
    let kind = Kind::from_path(kind_seg);
    let known = kind.is_some() || kind_seg == "workspaces";
    match segments.len() {
        1 if known => (format!("{method} /{kind_seg}"), Some(Target::List(kind))),
        n if n >= 2 && known => (
            format!("{method} /{kind_seg}/{{id}}"),
            Some(Target::One(kind, segments[1..].join("/"))),
        ),
        _ => (format!("{method} /{}", segments.join("/")), None),
    }
}

async fn api(
    shared: &Shared,
    kill: &Notify,
    method: Method,
    path: &str,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut segments: Vec<&str> = rest.split('/').collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    let acct = segments.first().copied().unwrap_or("").to_string();
    let (route, target) = route_of(&method, segments.get(1..).unwrap_or(&[]));
    let user_agent = user_agent(&req);
    let faults = shared.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let injected = lock(&shared.faults)
        .take_injected(method.as_str(), path)
        .or_else(|| {
            (!shared.within_rate_limit()).then_some(Injected::RateLimited { retry_after: 1 })
        });
    let resp = match injected {
        Some(Injected::RateLimited { retry_after }) => {
            let mut r = error_json(
                429,
                "REQUEST_LIMIT_EXCEEDED",
                "Too many requests. Please wait a moment and try again.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Some(Injected::ServerError { status }) => {
            let (code, msg) = match status {
                503 => (
                    "TEMPORARILY_UNAVAILABLE",
                    "The service is temporarily unavailable. Please try again later.",
                ),
                504 => (
                    "DEADLINE_EXCEEDED",
                    "The request timed out. Please try again later.",
                ),
                409 => (
                    "ABORTED",
                    "The request was aborted because of a concurrent modification. Please try again.",
                ),
                _ => ("INTERNAL_ERROR", "An internal error occurred."),
            };
            error_json(status, code, msg)
        }
        Some(Injected::ProxyNotFound) => response(
            404,
            "text/html; charset=utf-8",
            "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>".into(),
        ),
        None => {
            if !authenticated(shared, &req) {
                error_json(
                    401,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API.",
                )
            } else if acct != shared.config.account_id {
                error_json(
                    403,
                    "PERMISSION_DENIED",
                    &format!("The caller is not authorized to access account {acct}."),
                )
            } else if let Some(target) = target {
                // The field a no-ID answer leaves out.
                let id_field = match &target {
                    Target::List(k) | Target::One(k, _) => k.map_or("workspace_id", Kind::id_field),
                    Target::Ncc(rest) if rest.len() > 1 => "rule_id",
                    Target::Ncc(_) => "network_connectivity_config_id",
                };
                match dispatch(shared, &method, target, req).await {
                    Ok(value) => match take_lost(shared, &route) {
                        Some(Lost::Mode(mode @ (LostMode::Close | LostMode::Hang))) => {
                            shared.count(&route, 0);
                            shared.log(&route, 0, &user_agent);
                            drop(value);
                            if mode == LostMode::Hang {
                                tracing::info!(%route, "committed; holding the response");
                                tokio::time::sleep(HANG).await;
                            }
                            tracing::info!(%route, "committed; losing the response");
                            kill.notify_one();
                            // The connection task is stopped by the notification.
                            return std::future::pending::<Response<Body>>().await;
                        }
                        Some(Lost::Mode(LostMode::EmptyBody)) => {
                            tracing::info!(%route, "committed; answering an empty body");
                            response(200, "application/json", String::new())
                        }
                        Some(Lost::Mode(LostMode::NoId)) => {
                            tracing::info!(%route, "committed; answering without the ID");
                            let mut value = value;
                            if let Some(obj) = value.as_object_mut() {
                                obj.remove(id_field);
                            }
                            json_response(200, &value)
                        }
                        Some(Lost::Status(409)) => {
                            tracing::info!(%route, "committed; answering 409 RESOURCE_ALREADY_EXISTS");
                            error_json(
                                409,
                                "RESOURCE_ALREADY_EXISTS",
                                "The resource already exists.",
                            )
                        }
                        Some(Lost::Status(status)) => {
                            tracing::info!(%route, status, "committed; answering an error");
                            error_json(
                                status,
                                "TEMPORARILY_UNAVAILABLE",
                                "The service is temporarily unavailable. Please try again later.",
                            )
                        }
                        None => json_response(200, &value),
                    },
                    Err(e) => api_error_response(&e),
                }
            } else {
                error_json(
                    404,
                    "ENDPOINT_NOT_FOUND",
                    &format!("No API found for '{method} {path}'"),
                )
            }
        }
    };
    let status = resp.status().as_u16();
    tracing::debug!(%route, status, "api request");
    shared.count(&route, status);
    shared.log(&route, status, &user_agent);
    resp
}

async fn parse_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    let bytes = read_body(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::malformed(format!("Cannot parse request body: {e}")))
}

fn parse_workspace_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::malformed(format!("Invalid workspaceId: {id}")))
}

fn check_uuid(kind: Kind, id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::malformed(format!("Invalid {}: {id}", kind.camel_id())))
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn method_not_found(method: &Method) -> ApiError {
    ApiError {
        status: 404,
        code: "ENDPOINT_NOT_FOUND",
        message: format!("No API found for method {method} on this path"),
        plain_text: false,
    }
}

async fn dispatch(
    shared: &Shared,
    method: &Method,
    target: Target,
    req: Request<Incoming>,
) -> Result<Value, ApiError> {
    let page_token = query_param(&req, "page_token");
    let body = if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        let mask = query_param(&req, "update_mask");
        Some((parse_json(req).await?, mask))
    } else {
        None
    };
    let now = now_ms();
    let mut store = lock(&shared.store);
    store.tick(now);
    match (target, method, body) {
        (Target::List(Some(kind)), &Method::GET, _) => Ok(Value::Array(store.list(kind))),
        (Target::List(None), &Method::GET, _) => Ok(Value::Array(store.list_workspaces())),
        (Target::List(Some(kind)), &Method::POST, Some((body, _))) => {
            let created = store.create(kind, &body, now)?;
            tracing::info!(
                kind = kind.path(),
                name = Store::name_of(kind, &created).unwrap_or(""),
                "created"
            );
            Ok(created)
        }
        (Target::List(None), &Method::POST, Some((body, _))) => store.create_workspace(&body, now),
        (Target::One(Some(kind), id), m, body) => {
            check_uuid(kind, &id)?;
            match (m, body) {
                (&Method::GET, _) => store.get(kind, &id),
                (&Method::DELETE, _) => store.delete(kind, &id),
                (&Method::PUT, Some((body, _))) if kind == Kind::PrivateAccess => {
                    store.replace_pas(&id, &body)
                }
                _ => Err(method_not_found(m)),
            }
        }
        (Target::One(None, id), m, body) => {
            let id = parse_workspace_id(&id)?;
            match (m, body) {
                (&Method::GET, _) => store.get_workspace(id),
                (&Method::DELETE, _) => store.delete_workspace(id, now),
                (&Method::PATCH, Some((body, mask))) => {
                    store.update_workspace(id, &body, mask.as_deref(), now)
                }
                _ => Err(method_not_found(m)),
            }
        }
        (Target::Ncc(rest), m, body) => store
            .ncc_request(
                m.as_str(),
                &rest,
                body.map(|(b, _)| b).as_ref(),
                page_token.as_deref(),
                now,
            )
            .unwrap_or_else(|| Err(method_not_found(m))),
        (_, m, _) => Err(method_not_found(m)),
    }
}

async fn control(
    shared: &Shared,
    method: &Method,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match (method, rest) {
        (&Method::GET, "state") => json_response(200, &shared.snapshot()),
        (&Method::GET, "requests") => match serde_json::to_value(shared.request_counts()) {
            Ok(v) => json_response(200, &v),
            Err(e) => error_json(500, "INTERNAL_ERROR", &e.to_string()),
        },
        (&Method::GET, "faults") => match serde_json::to_value(shared.faults()) {
            Ok(v) => json_response(200, &v),
            Err(e) => error_json(500, "INTERNAL_ERROR", &e.to_string()),
        },
        (&Method::POST, "faults") => {
            let bytes = match read_body(req).await {
                Ok(b) => b,
                Err(e) => return api_error_response(&e),
            };
            match serde_json::from_slice::<Faults>(&bytes) {
                Ok(faults) => {
                    tracing::info!(?faults, "faults set");
                    shared.set_faults(faults.clone());
                    match serde_json::to_value(faults) {
                        Ok(v) => json_response(200, &v),
                        Err(e) => error_json(500, "INTERNAL_ERROR", &e.to_string()),
                    }
                }
                Err(e) => error_json(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    &format!("Invalid faults: {e}"),
                ),
            }
        }
        (&Method::POST, "reset") => {
            let wipe = query_param(&req, "objects").is_some_and(|v| v == "true");
            shared.set_faults(Faults::default());
            lock(&shared.counts).clear();
            lock(&shared.log).clear();
            if wipe {
                let mut store = lock(&shared.store);
                *store = Store::new(store.config().clone());
            }
            json_response(
                200,
                &json!({"faults_cleared": true, "counts_cleared": true, "objects_cleared": wipe}),
            )
        }
        (&Method::POST, "expire-tokens") => {
            lock(&shared.tokens).clear();
            json_response(200, &json!({"tokens_expired": true}))
        }
        _ => error_json(
            404,
            "ENDPOINT_NOT_FOUND",
            &format!("No control API '{method} /__sim/{rest}'"),
        ),
    }
}
