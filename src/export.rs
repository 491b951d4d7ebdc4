//! `export`: manifests for what an account already has, so that a cluster can take it over.
//!
//! Every object is adopted through `externalId`. References between exported objects are by
//! name (a workspace's credential, storage, network, keys, private access settings and network
//! connectivity configuration; a network's endpoints; private access settings' endpoints), and
//! by ID when the other end is not exported. By default every object is `ObserveOnly` with
//! `deletionPolicy: Orphan`: applying the output changes nothing in Databricks, and deleting it
//! from the cluster leaves the account as it was.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::crd::GROUP;
use crate::databricks::models::{
    Credential, CustomerManagedKey, Network, NetworkConnectivityConfig, PrivateAccessSettings,
    StorageConfiguration, VpcEndpoint, Workspace,
};
use crate::databricks::{AccountClient, AccountConfig, Credentials, Error};

/// The kinds `export` writes, by the names `--kind` accepts.
pub const KINDS: [(&str, &str); 8] = [
    ("credential", "DatabricksCredential"),
    ("storage", "DatabricksStorageConfig"),
    ("key", "DatabricksKeyConfig"),
    ("network", "DatabricksNetwork"),
    ("vpc-endpoint", "DatabricksVpcEndpoint"),
    ("private-access", "DatabricksPrivateAccessSettings"),
    ("ncc", "DatabricksNetworkConnectivityConfig"),
    ("workspace", "DatabricksWorkspace"),
];

/// What to export and how the manifests manage what they adopt.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only these kinds (names of [`KINDS`]); all when empty.
    pub kinds: BTreeSet<String>,
    /// Only these workspaces (name or ID) and the objects they use; all when empty.
    pub workspaces: Vec<String>,
    /// `Full` instead of `ObserveOnly`.
    pub manage: bool,
    /// `Orphan` (default) or `Delete`.
    pub deletion_policy: String,
    /// The `DatabricksAccount` the objects name.
    pub account_name: String,
    /// The Secret that account reads its credentials from (not written: it holds secrets).
    pub secret_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kinds: BTreeSet::new(),
            workspaces: Vec::new(),
            manage: false,
            deletion_policy: "Orphan".into(),
            account_name: "default".into(),
            secret_name: "databricks-sp".into(),
        }
    }
}

/// One manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The kind.
    pub kind: &'static str,
    /// `metadata.name`.
    pub name: String,
    /// The whole object.
    pub doc: Value,
}

/// Everything the account has, as listed.
#[derive(Default)]
struct Listed {
    credentials: Vec<Credential>,
    storage: Vec<StorageConfiguration>,
    keys: Vec<CustomerManagedKey>,
    networks: Vec<Network>,
    endpoints: Vec<VpcEndpoint>,
    private_access: Vec<PrivateAccessSettings>,
    nccs: Vec<NetworkConnectivityConfig>,
    workspaces: Vec<Workspace>,
}

/// A Kubernetes name from a Databricks name: lowercase letters, digits and `-`, at most 63
/// characters, starting and ending with a letter or digit; `fallback` when nothing is left.
fn k8s_name(remote: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in remote.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut name: String = out.trim_matches('-').chars().take(63).collect();
    name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        k8s_name(fallback, "object")
    } else {
        name
    }
}

/// Names for one kind's objects, unique within the kind: the Databricks name made valid, then
/// `-2`, `-3`… for objects whose names collide.
#[derive(Default)]
struct Names {
    by_id: HashMap<String, String>,
    taken: BTreeSet<String>,
}

