//! Client configuration, including the way Databricks users already have it: `DATABRICKS_*`
//! environment variables and `~/.databrickscfg` profiles (`account-api.md` §6.5, §6.6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::auth::Credentials;
use super::error::ConfigError;
use secrecy::SecretString;

/// The default Account API host (AWS commercial).
pub const DEFAULT_HOST: &str = "https://accounts.cloud.databricks.com";
/// The Account API hosts an operator calls unless told otherwise: AWS commercial, GovCloud and
/// GovCloud DoD.
pub const DEFAULT_ALLOWED_HOSTS: [&str; 3] = [
    "accounts.cloud.databricks.com",
    "accounts.cloud.databricks.us",
    "accounts-dod.cloud.databricks.mil",
];

/// The hosts a client may call: each entry a host name or IP address (any port), or `host:port`.
/// Matching is exact (no wildcards); nothing is allowed that is not listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts(Vec<(String, Option<u16>)>);

impl Default for AllowedHosts {
    fn default() -> Self {
        Self(
            DEFAULT_ALLOWED_HOSTS
                .iter()
                .map(|h| (h.to_string(), None))
                .collect(),
        )
    }
}

impl AllowedHosts {
    /// Parses a list of entries (`accounts.cloud.databricks.com`, `127.0.0.1`, `localhost:8085`,
    /// `[::1]:8085`). Empty entries are skipped.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in entries {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("allowed host {e:?}: {why}");
            if e.contains("://") || e.contains('/') || e.contains('@') || e.contains('*') {
                return Err(bad("give a host name or address, optionally with :port"));
            }
            let url =
                url::Url::parse(&format!("https://{e}/")).map_err(|err| bad(&err.to_string()))?;
            let host = url
                .host_str()
                .ok_or_else(|| bad("no host"))?
                .to_ascii_lowercase();
            out.push((host, url.port()));
        }
        if out.is_empty() {
            return Err(
                "the allowed-hosts list is empty: the operator could call no account".into(),
            );
        }
        Ok(Self(out))
    }

    /// Whether `host` (an account's `https://host[:port]` URL) may be called.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(url) = url::Url::parse(host) else {
            return false;
        };
        let Some(h) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let port = url.port_or_known_default();
        self.0
            .iter()
            .any(|(allowed, p)| *allowed == h && p.is_none_or(|p| Some(p) == port))
    }

    /// The entries, for messages.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(h, p)| match p {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The default client-side rate limit, requests per second.
pub const DEFAULT_RATE_LIMIT: f64 = 15.0;

/// Everything the client needs to talk to one account.
#[derive(Clone, Debug)]
pub struct AccountConfig {
    /// Account console host, e.g. `https://accounts.cloud.databricks.com`.
    pub host: String,
    /// Account ID (a UUID).
    pub account_id: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Client-side rate limit in requests per second.
    pub rate_limit: f64,
    /// Extra PEM CA certificates to trust besides the public roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Timeout of one HTTP exchange.
    pub timeout: Duration,
    /// Total time one call may spend retrying transient failures.
    pub retry_budget: Duration,
    /// The hosts the client may call; `None` for no policy (a client a person configured).
    pub allowed_hosts: Option<AllowedHosts>,
    /// Added to the `User-Agent` in parentheses (the operator's replica identity).
    pub user_agent_comment: Option<String>,
    /// Host names resolved to loopback addresses instead of through DNS (tests, demos).
    pub resolve: super::resolve::ResolveOverrides,
}

