//! A local simulator of the Databricks Account API (AWS provisioning endpoints).
//!
//! It serves, under `/api/2.0/accounts/{account_id}`, every create/list/get/delete endpoint of
//! credentials, storage configurations, customer-managed keys, networks, VPC endpoints, private
//! access settings and workspaces, plus `PATCH /workspaces/{id}` and
//! `PUT /private-access-settings/{id}`, and the network connectivity configurations of the settings
//! service (`/network-connectivity-configs`, their `private-endpoint-rules`, paginated lists), with
//! the validation, error shapes (JSON or `text/plain`
//! `CODE: message`), workspace state machine and delete semantics of `account-api.md`. It also serves
//! the discovery documents and OAuth token endpoint the SDKs use:
//! `GET /.well-known/databricks-config`,
//! `GET /oidc/accounts/{acct}/.well-known/oauth-authorization-server` and
//! `POST /oidc/accounts/{acct}/v1/token` (client credentials with HTTP Basic or form client auth, and
//! RFC 8693 token exchange of any well-formed JWT).
//!
//! Time-driven transitions are computed lazily from timestamps at request time ([`state::Store::tick`]).
//!
//! Control API (no authentication; never used by a real client):
//! - `GET /__sim/state`: every live object per kind (same shape as [`SimHandle::snapshot`]).
//! - `GET /__sim/requests`: [`RequestCounts`] as JSON.
//! - `GET /__sim/faults`, `POST /__sim/faults`: read or replace the [`Faults`] (JSON).
//! - `POST /__sim/reset`: clear faults and request counts; objects are kept unless `?objects=true`.
//! - `POST /__sim/expire-tokens`: forget every issued access token (clients then get 401).
//!
//! The simulator depends on no other crate of the workspace: it owns its wire representation. The
//! `databricks-account-sim` binary serves it ([`run`] with [`SimArgs`]).

mod faults;
mod server;
pub mod state;
mod workspaces;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{
    BannedWorkspaces, CredentialPropagation, FailRule, Faults, LostMode, LostResponse,
    NetworkWarning, NetworkWarnings, ProxyNotFound, RateLimit, RunningClusters, ServerError,
    StorageKeyRevert,
};
pub use server::{LoggedRequest, RequestCount, RequestCounts};
pub use state::ApiError;
pub use state::Quotas;
pub use workspaces::{WORKSPACE_DOMAIN, WorkspaceHosts};

/// The account ID the simulator uses unless told otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The OAuth client ID the simulator accepts unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sim-client-id";
/// The OAuth client secret the simulator accepts unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";
/// The legacy basic-auth user name the simulator accepts unless told otherwise.
pub const DEFAULT_USERNAME: &str = "admin@example.com";
/// The legacy basic-auth password the simulator accepts unless told otherwise.
pub const DEFAULT_PASSWORD: &str = "sim-password";