impl Names {
    fn assign(&mut self, id: &str, remote: &str, fallback: &str) -> String {
        let base = k8s_name(remote, fallback);
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            let suffix = format!("-{n}");
            let keep = 63usize.saturating_sub(suffix.len());
            name = format!(
                "{}{suffix}",
                base.chars()
                    .take(keep)
                    .collect::<String>()
                    .trim_end_matches('-')
            );
            n += 1;
        }
        self.taken.insert(name.clone());
        self.by_id.insert(id.to_string(), name.clone());
        name
    }

    /// A reference: by name when exported, else by ID.
    fn reference(&self, id: &str) -> Value {
        match self.by_id.get(id) {
            Some(name) => json!({"name": name}),
            None => json!({"id": id}),
        }
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

async fn list_all(client: &AccountClient) -> Result<Listed, Error> {
    Ok(Listed {
        credentials: client.list().await?,
        storage: client.list().await?,
        keys: client.list().await?,
        networks: client.list().await?,
        endpoints: client.list().await?,
        private_access: client.list().await?,
        nccs: client.list().await?,
        workspaces: client.list().await?,
    })
}

/// Keeps the named workspaces and what they use (a network's and the private access settings'
/// endpoints included).
fn only_workspaces(listed: &mut Listed, wanted: &[String]) {
    if wanted.is_empty() {
        return;
    }
    listed.workspaces.retain(|w| {
        wanted
            .iter()
            .any(|x| *x == w.workspace_name || *x == w.workspace_id.to_string())
    });
    let mut used: BTreeSet<String> = BTreeSet::new();
    for w in &listed.workspaces {
        for id in [
            &w.credentials_id,
            &w.storage_configuration_id,
            &w.network_id,
            &w.private_access_settings_id,
            &w.managed_services_customer_managed_key_id,
            &w.storage_customer_managed_key_id,
            &w.network_connectivity_config_id,
        ]
        .into_iter()
        .flatten()
        {
            used.insert(id.clone());
        }
    }
    let mut endpoints: Vec<String> = Vec::new();
    for n in listed
        .networks
        .iter()
        .filter(|n| used.contains(&n.network_id))
    {
        if let Some(e) = &n.vpc_endpoints {
            endpoints.extend(e.rest_api.iter().cloned());
            endpoints.extend(e.dataplane_relay.iter().cloned());
        }
    }
    for p in listed
        .private_access
        .iter()
        .filter(|p| used.contains(&p.private_access_settings_id))
    {
        endpoints.extend(p.allowed_vpc_endpoint_ids.iter().cloned());
    }
    used.extend(endpoints);
    listed
        .credentials
        .retain(|o| used.contains(&o.credentials_id));
    listed
        .storage
        .retain(|o| used.contains(&o.storage_configuration_id));
    listed
        .keys
        .retain(|o| used.contains(&o.customer_managed_key_id));
    listed.networks.retain(|o| used.contains(&o.network_id));
    listed
        .endpoints
        .retain(|o| used.contains(&o.vpc_endpoint_id));
    listed
        .private_access
        .retain(|o| used.contains(&o.private_access_settings_id));
    listed
        .nccs
        .retain(|o| used.contains(&o.network_connectivity_config_id));
}

/// Reads the account and returns its manifests: the `DatabricksAccount` first, then the
/// objects, dependencies before the objects that use them.
pub async fn export(
    client: &AccountClient,
    config: &AccountConfig,
    opts: &Options,
) -> Result<Vec<Manifest>, Error> {
    let mut listed = list_all(client).await?;
    only_workspaces(&mut listed, &opts.workspaces);
    Ok(manifests(&listed, config, opts))
}

fn manifests(listed: &Listed, config: &AccountConfig, opts: &Options) -> Vec<Manifest> {
    let wanted = |kind: &str| {
        opts.kinds.is_empty()
            || KINDS
                .iter()
                .any(|(flag, k)| *k == kind && opts.kinds.contains(*flag))
    };
    let management = json!({
        "accountRef": {"name": opts.account_name},
        "managementPolicy": if opts.manage { "Full" } else { "ObserveOnly" },
        "deletionPolicy": opts.deletion_policy,
    });
    let mut out = vec![account(config, opts)];
    let mut push = |kind: &'static str, name: String, id: &str, spec: Value| {
        let mut spec = spec;
        if let (Some(s), Some(m)) = (spec.as_object_mut(), management.as_object()) {
            s.extend(m.clone());
            s.insert("externalId".into(), json!(id));
        }
        out.push(Manifest {
            kind,
            doc: json!({
                "apiVersion": format!("{GROUP}/v1alpha1"),
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec,
            }),
            name,
        });
    };

    let mut names: HashMap<&str, Names> = HashMap::new();
    let mut name_of = |kind: &'static str, id: &str, remote: &str, fallback: &str| {
        names.entry(kind).or_default().assign(id, remote, fallback)
    };
    // Names first, for every kind that is exported, so references can point at them.
    let mut assigned: Vec<(&'static str, String, String)> = Vec::new();
    macro_rules! assign {
        ($kind:literal, $items:expr, $id:expr, $remote:expr, $prefix:literal) => {
            if wanted($kind) {
                for o in $items {
                    let id: String = $id(o);
                    let remote: String = $remote(o);
                    let name = name_of($kind, &id, &remote, &format!("{}-{}", $prefix, short(&id)));
                    assigned.push(($kind, id, name));
                }
            }
        };
    }
    assign!(
        "DatabricksCredential",
        &listed.credentials,
        |o: &Credential| o.credentials_id.clone(),
        |o: &Credential| o.credentials_name.clone(),
        "credential"
    );
    assign!(
        "DatabricksStorageConfig",
        &listed.storage,
        |o: &StorageConfiguration| o.storage_configuration_id.clone(),
        |o: &StorageConfiguration| o.storage_configuration_name.clone(),
        "storage"
    );
    assign!(
        "DatabricksKeyConfig",
        &listed.keys,
        |o: &CustomerManagedKey| o.customer_managed_key_id.clone(),
        |o: &CustomerManagedKey| o
            .aws_key_info
            .as_ref()
            .and_then(|k| k.key_alias.clone())
            .map(|a| a.trim_start_matches("alias/").to_string())
            .unwrap_or_default(),
        "key"
    );
    assign!(
        "DatabricksVpcEndpoint",
        &listed.endpoints,
        |o: &VpcEndpoint| o.vpc_endpoint_id.clone(),
        |o: &VpcEndpoint| o.vpc_endpoint_name.clone(),
        "vpc-endpoint"
    );
    assign!(
        "DatabricksNetwork",
        &listed.networks,
        |o: &Network| o.network_id.clone(),
        |o: &Network| o.network_name.clone(),
        "network"
    );
    assign!(
        "DatabricksPrivateAccessSettings",
        &listed.private_access,
        |o: &PrivateAccessSettings| o.private_access_settings_id.clone(),
        |o: &PrivateAccessSettings| o.private_access_settings_name.clone(),
        "private-access"
    );
    assign!(
        "DatabricksNetworkConnectivityConfig",
        &listed.nccs,
        |o: &NetworkConnectivityConfig| o.network_connectivity_config_id.clone(),
        |o: &NetworkConnectivityConfig| o.name.clone(),
        "ncc"
    );
    assign!(
        "DatabricksWorkspace",
        &listed.workspaces,
        |o: &Workspace| o.workspace_id.to_string(),
        |o: &Workspace| o.workspace_name.clone(),
        "workspace"
    );
    let name = |kind: &'static str, id: &str| -> String {
        assigned
            .iter()
            .find(|(k, i, _)| *k == kind && i == id)
            .map(|(_, _, n)| n.clone())
            .unwrap_or_default()
    };
    let reference = |kind: &'static str, id: &str| {
        names
            .get(kind)
            .map_or_else(|| json!({"id": id}), |n| n.reference(id))
    };
    let refs = |kind: &'static str, ids: &[String]| -> Vec<Value> {
        ids.iter().map(|id| reference(kind, id)).collect()
    };

    if wanted("DatabricksCredential") {
        for c in &listed.credentials {
            push(
                "DatabricksCredential",
                name("DatabricksCredential", &c.credentials_id),
                &c.credentials_id,
                json!({
                    "credentialsName": c.credentials_name,
                    "roleArn": c.aws_credentials.sts_role.role_arn,
                }),
            );
        }
    }
    if wanted("DatabricksStorageConfig") {
        for s in &listed.storage {
            let mut spec = json!({
                "storageConfigurationName": s.storage_configuration_name,
                "bucketName": s.root_bucket_info.bucket_name,
            });
            if let Some(r) = &s.role_arn {
                spec["roleArn"] = json!(r);
            }
            push(
                "DatabricksStorageConfig",
                name("DatabricksStorageConfig", &s.storage_configuration_id),
                &s.storage_configuration_id,
                spec,
            );
        }
    }
    if wanted("DatabricksKeyConfig") {
        for k in &listed.keys {
            let info = k.aws_key_info.clone().unwrap_or_default();
            let mut spec = json!({"useCases": k.use_cases, "keyArn": info.key_arn});
            if let Some(a) = &info.key_alias {
                spec["keyAlias"] = json!(a);
            }
            if let Some(r) = info.reuse_key_for_cluster_volumes {
                spec["reuseKeyForClusterVolumes"] = json!(r);
            }
            push(
                "DatabricksKeyConfig",
                name("DatabricksKeyConfig", &k.customer_managed_key_id),
                &k.customer_managed_key_id,
                spec,
            );
        }
    }
    if wanted("DatabricksVpcEndpoint") {
        for e in &listed.endpoints {
            push(
                "DatabricksVpcEndpoint",
                name("DatabricksVpcEndpoint", &e.vpc_endpoint_id),
                &e.vpc_endpoint_id,
                json!({
                    "vpcEndpointName": e.vpc_endpoint_name,
                    "awsVpcEndpointId": e.aws_vpc_endpoint_id,
                    "region": e.region,
                }),
            );
        }
    }
    if wanted("DatabricksNetwork") {
        for n in &listed.networks {
            let mut spec = json!({
                "networkName": n.network_name,
                "vpcId": n.vpc_id,
                "subnetIds": n.subnet_ids,
                "securityGroupIds": n.security_group_ids,
            });
            if let Some(e) = n.vpc_endpoints.as_ref().filter(|e| !e.is_empty()) {
                spec["vpcEndpoints"] = json!({
                    "restApi": refs("DatabricksVpcEndpoint", &e.rest_api),
                    "dataplaneRelay": refs("DatabricksVpcEndpoint", &e.dataplane_relay),
                });
            }
            push(
                "DatabricksNetwork",
                name("DatabricksNetwork", &n.network_id),
                &n.network_id,
                spec,
            );
        }
    }
    if wanted("DatabricksPrivateAccessSettings") {
        for p in &listed.private_access {
            let mut spec = json!({
                "privateAccessSettingsName": p.private_access_settings_name,
                "region": p.region,
                "publicAccessEnabled": p.public_access_enabled.unwrap_or(false),
            });
            if let Some(level) = &p.private_access_level {
                spec["privateAccessLevel"] = json!(level);
            }
            if !p.allowed_vpc_endpoint_ids.is_empty() {
                spec["allowedVpcEndpoints"] =
                    json!(refs("DatabricksVpcEndpoint", &p.allowed_vpc_endpoint_ids));
            }
            push(
                "DatabricksPrivateAccessSettings",
                name(
                    "DatabricksPrivateAccessSettings",
                    &p.private_access_settings_id,
                ),
                &p.private_access_settings_id,
                spec,
            );
        }
    }
    if wanted("DatabricksNetworkConnectivityConfig") {
        for n in &listed.nccs {
            let rules: Vec<Value> = n
                .rules()
                .iter()
                .map(|r| {
                    let mut rule = json!({});
                    if let Some(s) = &r.endpoint_service {
                        rule["endpointService"] = json!(s);
                    }
                    if !r.domain_names.is_empty() {
                        rule["domainNames"] = json!(r.domain_names);
                    }
                    if !r.resource_names.is_empty() {
                        rule["resourceNames"] = json!(r.resource_names);
                    }
                    rule
                })
                .collect();
            let mut spec = json!({"name": n.name, "region": n.region});
            if !rules.is_empty() {
                spec["privateEndpointRules"] = json!(rules);
            }
            push(
                "DatabricksNetworkConnectivityConfig",
                name(
                    "DatabricksNetworkConnectivityConfig",
                    &n.network_connectivity_config_id,
                ),
                &n.network_connectivity_config_id,
                spec,
            );
        }
    }
    if wanted("DatabricksWorkspace") {
        for w in &listed.workspaces {
            let id = w.workspace_id.to_string();
            let mut spec = json!({"workspaceName": w.workspace_name});
            if let Some(r) = &w.aws_region {
                spec["awsRegion"] = json!(r);
            }
            if let Some(t) = &w.pricing_tier {
                spec["pricingTier"] = json!(t);
            }
            if let Some(m) = &w.compute_mode {
                let mode = json!(m);
                // Classic is the default and is written as no mode at all.
                if mode != json!("HYBRID") {
                    spec["computeMode"] = mode;
                }
            }
            if !w.custom_tags.is_empty() {
                spec["customTags"] = json!(w.custom_tags);
            }
            for (field, kind, value) in [
                ("credentials", "DatabricksCredential", &w.credentials_id),
                (
                    "storageConfiguration",
                    "DatabricksStorageConfig",
                    &w.storage_configuration_id,
                ),
                ("network", "DatabricksNetwork", &w.network_id),
                (
                    "privateAccessSettings",
                    "DatabricksPrivateAccessSettings",
                    &w.private_access_settings_id,
                ),
                (
                    "managedServicesKey",
                    "DatabricksKeyConfig",
                    &w.managed_services_customer_managed_key_id,
                ),
                (
                    "storageKey",
                    "DatabricksKeyConfig",
                    &w.storage_customer_managed_key_id,
                ),
                (
                    "networkConnectivityConfig",
                    "DatabricksNetworkConnectivityConfig",
                    &w.network_connectivity_config_id,
                ),
            ] {
                if let Some(id) = value.as_deref().filter(|v| !v.is_empty()) {
                    spec[field] = reference(kind, id);
                }
            }
            push(
                "DatabricksWorkspace",
                name("DatabricksWorkspace", &id),
                &id,
                spec,
            );
        }
    }
    out
}

