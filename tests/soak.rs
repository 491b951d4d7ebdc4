//! A seeded chaos soak: rounds of random stacks, random Account API faults, operator kills and
//! namespace deletes against the real API server, the simulator and the real operator binary,
//! with the exactly-once and complete-deletion invariants checked after every round.
//!
//! `SOAK_SEED` replays a run (the seed is printed at the start and in every failure);
//! `SOAK_ROUNDS` sets the number of rounds (30 by default). A longer run is one command:
//! `bash hack/soak.sh --rounds 300 [--seed N]`.
//!
//! The same seed makes the same decisions (stacks, their apply order, faults, when the operator
//! is killed and which namespace is deleted when); the operator's own timing still varies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use databricks_account_sim::{Faults, SimHandle};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

/// splitmix64: small, seedable and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next(), self.next());
        s.truncate(len);
        s
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap();
            items.swap(i, j);
        }
    }
}

/// The faults a round injects while its stacks converge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// Many 429s with `Retry-After`.
    RateLimitStorm,
    /// Creates committed, then answered 500/502/503/504.
    CommitThen5xx,
    /// Creates committed, then the connection closed without an answer.
    LostResponse,
    /// A create committed, then no answer until the client gives up.
    CommitThenHang,
    /// Creates committed, then answered 200 with an empty body.
    EmptyBody,
    /// Creates committed, then answered 200 without the new ID.
    NoId,
    /// A proxy's HTML 404 on calls by ID.
    ProxyNotFound,
    /// 5xx before anything is committed.
    ServerErrors,
    /// Every call slowed down.
    Latency,
    /// New roles fail validation for a few seconds.
    IamPropagation,
    /// Workspaces named `…fail…` end FAILED.
    FailedWorkspace,
}

const FAULTS: [Fault; 11] = [
    Fault::RateLimitStorm,
    Fault::CommitThen5xx,
    Fault::LostResponse,
    Fault::CommitThenHang,
    Fault::EmptyBody,
    Fault::NoId,
    Fault::ProxyNotFound,
    Fault::ServerErrors,
    Fault::Latency,
    Fault::IamPropagation,
    Fault::FailedWorkspace,
];

/// Faults that can be added to a round's main fault (they use other fault slots).
const EXTRA_FAULTS: [Fault; 4] = [
    Fault::RateLimitStorm,
    Fault::ServerErrors,
    Fault::Latency,
    Fault::ProxyNotFound,
];

const BY_ID_PATHS: [&str; 5] = [
    "/credentials/",
    "/storage-configurations/",
    "/networks/",
    "/workspaces/",
    "/vpc-endpoints/",
];

const DELETE_ROUTES: [&str; 4] = [
    "DELETE /workspaces/{id}",
    "DELETE /credentials/{id}",
    "DELETE /networks/{id}",
    "DELETE /customer-managed-keys/{id}",
];

fn add_fault(faults: &mut Value, fault: Fault, rng: &mut Rng) {
    let statuses = [500u16, 502, 503, 504];
    let lost = |mode: &str, count: u64| json!({"count": count, "mode": mode});
    match fault {
        Fault::RateLimitStorm => {
            // Each 429 also doubles the backoff of the object that met it: a storm of a few
            // dozen keeps one object waiting for a minute, which tells nothing more.
            faults["rate_limit"] = json!({"count": 5 + rng.below(8), "retry_after_seconds": 1});
        }
        Fault::CommitThen5xx => {
            faults["lost_response"] =
                json!({"count": 1 + rng.below(3), "status": rng.pick(&statuses)});
        }
        Fault::LostResponse => faults["lost_response"] = lost("close", 1 + rng.below(2)),
        Fault::CommitThenHang => faults["lost_response"] = lost("hang", 1),
        Fault::EmptyBody => faults["lost_response"] = lost("empty_body", 1 + rng.below(2)),
        Fault::NoId => faults["lost_response"] = lost("no_id", 1 + rng.below(2)),
        Fault::ProxyNotFound => {
            faults["proxy_not_found"] =
                json!({"count": 2 + rng.below(3), "path_contains": rng.pick(&BY_ID_PATHS)});
        }
        Fault::ServerErrors => {
            faults["server_error"] =
                json!({"count": 3 + rng.below(5), "status": rng.pick(&statuses)});
        }
        Fault::Latency => faults["latency_ms"] = json!(50 + rng.below(250)),
        Fault::IamPropagation => {
            faults["credential_propagation"] = json!({"seconds": 2 + rng.below(3)});
        }
        Fault::FailedWorkspace => {
            faults["fail_workspaces"] = json!([{"workspace_name_contains": "fail"}]);
        }
    }
}

