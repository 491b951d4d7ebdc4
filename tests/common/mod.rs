//! Helpers shared by the integration tests: a client for the real API server, CRD installation,
//! and a namespace per test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod process;

use std::path::Path;

use databricks_account_sim::{self as sim, SimConfig, SimHandle};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::sync::OnceCell;

/// A client for the cluster named by `KUBECONFIG`. Fails the test, never skips it.
pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Client::try_default().await {
        Ok(c) => match c.apiserver_version().await {
            Ok(_) => c,
            Err(e) => panic!(
                "the Kubernetes API server is not reachable ({e}).\n\
                 Start the local control plane with `bash hack/cluster.sh up` and \
                 `eval \"$(bash hack/cluster.sh env)\"`, or run the whole suite with `bash hack/test.sh`."
            ),
        },
        Err(e) => panic!(
            "no Kubernetes cluster configured ({e}).\n\
             Start the local control plane with `bash hack/cluster.sh up` and \
             `eval \"$(bash hack/cluster.sh env)\"`, or run the whole suite with `bash hack/test.sh`."
        ),
    }
}

/// The CRDs as committed in `crds/`.
pub fn crds_from_files() -> Vec<CustomResourceDefinition> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            serde_yaml::from_str(&std::fs::read_to_string(p).expect("readable CRD"))
                .expect("valid CRD YAML")
        })
        .collect()
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs the CRDs from `crds/` once per test binary.
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| async {
        databricks_account_operator::crd::install(client, &crds_from_files())
            .await
            .expect("CRDs install and become Established");
    })
    .await;
}

/// A fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// Deletes a namespace without waiting.
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// The kinds of this operator, whose objects carry its finalizers.
/// Every kind of ours, from the CRDs the operator generates: the account first.
pub fn kinds() -> Vec<String> {
    databricks_account_operator::crd::all()
        .into_iter()
        .map(|c| c.spec.names.kind)
        .collect()
}

/// One of our kinds, for dynamic access, with the plural its CRD declares.
pub fn resource(kind: &str) -> ApiResource {
    let mut ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "account.databricks-operator.dev",
        "v1alpha1",
        kind,
    ));
    if let Some(crd) = databricks_account_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
    {
        ar.plural = crd.spec.names.plural;
    }
    ar
}

/// Whether a namespace still exists. A read error is retried, never taken for "gone".
async fn namespace_exists(client: &Client, name: &str) -> bool {
    let api = Api::<Namespace>::all(client.clone());
    let mut last = None;
    for _ in 0..20 {
        match api.get_opt(name).await {
            Ok(found) => return found.is_some(),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cannot read namespace {name}: {last:?}");
}

async fn wait_gone(client: &Client, name: &str, patience: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if !namespace_exists(client, name).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes a namespace and waits until it is gone. If it is still there after `patience` (its
/// objects' finalizers were not released: the operator that owns them stopped, or cannot reach
/// its simulator any more), removes the finalizers of this operator's objects so the namespace
/// goes anyway, and returns an error saying so. Either way no namespace is left Terminating for
/// the next test.
pub async fn remove_namespace(
    client: &Client,
    name: &str,
    patience: Duration,
) -> Result<(), String> {
    let api = Api::<Namespace>::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        // Already terminating.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("cannot delete namespace {name}: {e}"),
    }
    if wait_gone(client, name, patience).await {
        return Ok(());
    }
    let mut stuck = Vec::new();
    for kind in kinds() {
        let kind = kind.as_str();
        let objs: Api<DynamicObject> = Api::namespaced_with(client.clone(), name, &resource(kind));
        let list = match objs.list(&Default::default()).await {
            Ok(list) => list,
            Err(e) => panic!("cannot list {kind} in {name}: {e}"),
        };
        for o in list.items.iter().filter(|o| !o.finalizers().is_empty()) {
            stuck.push(format!("{kind}/{}", o.name_any()));
            let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = objs
                .patch(
                    &o.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&unfinalize),
                )
                .await;
        }
    }
    // The operator's hold on an account's Secret.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), name);
    if let Ok(list) = secrets.list(&Default::default()).await {
        for o in list.items.iter().filter(|o| !o.finalizers().is_empty()) {
            stuck.push(format!("Secret/{}", o.name_any()));
            let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = secrets
                .patch(
                    &o.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&unfinalize),
                )
                .await;
        }
    }
    let gone = wait_gone(client, name, Duration::from_secs(60)).await;
    if gone && stuck.is_empty() {
        // Nothing held it: the namespace controller was just slow.
        return Ok(());
    }
    Err(format!(
        "namespace {name} was not gone {patience:?} after its deletion; removed the finalizers of {stuck:?}{}",
        if gone { "" } else { ", and it is still there" }
    ))
}

/// Runs a test's body as a task of its own; then, whether the body passed or panicked, removes
/// the test's namespaces (`remove_namespace`, waiting `patience` for the operator to release its
/// finalizers after a panic), and fails with the body's panic, or if the body left a namespace
/// behind. Bodies delete their namespaces themselves, while their operator and simulator run.
pub async fn run_then_remove<F>(client: &Client, namespaces: &[String], patience: Duration, body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    let mut left = Vec::new();
    for ns in namespaces {
        if namespace_exists(client, ns).await {
            left.push(ns.clone());
            if let Err(e) = remove_namespace(client, ns, patience).await {
                eprintln!("cleanup: {e}");
            }
        }
    }
    match outcome {
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the test body did not finish: {e}"),
        Ok(()) => assert!(
            left.is_empty(),
            "the test left its namespaces {left:?} behind"
        ),
    }
}

/// The documents of `config/samples/`, pointed at the simulator.
///
/// The classic stack only: `workspace-serverless.yaml` is left out (see [`sample`]), so the tests
/// that count what converging the stack costs keep counting one workspace.
pub fn samples(sim: &SimHandle) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/samples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with("-serverless.yaml"))
        .collect();
    files.sort();
    files.iter().flat_map(|p| sample_docs(sim, p)).collect()
}