/// The `DatabricksAccount` the objects name. Its Secret is not exported (it holds secrets); the
/// document says which keys it needs.
fn account(config: &AccountConfig, opts: &Options) -> Manifest {
    let secret_ref = json!({"name": opts.secret_name});
    let auth = match &config.credentials {
        Credentials::OAuthM2M { .. } => json!({"oauthM2M": {"secretRef": secret_ref}}),
        Credentials::Basic { .. } => json!({"basic": {"secretRef": secret_ref}}),
        Credentials::Federation { client_id, .. } => {
            let mut f = json!({});
            if let Some(id) = client_id {
                f["clientId"] = json!(id);
            }
            json!({"federation": f})
        }
    };
    Manifest {
        kind: "DatabricksAccount",
        name: opts.account_name.clone(),
        doc: json!({
            "apiVersion": format!("{GROUP}/v1alpha1"),
            "kind": "DatabricksAccount",
            "metadata": {"name": opts.account_name},
            "spec": {"host": config.host, "accountId": config.account_id, "auth": auth},
        }),
    }
}

/// The header of the output: what to create before applying it.
pub fn header(config: &AccountConfig, opts: &Options) -> String {
    let keys = match &config.credentials {
        Credentials::OAuthM2M { .. } => Some("client-id and client-secret"),
        Credentials::Basic { .. } => Some("username and password"),
        Credentials::Federation { .. } => None,
    };
    let mut h = format!(
        "# Exported by databricks-account-operator from account {} ({}).\n",
        config.account_id, config.host
    );
    if let Some(keys) = keys {
        h.push_str(&format!(
            "# Create the Secret {:?} first, with the keys {keys} and the label\n#   account.databricks-operator.dev/account-secret: \"true\"\n",
            opts.secret_name
        ));
    }
    h
}