impl AccountConfig {
    /// A configuration with the defaults for everything but host, account and credentials.
    pub fn new(
        host: impl Into<String>,
        account_id: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            host: host.into(),
            account_id: account_id.into(),
            credentials,
            rate_limit: DEFAULT_RATE_LIMIT,
            ca_bundle_pem: None,
            timeout: Duration::from_secs(60),
            retry_budget: Duration::from_secs(30),
            allowed_hosts: None,
            user_agent_comment: None,
            resolve: super::resolve::ResolveOverrides::default(),
        }
    }

    /// Reads `DATABRICKS_*` variables and, where they leave gaps or a profile is named, the
    /// `~/.databrickscfg` profile (or the file `DATABRICKS_CONFIG_FILE` names).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("DATABRICKS_"))
            .collect();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::from_sources(&env, home.as_deref())
    }

    /// [`Self::from_env`] with the environment and home directory given (for tests).
    pub fn from_sources(
        env: &BTreeMap<String, String>,
        home: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        for (attr, var) in [
            ("host", "DATABRICKS_HOST"),
            ("account_id", "DATABRICKS_ACCOUNT_ID"),
            ("client_id", "DATABRICKS_CLIENT_ID"),
            ("client_secret", "DATABRICKS_CLIENT_SECRET"),
            ("username", "DATABRICKS_USERNAME"),
            ("password", "DATABRICKS_PASSWORD"),
            ("rate_limit", "DATABRICKS_RATE_LIMIT"),
            ("auth_type", "DATABRICKS_AUTH_TYPE"),
            ("oidc_token_filepath", "DATABRICKS_OIDC_TOKEN_FILEPATH"),
        ] {
            if let Some(v) = get(var) {
                attrs.insert(attr.to_string(), v);
            }
        }
        let profile = get("DATABRICKS_CONFIG_PROFILE");
        let explicit = ["host", "client_id", "client_secret", "username", "password"]
            .iter()
            .any(|k| attrs.contains_key(*k));
        // As the SDKs do: the file is skipped when nothing names a profile and settings are given.
        if profile.is_some() || !explicit {
            let path = get("DATABRICKS_CONFIG_FILE")
                .map(|p| expand_home(&p, home))
                .or_else(|| home.map(|h| h.join(".databrickscfg")));
            if let Some(path) = path {
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        let sections = parse_ini(&text);
                        let name = profile.clone().or_else(|| {
                            sections
                                .get("__settings__")
                                .and_then(|s| s.get("default_profile"))
                                .cloned()
                        });
                        let section = match &name {
                            Some(n) => Some(sections.get(n).ok_or_else(|| ConfigError::File {
                                path: path.display().to_string(),
                                reason: format!("has no profile [{n}]"),
                            })?),
                            None => sections.get("DEFAULT"),
                        };
                        if let Some(section) = section {
                            for (k, v) in section {
                                attrs.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                    Err(e) if profile.is_some() => {
                        return Err(ConfigError::File {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        });
                    }
                    Err(_) => {}
                }
            }
        }
        let host = attrs
            .get("host")
            .cloned()
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let account_id = attrs
            .get("account_id")
            .cloned()
            .ok_or(ConfigError::Missing("account_id (DATABRICKS_ACCOUNT_ID)"))?;
        let auth_type = attrs.get("auth_type").map(String::as_str);
        let credentials = match (
            auth_type,
            attrs.get("client_id"),
            attrs.get("client_secret"),
            attrs.get("username"),
            attrs.get("password"),
            attrs.get("oidc_token_filepath"),
        ) {
            (Some("basic"), _, _, Some(u), Some(p), _)
            | (None, None, None, Some(u), Some(p), _) => Credentials::Basic {
                username: u.clone(),
                password: SecretString::from(p.clone()),
            },
            (Some("file-oidc") | None, id, None, _, _, Some(f)) => Credentials::Federation {
                client_id: id.cloned(),
                token_file: PathBuf::from(f),
            },
            (Some("oauth-m2m") | None, Some(id), Some(secret), _, _, _) => Credentials::OAuthM2M {
                client_id: id.clone(),
                client_secret: SecretString::from(secret.clone()),
            },
            _ => {
                return Err(ConfigError::Missing(
                    "credentials (DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, DATABRICKS_OIDC_TOKEN_FILEPATH, or DATABRICKS_USERNAME and DATABRICKS_PASSWORD)",
                ));
            }
        };
        let mut cfg = Self::new(host, account_id, credentials);
        if let Some(r) = attrs.get("rate_limit").and_then(|r| r.parse::<f64>().ok()) {
            cfg.rate_limit = r;
        }
        Ok(cfg)
    }
}

fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

