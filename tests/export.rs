//! `export` against a filled account: the manifests adopt every object with zero writes to the
//! account, references come out by name, and deleting them (default `Orphan`) leaves the account
//! as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;

use std::collections::BTreeMap;
use std::time::Duration;

use databricks_account_sim::SimHandle;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

/// Fills the account as a team using the official Databricks Python SDK would have
/// (tests/sdk/fill_account.py): a classic PrivateLink workspace with a customer-managed key, a
/// serverless workspace with a network connectivity configuration and a rule, and one credential
/// nothing uses. The SDK comes from the virtualenv of hack/sdk-venv.sh (created once, from PyPI)
/// and reads its usual environment variables.
async fn fill(sim: &SimHandle) {
    let (host, c) = (sim.base_url(), sim.config().clone());
    // Off the runtime's threads: the simulator answers the SDK from them meanwhile.
    tokio::task::spawn_blocking(move || run_fill(&host, &c))
        .await
        .unwrap();
}

fn run_fill(host: &str, c: &databricks_account_sim::SimConfig) {
    let root = env!("CARGO_MANIFEST_DIR");
    let venv = std::process::Command::new("bash")
        .arg(format!("{root}/hack/sdk-venv.sh"))
        .output()
        .unwrap();
    assert!(
        venv.status.success(),
        "hack/sdk-venv.sh: {}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout).unwrap();
    let out = std::process::Command::new(python.trim())
        .arg(format!("{root}/tests/sdk/fill_account.py"))
        .env("DATABRICKS_HOST", host)
        .env("DATABRICKS_ACCOUNT_ID", &c.account_id)
        .env("DATABRICKS_CLIENT_ID", &c.client_id)
        .env("DATABRICKS_CLIENT_SECRET", &c.client_secret)
        .env_remove("DATABRICKS_CONFIG_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK could not fill the account: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every remote object's ID, per list: what "the account is unchanged" compares.
fn ids(sim: &SimHandle) -> BTreeMap<String, Vec<String>> {
    sim.snapshot()
        .as_object()
        .unwrap()
        .iter()
        .map(|(list, items)| {
            let mut ids: Vec<String> = items
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    o.as_object()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| k.ends_with("_id") && *k != "account_id")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            ids.sort();
            (list.clone(), ids)
        })
        .collect()
}

fn writes(sim: &SimHandle) -> Vec<String> {
    sim.request_count()
        .entries
        .iter()
        .filter(|e| {
            ["POST ", "PATCH ", "PUT ", "DELETE "]
                .iter()
                .any(|m| e.route.starts_with(m))
                && !e.route.contains("/oidc/")
        })
        .map(|e| format!("{} {} x{}", e.route, e.status, e.count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_account_is_adopted_without_a_write_and_left_as_it_was() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let sim = common::fast_sim().await;
    fill(&sim).await;
    let before = ids(&sim);

    let dir = tempdir();
    let c = sim.config();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_databricks-account-operator"))
        .args(["export", "--out-dir"])
        .arg(&dir)
        .env_clear()
        .env("HOME", &dir)
        .env("DATABRICKS_HOST", sim.base_url())
        .env("DATABRICKS_ACCOUNT_ID", &c.account_id)
        .env("DATABRICKS_CLIENT_ID", &c.client_id)
        .env("DATABRICKS_CLIENT_SECRET", &c.client_secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "account-default.yaml",
            "credential-prod-cross-account.yaml",
            "credential-spare.yaml",
            "keyconfig-prod-services.yaml",
            "network-prod-vpc.yaml",
            "networkconnectivityconfig-serverless-egress.yaml",
            "privateaccesssettings-prod-pas.yaml",
            "storageconfig-prod-root.yaml",
            "vpcendpoint-prod-relay.yaml",
            "vpcendpoint-prod-rest.yaml",
            "workspace-prod-analytics.yaml",
            "workspace-serverless-sql.yaml",
        ]
    );
    let read = |f: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            text.starts_with("# Exported by databricks-account-operator"),
            "{text}"
        );
        assert!(!text.contains(&c.client_secret), "no secret in {f}");
        serde_yaml::from_str(text.split("---\n").nth(1).unwrap()).unwrap()
    };
    let ws = read("workspace-prod-analytics.yaml");
    assert_eq!(ws["spec"]["workspaceName"], "Prod Analytics");
    assert_eq!(ws["spec"]["managementPolicy"], "ObserveOnly");
    assert_eq!(ws["spec"]["deletionPolicy"], "Orphan");
    for (field, name) in [
        ("credentials", "prod-cross-account"),
        ("storageConfiguration", "prod-root"),
        ("network", "prod-vpc"),
        ("privateAccessSettings", "prod-pas"),
        ("managedServicesKey", "prod-services"),
    ] {
        assert_eq!(ws["spec"][field], json!({"name": name}), "{field}");
    }
    let net = read("network-prod-vpc.yaml");
    assert_eq!(
        net["spec"]["vpcEndpoints"],
        json!({"restApi": [{"name": "prod-rest"}], "dataplaneRelay": [{"name": "prod-relay"}]})
    );
    let serverless = read("workspace-serverless-sql.yaml");
    assert_eq!(serverless["spec"]["computeMode"], "SERVERLESS");
    assert_eq!(
        serverless["spec"]["networkConnectivityConfig"],
        json!({"name": "serverless-egress"})
    );

    // Apply it all (and the Secret, which export never writes) under an operator.
    let writes_before = writes(&sim);
    let ns = common::namespace(&client, "export").await;
    let _op = OperatorProcess::start("export", &ns, &[]);
    common::apply(&client, &ns, &common::account_docs(&sim, 100)[..1]).await;
    for f in &files {
        let doc = read(f);
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        let kind = obj.types.as_ref().unwrap().kind.clone();
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &common::resource(&kind))
            .patch(
                &obj.name_any(),
                &PatchParams::apply("export-test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    common::eventually("every exported object Ready", 90, || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            for kind in common::kinds() {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &ns, &common::resource(&kind));
                for o in api.list(&Default::default()).await.ok()?.items {
                    if common::condition(&o, "Ready")?.status != "True" {
                        return None;
                    }
                }
            }
            Some(())
        }
    })
    .await;
    assert_eq!(writes(&sim), writes_before, "adopting wrote to the account");

    // Deleting the manifests (Orphan) leaves the account as it was.
    common::remove_namespace(&client, &ns, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(writes(&sim), writes_before, "deleting wrote to the account");
    assert_eq!(ids(&sim), before);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dao-export-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