/// Settings of one simulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The account ID (default [`DEFAULT_ACCOUNT_ID`]).
    pub account_id: String,
    /// The service principal's OAuth client ID (default [`DEFAULT_CLIENT_ID`]).
    pub client_id: String,
    /// The service principal's OAuth client secret (default [`DEFAULT_CLIENT_SECRET`]).
    pub client_secret: String,
    /// Legacy basic-auth user name (default [`DEFAULT_USERNAME`]).
    pub username: String,
    /// Legacy basic-auth password (default [`DEFAULT_PASSWORD`]).
    pub password: String,
    /// How long a workspace stays PROVISIONING (default 5 s).
    pub provisioning: Duration,
    /// How long a deleted workspace stays CANCELLING before GET gives 404 (default 2 s).
    pub deletion: Duration,
    /// How long a VPC endpoint stays `pending` before `available` (default 2 s).
    pub endpoint_pending: Duration,
    /// The account's deployment-name prefix. `None` (default): a create with `deployment_name` is
    /// refused as the real API does.
    pub deployment_prefix: Option<String>,
    /// Access token lifetime (default 3600 s).
    pub token_ttl: Duration,
    /// How long the objects of a removed workspace stay "in use" (default 0).
    pub in_use_linger: Duration,
    /// How long a PATCH of `custom_tags` takes to show on the workspace (default 0: at once;
    /// Databricks says up to an hour).
    pub tags_apply_delay: Duration,
    /// Account API requests per second the account accepts; beyond it, 429
    /// `REQUEST_LIMIT_EXCEEDED` with `Retry-After: 1` (default: no limit). Bursts up to one
    /// second's worth. The token endpoint is not limited.
    pub rate_limit: Option<u32>,
    /// The AWS regions the account accepts (default [`state::DEFAULT_REGIONS`]). Set it to
    /// mirror a real account's regions.
    pub regions: Vec<String>,
    /// Regions where a workspace with a customer-managed key is refused (default none). The rule
    /// is off by default: Databricks' current regions page lists key support everywhere.
    pub no_cmk_regions: Vec<String>,
    /// Serve the workspaces' own hosts (token endpoint and SCIM `Me`) over TLS with a test CA
    /// (default: not served).
    pub workspace_hosts: Option<WorkspaceHosts>,
    /// AWS VPC endpoint IDs, or `prefix*` patterns, that connect to the region's relay endpoint
    /// service; every other endpoint connects to the workspace (front-end and REST API) service.
    /// It decides a registration's `use_case` and `aws_endpoint_service_id`, and so which network
    /// list may name it (see [`state::StoreConfig::relay_endpoints`]). Empty (default): the
    /// simulator does not know the services and falls back to `WORKSPACE_ACCESS`, locked to relay
    /// by the first network that lists the endpoint in `dataplane_relay`.
    pub relay_endpoints: Vec<String>,
    /// The account's object quotas of Databricks' limits page (default `None`: unlimited). A
    /// create beyond one is refused with 400 `RESOURCE_LIMIT_EXCEEDED` (the code is inferred).
    pub quotas: Option<Quotas>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            account_id: DEFAULT_ACCOUNT_ID.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            provisioning: Duration::from_secs(5),
            deletion: Duration::from_secs(2),
            endpoint_pending: Duration::from_secs(2),
            deployment_prefix: None,
            token_ttl: Duration::from_secs(3600),
            in_use_linger: Duration::ZERO,
            tags_apply_delay: Duration::ZERO,
            rate_limit: None,
            regions: state::default_regions(),
            no_cmk_regions: Vec::new(),
            workspace_hosts: None,
            relay_endpoints: Vec::new(),
            quotas: None,
        }
    }
}

/// PEM files for serving HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Errors of the simulator process.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load TLS {what} from {path}: {message}")]
    TlsFile {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The TLS configuration was refused by rustls.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Only one of `--tls-cert` and `--tls-key` was given.
    #[error("--tls-cert and --tls-key must be given together")]
    TlsIncomplete,
    /// The test certificates could not be made.
    #[error("cannot generate the workspace certificates: {0}")]
    Certificate(String),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a shutdown signal failed.
    #[error("cannot wait for a shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
}

/// A running simulator.
pub struct SimHandle {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the workspace hosts' TLS listener, when they are served.
    pub workspace_addr: Option<SocketAddr>,
    /// The test CA (PEM) that signed the workspace hosts' certificate, when they are served.
    pub workspace_ca_pem: Option<String>,
    shared: Arc<server::Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (or `https://` when serving TLS).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Every live object per kind, keyed by path segment (`credentials`, `storage-configurations`,
    /// `customer-managed-keys`, `networks`, `vpc-endpoints`, `private-access-settings`,
    /// `workspaces`), each as the list endpoint would return it.
    pub fn snapshot(&self) -> serde_json::Value {
        self.shared.snapshot()
    }

    /// Counts of requests per route template and status.
    pub fn request_count(&self) -> RequestCounts {
        self.shared.request_counts()
    }

    /// Every API request answered, with its `User-Agent`, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.request_log()
    }

