//! The operator as it is deployed: separate processes of the real binary, leader election on a
//! Lease, and the `/metrics`, `/healthz` and `/readyz` endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apply, eventually, samples};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use databricks_account_sim::{self as sim, SimConfig};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::jiff::SignedDuration;
use kube::Client;
use kube::api::{Api, DynamicObject};

/// The operators' `--lease-duration`; they renew every third of it.
const LEASE: Duration = Duration::from_secs(6);

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
    /// A replica watching `ns`, with its Lease in `lease_ns` (its own namespace, as in a pod).
    fn start(name: &str, ns: &str, lease_ns: &str, lease: &str, extra: &[&str]) -> Self {
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
            .args(["--leader-elect", "--lease-name", lease, "--lease-duration"])
            .arg(format!("{}s", LEASE.as_secs()))
            .args(extra)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", lease_ns)
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

    async fn get(&self, path: &str) -> Result<(u16, String), reqwest::Error> {
        let resp = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// This replica's `/metrics`. Fails the test when it cannot be read: an unreachable endpoint
    /// must not pass for one that counts nothing.
    async fn metrics(&self) -> String {
        let (status, text) = self
            .get("/metrics")
            .await
            .unwrap_or_else(|e| panic!("{}: cannot read /metrics: {e}", self.name));
        assert_eq!(status, 200, "{}: /metrics answered {status}", self.name);
        // An OpenMetrics exposition ends with `# EOF`, also when nothing was counted yet.
        assert!(
            text.trim_end().ends_with("# EOF"),
            "{}: not an OpenMetrics exposition:\n{text}",
            self.name
        );
        text
    }

    /// The sum of a metric's samples whose line starts with `line_prefix` (0 when the metric has
    /// no such sample yet).
    async fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(line_prefix))
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or_else(|| panic!("not a sample: {l}"))
            })
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
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &common::resource("DatabricksWorkspace"));
    let ws = api.get(name).await.ok()?;
    let ready = ws
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then_some(())
}

/// The Lease's spec. A Lease that cannot be read, or does not exist, fails the test: neither
/// may pass for a released one.
async fn lease(client: &Client, ns: &str, name: &str) -> LeaseSpec {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("cannot read Lease {ns}/{name}: {e}"))
        .spec
        .unwrap_or_else(|| panic!("Lease {ns}/{name} has no spec"))
}

/// Two replicas: only the leader reconciles and calls the API; its `/metrics` counts the API
/// requests by operation; killing it hands the lease over once the lease has expired and within
/// a renew period or so after, the new leader carries on, the simulator never sees a duplicate
/// object, and SIGTERM releases the lease.
#[tokio::test]
async fn leader_election_hands_over_and_metrics_count_api_calls() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "replicas").await;
    let lease_ns = common::namespace(&client, "replicas-lease").await;
    // After a panic the replicas are gone with the body; nothing will release the finalizers.
    common::run_then_remove(
        &client.clone(),
        &[ns.clone(), lease_ns.clone()],
        Duration::ZERO,
        replicas(client, ns, lease_ns),
    )
    .await;
}

async fn replicas(client: Client, ns: String, lease_ns: String) {
    let lease_name = format!("lease-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
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

    let a = Operator::start("replica-a", &ns, &lease_ns, &lease_name, &[]);
    let b = Operator::start(
        "replica-b",
        &ns,
        &lease_ns,
        &lease_name,
        &["--log-format", "json"],
    );
    for op in [&a, &b] {
        eventually("healthz and readyz", 30, || async {
            let h = op.get("/healthz").await.ok()?;
            let r = op.get("/readyz").await.ok()?;
            (h.0 == 200 && r.0 == 200).then_some(())
        })
        .await;
    }
    let first = eventually("a leader", 30, || async {
        let api: Api<Lease> = Api::namespaced(client.clone(), &lease_ns);
        api.get_opt(&lease_name)
            .await
            .unwrap()?
            .spec?
            .holder_identity
    })
    .await;
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
    assert_eq!(
        leader
            .metric(r#"databricks_operator_objects{kind="DatabricksWorkspace",ready="true"}"#)
            .await,
        1.0
    );
    let text = leader.metrics().await;
    for family in [
        "databricks_operator_reconcile_duration_seconds",
        "databricks_operator_api_request_duration_seconds",
        "databricks_operator_time_to_ready_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} histogram")),
            "{family} exported"
        );
    }

    // Kill the leader without a chance to release the lease. What it last wrote is final.
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    let last = lease(&client, &lease_ns, &lease_name).await;
    assert_eq!(last.holder_identity.as_deref(), Some(leader.name.as_str()));
    let new = eventually("the follower to take over", 60, || async {
        let spec = lease(&client, &lease_ns, &lease_name).await;
        (spec.holder_identity.as_deref() == Some(follower.name.as_str())).then_some(spec)
    })
    .await;
    // Measured between the two replicas' own timestamps in the Lease, not by this test's polling.
    let expired_at = last.renew_time.as_ref().unwrap().0;
    let taken_at = new.acquire_time.as_ref().unwrap().0;
    let handover = taken_at.duration_since(expired_at);
    println!("lease taken over {handover} after the dead leader's last renewal");
    let lease_duration = SignedDuration::try_from(LEASE).unwrap();
    // Never before the lease expired: two leaders would reconcile at once.
    assert!(
        handover >= lease_duration,
        "taken over {handover} after the last renewal, before the {LEASE:?} lease expired"
    );
    // The follower retries every renew period (a third of the lease), so it takes over within
    // one after expiry; the margin is a further two renew periods for a loaded machine.
    assert!(
        handover <= 2 * lease_duration,
        "taken over {handover} after the last renewal of a {LEASE:?} lease"
    );
    assert_eq!(
        new.lease_transitions,
        last.lease_transitions.map(|t| t + 1),
        "one transition"
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
        let line = format!(r#"databricks_operator_api_requests_total{{operation="{kind}.create","#);
        assert_eq!(
            follower.metric(&line).await,
            0.0,
            "{kind}: the new leader creates nothing the old one had"
        );
    }
    assert_eq!(sim.request_count().total("POST /credentials"), 2);

    // Delete the objects while a leader still runs, so that they, and their remote objects, go.
    common::remove_namespace(&client, &ns, Duration::from_secs(120))
        .await
        .unwrap();
    for (kind, items) in sim.snapshot().as_object().unwrap() {
        assert!(items.as_array().unwrap().is_empty(), "{kind} left behind");
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
    // Not a performance bound: a shutdown that never ends is the failure this catches.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = follower.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let released = lease(&client, &lease_ns, &lease_name).await;
    assert_eq!(
        (released.holder_identity, released.renew_time),
        (None, None),
        "the lease is released on shutdown"
    );
    assert_eq!(released.lease_transitions, new.lease_transitions);
    common::remove_namespace(&client, &lease_ns, Duration::from_secs(60))
        .await
        .unwrap();
}