/// Multi-document YAML of the manifests, after `header`.
pub fn to_yaml(header: &str, manifests: &[Manifest]) -> Result<String, serde_yaml::Error> {
    let mut out = String::from(header);
    for m in manifests {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&m.doc)?);
    }
    Ok(out)
}

/// The file a manifest goes to with `--out-dir`: `<kind>-<name>.yaml`, the kind lowercased
/// without its `Databricks` prefix.
pub fn file_name(m: &Manifest) -> String {
    format!(
        "{}-{}.yaml",
        m.kind.trim_start_matches("Databricks").to_lowercase(),
        m.name
    )
}

/// Checks a Kubernetes object name given on the command line (`--account-name`,
/// `--secret-name`): it names a file of `--out-dir` too, so nothing but a DNS subdomain passes.
pub fn check_name(flag: &str, name: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{flag} {name:?}: a Kubernetes name (lowercase letters, digits, '-' and '.', 1-253 characters)"
        ))
    }
}

/// Kinds of `--kind` values, refusing unknown ones.
pub fn parse_kinds(values: &[String]) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for v in values {
        if !KINDS.iter().any(|(flag, _)| flag == v) {
            return Err(format!(
                "unknown kind {v:?}; one of {}",
                KINDS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
            ));
        }
        out.insert(v.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Databricks names become valid, unique Kubernetes names; an empty one falls back.
    #[test]
    fn names_are_valid_and_unique() {
        let mut n = Names::default();
        assert_eq!(
            n.assign("1", "Prod VPC (us-east-1)", "network-1"),
            "prod-vpc-us-east-1"
        );
        assert_eq!(
            n.assign("2", "prod_vpc us.east.1", "network-2"),
            "prod-vpc-us-east-1-2"
        );
        assert_eq!(n.assign("3", "", "key-abcdef12"), "key-abcdef12");
        assert_eq!(n.assign("4", "---", "key-99"), "key-99");
        let long = n.assign("5", &"A".repeat(300), "x");
        assert_eq!(long.len(), 63);
        let again = n.assign("6", &"A".repeat(300), "x");
        assert_eq!(again.len(), 63);
        assert!(again.ends_with("-2"), "{again}");
        assert_eq!(n.reference("1"), json!({"name": "prod-vpc-us-east-1"}));
        assert_eq!(n.reference("other"), json!({"id": "other"}));
    }

    /// Names from the command line must be Kubernetes names (they also name files).
    #[test]
    fn names_from_flags_are_checked() {
        assert!(check_name("--account-name", "default").is_ok());
        assert!(check_name("--account-name", "team-a.prod").is_ok());
        for bad in ["", "../x", "a/b", "Default", "-a", "a-", &"a".repeat(254)] {
            assert!(check_name("--account-name", bad).is_err(), "{bad:?}");
        }
    }

    /// Unknown `--kind` values are refused with the list.
    #[test]
    fn kinds_are_checked() {
        assert!(parse_kinds(&["workspace".into(), "ncc".into()]).is_ok());
        let err = parse_kinds(&["workspaces".into()]).unwrap_err();
        assert!(err.contains("credential, storage"), "{err}");
    }
}