    /// Replace the injected faults (same as `POST /__sim/faults`).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Stop accepting connections and close the open ones.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn load_tls(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, SimError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| SimError::TlsFile {
            what: "certificate",
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| SimError::TlsFile {
        what: "key",
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Start a simulator on `listen` (`127.0.0.1:0` picks an ephemeral port), serving HTTPS when `tls`
/// is given. It runs on the current Tokio runtime until [`SimHandle::shutdown`].
pub async fn start(
    config: SimConfig,
    listen: SocketAddr,
    tls: Option<TlsFiles>,
) -> Result<SimHandle, SimError> {
    let acceptor = tls.as_ref().map(load_tls).transpose()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    let base_url = format!("{scheme}://{host}:{}", addr.port());
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let store = state::Store::new(state::StoreConfig {
        account_id: config.account_id.clone(),
        deployment_prefix: config.deployment_prefix.clone(),
        provisioning_ms: millis(config.provisioning),
        deletion_ms: millis(config.deletion),
        endpoint_pending_ms: millis(config.endpoint_pending),
        in_use_linger_ms: millis(config.in_use_linger),
        tags_apply_ms: millis(config.tags_apply_delay),
        regions: config.regions.clone(),
        no_cmk_regions: config.no_cmk_regions.clone(),
        relay_endpoints: config.relay_endpoints.clone(),
        quotas: config.quotas,
    });
    let hosting = config.workspace_hosts.clone();
    let shared = Arc::new(server::Shared::new(config, base_url, store));
    let (tx, rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(server::serve(
        listener,
        acceptor,
        shared.clone(),
        rx.clone(),
        false,
    ))];
    let (mut workspace_addr, mut workspace_ca_pem) = (None, None);
    if let Some(h) = hosting {
        let (ca_pem, acceptor) = workspaces::generate_tls()?;
        if let Some(path) = &h.ca_file {
            std::fs::write(path, &ca_pem).map_err(|source| SimError::Write {
                path: path.clone(),
                source,
            })?;
        }
        let listener = TcpListener::bind(h.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: h.listen,
                source,
            })?;
        let waddr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: h.listen,
            source,
        })?;
        tasks.push(tokio::spawn(server::serve(
            listener,
            Some(acceptor),
            shared.clone(),
            rx.clone(),
            true,
        )));
        if let Some(file) = h.hosts_file.clone() {
            // An unspecified listen address is reached through loopback.
            let published_at = if waddr.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], waddr.port()))
            } else {
                waddr
            };
            let s = shared.clone();
            tasks.push(tokio::spawn(workspaces::publish(
                file,
                published_at,
                move || s.published_workspaces(),
                rx.clone(),
            )));
        }
        workspace_addr = Some(waddr);
        workspace_ca_pem = Some(ca_pem);
    }
    Ok(SimHandle {
        addr,
        workspace_addr,
        workspace_ca_pem,
        shared,
        shutdown: tx,
        tasks,
    })
}

/// Command-line options of `databricks-account-sim`. Every option has a default, so
/// the simulator runs with no flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,
    /// Account ID of the simulated account.
    #[arg(long, default_value = DEFAULT_ACCOUNT_ID)]
    pub account_id: String,
    /// OAuth client ID accepted by the token endpoint.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// OAuth client secret accepted by the token endpoint.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET, env = "DATABRICKS_SIM_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// User name accepted by legacy basic auth.
    #[arg(long, default_value = DEFAULT_USERNAME)]
    pub username: String,
    /// Password accepted by legacy basic auth.
    #[arg(long, default_value = DEFAULT_PASSWORD, env = "DATABRICKS_SIM_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Seconds a workspace stays PROVISIONING before RUNNING (or FAILED).
    #[arg(long, default_value_t = 5.0)]
    pub provisioning_seconds: f64,
    /// Seconds a deleted workspace stays CANCELLING before GET returns 404.
    #[arg(long, default_value_t = 2.0)]
    pub deletion_seconds: f64,
    /// Seconds a VPC endpoint stays "pending" before "available".
    #[arg(long, default_value_t = 2.0)]
    pub endpoint_pending_seconds: f64,
    /// Seconds the objects of a deleted workspace stay "in use" after it is gone.
    #[arg(long, default_value_t = 0.0)]
    pub in_use_linger_seconds: f64,
    /// Seconds a PATCH of a workspace's custom tags takes to show.
    #[arg(long, default_value_t = 0.0)]
    pub tags_apply_delay_seconds: f64,
    /// Account API requests per second the account accepts (429 beyond it, `Retry-After: 1`);
    /// 0 for no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_seconds: u64,
    /// Account deployment-name prefix. Without it, a workspace create with deployment_name is
    /// refused (as on a real account without a prefix).
    #[arg(long)]
    pub deployment_prefix: Option<String>,
    /// AWS regions the account accepts, comma-separated (default: every region Databricks lists
    /// for workspaces on AWS, GovCloud included). Set it to mirror your account.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Regions where workspaces refuse customer-managed keys, comma-separated (default none).
    #[arg(long, value_delimiter = ',')]
    pub no_cmk_regions: Vec<String>,
    /// AWS VPC endpoint IDs (or `prefix*` patterns), comma-separated, that connect to the
    /// region's relay endpoint service: their registrations get `use_case`
    /// DATAPLANE_RELAY_ACCESS, every other one GENERAL_ACCESS. Without it every endpoint is
    /// WORKSPACE_ACCESS until a network lists it for relay.
    #[arg(long, value_delimiter = ',')]
    pub relay_endpoints: Vec<String>,
    /// Enforce the account quotas of Databricks' limits page (credentials 55, keys 110, VPC
    /// endpoints 110, private access settings 55).
    #[arg(long)]
    pub account_quotas: bool,
    /// Override one quota, as KIND=N with KIND one of credentials, customer-managed-keys,
    /// vpc-endpoints, private-access-settings (repeatable; implies --account-quotas).
    #[arg(long, value_parser = parse_quota)]
    pub quota: Vec<(String, usize)>,
    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Fault: workspaces whose name contains this substring end FAILED, as long as they still use
    /// the credential they were created with (repeatable).
    #[arg(long)]
    pub fail_workspaces_matching: Vec<String>,
    /// Fault: for this many seconds after a role ARN is first seen, credential and workspace
    /// creates using it fail credential validation (an IAM propagation race).
    #[arg(long, default_value_t = 0)]
    pub credential_propagation_seconds: u64,
    /// Fault: added latency per API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Serve the workspaces' own hosts (`<deployment>.cloud.databricks.com`: the workspace token
    /// endpoint and SCIM Me) over TLS on this address, with a certificate from a test CA made at
    /// start-up (port 0 picks a free port).
    #[arg(long)]
    pub workspace_listen: Option<SocketAddr>,
    /// Write the test CA of the workspace hosts (PEM) here, for clients to trust.
    #[arg(long, requires = "workspace_listen")]
    pub workspace_ca_file: Option<PathBuf>,
    /// Publish the workspace hosts that resolve here, as `NAME ADDRESS:PORT` lines (for the
    /// operator's `--resolve-override '*.cloud.databricks.com=@FILE'`).
    #[arg(long, requires = "workspace_listen")]
    pub workspace_hosts_file: Option<PathBuf>,
    /// Seconds after a workspace turns RUNNING before its host is published (DNS propagation).
    #[arg(long, default_value_t = 0.0)]
    pub workspace_dns_delay_seconds: f64,
}

