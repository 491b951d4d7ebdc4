//! The operator end to end: the real controllers against the real API server and the simulator.
//!
//! One operator runs for the whole test binary (on its own thread and runtime, as it would in a
//! pod); every test gets its own namespace and its own simulator, named by that namespace's
//! `DatabricksAccount`. The operator's logs are captured so tests can scan them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apply, eventually, samples, samples_of};

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use databricks_account_operator::controller::{self, Context, Settings};
use databricks_account_operator::databricks::models as m;
use databricks_account_operator::databricks::{
    AccountClient, AccountConfig, AllowedHosts, Credentials, Secret,
};
use databricks_account_operator::sim::{
    self, CredentialPropagation, FailRule, Faults, LostResponse, RateLimit, ServerError, SimConfig,
    SimHandle,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;

// ------------------------------------------------------------------------------------------------
// The shared operator and its captured logs

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
static OPERATOR: OnceLock<()> = OnceLock::new();

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned()
}

/// The operator's own token file for OAuth token federation (a custom resource cannot name one).
fn federation_token_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dao-operator-test-token-{}", std::process::id()))
}

/// Starts the operator once per test binary.
fn ensure_operator() {
    OPERATOR.get_or_init(|| {
        let buf = LOGS.get_or_init(Arc::default).clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "databricks_account_operator=debug,kube=info,warn",
            ))
            .with_ansi(false)
            .with_writer(move || LogSink(buf.clone()))
            .try_init();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = common::client().await;
                common::install_crds(&client).await;
                let settings = Settings {
                    busy_poll_interval: Duration::from_secs(1),
                    credential_propagation_window: Duration::from_secs(60),
                    max_backoff: Duration::from_secs(5),
                    allowed_hosts: AllowedHosts::parse(["127.0.0.1"]).unwrap(),
                    federation_token_file: federation_token_file(),
                    // Tests poll every few seconds; the production floor is 10 s.
                    min_annotated_poll_interval: Duration::from_secs(1),
                    ..Settings::default()
                };
                let ctx = Context::new(client, settings, "test".into());
                tx.send(()).unwrap();
                controller::run(ctx, std::future::pending()).await;
            });
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("operator started");
    });
}

// ------------------------------------------------------------------------------------------------
// Helpers

fn sim_config() -> SimConfig {
    SimConfig {
        provisioning: Duration::from_secs(1),
        deletion: Duration::from_millis(500),
        endpoint_pending: Duration::from_millis(500),
        deployment_prefix: Some("acme".into()),
        ..SimConfig::default()
    }
}

async fn start_sim(config: SimConfig) -> SimHandle {
    sim::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

/// A client of the simulator, to arrange remote state behind the operator's back.
fn api_client(sim: &SimHandle) -> AccountClient {
    let c = sim.config();
    AccountClient::new(AccountConfig::new(
        sim.base_url(),
        c.account_id.clone(),
        Credentials::OAuthM2M {
            client_id: c.client_id.clone(),
            client_secret: Secret::new(c.client_secret.clone()),
        },
    ))
    .unwrap()
}

fn ours(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "account.databricks-operator.dev",
        "v1alpha1",
        kind,
    ))
}

fn dynamic(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ours(kind))
}

#[derive(Debug, Clone)]
struct Cond {
    status: String,
    reason: String,
    message: String,
}

fn condition(obj: &DynamicObject, type_: &str) -> Option<Cond> {
    let c = obj
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some(Cond {
        status: c["status"].as_str()?.into(),
        reason: c["reason"].as_str()?.into(),
        message: c["message"].as_str()?.into(),
    })
}