fn set_faults(sim: &SimHandle, faults: &Value) {
    sim.set_faults(serde_json::from_value::<Faults>(faults.clone()).expect("faults parse"));
}

#[derive(Clone, Copy, Debug)]
enum StackKind {
    Plain,
    CustomerManagedKey,
    PrivateLink,
    SharedCredential,
    /// A serverless workspace bound to a network connectivity configuration with one rule.
    Serverless,
}

const STACKS: [StackKind; 5] = [
    StackKind::Plain,
    StackKind::CustomerManagedKey,
    StackKind::PrivateLink,
    StackKind::SharedCredential,
    StackKind::Serverless,
];

/// One custom resource the round applied and what it must end as.
#[derive(Clone, Debug)]
struct Expected {
    kind: &'static str,
    name: String,
    /// The `Ready` reason it must reach.
    reason: &'static str,
}

/// Where a kind's remote objects are in the simulator's snapshot, what identifies the one a
/// custom resource made, and where each side keeps the ID.
struct Remote {
    list: &'static str,
    /// Pointer to the value that equals the custom resource's name (its key ARN for keys).
    identity: &'static str,
    remote_id: &'static str,
    status_id: &'static str,
}

fn remote(kind: &str) -> Remote {
    let (list, identity, remote_id, status_id) = match kind {
        "DatabricksCredential" => (
            "credentials",
            "/credentials_name",
            "/credentials_id",
            "/status/credentialsId",
        ),
        "DatabricksStorageConfig" => (
            "storage-configurations",
            "/storage_configuration_name",
            "/storage_configuration_id",
            "/status/storageConfigurationId",
        ),
        "DatabricksKeyConfig" => (
            "customer-managed-keys",
            "/aws_key_info/key_arn",
            "/customer_managed_key_id",
            "/status/customerManagedKeyId",
        ),
        "DatabricksNetwork" => (
            "networks",
            "/network_name",
            "/network_id",
            "/status/networkId",
        ),
        "DatabricksVpcEndpoint" => (
            "vpc-endpoints",
            "/vpc_endpoint_name",
            "/vpc_endpoint_id",
            "/status/vpcEndpointId",
        ),
        "DatabricksPrivateAccessSettings" => (
            "private-access-settings",
            "/private_access_settings_name",
            "/private_access_settings_id",
            "/status/privateAccessSettingsId",
        ),
        "DatabricksWorkspace" => (
            "workspaces",
            "/workspace_name",
            "/workspace_id",
            "/status/workspaceId",
        ),
        "DatabricksNetworkConnectivityConfig" => (
            "network-connectivity-configs",
            "/name",
            "/network_connectivity_config_id",
            "/status/networkConnectivityConfigId",
        ),
        other => panic!("unknown kind {other}"),
    };
    Remote {
        list,
        identity,
        remote_id,
        status_id,
    }
}

/// The key ARN of a key configuration named `name`.
fn key_arn(name: &str) -> String {
    format!("arn:aws:kms:us-east-1:123456789012:key/{name}")
}

/// What a remote object of `kind` made for the custom resource `name` is identified by.
fn identity_of(kind: &str, name: &str) -> String {
    if kind == "DatabricksKeyConfig" {
        key_arn(name)
    } else {
        name.to_string()
    }
}

