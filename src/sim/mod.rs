//! A local simulator of the Databricks Account API (AWS provisioning endpoints).
//!
//! Placeholder: the full simulator lands on the `sim` branch.

use std::net::SocketAddr;

/// Command-line options of `databricks-account-operator simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,
}

/// Errors of the simulator process.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Run the simulator until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let _ = args;
    Ok(())
}
