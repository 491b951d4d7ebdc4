//! Scale benchmark: N stacks (credential + storage + network + workspace) under one account,
//! against the real API server and the simulator with a server-side rate limit. Prints the
//! figures; asserts nothing about time (it is a measurement, not a test), only that everything
//! converges and the namespace delete leaves no remote object.
//!
//! `bash hack/bench.sh` runs it on a private control plane. Settings, by environment:
//! `BENCH_STACKS` (250), `BENCH_RATE` (15 requests/s, both the account's client limit and the
//! simulator's), `BENCH_PROVISIONING_SECS` (5), `BENCH_STEADY_SECS` (90).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::process::OperatorProcess;
use databricks_account_operator::sim::{self, RequestCounts, SimConfig};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The four documents of stack `i`.
fn stack(i: u64) -> Vec<serde_json::Value> {
    let g = "account.databricks-operator.dev/v1alpha1";
    vec![
        serde_json::json!({"apiVersion": g, "kind": "DatabricksCredential",
            "metadata": {"name": format!("cred-{i}")},
            "spec": {"roleArn": format!("arn:aws:iam::123456789012:role/bench-{i}")}}),
        serde_json::json!({"apiVersion": g, "kind": "DatabricksStorageConfig",
            "metadata": {"name": format!("storage-{i}")},
            "spec": {"bucketName": format!("bench-root-{i}")}}),
        serde_json::json!({"apiVersion": g, "kind": "DatabricksNetwork",
            "metadata": {"name": format!("net-{i}")},
            "spec": {"vpcId": format!("vpc-{i:012x}"),
                     "subnetIds": [format!("subnet-a{i:011x}"), format!("subnet-b{i:011x}")],
                     "securityGroupIds": [format!("sg-{i:012x}")]}}),
        serde_json::json!({"apiVersion": g, "kind": "DatabricksWorkspace",
            "metadata": {"name": format!("ws-{i}")},
            "spec": {"workspaceName": format!("bench-{i}"), "awsRegion": "us-west-2",
                     "credentials": {"name": format!("cred-{i}")},
                     "storageConfiguration": {"name": format!("storage-{i}")},
                     "network": {"name": format!("net-{i}")}}}),
    ]
}

/// LISTs this benchmark made itself (to watch readiness), to tell them from the operator's.
static OWN_LISTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Objects of our kinds in `ns` whose `Ready` is true, and all of them.
async fn readiness(client: &Client, ns: &str) -> (usize, usize) {
    let mut ready = 0;
    let mut all = 0;
    for kind in &common::KINDS[1..] {
        OWN_LISTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &common::resource(kind));
        let list = api.list(&ListParams::default()).await.unwrap();
        all += list.items.len();
        ready += list
            .items
            .iter()
            .filter(|o| common::condition(o, "Ready").is_some_and(|c| c.status == "True"))
            .count();
    }
    (ready, all)
}

/// LIST and WATCH requests the API server answered for our group, from its own metrics.
async fn apiserver_reads(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("apiserver_request_total{")
            && l.contains("group=\"account.databricks-operator.dev\"")
    }) {
        let verb = line
            .split("verb=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry(verb.to_string()).or_default() += value;
    }
    out
}

