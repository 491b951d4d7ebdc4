//! Reconciles read nothing from the Kubernetes API server: dependencies, referrers and accounts
//! come from the watches' caches. The operator's own count of its requests, by verb, shows it.
//!
//! Why it matters: reads that grow with the number of objects saturate the API server (one
//! namespace delete of 1,000 objects once made about 49,000 LISTs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;
use common::{samples, samples_of};

use std::time::Duration;

/// The operator's requests to the API server with this verb so far (0 before the first).
async fn requests(op: &OperatorProcess, verb: &str) -> f64 {
    let prefix = format!("databricks_operator_kube_requests_total{{verb=\"{verb}\"");
    op.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A full stack (account, credential, storage, key, network, workspace) converges and is deleted
/// with a namespace delete, and the operator sends no GET and no LIST beyond those of its
/// watches: everything else it sends is a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stack_converges_and_goes_without_a_read_from_a_reconcile() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "reads").await;
    let sim = common::fast_sim().await;
    let op = OperatorProcess::start("reads", &ns, &[]);

    // Accounts, opted-in Secrets and the seven managed kinds: one watch each, one list each
    // (more when a first list fails, as it does while just-created CRDs are not served yet).
    // The account's first reconcile waits for every watch's first list: once it is Ready, the
    // watches are all open.
    common::apply(
        &client,
        &ns,
        &samples_of(&sim, &["Secret", "DatabricksAccount"]),
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
    let lists = requests(&op, "LIST").await;
    let watches = requests(&op, "WATCH").await;
    let gets = requests(&op, "GET").await;
    assert!(lists >= 9.0, "one list per watch at the start: {lists}");
    // A watch the API server closes starts again, with a LIST when it must (a CRD that was just
    // replaced gets new storage, closing its watches): those LISTs are the watches', each
    // followed by a WATCH. A read from a reconcile is a GET, or a LIST without one.
    let reads = || async {
        let (get, list, watch) = (
            requests(&op, "GET").await - gets,
            requests(&op, "LIST").await - lists,
            requests(&op, "WATCH").await - watches,
        );
        (get, (list - watch).max(0.0))
    };

    common::apply(&client, &ns, &samples(&sim)).await;
    common::wait_condition(
        &client,
        &ns,
        "DatabricksWorkspace",
        "analytics",
        "Ready",
        "Available",
        120,
    )
    .await;
    let writes = requests(&op, "APPLY").await;
    assert!(writes >= 6.0, "status writes were counted: {writes}");
    assert_eq!(
        reads().await,
        (0.0, 0.0),
        "reads while converging (GET, LIST without a WATCH)"
    );

    common::remove_namespace(&client, &ns, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        reads().await,
        (0.0, 0.0),
        "reads while deleting (GET, LIST without a WATCH)"
    );
    assert_eq!(
        sim.snapshot()["workspaces"].as_array().map(Vec::len),
        Some(0),
        "the namespace delete removed the remote objects"
    );
    drop(op);
    sim.shutdown().await;
}
