//! The leader's write fence: a replica paused past its lease (SIGSTOP) while creates are pending
//! sends no Account API write once it resumes, the replica that took over converges every object
//! once, and the paused one exits when it finds the lease gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apply, eventually};

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use databricks_account_operator::crd::{DatabricksAccount, DatabricksCredential};
use databricks_account_sim::{self as sim, Faults, LoggedRequest, SimConfig};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

/// Lease duration of both replicas; they renew every third of it.
const LEASE_SECS: u64 = 6;
/// Simulator latency of every Account API request while the credentials are created: long enough
/// that the leader has creates in flight when it is stopped, shorter than the time to a takeover.
const LATENCY_MS: u64 = 3000;
/// Credentials applied at once; with the account's limit of one request per second their creates
/// go out one after another, so some are in flight and some wait in the rate limiter at the stop.
const CREDENTIALS: usize = 8;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// One replica: the real binary with leader election, watching one namespace. The harness's
/// `OperatorProcess` does not expose the exit status, which is part of what this test checks.
struct Replica {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(name: &str, ns: &str, lease: &str) -> Self {
        let port = common::process::free_port();
        let log = std::env::temp_dir().join(format!("dao-{ns}-{name}.log"));
        std::fs::File::create(&log).unwrap();
        let append = || std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_databricks-account-operator"))
            .args([
                "run",
                "--busy-poll-interval",
                "1s",
                "--watch-namespaces",
                ns,
            ])
            .args(["--allowed-hosts", "127.0.0.1"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--leader-elect", "--lease-name", lease])
            .args(["--lease-duration", &format!("{LEASE_SECS}s")])
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", ns)
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            // The log goes to stdout (tracing's default) and the final error to stderr: keep both.
            .stdout(append())
            .stderr(append())
            .spawn()
            .expect("the operator binary starts");
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {} failed", self.child.id());
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// The `User-Agent` comment its Account API requests carry.
    fn agent_comment(&self) -> String {
        format!("({})", self.name)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Lease's spec; a read error fails the test (it must never pass for "no holder").
async fn lease(client: &Client, ns: &str, name: &str) -> Option<LeaseSpec> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("cannot read Lease {ns}/{name}: {e}"))
        .and_then(|l| l.spec)
}

async fn holder(client: &Client, ns: &str, name: &str) -> Option<String> {
    lease(client, ns, name)
        .await?
        .holder_identity
        .filter(|h| !h.is_empty())
}

fn is_write(r: &LoggedRequest) -> bool {
    ["POST ", "PATCH ", "PUT ", "DELETE "]
        .iter()
        .any(|m| r.route.starts_with(m))
}

fn writes_of<'a>(log: &'a [LoggedRequest], replica: &Replica) -> Vec<&'a LoggedRequest> {
    let comment = replica.agent_comment();
    log.iter()
        .filter(|r| is_write(r) && r.user_agent.ends_with(&comment))
        .collect()
}

async fn all_ready(api: &Api<DatabricksCredential>) -> Option<Vec<DatabricksCredential>> {
    let list = api.list(&ListParams::default()).await.unwrap();
    (list.items.len() == CREDENTIALS
        && list
            .items
            .iter()
            .all(|c| c.status.as_ref().is_some_and(|s| s.common.is_ready())))
    .then_some(list.items)
}

/// Two replicas while creates are pending: the leader is stopped (SIGSTOP) longer than its
/// lease, the other takes over and converges the objects, the first is resumed (SIGCONT). The
/// resumed replica sends no Account API write after the takeover, exits with an error, and the
/// simulator holds exactly one credential per object.
///
/// Why it matters: a replica that was paused (a frozen VM, a long GC-like stall, SIGSTOP) still
/// believes it leads when it wakes; without the fence it would send the creates it had queued
/// while the new leader sends its own, and Databricks would get duplicates or conflicting writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_sends_no_write_after_the_takeover() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "fence").await;
    let lease_name = format!("fence-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sim = sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();

    let a = Replica::start("a", &ns, &lease_name);
    let b = Replica::start("b", &ns, &lease_name);
    let first = eventually("a leader", 30, || holder(&client, &ns, &lease_name)).await;
    let (mut old, new) = if first == a.name { (a, b) } else { (b, a) };
    assert_eq!(first, old.name, "the holder is one of the two replicas");

    // One request per second, so that writes queue in the client-side rate limiter too.
    apply(&client, &ns, &common::account_docs(&sim, 1)).await;
    let accounts: Api<DatabricksAccount> = Api::namespaced(client.clone(), &ns);
    eventually("the account Ready", 60, || async {
        let acct = accounts.get_opt("default").await.unwrap()?;
        acct.status?.common.is_ready().then_some(())
    })
    .await;

    // From here on every Account API request waits LATENCY_MS in the simulator before it is
    // handled and logged. The latency is read when a request arrives and never changes again, so
    // a request logged at `at_ms` was received at `at_ms - LATENCY_MS` or earlier.
    sim.set_faults(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    });
    let creds: Api<DatabricksCredential> = Api::namespaced(client.clone(), &ns);
    for i in 0..CREDENTIALS {
        creds
            .create(
                &PostParams::default(),
                &common::credential(&format!("cred-{i}")),
            )
            .await
            .unwrap();
    }
    // The first create the leader sent has been answered: the next ones are in flight or queued.
    eventually("a create from the leader", 60, || async {
        writes_of(&sim.request_log(), &old).first().map(|_| ())
    })
    .await;
    let stopped_ms = now_ms();
    old.signal("STOP");
    let in_flight_or_queued = CREDENTIALS - writes_of(&sim.request_log(), &old).len();

