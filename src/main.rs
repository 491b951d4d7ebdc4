//! The `databricks-account-operator` binary: the operator (`run`), the local Account API
//! simulator (`simulate`) and the CRD generator (`crds`).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "databricks-account-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a local simulator of the Databricks Account API (no Databricks account needed).
    Simulate(databricks_account_operator::sim::SimArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Simulate(args) => databricks_account_operator::sim::run(args)
            .await
            .map_err(|e| e.to_string()),
        Command::Crds { out_dir } => crds(out_dir),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
