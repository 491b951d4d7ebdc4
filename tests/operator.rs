//! The operator end to end: the real controllers against the real API server and the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use databricks_account_operator::controller::{self, Context, Settings};
use databricks_account_operator::crd::{DatabricksCredential, DatabricksWorkspace};
use databricks_account_operator::sim::{self, SimConfig, SimHandle};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};

async fn start_sim() -> SimHandle {
    let config = SimConfig {
        provisioning: Duration::from_secs(1),
        deletion: Duration::from_millis(500),
        endpoint_pending: Duration::from_millis(500),
        deployment_prefix: Some("acme".into()),
        ..SimConfig::default()
    };
    sim::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn start_operator(client: Client) {
    let settings = Settings {
        busy_poll_interval: Duration::from_secs(1),
        ..Settings::default()
    };
    let ctx = Context::new(client, settings, "test".into());
    tokio::spawn(controller::run(ctx, std::future::pending()));
}

/// The full stack of the seed documentation, in one apply, listed workspace first so the order
/// of creation is the operator's business.
fn full_stack(sim: &SimHandle) -> String {
    format!(
        r#"
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksWorkspace
metadata: {{name: analytics}}
spec:
  awsRegion: us-east-1
  deploymentName: analytics
  pricingTier: ENTERPRISE
  credentials: {{name: cross-account}}
  storageConfiguration: {{name: root-bucket}}
  network: {{name: vpc}}
  managedServicesKey: {{name: kms}}
  customTags: {{team: data}}
---
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksNetwork
metadata: {{name: vpc}}
spec:
  vpcId: vpc-0a1b2c3d
  subnetIds: [subnet-0a1b2c3d, subnet-1a2b3c4d]
  securityGroupIds: [sg-0a1b2c3d]
---
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksKeyConfig
metadata: {{name: kms}}
spec:
  useCases: [MANAGED_SERVICES]
  keyArn: arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555
  keyAlias: alias/databricks
---
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksStorageConfig
metadata: {{name: root-bucket}}
spec:
  bucketName: acme-databricks-root
---
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksCredential
metadata: {{name: cross-account}}
spec:
  roleArn: arn:aws:iam::123456789012:role/databricks-cross-account
---
apiVersion: account.databricks-operator.dev/v1alpha1
kind: DatabricksAccount
metadata: {{name: default}}
spec:
  host: {host}
  accountId: {account}
  auth:
    oauthM2M:
      secretRef: {{name: databricks-sp}}
---
apiVersion: v1
kind: Secret
metadata: {{name: databricks-sp}}
stringData:
  client-id: {client_id}
  client-secret: {client_secret}
"#,
        host = sim.base_url(),
        account = sim.config().account_id,
        client_id = sim.config().client_id,
        client_secret = sim.config().client_secret,
    )
}

async fn apply_all(client: &Client, ns: &str, yaml: &str) {
    for doc in yaml.split("\n---\n") {
        let obj: DynamicObject = serde_yaml::from_str(doc).unwrap();
        let gvk = obj.types.as_ref().unwrap();
        let (group, version) = gvk
            .api_version
            .split_once('/')
            .unwrap_or(("", gvk.api_version.as_str()));
        let ar = kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            group, version, &gvk.kind,
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

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

const STACK_KINDS: [&str; 5] = [
    "credentials",
    "storage-configurations",
    "customer-managed-keys",
    "networks",
    "workspaces",
];

fn count(snapshot: &serde_json::Value, kind: &str) -> usize {
    snapshot[kind].as_array().map(Vec::len).unwrap_or(0)
}

/// One apply of the whole stack converges: every object Ready, IDs in status, the workspace
/// RUNNING with its URL, nothing created twice. Deleting a still-referenced credential waits with
/// `InUse`; deleting the namespace then removes every remote object and the namespace goes away.
#[tokio::test]
async fn full_stack_converges_and_namespace_delete_cleans_up() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let sim = start_sim().await;
    start_operator(client.clone());
    let ns = common::namespace(&client, "stack").await;
    let started = std::time::Instant::now();
    apply_all(&client, &ns, &full_stack(&sim)).await;

    let workspaces: Api<DatabricksWorkspace> = Api::namespaced(client.clone(), &ns);
    let ws = eventually("the workspace to be Ready", 90, || async {
        let w = workspaces.get("analytics").await.ok()?;
        let s = w.status.clone()?;
        s.common.is_ready().then_some(w)
    })
    .await;
    let converged = started.elapsed();
    let s = ws.status.unwrap();
    assert_eq!(s.workspace_status.as_deref(), Some("RUNNING"));
    assert_eq!(s.deployment_name.as_deref(), Some("acme-analytics"));
    assert_eq!(
        s.workspace_url.as_deref(),
        Some("https://acme-analytics.cloud.databricks.com")
    );
    assert!(s.workspace_id.is_some());

    assert_stack_counts(&sim, 1);
    let snap = sim.snapshot();
    let remote_ws = &snap["workspaces"][0];
    let creds: Api<DatabricksCredential> = Api::namespaced(client.clone(), &ns);
    let cred = creds.get("cross-account").await.unwrap();
    assert_eq!(
        remote_ws["credentials_id"].as_str(),
        cred.status.as_ref().unwrap().credentials_id.as_deref(),
        "the workspace uses the credential from the CR's status"
    );
    let calls = sim.request_count();
    let api_calls: u64 = calls
        .entries
        .iter()
        .filter(|e| !e.route.contains("token"))
        .map(|e| e.count)
        .sum();
    println!("full stack converged in {converged:?} with {api_calls} API calls: {calls:?}");

    // A credential still used by a workspace is not deleted.
    creds
        .delete("cross-account", &DeleteParams::default())
        .await
        .unwrap();
    let held = eventually("the credential to report InUse", 30, || async {
        let c = creds.get("cross-account").await.ok()?;
        let ready = c.status.as_ref()?.common.condition("Ready")?.clone();
        (ready.reason == "InUse").then_some(ready)
    })
    .await;
    assert!(
        held.message.contains("DatabricksWorkspace/analytics"),
        "{}",
        held.message
    );
    assert_eq!(count(&sim.snapshot(), "credentials"), 1);

    // Deleting the namespace removes everything in a valid order, with no manual step.
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to disappear", 120, || async {
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_stack_counts(&sim, 0);
}