fn parse_quota(s: &str) -> Result<(String, usize), String> {
    let (kind, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=N, got {s:?}"))?;
    let n = n
        .parse::<usize>()
        .map_err(|e| format!("quota of {kind}: {e}"))?;
    if state::Kind::from_path(kind)
        .and_then(|k| Quotas::default().limit(k))
        .is_none()
    {
        return Err(format!(
            "no quota for {kind:?}: expected credentials, customer-managed-keys, vpc-endpoints or private-access-settings"
        ));
    }
    Ok((kind.to_string(), n))
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            account_id: self.account_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            provisioning: secs(self.provisioning_seconds),
            deletion: secs(self.deletion_seconds),
            endpoint_pending: secs(self.endpoint_pending_seconds),
            deployment_prefix: self.deployment_prefix.clone(),
            token_ttl: Duration::from_secs(self.token_ttl_seconds),
            in_use_linger: secs(self.in_use_linger_seconds),
            tags_apply_delay: secs(self.tags_apply_delay_seconds),
            rate_limit: (self.rate_limit > 0).then_some(self.rate_limit),
            regions: if self.regions.is_empty() {
                state::default_regions()
            } else {
                self.regions.clone()
            },
            no_cmk_regions: self.no_cmk_regions.clone(),
            workspace_hosts: self.workspace_listen.map(|listen| WorkspaceHosts {
                listen,
                ca_file: self.workspace_ca_file.clone(),
                hosts_file: self.workspace_hosts_file.clone(),
                dns_delay: secs(self.workspace_dns_delay_seconds),
            }),
            relay_endpoints: self.relay_endpoints.clone(),
            quotas: (self.account_quotas || !self.quota.is_empty()).then(|| {
                let mut q = Quotas::default();
                for (kind, n) in &self.quota {
                    let slot = match kind.as_str() {
                        "credentials" => &mut q.credentials,
                        "customer-managed-keys" => &mut q.customer_managed_keys,
                        "vpc-endpoints" => &mut q.vpc_endpoints,
                        _ => &mut q.private_access_settings,
                    };
                    *slot = *n;
                }
                q
            }),
        }
    }

    /// The faults these options describe.
    pub fn faults(&self) -> Faults {
        Faults {
            latency_ms: self.latency_ms,
            credential_propagation: (self.credential_propagation_seconds > 0).then_some(
                CredentialPropagation {
                    seconds: self.credential_propagation_seconds,
                    role_arn: None,
                },
            ),
            fail_workspaces: self
                .fail_workspaces_matching
                .iter()
                .map(|s| FailRule {
                    workspace_name_contains: Some(s.clone()),
                    while_initial_credentials: true,
                    ..FailRule::default()
                })
                .collect(),
            ..Faults::default()
        }
    }
}

