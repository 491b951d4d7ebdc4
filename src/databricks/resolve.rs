//! Name resolution with overrides: the one seam through which a test, a demo or an air-gapped
//! mirror points Databricks host names at a local server. Every target is a loopback address, so
//! an override can redirect the operator's credentials to nothing but this machine.
//!
//! An entry is `PATTERN=TARGET`. `PATTERN` is a host name (`dbc-1.cloud.databricks.com`) or a
//! wildcard of one or more labels (`*.cloud.databricks.com`). `TARGET` is a loopback socket
//! address (`127.0.0.1:8443`, `[::1]:8443`), or `@FILE`: a file of `NAME ADDRESS:PORT` lines that
//! is read again at every lookup, so that what it lists can change while the operator runs (the
//! simulator publishes a workspace's name there once its DNS "propagates"). A name a pattern
//! covers resolves through that entry only: a `@FILE` that does not list it answers "no such host",
//! as DNS does for a name not yet published. Names no pattern covers go to the system resolver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest override file read (bytes): it lists host names, not data.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// One host name, lower case.
    Exact(String),
    /// Any name ending with this suffix (`.cloud.databricks.com`), with at least one label before it.
    Suffix(String),
}

impl Pattern {
    fn covers(&self, name: &str) -> bool {
        match self {
            Self::Exact(n) => n == name,
            Self::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Addr(SocketAddr),
    File(PathBuf),
}

/// A name a `@FILE` override covers but does not list: "no such host", as DNS answers for a name
/// that is not published yet.
#[derive(Debug, thiserror::Error)]
#[error("no such host {name} (not listed in {file})")]
pub struct NoSuchHost {
    name: String,
    file: String,
}

/// Resolver overrides (see the module documentation). Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveOverrides(Arc<Vec<(Pattern, Target)>>);

fn loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback() && addr.port() != 0
}

impl ResolveOverrides {
    /// Parses entries (`*.cloud.databricks.com=127.0.0.1:8443`,
    /// `*.cloud.databricks.com=@/run/sim/hosts`). Empty entries are skipped; a target that is not a
    /// loopback address with a port is refused.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in entries {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("resolve override {e:?}: {why}");
            let (pattern, target) = e
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=ADDRESS:PORT or NAME=@FILE"))?;
            let pattern = pattern.trim().to_ascii_lowercase();
            let pattern = match pattern.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') && valid_name(&suffix[1..]) => {
                    Pattern::Suffix(suffix.to_string())
                }
                Some(_) => return Err(bad("a wildcard is `*.` followed by a domain")),
                None if valid_name(&pattern) => Pattern::Exact(pattern),
                None => return Err(bad("not a host name")),
            };
            let target = target.trim();
            let target = match target.strip_prefix('@') {
                Some(file) if !file.is_empty() => Target::File(PathBuf::from(file)),
                Some(_) => return Err(bad("@ needs a file name")),
                None => {
                    let addr: SocketAddr = target
                        .parse()
                        .map_err(|_| bad("the target is not ADDRESS:PORT"))?;
                    if !loopback(&addr) {
                        return Err(bad(
                            "the target must be a loopback address with a port (127.0.0.1:PORT or [::1]:PORT)",
                        ));
                    }
                    Target::Addr(addr)
                }
            };
            out.push((pattern, target));
        }
        Ok(Self(Arc::new(out)))
    }

    /// Whether there are no overrides.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an entry covers `name` (it never reaches the system resolver).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|(p, _)| p.covers(&name))
    }

    /// What an overridden name resolves to: `None` when no entry covers it (the system resolver
    /// answers), otherwise the entry's answer.
    pub async fn lookup(&self, name: &str) -> Option<Result<Vec<SocketAddr>, NoSuchHost>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let (_, target) = self.0.iter().find(|(p, _)| p.covers(&name))?;
        Some(match target {
            Target::Addr(a) => Ok(vec![*a]),
            Target::File(path) => {
                let listed = read_listing(path).await;
                let addrs: Vec<SocketAddr> = listed
                    .into_iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, a)| a)
                    .collect();
                if addrs.is_empty() {
                    Err(NoSuchHost {
                        name,
                        file: path.display().to_string(),
                    })
                } else {
                    Ok(addrs)
                }
            }
        })
    }
}

/// Whether `s` is a host name: labels of letters, digits and `-`, joined by dots.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The `NAME ADDRESS:PORT` lines of an override file; a missing or unreadable file lists
/// nothing, and lines with another shape or a target that is not loopback are skipped.
async fn read_listing(path: &PathBuf) -> Vec<(String, SocketAddr)> {
    use tokio::io::AsyncReadExt;
    let Ok(file) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    let mut text = String::new();
    if file
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .await
        .is_err()
    {
        return Vec::new();
    }
    parse_listing(&text)
}

