//! The workspaces' own hosts: `https://<deployment>.cloud.databricks.com`, served over TLS on one
//! listener and told apart by the `Host` header, with the two endpoints a client needs to prove
//! a workspace answers: the workspace token endpoint (`POST /oidc/v1/token`, the same grants as
//! the account's) and SCIM `Me` (`GET /api/2.0/preview/scim/v2/Me`).
//!
//! TLS: a test CA and a leaf for `*.cloud.databricks.com` (also `.us`, `.mil`) are generated at
//! start-up with `rcgen`; the CA's PEM is written where the configuration says, for clients to
//! trust. DNS: a host "resolves" only once its workspace has been RUNNING for the configured
//! delay. The simulator publishes the hosts that resolve as `NAME ADDRESS:PORT` lines in a file,
//! rewritten as they change; a client maps the workspace domain to that file (the operator's
//! `--resolve-override '*.cloud.databricks.com=@FILE'`), so a new workspace's host fails to
//! resolve until then, as real DNS does while it propagates. A request that reaches the listener
//! for a host that is not published (a client that ignores the file) gets a 404.
//!
//! Simplification: a workspace token is an access token of the simulator like the account's, so
//! it would also be accepted by the Account API (a real one is not).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Where and how the workspaces' hosts are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceHosts {
    /// Address of the TLS listener shared by every workspace host (port 0: any free port).
    pub listen: SocketAddr,
    /// Where to write the test CA's certificate (PEM), for clients to trust.
    pub ca_file: Option<PathBuf>,
    /// Where to publish the hosts that resolve (`NAME ADDRESS:PORT` lines).
    pub hosts_file: Option<PathBuf>,
    /// How long after a workspace turns RUNNING its host stays unpublished (DNS propagation).
    pub dns_delay: Duration,
}

/// The domain the simulated workspaces live under.
pub const WORKSPACE_DOMAIN: &str = "cloud.databricks.com";

/// The certificate names of the workspace listener.
const CERT_NAMES: [&str; 3] = [
    "*.cloud.databricks.com",
    "*.cloud.databricks.us",
    "*.cloud.databricks.mil",
];

/// A test CA and a server configuration whose leaf it signed, for [`CERT_NAMES`].
pub(crate) fn generate_tls() -> Result<(String, tokio_rustls::TlsAcceptor), super::SimError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert_err = |e: rcgen::Error| super::SimError::Certificate(e.to_string());
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "databricks-account-sim test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(
        CERT_NAMES
            .iter()
            .map(|n| (*n).to_string())
            .collect::<Vec<_>>(),
    )
    .map_err(cert_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, CERT_NAMES[0]);
    let leaf_key = KeyPair::generate().map_err(cert_err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(cert_err)?;
    let chain = vec![
        CertificateDer::from(leaf_cert.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        ca_cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    ))
}

/// The deployment name a `Host` header names, if it is a workspace host.
pub(crate) fn deployment_of(host: &str) -> Option<String> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let (first, rest) = host.split_once('.')?;
    CERT_NAMES
        .iter()
        .any(|n| n.strip_prefix("*.") == Some(rest))
        .then(|| first.to_string())
        .filter(|d| !d.is_empty())
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Keeps `file` listing the published workspace hosts (those `published` returns) at `addr`,
/// until `shutdown`.
pub(crate) async fn publish(
    file: PathBuf,
    addr: SocketAddr,
    published: impl Fn() -> Vec<String> + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<String> = None;
    loop {
        let mut names = published();
        names.sort();
        let text: String = names
            .iter()
            .map(|d| format!("{d}.{WORKSPACE_DOMAIN} {addr}\n"))
            .collect();
        if last.as_deref() != Some(text.as_str()) {
            match write_atomically(&file, &text) {
                Ok(()) => last = Some(text),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot publish workspace hosts")
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only names one label below a workspace domain are workspace hosts.
    #[test]
    fn hosts_name_their_deployment() {
        assert_eq!(
            deployment_of("dbc-1.cloud.databricks.com").as_deref(),
            Some("dbc-1")
        );
        assert_eq!(
            deployment_of("DBC-1.cloud.databricks.com:443").as_deref(),
            Some("dbc-1")
        );
        assert_eq!(
            deployment_of("gov.cloud.databricks.us").as_deref(),
            Some("gov")
        );
        assert_eq!(deployment_of("cloud.databricks.com"), None);
        assert_eq!(deployment_of("a.b.cloud.databricks.com"), None);
        assert_eq!(deployment_of("127.0.0.1:8443"), None);
    }

    /// The generated chain is one rustls accepts.
    #[test]
    fn the_test_ca_signs_a_usable_leaf() {
        let (pem, _) = generate_tls().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
}