fn doc(kind: &str, name: &str, spec: &Value) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The documents of one stack named `p` and what each must become.
fn stack(kind: StackKind, p: &str, failing: bool, rng: &mut Rng) -> Vec<(String, Expected)> {
    let mut out = Vec::new();
    let mut add = |kind: &'static str, name: String, spec: Value, reason: &'static str| {
        out.push((doc(kind, &name, &spec), Expected { kind, name, reason }));
    };
    let cred = format!("{p}-cred");
    add(
        "DatabricksCredential",
        cred.clone(),
        json!({"roleArn": format!("arn:aws:iam::123456789012:role/{p}")}),
        "Available",
    );
    let workspaces = if matches!(kind, StackKind::SharedCredential) {
        2
    } else {
        1
    };
    for w in 0..workspaces {
        let root = format!("{p}-root{w}");
        add(
            "DatabricksStorageConfig",
            root.clone(),
            json!({"bucketName": format!("{p}-bucket{w}")}),
            "Available",
        );
        let mut ws = json!({
            "awsRegion": "us-east-1",
            "pricingTier": "ENTERPRISE",
            "credentials": {"name": cred},
            "storageConfiguration": {"name": root},
        });
        if !matches!(kind, StackKind::SharedCredential) {
            let net = format!("{p}-net");
            let mut spec = json!({
                "vpcId": format!("vpc-{}", rng.hex(12)),
                "subnetIds": [format!("subnet-{}", rng.hex(12)), format!("subnet-{}", rng.hex(12))],
                "securityGroupIds": [format!("sg-{}", rng.hex(12))],
            });
            if matches!(kind, StackKind::PrivateLink) {
                for (ep, _) in [("rest", "restApi"), ("relay", "dataplaneRelay")] {
                    add(
                        "DatabricksVpcEndpoint",
                        format!("{p}-{ep}"),
                        json!({"awsVpcEndpointId": format!("vpce-{}", rng.hex(12)), "region": "us-east-1"}),
                        "Available",
                    );
                }
                spec["vpcEndpoints"] = json!({
                    "restApi": [{"name": format!("{p}-rest")}],
                    "dataplaneRelay": [{"name": format!("{p}-relay")}],
                });
                let pas = format!("{p}-pas");
                add(
                    "DatabricksPrivateAccessSettings",
                    pas.clone(),
                    json!({"region": "us-east-1", "publicAccessEnabled": true}),
                    "Available",
                );
                ws["privateAccessSettings"] = json!({"name": pas});
            }
            add("DatabricksNetwork", net.clone(), spec, "Available");
            ws["network"] = json!({"name": net});
        }
        if matches!(kind, StackKind::CustomerManagedKey) {
            let key = format!("{p}-key");
            add(
                "DatabricksKeyConfig",
                key.clone(),
                json!({"useCases": ["MANAGED_SERVICES"], "keyArn": key_arn(&key)}),
                "Available",
            );
            ws["managedServicesKey"] = json!({"name": key});
        }
        let (name, reason) = if failing && w == 0 {
            (format!("{p}-fail-ws{w}"), "ProvisioningFailed")
        } else {
            (format!("{p}-ws{w}"), "Available")
        };
        add("DatabricksWorkspace", name, ws, reason);
    }
    out
}

/// What happens during a round, at a time after its stacks were applied.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Kill,
    DeleteNamespace(usize),
}

/// A phase longer than this prints the Account API requests it made.
const SLOW: Duration = Duration::from_secs(20);

/// Objects still there, each with what its `Synced` condition says.
fn describe(objects: &[(String, DynamicObject)]) -> Vec<String> {
    objects
        .iter()
        .map(|(k, o)| {
            format!(
                "{k}/{} {:?}",
                o.name_any(),
                common::condition(o, "Synced").map(|c| c.message)
            )
        })
        .collect()
}

