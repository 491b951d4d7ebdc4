//! The `databricks-account-operator` binary: the operator (`run`) and the CRD generator (`crds`).
//! The local Account API simulator is a binary of its own, `databricks-account-sim`.

use clap::{Parser, Subcommand, ValueEnum};

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A deletion policy as a flag value (`Delete`, `Orphan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
enum DeletionPolicyFlag {
    /// Delete the Databricks object with the custom resource.
    Delete,
    /// Leave the Databricks object.
    Orphan,
}

impl From<DeletionPolicyFlag> for databricks_account_operator::crd::DeletionPolicy {
    fn from(p: DeletionPolicyFlag) -> Self {
        match p {
            DeletionPolicyFlag::Delete => Self::Delete,
            DeletionPolicyFlag::Orphan => Self::Orphan,
        }
    }
}

#[derive(Parser)]
#[command(name = "databricks-account-operator", version, about)]
struct Cli {
    /// Log format: `text` or `json`. The level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: one controller per kind, until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long, conflicts_with = "install")]
        out_dir: Option<std::path::PathBuf>,
        /// Create or replace the CRDs in the cluster of KUBECONFIG and wait until they are Established.
        #[arg(long)]
        install: bool,
    },
    /// Write manifests that adopt what an account already has (every object by `externalId`,
    /// references by name). Reads the account with the configuration the Databricks CLI and SDKs
    /// use: DATABRICKS_HOST, DATABRICKS_ACCOUNT_ID, DATABRICKS_CLIENT_ID/_SECRET (or
    /// DATABRICKS_USERNAME/_PASSWORD), DATABRICKS_CONFIG_PROFILE and ~/.databrickscfg. Only reads.
    Export(ExportArgs),
}

/// Options of `export`.
#[derive(clap::Args)]
struct ExportArgs {
    /// Write one file per object into this directory instead of printing one stream.
    #[arg(long)]
    out_dir: Option<std::path::PathBuf>,
    /// Only these kinds (repeat the flag): credential, storage, key, network, vpc-endpoint,
    /// private-access, ncc, workspace.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only this workspace (name or ID; repeat the flag) and the objects it uses.
    #[arg(long = "workspace")]
    workspaces: Vec<String>,
    /// Manage what is adopted (`managementPolicy: Full`); by default only observe it.
    #[arg(long)]
    manage: bool,
    /// deletionPolicy of every object: `Orphan` (default: deleting the manifests leaves the
    /// account as it is) or `Delete`.
    #[arg(long, value_enum, default_value_t = DeletionPolicyFlag::Orphan)]
    deletion_policy: DeletionPolicyFlag,
    /// The DatabricksAccount the objects name (written too).
    #[arg(long, default_value = "default")]
    account_name: String,
    /// The Secret that account reads its credentials from (not written: create it yourself).
    #[arg(long, default_value = "databricks-sp")]
    secret_name: String,
}

async fn export(args: ExportArgs) -> Result<(), String> {
    use databricks_account_operator::databricks::{AccountClient, AccountConfig};
    use databricks_account_operator::export;
    export::check_name("--account-name", &args.account_name)?;
    export::check_name("--secret-name", &args.secret_name)?;
    let opts = export::Options {
        kinds: export::parse_kinds(&args.kinds).map_err(|e| format!("--kind: {e}"))?,
        workspaces: args.workspaces,
        manage: args.manage,
        deletion_policy: format!("{:?}", args.deletion_policy),
        account_name: args.account_name,
        secret_name: args.secret_name,
    };
    let config = AccountConfig::from_env().map_err(|e| format!("account configuration: {e}"))?;
    let client = AccountClient::new(config.clone()).map_err(|e| e.to_string())?;
    let manifests = export::export(&client, &config, &opts)
        .await
        .map_err(|e| format!("cannot read the account: {e}"))?;
    let header = export::header(&config, &opts);
    match args.out_dir {
        None => {
            let text = export::to_yaml(&header, &manifests).map_err(|e| e.to_string())?;
            print!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for m in &manifests {
                let path = dir.join(export::file_name(m));
                let text =
                    export::to_yaml(&header, std::slice::from_ref(m)).map_err(|e| e.to_string())?;
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            eprintln!("wrote {} manifests to {}", manifests.len(), dir.display());
        }
    }
    Ok(())
}

/// Options of `run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Steady-state observation interval, e.g. `10m`.
    #[arg(long, env = "POLL_INTERVAL", default_value = "10m")]
    poll_interval: String,
    /// Observation interval while a workspace provisions or an endpoint is pending, e.g. `15s`.
    #[arg(long, env = "BUSY_POLL_INTERVAL", default_value = "15s")]
    busy_poll_interval: String,
    /// Deletion policy of objects that set none: `Delete` or `Orphan`.
    #[arg(long, env = "DEFAULT_DELETION_POLICY", value_enum, default_value_t = DeletionPolicyFlag::Delete)]
    default_deletion_policy: DeletionPolicyFlag,
    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Take part in leader election on a Lease, so only one replica reconciles.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "LEASE_NAME",
        default_value = "databricks-account-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// How long the lease stays valid without renewal, e.g. `15s`.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s")]
    lease_duration: String,
    /// PEM file of extra CA certificates every account's client trusts.
    #[arg(long, env = "EXTRA_CA_FILE")]
    extra_ca_file: Option<std::path::PathBuf>,
    /// Account API hosts the operator may call, comma-separated: host names or addresses, each
    /// optionally with :port. A DatabricksAccount naming another host gets HostNotAllowed and no
    /// request. Loopback (a local simulator) only when listed.
    #[arg(
        long,
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "accounts.cloud.databricks.com,accounts.cloud.databricks.us,accounts-dod.cloud.databricks.mil"
    )]
    allowed_hosts: Vec<String>,
    /// The token file exchanged by accounts with OAuth token federation (the chart mounts a
    /// projected service-account token here). Never taken from a custom resource.
    #[arg(
        long,
        env = "FEDERATION_TOKEN_FILE",
        default_value = "/var/run/secrets/databricks/token"
    )]
    federation_token_file: std::path::PathBuf,
    /// Keep a finalizer on each opted-in Secret while a DatabricksAccount names it, so that deletes
    /// finish even when a namespace delete removes the Secret first and the operator restarts.
    /// Needs `patch` on Secrets.
    #[arg(long, env = "HOLD_ACCOUNT_SECRETS", default_value_t = true, action = clap::ArgAction::Set)]
    hold_account_secrets: bool,
    /// Time limit of one HTTP exchange with the Account API, e.g. `60s`.
    #[arg(long, env = "API_TIMEOUT", default_value = "60s")]
    api_timeout: String,
    /// How long Databricks may take to show a workspace update it accepted (credentials, network,
    /// keys, ...) before it is reported as UpdateNotApplied, e.g. `20m`.
    #[arg(long, env = "UPDATE_APPLY_TIMEOUT", default_value = "20m")]
    update_apply_timeout: String,
    /// The same for workspace custom tags, which Databricks may take an hour to show.
    #[arg(long, env = "TAGS_APPLY_TIMEOUT", default_value = "1h")]
    tags_apply_timeout: String,
    /// How long a RUNNING workspace that does not answer (DNS not propagated yet, a refused
    /// login) is checked again with backoff before it is checked only at the poll interval, e.g.
    /// `30m`.
    #[arg(long, env = "REACHABLE_TIMEOUT", default_value = "30m")]
    reachable_timeout: String,
    /// Host names to resolve to a loopback address instead of through DNS, comma-separated
    /// `NAME=ADDRESS:PORT` or `NAME=@FILE` (a file of `NAME ADDRESS:PORT` lines, read at every
    /// lookup; a name it does not list does not resolve). NAME is a host or `*.domain`. Only
    /// loopback targets are accepted: for the local simulator and tests.
    #[arg(long, env = "RESOLVE_OVERRIDE", value_delimiter = ',')]
    resolve_override: Vec<String>,
}