fn parse_listing(text: &str) -> Vec<(String, SocketAddr)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?.to_ascii_lowercase();
            let addr: SocketAddr = parts.next()?.parse().ok()?;
            (valid_name(&name) && loopback(&addr)).then_some((name, addr))
        })
        .collect()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl reqwest::dns::Resolve for ResolveOverrides {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            match this.lookup(&name).await {
                Some(Ok(addrs)) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Some(Err(e)) => Err(Box::new(e) as BoxError),
                None => {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                        .await
                        .map_err(|e| Box::new(e) as BoxError)?
                        .collect();
                    Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Overrides can only point at this machine: a CR author or a typo must not be able to send
    /// the operator's credentials elsewhere.
    #[test]
    fn overrides_accept_only_loopback_targets() {
        assert!(ResolveOverrides::parse(["*.cloud.databricks.com=127.0.0.1:8443"]).is_ok());
        assert!(ResolveOverrides::parse(["dbc-1.cloud.databricks.com=[::1]:8443"]).is_ok());
        assert!(ResolveOverrides::parse(["*.cloud.databricks.com=@/tmp/hosts"]).is_ok());
        assert!(ResolveOverrides::parse(["*.cloud.databricks.com=10.0.0.1:443"]).is_err());
        assert!(ResolveOverrides::parse(["*.cloud.databricks.com=127.0.0.1"]).is_err());
        assert!(ResolveOverrides::parse(["*.cloud.databricks.com=127.0.0.1:0"]).is_err());
        assert!(ResolveOverrides::parse(["*cloud.databricks.com=127.0.0.1:1"]).is_err());
        assert!(ResolveOverrides::parse(["https://x=127.0.0.1:1"]).is_err());
        assert!(ResolveOverrides::parse(["x.example"]).is_err());
        assert!(ResolveOverrides::parse(["x.example=@"]).is_err());
        assert!(ResolveOverrides::parse([""]).unwrap().is_empty());
    }

    /// A wildcard covers names below the domain, not the domain itself nor look-alikes.
    #[tokio::test]
    async fn wildcards_cover_subdomains_only() {
        let o = ResolveOverrides::parse(["*.cloud.databricks.com=127.0.0.1:9"]).unwrap();
        let at = |n: &'static str| {
            let o = o.clone();
            async move { o.lookup(n).await.map(|r| r.unwrap()) }
        };
        let nine: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(at("dbc-1.cloud.databricks.com").await, Some(vec![nine]));
        assert_eq!(at("DBC-1.Cloud.Databricks.com.").await, Some(vec![nine]));
        assert_eq!(at("cloud.databricks.com").await, None);
        assert_eq!(at("evilcloud.databricks.com").await, None);
        assert_eq!(at("dbc-1.cloud.databricks.com.evil.example").await, None);
        assert!(o.covers("dbc-1.cloud.databricks.com"));
        assert!(!o.covers("cloud.databricks.com"));
    }

    /// A file lists what is published now: a name it does not list does not resolve (as a name
    /// whose DNS has not propagated), and appears as soon as the file lists it.
    #[tokio::test]
    async fn a_file_target_publishes_names_as_they_are_listed() {
        let dir = std::env::temp_dir().join(format!("resolve-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        let spec = format!("*.cloud.databricks.com=@{}", file.display());
        let o = ResolveOverrides::parse([spec.as_str()]).unwrap();
        let name = "dbc-1.cloud.databricks.com";
        assert!(o.lookup(name).await.unwrap().is_err(), "no file yet");
        std::fs::write(
            &file,
            "# published\ndbc-2.cloud.databricks.com 127.0.0.1:7\nevil.cloud.databricks.com 10.0.0.1:443\n",
        )
        .unwrap();
        let e = o.lookup(name).await.unwrap().unwrap_err();
        assert!(e.to_string().contains("no such host dbc-1"), "{e}");
        assert!(
            o.lookup("evil.cloud.databricks.com")
                .await
                .unwrap()
                .is_err(),
            "a non-loopback line is ignored"
        );
        std::fs::write(&file, format!("{name} 127.0.0.1:7\n")).unwrap();
        assert_eq!(
            o.lookup(name).await.unwrap().unwrap(),
            vec!["127.0.0.1:7".parse::<SocketAddr>().unwrap()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