/// Waits until the object's `type_` condition has `reason`, and returns the object.
async fn wait_reason(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    secs: u64,
) -> DynamicObject {
    let api = dynamic(client, ns, kind);
    let mut last = None;
    let what = format!("{kind}/{name} {type_}={reason}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(obj) = api.get(name).await {
            let c = condition(&obj, type_);
            if c.as_ref().is_some_and(|c| c.reason == reason) {
                return obj;
            }
            last = c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last condition: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_ready(client: &Client, ns: &str, kind: &str, name: &str, secs: u64) -> DynamicObject {
    wait_reason(client, ns, kind, name, "Ready", "Available", secs).await
}

fn count(snapshot: &serde_json::Value, kind: &str) -> usize {
    snapshot[kind].as_array().map(Vec::len).unwrap_or(0)
}

const STACK_KINDS: [&str; 5] = [
    "credentials",
    "storage-configurations",
    "customer-managed-keys",
    "networks",
    "workspaces",
];

/// Every kind of the full stack has `n` remote objects in the simulator.
fn assert_stack_counts(sim: &SimHandle, n: usize) {
    let snap = sim.snapshot();
    for kind in STACK_KINDS {
        assert_eq!(
            count(&snap, kind),
            n,
            "{kind}: expected {n} remote objects\n{snap:#}"
        );
    }
}

fn api_calls(sim: &SimHandle) -> u64 {
    sim.request_count()
        .entries
        .iter()
        .filter(|e| !e.route.contains("token"))
        .map(|e| e.count)
        .sum()
}

async fn setup(prefix: &str) -> (Client, String) {
    ensure_operator();
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    (client, ns)
}

async fn delete_namespace_and_wait(client: &Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to disappear", 120, || async {
        Api::<Namespace>::all(client.clone())
            .get_opt(ns)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

fn credential_doc(name: &str, extra_spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksCredential\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\nspec:\n  roleArn: arn:aws:iam::123456789012:role/{name}\n{extra_spec}"
    )
}

// ------------------------------------------------------------------------------------------------
// Tests

/// One apply of `config/samples/` (workspace listed last, dependencies in any order) converges:
/// every object Ready, IDs in status, the workspace RUNNING with its URL, nothing created twice.
/// Deleting a still-referenced credential waits with `InUse`; deleting the namespace then
/// removes every remote object and the namespace goes away.
#[tokio::test]
async fn full_stack_converges_and_namespace_delete_cleans_up() {
    let (client, ns) = setup("stack").await;
    let sim = start_sim(sim_config()).await;
    let started = std::time::Instant::now();
    let mut docs = samples(&sim);
    docs.reverse();
    apply(&client, &ns, &docs).await;

    let ws = wait_ready(&client, &ns, "DatabricksWorkspace", "analytics", 90).await;
    let converged = started.elapsed();
    let s = &ws.data["status"];
    assert_eq!(s["workspaceStatus"], "RUNNING");
    assert_eq!(s["deploymentName"], "acme-analytics");
    assert_eq!(
        s["workspaceUrl"],
        "https://acme-analytics.cloud.databricks.com"
    );
    assert!(s["workspaceId"].as_i64().is_some());
    let uses = [
        (
            "DatabricksCredential",
            "cross-account",
            "credentialsId",
            "credentialsId",
        ),
        (
            "DatabricksStorageConfig",
            "root-bucket",
            "storageConfigurationId",
            "storageConfigurationId",
        ),
        (
            "DatabricksKeyConfig",
            "managed-services-key",
            "customerManagedKeyId",
            "managedServicesCustomerManagedKeyId",
        ),
        (
            "DatabricksNetwork",
            "workspace-vpc",
            "networkId",
            "networkId",
        ),
    ];
    for (kind, name, field, ws_field) in uses {
        let obj = wait_ready(&client, &ns, kind, name, 10).await;
        let id = obj.data["status"][field].as_str().unwrap().to_string();
        assert_eq!(
            s[ws_field].as_str(),
            Some(id.as_str()),
            "the workspace uses {kind}'s ID"
        );
    }
    assert_stack_counts(&sim, 1);
    let snap = sim.snapshot();
    assert_eq!(snap["workspaces"][0]["workspace_id"], s["workspaceId"]);
    // The network's status follows the workspace's use of it without waiting for the poll.
    eventually("the network to report VALID", 15, || async {
        let n = dynamic(&client, &ns, "DatabricksNetwork")
            .get("workspace-vpc")
            .await
            .ok()?;
        (n.data["status"]["vpcStatus"] == "VALID").then_some(())
    })
    .await;
    let calls = api_calls(&sim);
    println!(
        "full stack: converged in {converged:?}; {calls} API calls for 6 objects; {:?}",
        sim.request_count()
    );

    // A credential still used by a workspace is not deleted.
    let creds = dynamic(&client, &ns, "DatabricksCredential");
    creds
        .delete("cross-account", &DeleteParams::default())
        .await
        .unwrap();
    let held = wait_reason(
        &client,
        &ns,
        "DatabricksCredential",
        "cross-account",
        "Ready",
        "InUse",
        30,
    )
    .await;
    assert!(
        condition(&held, "Ready")
            .unwrap()
            .message
            .contains("DatabricksWorkspace/analytics")
    );
    assert_eq!(count(&sim.snapshot(), "credentials"), 1);

    // Deleting the namespace removes everything in a valid order, with no manual step.
    delete_namespace_and_wait(&client, &ns).await;
    assert_stack_counts(&sim, 0);
}

/// A create whose answer is lost (committed, connection dropped) leaves exactly one remote object,
/// adopted into status.
#[tokio::test]
async fn lost_create_response_is_adopted_not_duplicated() {
    let (client, ns) = setup("lost").await;
    let sim = start_sim(sim_config()).await;
    sim.set_faults(Faults {
        lost_response: Some(LostResponse {
            count: 1,
            route: Some("POST /credentials".into()),
        }),
        ..Faults::default()
    });
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential_doc("lost", "", ""));
    apply(&client, &ns, &docs).await;
    let obj = wait_ready(&client, &ns, "DatabricksCredential", "lost", 60).await;
    let snap = sim.snapshot();
    assert_eq!(count(&snap, "credentials"), 1, "{snap:#}");
    assert_eq!(
        obj.data["status"]["credentialsId"],
        snap["credentials"][0]["credentials_id"]
    );
    assert!(
        obj.data["status"]["pendingCreate"].is_null(),
        "{:#}",
        obj.data["status"]
    );
    assert_eq!(
        sim.request_count().total("POST /credentials"),
        1,
        "no second create"
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// The state an operator killed between the create call and the status write leaves behind (a
/// pending-create marker, and the remote object created): the next operator adopts the object
/// instead of creating another or calling it a name conflict.
#[tokio::test]
async fn restart_after_a_crash_mid_create_adopts_the_object() {
    let (client, ns) = setup("crash").await;
    let sim = start_sim(sim_config()).await;
    apply(
        &client,
        &ns,
        &samples_of(&sim, &["Secret", "DatabricksAccount"]),
    )
    .await;
    wait_ready(&client, &ns, "DatabricksAccount", "default", 30).await;
    let paused = r#""account.databricks-operator.dev/paused": "true""#;
    apply(&client, &ns, &[credential_doc("crashed", "", paused)]).await;
    wait_reason(
        &client,
        &ns,
        "DatabricksCredential",
        "crashed",
        "Synced",
        "Paused",
        30,
    )
    .await;

    // What the crashed operator had done: marker stored, create sent and committed.
    let creds = dynamic(&client, &ns, "DatabricksCredential");
    let marker = serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksCredential",
        "status": {"pendingCreate": {"name": "crashed", "since": "2026-01-01T00:00:00Z"}}
    });
    creds
        .patch_status(
            "crashed",
            &PatchParams::apply("crashed-operator").force(),
            &Patch::Apply(&marker),
        )
        .await
        .unwrap();
    let remote: m::Credential = api_client(&sim)
        .create::<m::Credential>(&m::CreateCredential {
            credentials_name: "crashed".into(),
            aws_credentials: m::AwsCredentials {
                sts_role: m::StsRole {
                    role_arn: "arn:aws:iam::123456789012:role/crashed".into(),
                    external_id: None,
                },
            },
        })
        .await
        .unwrap();

    let unpause = serde_json::json!({"metadata": {"annotations": {"account.databricks-operator.dev/paused": null}}});
    creds
        .patch("crashed", &PatchParams::default(), &Patch::Merge(&unpause))
        .await
        .unwrap();
    let obj = wait_ready(&client, &ns, "DatabricksCredential", "crashed", 30).await;
    assert_eq!(
        obj.data["status"]["credentialsId"].as_str(),
        Some(remote.credentials_id.as_str())
    );
    assert_eq!(count(&sim.snapshot(), "credentials"), 1);
    assert_eq!(
        sim.request_count().total("POST /credentials"),
        1,
        "only the crashed operator's create"
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// Storms of 429s and 503s slow the stack down but it converges, with no duplicate and no hot loop.
#[tokio::test]
async fn rate_limit_and_server_error_storms_still_converge() {
    let (client, ns) = setup("storm").await;
    let sim = start_sim(sim_config()).await;
    sim.set_faults(Faults {
        rate_limit: Some(RateLimit {
            count: 8,
            retry_after_seconds: 1,
            path_contains: None,
        }),
        server_error: Some(ServerError {
            count: 5,
            status: 503,
            path_contains: None,
        }),
        ..Faults::default()
    });
    apply(&client, &ns, &samples(&sim)).await;
    wait_ready(&client, &ns, "DatabricksWorkspace", "analytics", 120).await;
    assert_stack_counts(&sim, 1);
    let calls = api_calls(&sim);
    println!("storm: {calls} API calls including 13 injected failures");
    // Without faults the stack takes about 25 calls; the 13 failures add their retries, no more.
    assert!(
        calls < 70,
        "a hot loop would show here: {calls} calls, {:?}",
        sim.request_count()
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// A workspace that fails to provision is kept and explained with the network's errors; pointing
/// it at a working credential patches it, and it reaches RUNNING without a second workspace.
#[tokio::test]
async fn failed_workspace_is_explained_then_fixed_by_a_spec_change() {
    let (client, ns) = setup("failed").await;
    let sim = start_sim(sim_config()).await;
    sim.set_faults(Faults {
        fail_workspaces: vec![FailRule {
            workspace_name_contains: Some("analytics".into()),
            while_initial_credentials: true,
            ..FailRule::default()
        }],
        ..Faults::default()
    });
    apply(&client, &ns, &samples(&sim)).await;
    let ws = wait_reason(
        &client,
        &ns,
        "DatabricksWorkspace",
        "analytics",
        "Ready",
        "ProvisioningFailed",
        60,
    )
    .await;
    let msg = condition(&ws, "Ready").unwrap().message;
    assert!(
        msg.contains("network errors") && msg.contains("securityGroup"),
        "{msg}"
    );
    assert_eq!(ws.data["status"]["workspaceStatus"], "FAILED");

    apply(&client, &ns, &[credential_doc("cross-account-v2", "", "")]).await;
    let v2 = wait_ready(&client, &ns, "DatabricksCredential", "cross-account-v2", 30).await;
    let patch = serde_json::json!({"spec": {"credentials": {"name": "cross-account-v2"}}});
    dynamic(&client, &ns, "DatabricksWorkspace")
        .patch("analytics", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let ws = wait_ready(&client, &ns, "DatabricksWorkspace", "analytics", 60).await;
    assert_eq!(ws.data["status"]["workspaceStatus"], "RUNNING");
    let snap = sim.snapshot();
    assert_eq!(count(&snap, "workspaces"), 1);
    assert_eq!(
        snap["workspaces"][0]["credentials_id"],
        v2.data["status"]["credentialsId"]
    );
    assert!(sim.request_count().total("PATCH /workspaces/{id}") >= 1);
    delete_namespace_and_wait(&client, &ns).await;
}

/// A request the API refuses is reported as `ApiRejected` and not retried in a loop, while the
/// other objects of the namespace reconcile normally.
#[tokio::test]
async fn api_rejection_is_reported_without_a_retry_storm() {
    let (client, ns) = setup("rejected").await;
    // No deployment-name prefix: the sample's deploymentName is refused by the API.
    let sim = start_sim(SimConfig {
        deployment_prefix: None,
        ..sim_config()
    })
    .await;
    apply(&client, &ns, &samples(&sim)).await;
    let ws = wait_reason(
        &client,
        &ns,
        "DatabricksWorkspace",
        "analytics",
        "Synced",
        "ApiRejected",
        60,
    )
    .await;
    let msg = condition(&ws, "Synced").unwrap().message;
    assert!(msg.contains("deployment name prefix"), "{msg}");
    let creates = sim.request_count().total("POST /workspaces");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sim.request_count().total("POST /workspaces"),
        creates,
        "no retries before the poll interval"
    );
    assert!(creates <= 2, "{creates} creates");
    wait_ready(&client, &ns, "DatabricksNetwork", "workspace-vpc", 10).await;
    assert_eq!(count(&sim.snapshot(), "workspaces"), 0);
    delete_namespace_and_wait(&client, &ns).await;
}

/// A change to a field Databricks cannot change is reported, naming the field, even on an API
/// server that ignores the CRD's transition rules; the remote object is left as it is.
#[tokio::test]
async fn immutable_field_change_is_reported() {
    let (client, ns) = setup("immutable").await;
    let sim = start_sim(sim_config()).await;
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential_doc("cred", "", ""));
    apply(&client, &ns, &docs).await;
    wait_ready(&client, &ns, "DatabricksCredential", "cred", 30).await;
    let patch = serde_json::json!({"spec": {"roleArn": "arn:aws:iam::123456789012:role/other"}});
    match dynamic(&client, &ns, "DatabricksCredential")
        .patch("cred", &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        // A server with CEL (1.25+) refuses the change at admission.
        Err(kube::Error::Api(e)) => {
            assert!(e.message.contains("roleArn cannot be changed"), "{e:?}")
        }
        Err(e) => panic!("{e}"),
        // An older server accepts it; the operator reports it.
        Ok(_) => {
            let obj = wait_reason(
                &client,
                &ns,
                "DatabricksCredential",
                "cred",
                "Synced",
                "ImmutableFieldChanged",
                30,
            )
            .await;
            assert!(
                condition(&obj, "Synced")
                    .unwrap()
                    .message
                    .contains("roleArn")
            );
            assert_eq!(
                condition(&obj, "Ready").unwrap().status,
                "True",
                "the credential itself still works"
            );
        }
    }
    let snap = sim.snapshot();
    assert_eq!(
        snap["credentials"][0]["aws_credentials"]["sts_role"]["role_arn"],
        "arn:aws:iam::123456789012:role/cred"
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// `Orphan` leaves the remote object; `ObserveOnly` reads and never writes or deletes;
/// `externalId` adopts an existing object; `paused` makes no API calls.
#[tokio::test]
async fn policies_orphan_observe_only_external_id_and_paused() {
    let (client, ns) = setup("policies").await;
    let sim = start_sim(sim_config()).await;
    let api = api_client(&sim);
    let existing = |name: &str| m::CreateStorageConfiguration {
        storage_configuration_name: name.into(),
        root_bucket_info: m::RootBucketInfo {
            bucket_name: "existing-bucket".into(),
        },
        role_arn: None,
    };
    let observed: m::StorageConfiguration = api
        .create::<m::StorageConfiguration>(&existing("observed"))
        .await
        .unwrap();
    let adopted: m::StorageConfiguration = api
        .create::<m::StorageConfiguration>(&existing("legacy"))
        .await
        .unwrap();

    let storage = |name: &str, extra: &str| {
        format!(
            "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksStorageConfig\nmetadata:\n  name: {name}\nspec:\n  bucketName: existing-bucket\n{extra}"
        )
    };
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential_doc("orphaned", "  deletionPolicy: Orphan\n", ""));
    docs.push(storage("observed", "  managementPolicy: ObserveOnly\n"));
    docs.push(storage(
        "adopt",
        &format!(
            "  externalId: {}\n  storageConfigurationName: legacy\n",
            adopted.storage_configuration_id
        ),
    ));
    apply(&client, &ns, &docs).await;

    wait_ready(&client, &ns, "DatabricksCredential", "orphaned", 30).await;
    let obs = wait_ready(&client, &ns, "DatabricksStorageConfig", "observed", 30).await;
    assert_eq!(
        obs.data["status"]["storageConfigurationId"].as_str(),
        Some(observed.storage_configuration_id.as_str())
    );
    assert_eq!(condition(&obs, "Synced").unwrap().reason, "ObserveOnly");
    let ad = wait_ready(&client, &ns, "DatabricksStorageConfig", "adopt", 30).await;
    assert_eq!(
        ad.data["status"]["storageConfigurationId"].as_str(),
        Some(adopted.storage_configuration_id.as_str())
    );
    assert_eq!(
        sim.request_count().total("POST /storage-configurations"),
        2,
        "only the two made by the test"
    );

    // Paused: not a single API call for it.
    let before = sim.request_count().total("POST /credentials");
    let paused = r#""account.databricks-operator.dev/paused": "true""#;
    apply(&client, &ns, &[credential_doc("frozen", "", paused)]).await;
    wait_reason(
        &client,
        &ns,
        "DatabricksCredential",
        "frozen",
        "Synced",
        "Paused",
        30,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.request_count().total("POST /credentials"), before);
    assert!(
        sim.snapshot()["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["credentials_name"] != "frozen")
    );

    // A paused object's deletion waits too (no API calls): unpause it so the namespace can go.
    let unpause = serde_json::json!({"metadata": {"annotations": {"account.databricks-operator.dev/paused": null}}});
    dynamic(&client, &ns, "DatabricksCredential")
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&unpause))
        .await
        .unwrap();

    // Deletes: Orphan and ObserveOnly leave the remote objects; the adopted one (Full, Delete) goes.
    for (kind, name) in [
        ("DatabricksCredential", "orphaned"),
        ("DatabricksStorageConfig", "observed"),
        ("DatabricksStorageConfig", "adopt"),
    ] {
        dynamic(&client, &ns, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        eventually(&format!("{kind}/{name} to go"), 30, || async {
            dynamic(&client, &ns, kind)
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    let snap = sim.snapshot();
    let names = |kind: &str, field: &str| -> Vec<String> {
        snap[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[field].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("credentials", "credentials_name").contains(&"orphaned".to_string()));
    assert_eq!(
        names("storage-configurations", "storage_configuration_name"),
        vec!["observed".to_string()]
    );
    assert_eq!(
        sim.request_count()
            .total("DELETE /storage-configurations/{id}"),
        1
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// The client secret in the account's Secret never appears in the operator's logs, in events, or
/// in any status, neither when it works nor when it is refused.
#[tokio::test]
async fn secrets_never_reach_logs_events_or_status() {
    let (client, ns) = setup("secrets").await;
    let secret = format!("s3cr3t-{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("wr0ng-{}", uuid::Uuid::new_v4().simple());
    let sim = start_sim(SimConfig {
        client_secret: secret.clone(),
        ..sim_config()
    })
    .await;
    apply(&client, &ns, &samples(&sim)).await;
    wait_ready(&client, &ns, "DatabricksWorkspace", "analytics", 90).await;

    // A second namespace with a wrong secret: refused, and the refusal is reported.
    let bad_ns = common::namespace(&client, "secrets-bad").await;
    let bad: Vec<String> = samples_of(&sim, &["Secret", "DatabricksAccount"])
        .into_iter()
        .map(|d| d.replace(&secret, &wrong))
        .collect();
    apply(&client, &bad_ns, &bad).await;
    let refused = wait_reason(
        &client,
        &bad_ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "AuthenticationFailed",
        60,
    )
    .await;
    assert!(
        condition(&refused, "Ready")
            .unwrap()
            .message
            .contains("credentials")
    );

    let mut haystack = logs();
    for namespace in [&ns, &bad_ns] {
        let events: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event")),
        );
        let events = events.list(&ListParams::default()).await.unwrap();
        assert!(
            !events.items.is_empty() || namespace == &bad_ns,
            "the operator records events"
        );
        haystack.push_str(&serde_json::to_string(&events.items).unwrap());
        for kind in [
            "DatabricksAccount",
            "DatabricksCredential",
            "DatabricksStorageConfig",
            "DatabricksKeyConfig",
            "DatabricksNetwork",
            "DatabricksWorkspace",
        ] {
            let objs = dynamic(&client, namespace, kind)
                .list(&ListParams::default())
                .await
                .unwrap();
            for o in objs {
                haystack.push_str(&o.data["status"].to_string());
            }
        }
    }
    assert!(haystack.len() > 1000, "there is something to scan");
    assert!(!haystack.contains(&secret), "the client secret leaked");
    assert!(!haystack.contains(&wrong), "the refused secret leaked");
    delete_namespace_and_wait(&client, &ns).await;
    delete_namespace_and_wait(&client, &bad_ns).await;
}

/// The IAM-propagation error on a new role is retried with `CredentialValidationPending` until
/// Databricks can use the role, then the credential is created once.
#[tokio::test]
async fn credential_validation_is_retried_while_iam_propagates() {
    let (client, ns) = setup("iam").await;
    let sim = start_sim(sim_config()).await;
    sim.set_faults(Faults {
        credential_propagation: Some(CredentialPropagation {
            seconds: 4,
            role_arn: None,
        }),
        ..Faults::default()
    });
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential_doc("fresh-role", "", ""));
    apply(&client, &ns, &docs).await;
    let pending = wait_reason(
        &client,
        &ns,
        "DatabricksCredential",
        "fresh-role",
        "Ready",
        "CredentialValidationPending",
        30,
    )
    .await;
    assert!(
        condition(&pending, "Ready")
            .unwrap()
            .message
            .contains("propagate")
    );
    wait_ready(&client, &ns, "DatabricksCredential", "fresh-role", 60).await;
    assert_eq!(count(&sim.snapshot(), "credentials"), 1);
    let refused = sim.request_count().get("POST /credentials", 400);
    assert!(
        (1..=6).contains(&refused),
        "retried with backoff, not hammered: {refused}"
    );
    delete_namespace_and_wait(&client, &ns).await;
}

/// An object deleted in Databricks behind the operator's back is created again, and an event
/// says so.
#[tokio::test]
async fn remote_object_deleted_outside_kubernetes_is_recreated() {
    let (client, ns) = setup("drift").await;
    let sim = start_sim(sim_config()).await;
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential_doc(
        "drifting",
        "",
        r#""account.databricks-operator.dev/poll-interval": "2s""#,
    ));
    apply(&client, &ns, &docs).await;
    let first = wait_ready(&client, &ns, "DatabricksCredential", "drifting", 30).await;
    let first_id = first.data["status"]["credentialsId"]
        .as_str()
        .unwrap()
        .to_string();
    api_client(&sim)
        .delete::<m::Credential>(&first_id)
        .await
        .unwrap();

    let second_id = eventually("a new credential", 30, || async {
        let obj = dynamic(&client, &ns, "DatabricksCredential")
            .get("drifting")
            .await
            .ok()?;
        let id = obj.data["status"]["credentialsId"].as_str()?.to_string();
        (id != first_id && condition(&obj, "Ready")?.status == "True").then_some(id)
    })
    .await;
    let snap = sim.snapshot();
    assert_eq!(count(&snap, "credentials"), 1);
    assert_eq!(
        snap["credentials"][0]["credentials_id"].as_str(),
        Some(second_id.as_str())
    );
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event")),
    );
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|e| e.data["reason"].as_str().map(str::to_string))
        .collect();
    assert!(reasons.iter().any(|r| r == "RemoteDeleted"), "{reasons:?}");
    delete_namespace_and_wait(&client, &ns).await;
}

/// Observation at rest costs one list per kind per account per poll interval, however many
/// objects there are: 20 credentials polled every 3 s make about one list call every 3 s.
#[tokio::test]
async fn steady_state_observation_does_not_grow_with_the_number_of_objects() {
    let (client, ns) = setup("scale").await;
    let sim = start_sim(sim_config()).await;
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    let poll = r#""account.databricks-operator.dev/poll-interval": "3s""#;
    for i in 0..20 {
        docs.push(credential_doc(&format!("cred-{i:02}"), "", poll));
    }
    apply(&client, &ns, &docs).await;
    for i in 0..20 {
        wait_ready(
            &client,
            &ns,
            "DatabricksCredential",
            &format!("cred-{i:02}"),
            60,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = sim.request_count();
    let window = Duration::from_secs(12);
    tokio::time::sleep(window).await;
    let after = sim.request_count();
    let delta = |route: &str| after.total(route) - before.total(route);
    let lists = delta("GET /credentials");
    let gets = delta("GET /credentials/{id}");
    println!(
        "steady state over {window:?}: {lists} list calls, {gets} single reads for 20 objects"
    );
    assert!((2..=8).contains(&lists), "about one list per 3 s: {lists}");
    assert_eq!(gets, 0, "no per-object reads at rest");
    assert_eq!(delta("POST /credentials"), 0);
    delete_namespace_and_wait(&client, &ns).await;
}

/// A workspace and its dependencies must be managed through the same account; a mismatch is a
/// clear spec error, not an endless wait.
#[tokio::test]
async fn dependencies_of_another_account_are_refused() {
    let (client, ns) = setup("accounts").await;
    let sim = start_sim(sim_config()).await;
    let mut docs = samples(&sim);
    docs.push(credential_doc(
        "elsewhere",
        "  accountRef: {name: other}\n",
        "",
    ));
    docs.retain(|d| !d.contains("kind: DatabricksWorkspace\n"));
    docs.push(samples_of(&sim, &["DatabricksWorkspace"])[0].replace(
        "credentials: {name: cross-account}",
        "credentials: {name: elsewhere}",
    ));
    apply(&client, &ns, &docs).await;
    let ws = wait_reason(
        &client,
        &ns,
        "DatabricksWorkspace",
        "analytics",
        "Ready",
        "InvalidSpec",
        30,
    )
    .await;
    let msg = condition(&ws, "Ready").unwrap().message;
    assert!(
        msg.contains("\"other\"") && msg.contains("same account"),
        "{msg}"
    );
    assert_eq!(count(&sim.snapshot(), "workspaces"), 0);
    delete_namespace_and_wait(&client, &ns).await;
}

/// Token federation (a JWT from a file, no static secret) and legacy basic auth both make an
/// account Ready.
#[tokio::test]
async fn federation_and_basic_auth_accounts_become_ready() {
    let (client, ns) = setup("auth").await;
    let sim = start_sim(sim_config()).await;
    let token = federation_token_file();
    // header {"alg":"RS256"} . payload {"sub":"system:serviceaccount:ns:sa"} . signature
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bnM6c2EifQ.c2ln",
    )
    .unwrap();
    let c = sim.config();
    let docs = vec![
        format!(
            "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksAccount\nmetadata:\n  name: federated\nspec:\n  host: {}\n  accountId: {}\n  auth:\n    federation:\n      clientId: {}\n",
            sim.base_url(),
            c.account_id,
            c.client_id,
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: admin\n  labels: {{account.databricks-operator.dev/account-secret: \"true\"}}\nstringData:\n  username: {}\n  password: {}\n",
            c.username, c.password
        ),
        format!(
            "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksAccount\nmetadata:\n  name: legacy\nspec:\n  host: {}\n  accountId: {}\n  auth:\n    basic:\n      secretRef: {{name: admin}}\n",
            sim.base_url(),
            c.account_id
        ),
    ];
    apply(&client, &ns, &docs).await;
    for name in ["federated", "legacy"] {
        let acct = wait_ready(&client, &ns, "DatabricksAccount", name, 30).await;
        let method = acct.data["status"]["authMethod"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            method,
            if name == "federated" {
                "oauth-federation"
            } else {
                "basic"
            }
        );
    }
    delete_namespace_and_wait(&client, &ns).await;
}