/// API server requests per verb between two readings, the benchmark's own LISTs (`own`) taken
/// out.
fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, own: u64) -> String {
    after
        .iter()
        .map(|(k, v)| {
            let mut n = v - before.get(k).copied().unwrap_or(0.0);
            if k == "LIST" {
                n -= own as f64;
            }
            format!("{k} {n}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The benchmark's own LISTs so far.
fn own_lists() -> u64 {
    OWN_LISTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Requests per route since `before`, most first, as `route status: n` lines.
fn calls(after: &RequestCounts, before: &RequestCounts) -> (u64, String) {
    let mut rows: Vec<(u64, String)> = after
        .entries
        .iter()
        .map(|e| {
            let was = before
                .entries
                .iter()
                .find(|b| b.route == e.route && b.status == e.status)
                .map_or(0, |b| b.count);
            (e.count - was, format!("{} {}", e.route, e.status))
        })
        .filter(|(n, _)| *n > 0)
        .collect();
    rows.sort_by(|a, b| b.cmp(a));
    let total = rows.iter().map(|r| r.0).sum();
    let text = rows
        .iter()
        .map(|(n, r)| format!("    {r}: {n}"))
        .collect::<Vec<_>>()
        .join("\n");
    (total, text)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not, and gets a small run.
    let full = std::env::args().any(|a| a == "--bench");
    let stacks = setting("BENCH_STACKS", if full { 250 } else { 5 });
    let rate = setting("BENCH_RATE", 15);
    let provisioning = setting("BENCH_PROVISIONING_SECS", if full { 5 } else { 1 });
    let steady = setting("BENCH_STEADY_SECS", if full { 90 } else { 5 });
    let objects = stacks * 4;
    println!(
        "scale: {stacks} stacks = {objects} objects, rate limit {rate}/s (client and server), provisioning {provisioning} s"
    );
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "bench").await;
    let sim = sim::start(
        SimConfig {
            provisioning: Duration::from_secs(provisioning),
            rate_limit: Some(u32::try_from(rate).unwrap()),
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .await
    .unwrap();
    let op = OperatorProcess::start(
        "bench",
        &ns,
        &["--poll-interval", "30s", "--busy-poll-interval", "5s"],
    );
    common::apply(
        &client,
        &ns,
        &common::account_docs(&sim, u32::try_from(rate).unwrap()),
    )
    .await;
    common::wait_condition(
        &client,
        &ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "Available",
        60,
    )
    .await;
    let rss_idle = op.memory_kib("VmRSS");

    // Create: every object at once, as `kubectl apply -f` of one file would.
    let reads0 = apiserver_reads(&client).await;
    let own0 = own_lists();
    let calls0 = sim.request_count();
    let started = Instant::now();
    let docs: Vec<serde_json::Value> = (0..stacks).flat_map(stack).collect();
    futures::stream::iter(docs)
        .for_each_concurrent(16, |doc| {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let obj: DynamicObject = serde_json::from_value(doc).unwrap();
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client, &ns, &common::gvk_resource(&obj));
                api.create(&PostParams::default(), &obj).await.unwrap();
            }
        })
        .await;
    let created = started.elapsed();
    let mut last_report = Instant::now();
    loop {
        let (ready, all) = readiness(&client, &ns).await;
        if ready == objects as usize {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            println!(
                "  {:>5.0} s: {ready}/{all} Ready",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "not converged after 30 minutes: {ready}/{all} Ready"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let converged = started.elapsed();
    let calls1 = sim.request_count();
    let reads1 = apiserver_reads(&client).await;
    let rss_converged = op.memory_kib("VmRSS");
    let (n, table) = calls(&calls1, &calls0);
    let creates = objects as f64;
    let bound = creates / rate as f64;
    println!(
        "converge: all {objects} Ready in {:.1} s (objects created in {:.1} s); lower bound {bound:.0} s ({objects} creates at {rate}/s) -> {:.2}x",
        converged.as_secs_f64(),
        created.as_secs_f64(),
        converged.as_secs_f64() / bound
    );
    println!("  Account API calls: {n}\n{table}");
    println!(
        "  API server requests for our kinds, the benchmark's own LISTs taken out: {}",
        diff(&reads1, &reads0, own_lists() - own0)
    );

    // Steady state.
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let calls2 = sim.request_count();
    let reads2 = apiserver_reads(&client).await;
    let (n, table) = calls(&calls2, &calls1);
    println!("steady state, {steady} s: {n} Account API calls\n{table}");
    println!(
        "  API server requests for our kinds: {}",
        diff(&reads2, &reads1, 0)
    );
    let rss_steady = op.memory_kib("VmRSS");

    // Namespace delete.
    let started = Instant::now();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &Default::default()).await.unwrap();
    loop {
        match namespaces.get_opt(&ns).await.unwrap() {
            None => break,
            Some(_) if started.elapsed() > Duration::from_secs(1800) => {
                panic!("namespace not gone after 30 minutes")
            }
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let deleted = started.elapsed();
    let calls3 = sim.request_count();
    let reads3 = apiserver_reads(&client).await;
    let (n, table) = calls(&calls3, &calls2);
    println!(
        "namespace delete: gone in {:.1} s; {n} Account API calls\n{table}",
        deleted.as_secs_f64()
    );
    println!(
        "  API server requests for our kinds (the namespace controller's included): {}",
        diff(&reads3, &reads2, 0)
    );
    let left = sim.snapshot();
    let remaining: usize = left
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_array()).map(Vec::len).sum())
        .unwrap_or(0);
    println!("  remote objects left in the simulator: {remaining}");
    assert_eq!(
        remaining, 0,
        "the namespace delete left remote objects: {left}"
    );
    println!(
        "operator RSS: {} MiB idle, {} MiB converged, {} MiB steady, {} MiB after the delete, {} MiB peak",
        rss_idle / 1024,
        rss_converged / 1024,
        rss_steady / 1024,
        op.memory_kib("VmRSS") / 1024,
        op.memory_kib("VmHWM") / 1024
    );
    drop(op);
    sim.shutdown().await;
}
