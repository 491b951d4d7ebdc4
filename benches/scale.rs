//! Scale benchmark: N stacks (credential + storage + network + workspace) under one account,
//! against the real API server and the simulator with a server-side rate limit. Measures the
//! converge, a steady state of three poll intervals, an operator restart with everything Ready and
//! a namespace delete; prints a table, and writes the figures as JSON and a plot of objects Ready
//! over time (PNG) into `bench/` of the target directory. Asserts nothing about time (it is a
//! measurement, not a test), only that everything converges, that the restart turns nothing
//! not-Ready and that the namespace delete leaves no remote object.
//!
//! `bash hack/bench.sh` runs it on a private control plane. Settings, by environment (the
//! default of `cargo bench`, then of `cargo test`'s quick check): `BENCH_STACKS` (250; 5),
//! `BENCH_RATE` (15 requests/s, both the account's client limit and the simulator's),
//! `BENCH_PROVISIONING_SECS` (5; 1), `BENCH_POLL_SECS` (30; 2), `BENCH_BUSY_POLL_SECS` (5; 1),
//! `BENCH_STEADY_SECS` (three poll intervals), `BENCH_RESTART_SECS` (60; 5), `BENCH_OUT_DIR`
//! (`bench/` in the target directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::OperatorProcess;
use databricks_account_sim::{self as sim, RequestCounts, SimConfig, SimHandle};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde::Serialize;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds since the Unix epoch, the simulator's request-log clock.
fn epoch_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Pauses of more than half a second between consecutive requests from `from_ms` to `to_ms`:
/// (count, total seconds, longest seconds). The span before the first request counts too.
fn idle(log: &[sim::LoggedRequest], from_ms: u64, to_ms: u64) -> (u64, f64, f64) {
    let mut times: Vec<u64> = log
        .iter()
        .map(|r| r.at_ms)
        .filter(|t| (from_ms..=to_ms).contains(t))
        .collect();
    times.sort_unstable();
    let mut last = from_ms;
    let (mut count, mut total, mut longest) = (0, 0.0, 0.0f64);
    for t in times {
        let gap = t.saturating_sub(last) as f64 / 1000.0;
        if gap > 0.5 {
            count += 1;
            total += gap;
            longest = longest.max(gap);
        }
        last = t;
    }
    (count, total, longest)
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

/// Objects of the managed kinds in `ns` whose `Ready` is true.
async fn ready_objects(client: &Client, ns: &str) -> usize {
    let mut ready = 0;
    for kind in common::kinds().iter().filter(|k| *k != "DatabricksAccount") {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &common::resource(kind));
        let list = api.list(&ListParams::default()).await.unwrap();
        ready += list
            .items
            .iter()
            .filter(|o| common::condition(o, "Ready").is_some_and(|c| c.status == "True"))
            .count();
    }
    ready
}

/// What the simulator and one operator process had counted at one moment.
struct Reading {
    at: Instant,
    calls: RequestCounts,
    /// The operator's requests to the API server, by verb (and subresource).
    kube: BTreeMap<String, u64>,
    /// The operator's CPU time so far, in seconds.
    cpu: f64,
}

async fn reading(sim: &SimHandle, op: &OperatorProcess) -> Reading {
    let kube = kube_requests(&op.metrics().await);
    Reading {
        at: Instant::now(),
        calls: sim.request_count(),
        kube,
        cpu: op.cpu_seconds(),
    }
}

/// The value of the label `name` in a metric line.
fn label<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The operator's requests to the API server from its metrics, by verb, with the subresource
/// after it (`APPLY status` is a status write by server-side apply).
fn kube_requests(metrics: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("databricks_operator_kube_requests_total{"))
    {
        let (verb, sub) = (label(line, "verb"), label(line, "subresource"));
        let key = if sub.is_empty() {
            verb.to_string()
        } else {
            format!("{verb} {sub}")
        };
        *out.entry(key).or_default() += sample_value(line) as u64;
    }
    out
}