async fn shutdown_signal() -> Result<(), SimError> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(SimError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(SimError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(SimError::Signal)
    }
}

/// Run the simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => return Err(SimError::TlsIncomplete),
    };
    let handle = start(args.config(), args.listen, tls).await?;
    handle.set_faults(args.faults());
    let cfg = handle.config();
    tracing::info!(
        url = %handle.base_url(),
        account_id = %cfg.account_id,
        client_id = %cfg.client_id,
        deployment_prefix = cfg.deployment_prefix.as_deref().unwrap_or("(none)"),
        "Databricks Account API simulator listening"
    );
    println!(
        "simulator listening on {} (account_id {}, client_id {})",
        handle.base_url(),
        cfg.account_id,
        cfg.client_id
    );
    if let Some(addr) = handle.workspace_addr {
        println!("workspace hosts (*.{WORKSPACE_DOMAIN}) served over TLS on {addr}");
    }
    let result = shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }

    /// The demo runs `databricks-account-sim` with no flags: the CLI defaults must be the documented config.
    #[test]
    fn the_command_line_defaults_are_the_default_config() {
        let cli = Cli::try_parse_from(["databricks-account-sim"]).unwrap();
        assert_eq!(cli.args.config(), SimConfig::default());
        assert_eq!(cli.args.listen, "127.0.0.1:8085".parse().unwrap());
        assert_eq!(cli.args.faults(), Faults::default());
    }

    /// The fault flags turn into the matching fault rules.
    #[test]
    fn fault_flags_become_faults() {
        let cli = Cli::try_parse_from([
            "databricks-account-sim",
            "--fail-workspaces-matching",
            "broken",
            "--credential-propagation-seconds",
            "7",
            "--provisioning-seconds",
            "0.5",
        ])
        .unwrap();
        let faults = cli.args.faults();
        assert_eq!(faults.fail_workspaces.len(), 1);
        assert!(faults.fail_workspaces[0].while_initial_credentials);
        assert_eq!(faults.credential_propagation.unwrap().seconds, 7);
        assert_eq!(cli.args.config().provisioning, Duration::from_millis(500));
    }

    /// `--relay-endpoints` names the relay endpoints; `--quota` sets one quota and turns the
    /// others on at the limits page's numbers.
    #[test]
    fn endpoint_and_quota_flags_set_the_account() {
        let cli = Cli::try_parse_from([
            "databricks-account-sim",
            "--relay-endpoints",
            "vpce-relay*,vpce-0abc",
            "--quota",
            "credentials=2",
            "--quota",
            "vpc-endpoints=3",
        ])
        .unwrap();
        let config = cli.args.config();
        assert_eq!(config.relay_endpoints, ["vpce-relay*", "vpce-0abc"]);
        assert_eq!(
            config.quotas,
            Some(Quotas {
                credentials: 2,
                vpc_endpoints: 3,
                ..Quotas::default()
            })
        );
        let cli = Cli::try_parse_from(["databricks-account-sim", "--account-quotas"]).unwrap();
        assert_eq!(cli.args.config().quotas, Some(Quotas::default()));
        assert!(
            Cli::try_parse_from(["databricks-account-sim", "--quota", "networks=3"]).is_err(),
            "networks have no quota"
        );
        assert!(Cli::try_parse_from(["databricks-account-sim", "--quota", "credentials"]).is_err());
    }

    /// `--regions` replaces the accepted list (to mirror an account); `--no-cmk-regions` turns
    /// the key-region rule on for the regions named.
    #[test]
    fn region_flags_set_the_account_regions() {
        let cli = Cli::try_parse_from([
            "databricks-account-sim",
            "--regions",
            "eu-west-3,sa-east-1",
            "--no-cmk-regions",
            "us-west-1",
        ])
        .unwrap();
        let config = cli.args.config();
        assert_eq!(config.regions, ["eu-west-3", "sa-east-1"]);
        assert_eq!(config.no_cmk_regions, ["us-west-1"]);
        assert!(
            SimConfig::default()
                .regions
                .iter()
                .any(|r| r == "ap-southeast-3")
        );
        assert!(SimConfig::default().no_cmk_regions.is_empty());
    }
}