async fn run(args: RunArgs) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use databricks_account_operator::controller::leader::{Leadership, LeaseConfig};
    use databricks_account_operator::controller::{
        self, Context, Settings, WriteFence, parse_flag_duration,
    };
    use databricks_account_operator::databricks::{AllowedHosts, ResolveOverrides};
    use futures::FutureExt;

    let extra_ca_pem = match &args.extra_ca_file {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| format!("--extra-ca-file {}: {e}", p.display()))?)
        }
        None => None,
    };
    let flag = |name: &str, v: &str| parse_flag_duration(v).map_err(|e| format!("--{name}: {e}"));
    let allowed_hosts = AllowedHosts::parse(args.allowed_hosts.iter().map(String::as_str))
        .map_err(|e| format!("--allowed-hosts: {e}"))?;
    let resolve = ResolveOverrides::parse(args.resolve_override.iter().map(String::as_str))
        .map_err(|e| format!("--resolve-override: {e}"))?;
    let fence = if args.leader_elect {
        WriteFence::closed()
    } else {
        WriteFence::open()
    };
    let settings = Settings {
        poll_interval: flag("poll-interval", &args.poll_interval)?,
        busy_poll_interval: flag("busy-poll-interval", &args.busy_poll_interval)?,
        apply_limits: controller::plan::ApplyLimits {
            update: flag("update-apply-timeout", &args.update_apply_timeout)?,
            tags: flag("tags-apply-timeout", &args.tags_apply_timeout)?,
        },
        default_deletion_policy: args.default_deletion_policy.into(),
        watch_namespaces: args
            .watch_namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect(),
        extra_ca_pem,
        allowed_hosts,
        resolve,
        reachable_timeout: flag("reachable-timeout", &args.reachable_timeout)?,
        federation_token_file: args.federation_token_file.clone(),
        api_timeout: flag("api-timeout", &args.api_timeout)?,
        fence: fence.clone(),
        hold_secrets: args.hold_account_secrets,
        ..Settings::default()
    };
    let lease_duration = flag("lease-duration", &args.lease_duration)?;
    if lease_duration < std::time::Duration::from_secs(3) {
        return Err("--lease-duration: at least 3s (renewals need time)".into());
    }
    let shutdown = shutdown_signal().boxed().shared();
    // Bounded connects and writes, so that a hung API server cannot hold a lease renewal (or
    // anything else) forever; reads stay long enough for watches.
    let mut kube_config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
    kube_config.connect_timeout = Some(std::time::Duration::from_secs(10));
    kube_config.write_timeout = Some(std::time::Duration::from_secs(10));
    // Every request to the API server is counted by verb in the metrics, once they exist.
    let metrics_sink = Arc::new(std::sync::OnceLock::new());
    let client = kube::client::ClientBuilder::try_from(kube_config)
        .map_err(|e| format!("cannot reach Kubernetes: {e}"))?
        .with_layer(&databricks_account_operator::metrics::kube_request_layer(
            metrics_sink.clone(),
        ))
        .build();
    // Each replica needs its own identity, or two would both believe they hold the lease.
    let instance = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "local".into());
            format!(
                "{host}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )
        });
    let ctx = Context::new(client.clone(), settings, instance.clone());
    let _ = metrics_sink.set(ctx.metrics.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(databricks_account_operator::http::serve(
        args.metrics_addr,
        ctx.metrics.clone(),
        ready.clone(),
        shutdown.clone(),
    ));
    ready.store(true, Ordering::Relaxed);

    let leadership = if args.leader_elect {
        let config = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: instance,
            duration: lease_duration,
            renew_every: lease_duration / 3,
            fence: fence.clone(),
        };
        tokio::select! {
            l = Leadership::acquire(client, config) => Some(Arc::new(l)),
            () = shutdown.clone() => return Ok(()),
        }
    } else {
        None
    };
    let lost = Arc::new(AtomicBool::new(false));
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    ctx.metrics.set_leader(true);
    if let Some(l) = leadership.clone() {
        let lost = lost.clone();
        let fence = fence.clone();
        let metrics = ctx.metrics.clone();
        tokio::spawn(async move {
            l.hold().await;
            fence.close();
            metrics.set_leader(false);
            lost.store(true, Ordering::Relaxed);
            let _ = lost_tx.send(());
        });
    }
    tracing::info!(namespaces = ?ctx.settings.watch_namespaces, "controllers starting");
    let stop = shutdown.clone();
    // Without leader election nothing sends: the channel closes at once and must not stop us.
    let leader = leadership.is_some();
    controller::run(ctx, async move {
        tokio::select! {
            () = stop => {}
            _ = lost_rx, if leader => {}
        }
    })
    .await;
    tracing::info!("controllers stopped");
    if lost.load(Ordering::Relaxed) {
        return Err("lost the leader lease; exiting so that only one replica reconciles".into());
    }
    if let Some(l) = leadership {
        fence.close();
        l.release().await;
    }
    let _ = server.await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn install_crds() -> Result<(), String> {
    use databricks_account_operator::crd;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
    crd::install(&client, &crd::all())
        .await
        .map_err(|e| e.to_string())?;
    println!("{} CRDs installed and Established", crd::all().len());
    Ok(())
}

fn crds(out_dir: Option<std::path::PathBuf>) -> Result<(), String> {
    use databricks_account_operator::crd;
    for c in crd::all() {
        let yaml = crd::to_yaml(&c).map_err(|e| e.to_string())?;
        match &out_dir {
            Some(dir) => {
                let path = dir.join(crd::file_name(&c));
                std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    // kube-runtime opens an INFO span per reconcile, which would prefix every line; our lines
    // name their object themselves, so the span shows only at DEBUG unless RUST_LOG says otherwise.
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let directives = if directives.contains("kube_runtime")
        || directives.contains("debug")
        || directives.contains("trace")
    {
        directives
    } else {
        format!("{directives},kube_runtime::controller=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// jemalloc, with the settings in `.cargo/config.toml`: it gives freed pages back to the system,
/// so memory returns after objects come and go (tests/churn.rs: 7-9% above the start after 1,000
/// objects, against 17-19% with glibc's allocator, which keeps free pages inside its heaps).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Crds { install: true, .. } => install_crds().await,
        Command::Crds { out_dir, .. } => crds(out_dir),
        Command::Run(args) => run(*args).await,
        Command::Export(args) => export(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