/// Objects the operator process has seen Ready, from its metrics.
fn ready_in_metrics(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("databricks_operator_objects{") && l.contains("ready=\"true\""))
        .map(|l| sample_value(l) as u64)
        .sum()
}

/// The figures of one phase.
#[derive(Serialize)]
struct Phase {
    seconds: f64,
    /// Account API requests the simulator answered, by method, route and status.
    calls: BTreeMap<String, u64>,
    calls_total: u64,
    /// Requests the operator sent to the API server, by verb (from its own metrics).
    kube_requests: BTreeMap<String, u64>,
    /// The operator's writes of status subresources.
    status_writes: u64,
    /// Operator CPU time in this phase.
    cpu_seconds: f64,
    /// Its average, in thousandths of a core.
    mcpu: f64,
}

fn phase(before: &Reading, after: &Reading) -> Phase {
    let mut calls = BTreeMap::new();
    for e in &after.calls.entries {
        let was = before
            .calls
            .entries
            .iter()
            .find(|b| b.route == e.route && b.status == e.status)
            .map_or(0, |b| b.count);
        if e.count > was {
            calls.insert(format!("{} {}", e.route, e.status), e.count - was);
        }
    }
    let kube: BTreeMap<String, u64> = after
        .kube
        .iter()
        .map(|(k, v)| (k.clone(), v - before.kube.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let seconds = round3((after.at - before.at).as_secs_f64());
    let cpu = round3(after.cpu - before.cpu);
    Phase {
        seconds,
        calls_total: calls.values().sum(),
        calls,
        status_writes: kube
            .iter()
            .filter(|(k, _)| k.ends_with(" status"))
            .map(|(_, v)| v)
            .sum(),
        kube_requests: kube,
        cpu_seconds: cpu,
        mcpu: if seconds > 0.0 {
            (cpu / seconds * 10_000.0).round() / 10.0
        } else {
            0.0
        },
    }
}

/// Remote creates in a phase: POSTs of objects (not of tokens) that succeeded.
fn creates(p: &Phase) -> u64 {
    p.calls
        .iter()
        .filter(|(k, _)| k.starts_with("POST /") && !k.contains("/oidc/") && k.ends_with(" 200"))
        .map(|(_, v)| v)
        .sum()
}

#[derive(Serialize)]
struct Settings {
    objects: u64,
    stacks: u64,
    rate_per_second: u64,
    provisioning_seconds: u64,
    poll_seconds: u64,
    busy_poll_seconds: u64,
    /// `cargo bench` (true) or `cargo test`'s quick check (false).
    full: bool,
}

#[derive(Serialize)]
struct Converge {
    all_ready_seconds: f64,
    /// Time to send every object to the API server.
    objects_created_seconds: f64,
    remote_creates: u64,
    /// Remote creates ÷ rate: no operator can be Ready sooner.
    bound_seconds: f64,
    ratio_to_bound: f64,
    /// Pauses of more than half a second between two Account API requests while converging:
    /// rate-limit budget the operator left unused.
    idle_gaps: u64,
    /// Their total length, seconds.
    idle_seconds: f64,
    /// The longest, seconds.
    longest_idle_seconds: f64,
    #[serde(flatten)]
    phase: Phase,
}

#[derive(Serialize)]
struct Steady {
    poll_intervals: f64,
    #[serde(flatten)]
    phase: Phase,
}

#[derive(Serialize)]
struct Restart {
    /// The first operator exited on SIGTERM within 30 s.
    stopped_cleanly: bool,
    /// When the new process had seen every object Ready, from its start.
    all_seen_ready_seconds: f64,
    /// Objects the API server showed not Ready after the stop, with what they showed. Empty.
    not_ready: BTreeMap<String, String>,
    #[serde(flatten)]
    phase: Phase,
}

#[derive(Serialize)]
struct Delete {
    remote_objects_left: usize,
    #[serde(flatten)]
    phase: Phase,
}

#[derive(Serialize)]
struct Process {
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

#[derive(Serialize)]
struct Operator {
    peak_rss_mib: f64,
    cpu_seconds: f64,
    rss_idle_mib: f64,
    rss_converged_mib: f64,
    /// The process that converged and idled.
    first: Process,
    /// The process started for the restart, which also deleted the namespace.
    restarted: Process,
}

/// The plot's scales: it draws no text (that would need system fonts), so they are told here.
#[derive(Serialize, Clone)]
struct Axes {
    x_max_seconds: f64,
    x_grid_seconds: f64,
    y_max_objects: f64,
    y_grid_objects: f64,
    lines: &'static str,
}

#[derive(Serialize)]
struct Plot {
    path: String,
    error: Option<String>,
    #[serde(flatten)]
    axes: Axes,
}

#[derive(Serialize)]
struct Report {
    settings: Settings,
    converge: Converge,
    steady: Steady,
    restart: Restart,
    namespace_delete: Delete,
    operator: Operator,
    /// Seconds since the creates began, and objects Ready then.
    readiness: Vec<(f64, u64)>,
    plot: Plot,
}

/// `v` to three decimals, for the JSON.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// A grid step of 1, 2 or 5 times a power of ten that cuts `range` into at most about ten.
fn grid_step(range: f64) -> f64 {
    let raw = (range / 10.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
        .max(1.0)
}

fn axes(samples: &[(f64, u64)], objects: u64, rate: u64) -> Axes {
    let last = samples.last().map_or(0.0, |s| s.0);
    let span = last.max(objects as f64 / rate as f64).max(1.0);
    let x_grid = grid_step(span);
    let y_grid = grid_step(objects as f64);
    Axes {
        x_max_seconds: (span / x_grid).ceil() * x_grid,
        x_grid_seconds: x_grid,
        // Room above the last object, so the bound's plateau shows.
        y_max_objects: ((objects as f64 * 1.05) / y_grid).ceil() * y_grid,
        y_grid_objects: y_grid,
        lines: "blue: objects Ready; red: the bound, min(objects, rate × t); grey: grid",
    }
}

/// Objects Ready over time (blue) against the bound (red), on a grid, with no text.
fn draw_plot(
    path: &Path,
    axes: &Axes,
    samples: &[(f64, u64)],
    objects: u64,
    rate: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let (x_max, y_max) = (axes.x_max_seconds, axes.y_max_objects);
    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(24)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    let grid = RGBColor(215, 215, 215).stroke_width(1);
    let steps = |max: f64, step: f64| {
        (1..)
            .map(move |i| i as f64 * step)
            .take_while(move |v| *v <= max + step / 1000.0)
    };
    chart.draw_series(
        steps(x_max, axes.x_grid_seconds)
            .map(|x| PathElement::new(vec![(x, 0.0), (x, y_max)], grid)),
    )?;
    chart.draw_series(
        steps(y_max, axes.y_grid_objects)
            .map(|y| PathElement::new(vec![(0.0, y), (x_max, y)], grid)),
    )?;
    // Axes, with a tick at each grid line.
    let black = BLACK.stroke_width(2);
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, y_max), (0.0, 0.0), (x_max, 0.0)],
        black,
    )))?;
    let (tx, ty) = (x_max / 80.0, y_max / 45.0);
    chart.draw_series(
        steps(x_max, axes.x_grid_seconds).map(|x| PathElement::new(vec![(x, 0.0), (x, ty)], black)),
    )?;
    chart.draw_series(
        steps(y_max, axes.y_grid_objects).map(|y| PathElement::new(vec![(0.0, y), (tx, y)], black)),
    )?;
    let full = objects as f64 / rate as f64;
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (full, objects as f64), (x_max, objects as f64)],
        RED.stroke_width(2),
    ))?;
    chart.draw_series(LineSeries::new(
        samples.iter().map(|&(t, n)| (t, n as f64)),
        BLUE.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

/// `key n` pairs of a map, most first.
fn top(map: &BTreeMap<String, u64>, limit: usize) -> String {
    let mut rows: Vec<(&u64, &String)> = map.iter().map(|(k, v)| (v, k)).collect();
    rows.sort_by(|a, b| b.cmp(a));
    let mut text = rows
        .iter()
        .take(limit)
        .map(|(v, k)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if rows.len() > limit {
        text.push_str(", ...");
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

/// The figures as a Markdown table, then the calls and API server requests of each phase.
fn tables(r: &Report) -> String {
    let s = &r.settings;
    let (c, st, rs, d, op) = (
        &r.converge,
        &r.steady,
        &r.restart,
        &r.namespace_delete,
        &r.operator,
    );
    let mut t = String::new();
    let mut row = |figure: &str, value: String| {
        let _ = writeln!(t, "| {figure} | {value} |");
    };
    row("figure", "value".into());
    row("---", "---".into());
    row(
        "objects",
        format!(
            "{} ({} stacks), rate limit {}/s (client and server), provisioning {} s, poll {} s, busy poll {} s",
            s.objects,
            s.stacks,
            s.rate_per_second,
            s.provisioning_seconds,
            s.poll_seconds,
            s.busy_poll_seconds
        ),
    );
    row(
        "all Ready",
        format!(
            "{:.1} s = {:.2} × the bound of {:.1} s ({} remote creates at {}/s); objects sent to the API server in {:.1} s",
            c.all_ready_seconds,
            c.ratio_to_bound,
            c.bound_seconds,
            c.remote_creates,
            s.rate_per_second,
            c.objects_created_seconds
        ),
    );
    row(
        "converge: Account API idle",
        format!(
            "{:.1} s in {} pauses over 0.5 s between requests (longest {:.1} s)",
            c.idle_seconds, c.idle_gaps, c.longest_idle_seconds
        ),
    );
    row(
        "converge: Account API calls",
        format!("{} ({})", c.phase.calls_total, top(&c.phase.calls, 4)),
    );
    row(
        "converge: API server requests by the operator",
        format!(
            "{} ({}); {} status writes; {:.1} CPU s",
            c.phase.kube_requests.values().sum::<u64>(),
            top(&c.phase.kube_requests, 6),
            c.phase.status_writes,
            c.phase.cpu_seconds
        ),
    );
    row(
        &format!(
            "steady state, {:.0} s ({:.0} poll intervals)",
            st.phase.seconds, st.poll_intervals
        ),
        format!(
            "{} Account API calls ({}); {} status writes; {} API server requests; {:.1} mCPU",
            st.phase.calls_total,
            top(&st.phase.calls, 4),
            st.phase.status_writes,
            st.phase.kube_requests.values().sum::<u64>(),
            st.phase.mcpu
        ),
    );
    row(
        &format!("restart, first {:.0} s", rs.phase.seconds),
        format!(
            "{} Account API calls ({}); {} status writes; {} API server requests ({}); {} objects not Ready; all seen Ready by the new process after {:.1} s; stopped {}",
            rs.phase.calls_total,
            top(&rs.phase.calls, 4),
            rs.phase.status_writes,
            rs.phase.kube_requests.values().sum::<u64>(),
            top(&rs.phase.kube_requests, 4),
            rs.not_ready.len(),
            rs.all_seen_ready_seconds,
            if rs.stopped_cleanly {
                "by SIGTERM"
            } else {
                "by SIGKILL after 30 s"
            }
        ),
    );
    row(
        "namespace delete",
        format!(
            "{:.1} s; {} Account API calls ({}); {} remote objects left",
            d.phase.seconds,
            d.phase.calls_total,
            top(&d.phase.calls, 4),
            d.remote_objects_left
        ),
    );
    row(
        "operator memory",
        format!(
            "peak RSS {:.1} MiB (first process {:.1}, restarted {:.1}); {:.1} MiB idle, {:.1} MiB converged",
            op.peak_rss_mib,
            op.first.peak_rss_mib,
            op.restarted.peak_rss_mib,
            op.rss_idle_mib,
            op.rss_converged_mib
        ),
    );
    row(
        "operator CPU",
        format!(
            "{:.1} s (first process {:.1}, restarted {:.1})",
            op.cpu_seconds, op.first.cpu_seconds, op.restarted.cpu_seconds
        ),
    );
    let a = &r.plot.axes;
    row(
        "plot",
        format!(
            "x 0–{:.0} s, grid every {:.0} s; y 0–{:.0} objects, grid every {:.0}; {}",
            a.x_max_seconds, a.x_grid_seconds, a.y_max_objects, a.y_grid_objects, a.lines
        ),
    );

    let phases = [&c.phase, &st.phase, &rs.phase, &d.phase];
    let by_phase = |title: &str, pick: &dyn Fn(&Phase) -> &BTreeMap<String, u64>| {
        let mut keys: Vec<&String> = phases.iter().flat_map(|p| pick(p).keys()).collect();
        keys.sort();
        keys.dedup();
        let mut t = format!(
            "\n| {title} | converge | steady | restart | delete |\n|---|--:|--:|--:|--:|\n"
        );
        for k in keys {
            let cells: Vec<String> = phases
                .iter()
                .map(|p| pick(p).get(k).copied().unwrap_or(0).to_string())
                .collect();
            let _ = writeln!(t, "| {k} | {} |", cells.join(" | "));
        }
        let totals: Vec<String> = phases
            .iter()
            .map(|p| pick(p).values().sum::<u64>().to_string())
            .collect();
        let _ = writeln!(t, "| total | {} |", totals.join(" | "));
        t
    };
    t.push_str(&by_phase("Account API calls (route, status)", &|p| {
        &p.calls
    }));
    t.push_str(&by_phase(
        "API server requests by the operator (verb)",
        &|p| &p.kube_requests,
    ));
    t
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not, and gets a small, quick run.
    let full = std::env::args().any(|a| a == "--bench");
    let pick = |bench: u64, check: u64| if full { bench } else { check };
    let stacks = setting("BENCH_STACKS", pick(250, 5)).max(1);
    let rate = setting("BENCH_RATE", 15);
    assert!(rate >= 1, "BENCH_RATE must be at least 1");
    let provisioning = setting("BENCH_PROVISIONING_SECS", pick(5, 1));
    let poll = setting("BENCH_POLL_SECS", pick(30, 2));
    let busy_poll = setting("BENCH_BUSY_POLL_SECS", pick(5, 1));
    let steady = setting("BENCH_STEADY_SECS", 3 * poll);
    let restart_window = setting("BENCH_RESTART_SECS", pick(60, 5));
    let out_dir = std::env::var_os("BENCH_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target directory")
                .join("bench")
        });
    let objects = stacks * 4;
    println!(
        "scale: {stacks} stacks = {objects} objects, rate limit {rate}/s (client and server), provisioning {provisioning} s, poll {poll} s, busy poll {busy_poll} s"
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
    let (poll_arg, busy_arg) = (format!("{poll}s"), format!("{busy_poll}s"));
    let op_args = [
        "--poll-interval",
        poll_arg.as_str(),
        "--busy-poll-interval",
        busy_arg.as_str(),
    ];
    let mut op = OperatorProcess::start("bench", &ns, &op_args);
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

    // Converge: every object at once, as `kubectl apply -f` of one file would; readiness
    // sampled about once a second.
    let r0 = reading(&sim, &op).await;
    let started = Instant::now();
    let started_ms = epoch_ms();
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
    let mut samples: Vec<(f64, u64)> = vec![(0.0, 0)];
    let mut last_report = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        let ready = ready_objects(&client, &ns).await as u64;
        samples.push((round3(t), ready));
        if ready == objects {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            println!("  {t:>5.0} s: {ready}/{objects} Ready");
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "not converged after 30 minutes: {ready}/{objects} Ready"
        );
    }
    let converged = started.elapsed();
    let converged_ms = epoch_ms();
    let r1 = reading(&sim, &op).await;
    let (idle_gaps, idle_seconds, longest_idle_seconds) =
        idle(&sim.request_log(), started_ms, converged_ms);
    let rss_converged = op.memory_kib("VmRSS");
    let mut converge_phase = phase(&r0, &r1);
    // The phase began when the creates did.
    converge_phase.seconds = round3(converged.as_secs_f64());
    let remote_creates = creates(&converge_phase);
    let bound = remote_creates as f64 / rate as f64;
    println!(
        "converge: all {objects} Ready in {:.1} s; bound {bound:.1} s",
        converged.as_secs_f64()
    );
    assert!(
        converge_phase.status_writes >= objects,
        "the operator's metrics count {} status writes for {objects} objects that became Ready",
        converge_phase.status_writes
    );

    // Steady state.
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let r2 = reading(&sim, &op).await;
    let first = Process {
        cpu_seconds: round3(r2.cpu),
        peak_rss_mib: mib(op.memory_kib("VmHWM")),
    };
    println!("steady state: {steady} s done");

    // Restart: a new process on the same namespace with everything Ready. Watches of every kind
    // record any object the API server shows not Ready from before the stop on.
    let not_ready: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let (listed_tx, mut listed_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let kinds = common::kinds();
    let watches: Vec<_> = kinds
        .iter()
        .cloned()
        .map(|kind| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns, &common::resource(&kind));
            let not_ready = not_ready.clone();
            let listed = listed_tx.clone();
            tokio::spawn(async move {
                let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    let obj = match event {
                        Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => o,
                        Ok(watcher::Event::InitDone) => {
                            let _ = listed.send(());
                            continue;
                        }
                        _ => continue,
                    };
                    let ready = common::condition(&obj, "Ready");
                    if ready.as_ref().is_none_or(|c| c.status != "True") {
                        let seen = ready.map_or("no Ready condition".into(), |c| {
                            format!("Ready={} {}", c.status, c.reason)
                        });
                        not_ready
                            .lock()
                            .unwrap()
                            .entry(format!("{kind}/{}", obj.name_any()))
                            .or_insert(seen);
                    }
                }
            })
        })
        .collect();
    for _ in &kinds {
        tokio::time::timeout(Duration::from_secs(60), listed_rx.recv())
            .await
            .expect("every watch lists its kind within a minute");
    }
    let stopped_cleanly = op.stop(Duration::from_secs(30)).await;
    drop(op);
    let restarted = Instant::now();
    let r_stop = Reading {
        at: restarted,
        calls: sim.request_count(),
        kube: BTreeMap::new(),
        cpu: 0.0,
    };
    let op = OperatorProcess::start("bench-restarted", &ns, &op_args);
    let window_end = tokio::time::Instant::now() + Duration::from_secs(restart_window);
    let mut all_seen = None;
    let mut r3 = None;
    let (all_seen, r3) = loop {
        if all_seen.is_none() && ready_in_metrics(&op.metrics().await) >= objects {
            all_seen = Some(restarted.elapsed().as_secs_f64());
        }
        if r3.is_none() && tokio::time::Instant::now() >= window_end {
            r3 = Some(reading(&sim, &op).await);
        }
        if let (Some(seen), Some(_)) = (all_seen, &r3) {
            break (seen, r3.take().expect("just seen"));
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(600),
            "the restarted operator has not seen every object Ready in 10 minutes"
        );
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        tokio::time::sleep_until(if r3.is_none() {
            next.min(window_end)
        } else {
            next
        })
        .await;
    };
    for w in &watches {
        w.abort();
    }
    let not_ready = std::mem::take(&mut *not_ready.lock().unwrap());
    let restart_phase = phase(&r_stop, &r3);
    println!(
        "restart: all seen Ready by the new process after {all_seen:.1} s; {} not Ready",
        not_ready.len()
    );

    // Namespace delete.
    let r4 = reading(&sim, &op).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &Default::default()).await.unwrap();
    loop {
        match namespaces.get_opt(&ns).await.unwrap() {
            None => break,
            Some(_) if r4.at.elapsed() > Duration::from_secs(1800) => {
                panic!("namespace not gone after 30 minutes")
            }
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let r5 = reading(&sim, &op).await;
    let left = sim.snapshot();
    let remaining: usize = left
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_array()).map(Vec::len).sum())
        .unwrap_or(0);
    let second = Process {
        cpu_seconds: round3(r5.cpu),
        peak_rss_mib: mib(op.memory_kib("VmHWM")),
    };
    drop(op);
    let log = sim.request_log();
    sim.shutdown().await;

    let axes = axes(&samples, objects, rate);
    std::fs::create_dir_all(&out_dir).unwrap();
    let json_path = out_dir.join(format!("scale-{objects}.json"));
    let png_path = out_dir.join(format!("scale-{objects}.png"));
    let plot_error = draw_plot(&png_path, &axes, &samples, objects, rate)
        .err()
        .map(|e| e.to_string());
    let report = Report {
        settings: Settings {
            objects,
            stacks,
            rate_per_second: rate,
            provisioning_seconds: provisioning,
            poll_seconds: poll,
            busy_poll_seconds: busy_poll,
            full,
        },
        converge: Converge {
            all_ready_seconds: round3(converged.as_secs_f64()),
            objects_created_seconds: round3(created.as_secs_f64()),
            remote_creates,
            bound_seconds: round3(bound),
            ratio_to_bound: round3(converged.as_secs_f64() / bound),
            idle_gaps,
            idle_seconds: round3(idle_seconds),
            longest_idle_seconds: round3(longest_idle_seconds),
            phase: converge_phase,
        },
        steady: Steady {
            poll_intervals: steady as f64 / poll as f64,
            phase: phase(&r1, &r2),
        },
        restart: Restart {
            stopped_cleanly,
            all_seen_ready_seconds: round3(all_seen),
            not_ready,
            phase: restart_phase,
        },
        namespace_delete: Delete {
            remote_objects_left: remaining,
            phase: phase(&r4, &r5),
        },
        operator: Operator {
            peak_rss_mib: first.peak_rss_mib.max(second.peak_rss_mib),
            cpu_seconds: round3(first.cpu_seconds + second.cpu_seconds),
            rss_idle_mib: mib(rss_idle),
            rss_converged_mib: mib(rss_converged),
            first,
            restarted: second,
        },
        readiness: samples,
        plot: Plot {
            path: png_path.display().to_string(),
            error: plot_error.clone(),
            axes,
        },
    };
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    // Every Account API request of the run (time, route, status), one JSON object per line,
    // for looking into where the time went.
    let requests_path = out_dir.join(format!("requests-{objects}.jsonl"));
    let lines: String = log
        .iter()
        .map(|r| {
            serde_json::json!({"at_ms": r.at_ms, "route": r.route, "status": r.status}).to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&requests_path, lines).unwrap();
    println!("\n{}", tables(&report));
    println!("JSON: {}", json_path.display());
    println!("plot: {}", png_path.display());
    println!("requests: {}", requests_path.display());

    assert!(
        report.restart.not_ready.is_empty(),
        "the restart turned objects not Ready: {:?}",
        report.restart.not_ready
    );
    assert_eq!(
        remaining, 0,
        "the namespace delete left remote objects: {left}"
    );
    assert!(plot_error.is_none(), "the plot failed: {plot_error:?}");
}