struct Soak {
    client: Client,
    sim: SimHandle,
    pool: Vec<String>,
    op: Option<OperatorProcess>,
    starts: u32,
    kills: u32,
    faults: BTreeMap<Fault, u32>,
    namespace_deletes_mid_create: u32,
    violations: Vec<String>,
}

impl Soak {
    fn start_operator(&mut self) {
        self.starts += 1;
        self.op = Some(OperatorProcess::start_watching(
            &format!("soak-{}", self.starts),
            &self.pool,
            &["--api-timeout", "3s", "--poll-interval", "20s"],
        ));
    }

    async fn kill(&mut self) {
        if let Some(mut op) = self.op.take() {
            op.signal("KILL");
            while op.running() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.kills += 1;
        self.start_operator();
    }

    fn log_tail(&self) -> String {
        let text = self
            .op
            .as_ref()
            .map(OperatorProcess::log_text)
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Creates the namespace unless a round before kept it.
    async fn create_namespace(&self, name: &str) {
        let api = Api::<Namespace>::all(self.client.clone());
        if api.get_opt(name).await.unwrap().is_some() {
            return;
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    }

    /// Deletes every managed object of `ns` in a random order, keeping the namespace and its
    /// account.
    async fn delete_objects(&self, ns: &str, rng: &mut Rng) {
        let mut objects = self.objects(ns).await;
        rng.shuffle(&mut objects);
        for (kind, o) in &objects {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &common::resource(kind));
            let _ = api.delete(&o.name_any(), &DeleteParams::default()).await;
        }
    }

    /// Waits until `ns` has no managed object left; objects still there two minutes after
    /// their delete are a violation.
    async fn objects_gone(&mut self, round: u64, ns: &str) {
        let started = Instant::now();
        loop {
            let left = self.objects(ns).await;
            if left.is_empty() {
                return;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let left = describe(&left);
                self.violations.push(format!(
                    "round {round}: objects in {ns} not gone 120 s after their delete: {left:?}\noperator log:\n{}",
                    self.log_tail()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every custom resource of ours in `ns`.
    async fn objects(&self, ns: &str) -> Vec<(String, DynamicObject)> {
        let mut out = Vec::new();
        for kind in common::kinds() {
            if kind == "DatabricksAccount" {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &common::resource(&kind));
            if let Ok(list) = api.list(&Default::default()).await {
                out.extend(list.items.into_iter().map(|o| (kind.clone(), o)));
            }
        }
        out
    }

    /// Waits until every expected object reached its reason; the ones that did not are a
    /// violation.
    async fn converge(&mut self, round: u64, live: &[(String, Vec<Expected>)]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut pending = Vec::new();
            for (ns, expected) in live {
                let objects = self.objects(ns).await;
                for e in expected {
                    let found = objects
                        .iter()
                        .find(|(k, o)| *k == e.kind && o.name_any() == e.name);
                    let ready = found.and_then(|(_, o)| common::condition(o, "Ready"));
                    if ready.as_ref().map(|c| c.reason.as_str()) != Some(e.reason) {
                        let synced = found.and_then(|(_, o)| common::condition(o, "Synced"));
                        pending.push(format!(
                            "{ns}/{}/{} wants {}: Ready {ready:?}, Synced {synced:?}",
                            e.kind, e.name, e.reason
                        ));
                    }
                }
            }
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.violations.push(format!(
                    "round {round}: not converged after 120 s:\n  {}\noperator log:\n{}",
                    pending.join("\n  "),
                    self.log_tail()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Exactly one remote object per custom resource, and it is the one whose ID the status
    /// shows.
    async fn check_once(&mut self, round: u64, live: &[(String, Vec<Expected>)]) {
        let snapshot = self.sim.snapshot();
        for (ns, expected) in live {
            let objects = self.objects(ns).await;
            for e in expected {
                let r = remote(e.kind);
                let identity = identity_of(e.kind, &e.name);
                let matching: Vec<&Value> = snapshot[r.list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|o| o.pointer(r.identity).and_then(Value::as_str) == Some(&identity))
                    .collect();
                if matching.len() != 1 {
                    self.violations.push(format!(
                        "round {round}: {ns}/{}/{} has {} remote objects: {matching:?}",
                        e.kind,
                        e.name,
                        matching.len()
                    ));
                    continue;
                }
                let status_id = objects
                    .iter()
                    .find(|(k, o)| *k == e.kind && o.name_any() == e.name)
                    .and_then(|(_, o)| o.data.pointer(r.status_id).cloned());
                let remote_id = matching[0].pointer(r.remote_id).cloned();
                let text = |v: &Option<Value>| match v {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                if text(&status_id).is_empty() || text(&status_id) != text(&remote_id) {
                    self.violations.push(format!(
                        "round {round}: {ns}/{}/{} shows ID {status_id:?}, its remote object has {remote_id:?}",
                        e.kind, e.name
                    ));
                }
            }
        }
    }

    /// Deletes `ns` and waits for it to go; a namespace still there after two minutes is a
    /// violation (and is then forced out so the soak can go on).
    async fn delete_namespace(&mut self, round: u64, ns: &str) {
        let started = Instant::now();
        let api = Api::<Namespace>::all(self.client.clone());
        match api.delete(ns, &DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => panic!("cannot delete namespace {ns}: {e}"),
        }
        while started.elapsed() < Duration::from_secs(120) {
            if api.get_opt(ns).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left = describe(&self.objects(ns).await);
        self.violations.push(format!(
            "round {round}: namespace {ns} not gone 120 s after its delete; left: {left:?}\noperator log:\n{}",
            self.log_tail()
        ));
        if let Err(e) = common::remove_namespace(&self.client, ns, Duration::from_secs(1)).await {
            eprintln!("{e}");
        }
    }

    /// No remote object outlives the custom resources: the account is empty once every
    /// namespace is gone (workspaces take a moment to cancel).
    async fn check_nothing_left(&mut self, round: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let snapshot = self.sim.snapshot();
            let left: Vec<String> = snapshot
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(list, items)| {
                    items
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(move |o| format!("{list}: {o}"))
                })
                .collect();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.violations.push(format!(
                    "round {round}: remote objects left after every delete finished:\n  {}",
                    left.join("\n  ")
                ));
                let reset = format!("{}/__sim/reset?objects=true", self.sim.base_url());
                reqwest::Client::new().post(reset).send().await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The Account API requests since the `from`th, with their times, for a phase that was slow.
    fn print_requests(&self, phase: &str, from: usize) {
        let log = self.sim.request_log();
        let Some(first) = log.get(from) else {
            return;
        };
        println!("  slow {phase}; Account API requests meanwhile:");
        for r in log.iter().skip(from).take(120) {
            println!(
                "    +{:>6} ms {} {}",
                r.at_ms.saturating_sub(first.at_ms),
                r.route,
                r.status
            );
        }
    }

    /// Runs the timed events of a round.
    async fn play(&mut self, events: Vec<(u64, Event)>, namespaces: &[String]) {
        let start = Instant::now();
        for (at, event) in events {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            match event {
                Event::Kill => self.kill().await,
                Event::DeleteNamespace(i) => {
                    self.namespace_deletes_mid_create += 1;
                    let _ = Api::<Namespace>::all(self.client.clone())
                        .delete(&namespaces[i], &DeleteParams::default())
                        .await;
                }
            }
        }
    }

    async fn round(&mut self, round: u64, rounds: u64, rng: &mut Rng) {
        let n_namespaces = 1 + usize::try_from(rng.below(self.pool.len() as u64)).unwrap();
        let namespaces: Vec<String> = self.pool[..n_namespaces].to_vec();

        // Faults while creating: one per round in turn, so every kind comes up, maybe one more.
        let main_fault = FAULTS[usize::try_from(round).unwrap() % FAULTS.len()];
        let mut faults = json!({});
        let mut chosen = vec![main_fault];
        add_fault(&mut faults, main_fault, rng);
        if rng.chance(40) {
            let extra = rng.pick(&EXTRA_FAULTS);
            if extra != main_fault {
                add_fault(&mut faults, extra, rng);
                chosen.push(extra);
            }
        }
        for f in &chosen {
            *self.faults.entry(*f).or_default() += 1;
        }

        let mut live = Vec::new();
        let mut all_docs = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            self.create_namespace(ns).await;
            common::apply(&self.client, ns, &common::account_docs(&self.sim, 100)).await;
            let mut expected = Vec::new();
            for s in 0..1 + rng.below(2) {
                let kind = rng.pick(&STACKS);
                let failing = main_fault == Fault::FailedWorkspace && i == 0 && s == 0;
                for (d, e) in stack(kind, &format!("r{round}-n{i}-s{s}"), failing, rng) {
                    all_docs.push((ns.clone(), e.kind, d));
                    expected.push(e);
                }
            }
            live.push((ns.clone(), expected));
        }
        rng.shuffle(&mut all_docs);

        // Kills: at least one in every other round; a namespace deleted mid-create in some.
        let mut events = Vec::new();
        let kills = rng.below(2) + u64::from(round.is_multiple_of(2));
        for _ in 0..kills {
            events.push((rng.below(4000), Event::Kill));
        }
        let mid_create_delete = rng.chance(25).then(|| {
            let i = usize::try_from(rng.below(n_namespaces as u64)).unwrap();
            (rng.below(3000), i)
        });
        if let Some((at, i)) = mid_create_delete {
            events.push((at, Event::DeleteNamespace(i)));
        }
        events.sort();
        let delete_faults = rng.chance(50).then(|| {
            let mut f = json!({});
            match rng.below(3) {
                0 => add_fault(&mut f, Fault::ProxyNotFound, rng),
                1 => {
                    f["lost_response"] =
                        json!({"count": 1, "route": rng.pick(&DELETE_ROUTES), "status": 502});
                }
                _ => add_fault(&mut f, Fault::RateLimitStorm, rng),
            }
            f
        });
        let delete_kill = rng.chance(30).then(|| rng.below(1500));
        // Most rounds delete the objects and keep the namespace and its account (a namespace
        // delete waits on the namespace controller's own backoff); some delete the namespaces.
        let delete_namespaces = rng.chance(30) || round + 1 == rounds;

        println!(
            "round {round}: {} namespace(s), {} objects, faults {chosen:?} {faults}{}, {kills} kill(s){}{}{}",
            n_namespaces,
            all_docs.len(),
            delete_faults
                .as_ref()
                .map_or(String::new(), |f| format!(", at delete {f}")),
            mid_create_delete.map_or(String::new(), |(at, i)| format!(
                ", namespace {i} deleted at {at} ms"
            )),
            delete_kill.map_or(String::new(), |at| format!(", kill at delete +{at} ms")),
            if delete_namespaces {
                ", namespaces deleted"
            } else {
                ", objects deleted"
            },
        );

        set_faults(&self.sim, &faults);
        let began = Instant::now();
        let logged = self.sim.request_log().len();
        for (ns, kind, d) in &all_docs {
            let obj: DynamicObject = serde_json::from_str(d).unwrap();
            Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &common::resource(kind))
                .patch(
                    &obj.name_any(),
                    &PatchParams::apply("soak").force(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap_or_else(|e| panic!("apply {kind} {} in {ns}: {e}", obj.name_any()));
        }
        self.play(events, &namespaces).await;
        if let Some((_, i)) = mid_create_delete {
            self.delete_namespace(round, &namespaces[i]).await;
            live.retain(|(ns, _)| *ns != namespaces[i]);
        }
        self.converge(round, &live).await;
        let converged = began.elapsed();
        self.check_once(round, &live).await;
        if converged > SLOW {
            self.print_requests("converging", logged);
        }
        let logged = self.sim.request_log().len();
        let deleting = Instant::now();

        // Delete what is left, with the delete-phase faults and maybe a kill.
        set_faults(&self.sim, delete_faults.as_ref().unwrap_or(&json!({})));
        if delete_namespaces {
            let api = Api::<Namespace>::all(self.client.clone());
            for ns in &namespaces {
                let _ = api.delete(ns, &DeleteParams::default()).await;
            }
            if let Some(at) = delete_kill {
                tokio::time::sleep(Duration::from_millis(at)).await;
                self.kill().await;
            }
            for ns in &namespaces {
                self.delete_namespace(round, ns).await;
            }
        } else {
            let kill_at = delete_kill.map(|at| Instant::now() + Duration::from_millis(at));
            for (ns, _) in &live {
                self.delete_objects(ns, rng).await;
            }
            if let Some(at) = kill_at {
                tokio::time::sleep_until(at).await;
                self.kill().await;
            }
            for (ns, _) in &live {
                self.objects_gone(round, ns).await;
            }
        }
        set_faults(&self.sim, &json!({}));
        self.check_nothing_left(round).await;
        if deleting.elapsed() > SLOW {
            self.print_requests("deleting", logged);
        }
        println!(
            "  converged in {:.1} s, all gone after {:.1} s",
            converged.as_secs_f64(),
            began.elapsed().as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_creates_exactly_once_and_deletes_complete() {
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let rounds: u64 = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    println!("chaos soak: SOAK_SEED={seed} SOAK_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let client = common::client().await;
    common::install_crds(&client).await;
    // Not from the seed: a replay must not meet the namespaces of the run it replays.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let pool: Vec<String> = (0..3).map(|i| format!("soak-{run}-{i}")).collect();
    let sim = common::fast_sim().await;
    let mut soak = Soak {
        client,
        sim,
        pool,
        op: None,
        starts: 0,
        kills: 0,
        faults: BTreeMap::new(),
        namespace_deletes_mid_create: 0,
        violations: Vec::new(),
    };
    soak.start_operator();
    let started = Instant::now();
    let mut completed = 0;
    for round in 0..rounds {
        soak.round(round, rounds, &mut rng).await;
        completed += 1;
        if !soak.violations.is_empty() {
            break;
        }
    }
    let summary = format!(
        "chaos soak: seed {seed}, {completed} of {rounds} rounds in {:.0} s, {} kills, {} namespaces deleted mid-create, faults {:?}",
        started.elapsed().as_secs_f64(),
        soak.kills,
        soak.namespace_deletes_mid_create,
        soak.faults
    );
    println!("{summary}");
    // Namespaces that earlier rounds kept go too, through the operator, under the same checks.
    if soak.violations.is_empty() {
        for ns in soak.pool.clone() {
            soak.delete_namespace(rounds, &ns).await;
        }
        soak.check_nothing_left(rounds).await;
    }
    if let Some(mut op) = soak.op.take() {
        op.stop(Duration::from_secs(5)).await;
    }
    for ns in soak.pool.clone() {
        if let Err(e) = common::remove_namespace(&soak.client, &ns, Duration::from_secs(5)).await {
            eprintln!("{e}");
        }
    }
    soak.sim.shutdown().await;
    assert!(
        soak.violations.is_empty(),
        "SOAK_SEED={seed}: {} violation(s):\n{}",
        soak.violations.len(),
        soak.violations.join("\n\n")
    );
    if rounds >= 30 {
        assert!(soak.kills >= 10, "only {} kills", soak.kills);
        let missing: BTreeSet<Fault> = FAULTS
            .iter()
            .filter(|f| !soak.faults.contains_key(f))
            .copied()
            .collect();
        assert!(missing.is_empty(), "faults never injected: {missing:?}");
    }
}