/// The documents of one file of `config/samples/`, pointed at the simulator.
pub fn sample(sim: &SimHandle, file: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/samples")
        .join(file);
    sample_docs(sim, &path)
}

fn sample_docs(sim: &SimHandle, path: &std::path::Path) -> Vec<String> {
    let c = sim.config();
    std::fs::read_to_string(path)
        .unwrap()
        .replace("http://127.0.0.1:8085", &sim.base_url())
        .replace("00000000-0000-0000-0000-000000000001", &c.account_id)
        .replace(
            "client-id: sim-client-id",
            &format!("client-id: {}", c.client_id),
        )
        .replace(
            "client-secret: sim-client-secret",
            &format!("client-secret: {}", c.client_secret),
        )
        .split("\n---\n")
        .map(str::to_string)
        .collect()
}

/// Only the sample documents of these kinds.
pub fn samples_of(sim: &SimHandle, kinds: &[&str]) -> Vec<String> {
    samples(sim)
        .into_iter()
        .filter(|d| kinds.iter().any(|k| d.contains(&format!("kind: {k}\n"))))
        .collect()
}

pub fn gvk_resource(obj: &DynamicObject) -> ApiResource {
    let t = obj.types.as_ref().unwrap();
    let (group, version) = t
        .api_version
        .split_once('/')
        .unwrap_or(("", t.api_version.as_str()));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &t.kind))
}

pub async fn apply(client: &Client, ns: &str, docs: &[String]) {
    for doc in docs {
        let obj: DynamicObject = serde_yaml::from_str(doc).unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &gvk_resource(&obj));
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }
}

pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
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

/// A condition as the tests read it.
#[derive(Debug, Clone)]
pub struct Cond {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The `type_` condition of an object.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<Cond> {
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

/// Waits until the object's `type_` condition has `reason`; returns the object. The failure says
/// what the condition was instead.
pub async fn wait_condition(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    secs: u64,
) -> DynamicObject {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = None;
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
            "timed out waiting for {kind}/{name} {type_}={reason}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The opted-in Secret and the `DatabricksAccount` named `default` on the simulator, with a
/// client-side rate limit of `rate_limit` requests per second.
pub fn account_docs(sim: &SimHandle, rate_limit: u32) -> Vec<String> {
    let c = sim.config();
    vec![
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: databricks-sp\n  labels:\n    \
             account.databricks-operator.dev/account-secret: \"true\"\ntype: Opaque\nstringData:\n  \
             client-id: {}\n  client-secret: {}\n",
            c.client_id, c.client_secret
        ),
        format!(
            "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksAccount\n\
             metadata:\n  name: default\nspec:\n  host: {}\n  accountId: {}\n  rateLimit: {rate_limit}\n  \
             auth:\n    oauthM2M:\n      secretRef:\n        name: databricks-sp\n",
            sim.base_url(),
            c.account_id
        ),
    ]
}

/// A client of the simulator, to arrange remote state behind the operator's back.
pub fn api_client(sim: &SimHandle) -> databricks_account_operator::databricks::AccountClient {
    use databricks_account_operator::databricks::{
        AccountClient, AccountConfig, Credentials, SecretString,
    };
    let c = sim.config();
    AccountClient::new(AccountConfig::new(
        sim.base_url(),
        c.account_id.clone(),
        Credentials::OAuthM2M {
            client_id: c.client_id.clone(),
            client_secret: SecretString::from(c.client_secret.clone()),
        },
    ))
    .unwrap()
}

/// A `DatabricksCredential` named `name` with its own role and `deletionPolicy: Delete`.
pub fn credential(name: &str) -> databricks_account_operator::crd::DatabricksCredential {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1",
        "kind": "DatabricksCredential",
        "metadata": {"name": name},
        "spec": {
            "roleArn": format!("arn:aws:iam::123456789012:role/{name}"),
            "deletionPolicy": "Delete",
        },
    }))
    .unwrap()
}

/// The simulator as the integration tests run it: workspaces provision in 1 s and go in 0.5 s,
/// endpoints are pending for 0.5 s, and the account has a deployment prefix (`acme`) so that the
/// sample workspace's `deploymentName` is accepted.
pub fn fast_sim_config() -> SimConfig {
    SimConfig {
        provisioning: Duration::from_secs(1),
        deletion: Duration::from_millis(500),
        endpoint_pending: Duration::from_millis(500),
        deployment_prefix: Some("acme".into()),
        ..SimConfig::default()
    }
}

/// A simulator with [`fast_sim_config`] on a free loopback port.
pub async fn fast_sim() -> SimHandle {
    sim::start(fast_sim_config(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}
