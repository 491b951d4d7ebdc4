//! The operator as it is deployed: separate processes of the real binary, leader election on a
//! Lease, and the `/metrics`, `/healthz` and `/readyz` endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apply, eventually, samples};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use databricks_account_operator::sim::{self, SimConfig};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Operator {
    child: Child,
    port: u16,
    name: String,
}

impl Operator {
    fn start(name: &str, ns: &str, lease: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("{lease}-{name}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_databricks-account-operator"))
            .args([
                "run",
                "--busy-poll-interval",
                "1s",
                "--watch-namespaces",
                ns,
                "--allowed-hosts",
                "127.0.0.1",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args([
                "--leader-elect",
                "--lease-name",
                lease,
                "--lease-duration",
                "6s",
            ])
            .args(extra)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", ns)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            name: name.into(),
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// The value of a counter line in `/metrics` (0 when absent).
    async fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(line_prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn workspace_ready(client: &Client, ns: &str, name: &str) -> Option<()> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "account.databricks-operator.dev",
        "v1alpha1",
        "DatabricksWorkspace",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let ws = api.get(name).await.ok()?;
    let ready = ws
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then_some(())
}

async fn holder(client: &Client, ns: &str, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get_opt(lease).await.ok()??.spec?.holder_identity
}

/// Two replicas: only the leader reconciles and calls the API; its `/metrics` counts the API
/// requests by operation; killing it hands the lease over within its duration, the new leader
/// carries on, and the simulator never sees a duplicate object.
#[tokio::test]
async fn leader_election_hands_over_and_metrics_count_api_calls() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "replicas").await;
    let lease = format!("lease-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sim = sim::start(
        SimConfig {
            provisioning: Duration::from_secs(1),
            deletion: Duration::from_millis(500),
            deployment_prefix: Some("acme".into()),
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .await
    .unwrap();

    let a = Operator::start("replica-a", &ns, &lease, &[]);
    let b = Operator::start("replica-b", &ns, &lease, &["--log-format", "json"]);
    for op in [&a, &b] {
        eventually("healthz and readyz", 30, || async {
            let h = op.get("/healthz").await?;
            let r = op.get("/readyz").await?;
            (h.0 == 200 && r.0 == 200).then_some(())
        })
        .await;
    }
    let first = eventually("a leader", 30, || holder(&client, &ns, &lease)).await;
    let (mut leader, follower) = if first == a.name { (a, b) } else { (b, a) };

    apply(&client, &ns, &samples(&sim)).await;
    eventually("the workspace to be Ready", 90, || {
        workspace_ready(&client, &ns, "analytics")
    })
    .await;

    // Only the leader reconciled; its metrics count each create once.
    assert_eq!(
        follower
            .metric("databricks_operator_reconciles_total")
            .await,
        0.0,
        "the follower reconciles nothing"
    );
    assert!(leader.metric("databricks_operator_reconciles_total").await > 0.0);
    for kind in [
        "credentials",
        "storage-configurations",
        "customer-managed-keys",
        "networks",
        "workspaces",
    ] {
        let line = format!(
            r#"databricks_operator_api_requests_total{{operation="{kind}.create",status="200"}}"#
        );
        assert_eq!(leader.metric(&line).await, 1.0, "{line}");
        assert_eq!(
            sim.request_count().get(&format!("POST /{kind}"), 200),
            1,
            "the simulator agrees for {kind}"
        );
    }
    assert!(
        leader
            .metric(r#"databricks_operator_objects{kind="DatabricksWorkspace",ready="true"}"#)
            .await
            >= 1.0
    );
    let (_, text) = leader.get("/metrics").await.unwrap();
    for family in [
        "databricks_operator_reconcile_duration_seconds",
        "databricks_operator_api_request_duration_seconds",
        "databricks_operator_time_to_ready_seconds",
    ] {
        assert!(text.contains(family), "{family} exported");
    }

    // Kill the leader without a chance to release the lease: the follower takes over within the
    // lease duration (6 s) plus one renew period.
    let killed_at = Instant::now();
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    let new = eventually("the follower to take over", 30, || async {
        holder(&client, &ns, &lease)
            .await
            .filter(|h| *h == follower.name)
    })
    .await;
    let handover = killed_at.elapsed();
    println!("lease handed over to {new} in {handover:?}");
    assert!(
        handover < Duration::from_secs(10),
        "handover took {handover:?}"
    );
    leader.name.clear();

    // The new leader carries on: a new credential is created once, nothing is duplicated.
    let doc = "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksCredential\nmetadata:\n  name: after-handover\nspec:\n  roleArn: arn:aws:iam::123456789012:role/after\n";
    apply(&client, &ns, &[doc.to_string()]).await;
    eventually("the new credential", 60, || async {
        let snap = sim.snapshot();
        snap["credentials"]
            .as_array()?
            .iter()
            .any(|c| c["credentials_name"] == "after-handover")
            .then_some(())
    })
    .await;
    let snap = sim.snapshot();
    assert_eq!(snap["credentials"].as_array().unwrap().len(), 2, "{snap:#}");
    for kind in [
        "storage-configurations",
        "customer-managed-keys",
        "networks",
        "workspaces",
    ] {
        assert_eq!(
            snap[kind].as_array().unwrap().len(),
            1,
            "{kind}: no duplicate after handover"
        );
    }
    // SIGTERM: the leader stops gracefully, exits 0 and releases the lease at once.
    let mut follower = follower;
    let pid = follower.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(s) = follower.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_eq!(
        holder(&client, &ns, &lease).await,
        None,
        "the lease is released on shutdown"
    );
    common::delete_namespace(&client, &ns).await;
}