    let took_over = eventually("the other replica holding the lease", 60, || async {
        let spec = lease(&client, &ns, &lease_name).await?;
        (spec.holder_identity.as_deref() == Some(new.name.as_str())).then_some(spec)
    })
    .await;
    // The new holder stamped acquireTime just before its write: the lease was not its own earlier.
    let acquired_ms = took_over
        .acquire_time
        .map(|t| u64::try_from(t.0.as_millisecond()).unwrap())
        .expect("acquireTime on a held Lease");
    let ready = eventually("every credential Ready through the new leader", 120, || {
        all_ready(&creds)
    })
    .await;
    let ready_ms = now_ms();
    assert!(
        old.exited().is_none(),
        "the stopped replica is still there to resume"
    );

    let resumed_ms = now_ms();
    old.signal("CONT");
    // It finds the lease taken at its next renewal (a third of the lease after it wakes) and stops.
    let status = eventually("the resumed replica exiting", 30, || {
        futures::future::ready(old.exited())
    })
    .await;
    let exited_ms = now_ms();
    // Anything it sent before it exited has been answered and logged by now: wait out the latency
    // after the exit, and at least 10 s after the resume.
    let until_ms = (resumed_ms + 10_000).max(exited_ms + LATENCY_MS + 1000);
    tokio::time::sleep(Duration::from_millis(until_ms.saturating_sub(now_ms()))).await;

    let log = sim.request_log();
    let old_writes = writes_of(&log, &old);
    let new_writes = writes_of(&log, &new);
    let rel = |ms: u64| (ms as i64 - stopped_ms as i64) as f64 / 1000.0;
    println!(
        "stopped {} at 0.0 s with {in_flight_or_queued} of {CREDENTIALS} creates not yet answered; \
         {} acquired the lease at {:+.1} s; all Ready at {:+.1} s; resumed at {:+.1} s; exited at \
         {:+.1} s ({status})",
        old.name,
        new.name,
        rel(acquired_ms),
        rel(ready_ms),
        rel(resumed_ms),
        rel(exited_ms),
    );
    for r in &old_writes {
        println!(
            "  {} {} {} answered at {:+.1} s",
            old.name,
            r.route,
            r.status,
            rel(r.at_ms)
        );
    }
    println!(
        "writes: {} {} (last answered at {:+.1} s), {} {}",
        old.name,
        old_writes.len(),
        old_writes.last().map_or(f64::NAN, |r| rel(r.at_ms)),
        new.name,
        new_writes.len()
    );

    // The rule: no write of the old leader was RECEIVED after the new one acquired the lease.
    // The log has the answer time only; with the constant latency a write answered at `at_ms` was
    // received at `at_ms - LATENCY_MS` at the latest (requests from before the latency was set
    // were answered before the stop, far earlier).
    for r in &old_writes {
        assert!(
            r.at_ms.saturating_sub(LATENCY_MS) < acquired_ms,
            "{} sent {} (answered {:+.1} s after the stop) after {} acquired the lease at {:+.1} s",
            old.name,
            r.route,
            rel(r.at_ms),
            new.name,
            rel(acquired_ms)
        );
    }
    // Not vacuous: the old leader was creating when it was stopped, and left work to the new one.
    assert!(!old_writes.is_empty(), "the old leader sent no create");
    assert!(!new_writes.is_empty(), "the new leader sent no write");
    assert!(
        !status.success(),
        "the replica that lost the lease exits with an error, not {status}; its log:\n{}",
        old.log_tail()
    );
    assert_eq!(
        holder(&client, &ns, &lease_name).await.as_deref(),
        Some(new.name.as_str()),
        "the new leader keeps the lease"
    );

    // No duplicate: one remote credential per object, each object bound to a different one.
    let snapshot = sim.snapshot();
    let remote = snapshot["credentials"].as_array().unwrap();
    let mut remote_names: Vec<&str> = remote
        .iter()
        .map(|c| c["credentials_name"].as_str().unwrap())
        .collect();
    remote_names.sort_unstable();
    let mut expected: Vec<String> = (0..CREDENTIALS).map(|i| format!("cred-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(remote_names, expected, "one remote credential per object");
    let mut ids: Vec<String> = ready
        .iter()
        .map(|c| c.status.as_ref().unwrap().credentials_id.clone().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), CREDENTIALS, "each object has its own remote ID");
    for id in &ids {
        assert!(
            remote.iter().any(|c| c["credentials_id"] == id.as_str()),
            "{id} exists in the simulator"
        );
    }
    // The objects stay Ready once the old replica is gone (it wrote nothing over them).
    all_ready(&creds)
        .await
        .expect("every credential still Ready after the old leader resumed");

    // Clean up through the new leader, quickly.
    sim.set_faults(Faults::default());
    creds
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    eventually("the credentials deleted", 60, || async {
        let n = creds
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        (n == 0).then_some(())
    })
    .await;
    common::delete_namespace(&client, &ns).await;
    drop(old);
    drop(new);
    sim.shutdown().await;
}