/// Parses the INI dialect of `.databrickscfg`: `[section]`, `key = value`, full-line comments
/// with `#` or `;`, and inline comments only after a space (passwords may contain `#`).
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = "DEFAULT".to_string();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            out.entry(current.clone()).or_default();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = match v.find(" #").or_else(|| v.find(" ;")) {
                Some(i) => &v[..i],
                None => v,
            };
            out.entry(current.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// Checks a host URL: `https://`, or `http://` only for loopback addresses. Returns it without a
/// trailing slash.
pub fn validate_host(host: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(host).map_err(|e| ConfigError::InvalidHost {
        host: host.to_string(),
        reason: e.to_string(),
    })?;
    let bad = |reason: &str| ConfigError::InvalidHost {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback {
                return Err(bad(
                    "http:// is only allowed for loopback hosts (127.0.0.1, ::1, localhost); use https://",
                ));
            }
        }
        _ => return Err(bad("the scheme must be https://")),
    }
    if url.host().is_none() {
        return Err(bad("no host name"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad("give the host only, without a path"));
    }
    Ok(host.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only listed hosts pass, loopback included; a port pins the entry to that port.
    #[test]
    fn allowed_hosts_match_exactly() {
        let d = AllowedHosts::default();
        assert!(d.allows("https://accounts.cloud.databricks.com"));
        assert!(d.allows("https://ACCOUNTS.cloud.databricks.us/"));
        assert!(d.allows("https://accounts-dod.cloud.databricks.mil"));
        assert!(!d.allows("https://accounts.cloud.databricks.com.evil.example"));
        assert!(!d.allows("http://127.0.0.1:8085"));
        assert!(!d.allows("not a url"));
        let l = AllowedHosts::parse(["127.0.0.1", "localhost:8085", "[::1]:9000", ""]).unwrap();
        assert!(l.allows("http://127.0.0.1:1234"));
        assert!(l.allows("http://localhost:8085"));
        assert!(!l.allows("http://localhost:8086"));
        assert!(l.allows("http://[::1]:9000"));
        assert!(!l.allows("https://accounts.cloud.databricks.com"));
        assert_eq!(l.describe(), "127.0.0.1, localhost:8085, [::1]:9000");
        assert!(AllowedHosts::parse(["https://x.example"]).is_err());
        assert!(AllowedHosts::parse(["*.databricks.com"]).is_err());
        assert!(AllowedHosts::parse(["x.example/path"]).is_err());
        assert!(AllowedHosts::parse([""]).is_err());
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Environment variables alone configure OAuth M2M.
    #[test]
    fn environment_gives_m2m() {
        let c = AccountConfig::from_sources(
            &env(&[
                ("DATABRICKS_ACCOUNT_ID", "acc"),
                ("DATABRICKS_CLIENT_ID", "id"),
                ("DATABRICKS_CLIENT_SECRET", "sec"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.host, DEFAULT_HOST);
        assert_eq!(c.account_id, "acc");
        assert!(
            matches!(c.credentials, Credentials::OAuthM2M { ref client_id, .. } if client_id == "id")
        );
    }

    /// A named profile is read from the config file, with inline comments handled like the SDKs.
    #[test]
    fn named_profile_is_read_from_the_file() {
        let dir = std::env::temp_dir().join(format!("dbcfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(".databrickscfg"),
            "[DEFAULT]\nhost = https://x.cloud.databricks.com\n\n[ACCOUNT]\nhost = https://accounts.cloud.databricks.us # gov\naccount_id = a-1\nusername = u\npassword = p#ss\n",
        )
        .unwrap();
        let c = AccountConfig::from_sources(
            &env(&[("DATABRICKS_CONFIG_PROFILE", "ACCOUNT")]),
            Some(&dir),
        )
        .unwrap();
        assert_eq!(c.host, "https://accounts.cloud.databricks.us");
        match c.credentials {
            Credentials::Basic { username, password } => {
                assert_eq!(username, "u");
                assert_eq!(secrecy::ExposeSecret::expose_secret(&password), "p#ss");
            }
            other => panic!("{other:?}"),
        }
        let missing =
            AccountConfig::from_sources(&env(&[("DATABRICKS_CONFIG_PROFILE", "NOPE")]), Some(&dir));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("no profile [NOPE]")
        );
    }

    /// Plain http is refused except on loopback, where the simulator runs.
    #[test]
    fn http_only_for_loopback() {
        assert!(validate_host("http://127.0.0.1:8085").is_ok());
        assert!(validate_host("http://localhost:8085/").is_ok());
        assert!(validate_host("https://accounts.cloud.databricks.com/").is_ok());
        assert!(validate_host("http://accounts.cloud.databricks.com").is_err());
        assert!(validate_host("http://10.0.0.1").is_err());
        assert!(validate_host("https://accounts.cloud.databricks.com/api").is_err());
    }
}
