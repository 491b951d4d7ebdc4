//! Deletes that must finish after the operator restarts: the account's Secret is held by a
//! finalizer while an account names it, so a namespace delete finishes even when the operator
//! dies in the middle; without that hold, an account being deleted still serves its objects'
//! deletes, and an account that cannot connect says why on every waiting object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;
use common::{apply, eventually};

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject};

fn credential_doc(name: &str) -> String {
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksCredential\nmetadata:\n  name: {name}\nspec:\n  roleArn: arn:aws:iam::123456789012:role/{name}\n"
    )
}

fn dynamic(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &common::resource(kind))
}

const SECRET_FINALIZER: &str = "account.databricks-operator.dev/account-secret-in-use";

async fn secret_finalizers(client: &kube::Client, ns: &str, name: &str) -> Option<Vec<String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    Some(secrets.get_opt(name).await.unwrap()?.finalizers().to_vec())
}

/// The operator dies while the whole namespace is deleted: the Secret is deleted with
/// everything else, before the new process starts. The Secret was held, so the new process
/// can still read it, deletes the remote credential, and the namespace goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_while_the_operator_was_down_is_gone_after_the_restart() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "deletes-ns").await;
    let sim = common::fast_sim().await;
    let op = OperatorProcess::start("deletes-ns", &ns, &[]);
    let mut docs = common::account_docs(&sim, 100);
    docs.push(credential_doc("cred"));
    apply(&client, &ns, &docs).await;
    common::wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "cred",
        "Ready",
        "Available",
        60,
    )
    .await;
    eventually("the account to hold its Secret", 30, || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            secret_finalizers(&client, &ns, "databricks-sp")
                .await?
                .iter()
                .any(|f| f == SECRET_FINALIZER)
                .then_some(())
        }
    })
    .await;

    op.signal("KILL");
    common::delete_namespace(&client, &ns).await;
    // Everything is marked for deletion; the Secret stays only because it is held.
    eventually("the Secret to be marked for deletion", 30, || {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        async move {
            secrets
                .get_opt("databricks-sp")
                .await
                .ok()??
                .metadata
                .deletion_timestamp
                .map(drop)
        }
    })
    .await;
    let _op = OperatorProcess::start("deletes-ns-again", &ns, &[]);
    common::remove_namespace(&client, &ns, Duration::from_secs(60))
        .await
        .expect("the namespace goes with the operator's help alone");
    assert_eq!(
        sim.snapshot()["credentials"].as_array().map(Vec::len),
        Some(0),
        "the remote credential was deleted, not leaked"
    );
    sim.shutdown().await;
}

/// The Secret is released as soon as no account names it: when the account is deleted, or
/// when it names another Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_no_account_names_is_released() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "deletes-release").await;
    let sim = common::fast_sim().await;
    let _op = OperatorProcess::start("deletes-release", &ns, &[]);
    let account = common::account_docs(&sim, 100);
    let other = account[0].replace("name: databricks-sp", "name: databricks-sp-2");
    apply(
        &client,
        &ns,
        &[account[0].clone(), other, account[1].clone()],
    )
    .await;
    let held = |name: &'static str, want: bool| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            eventually(&format!("{name} held={want}"), 30, || {
                let client = client.clone();
                let ns = ns.clone();
                async move {
                    let f = secret_finalizers(&client, &ns, name).await?;
                    (f.iter().any(|f| f == SECRET_FINALIZER) == want).then_some(())
                }
            })
            .await;
        }
    };
    held("databricks-sp", true).await;
    assert_eq!(
        secret_finalizers(&client, &ns, "databricks-sp-2").await,
        Some(vec![]),
        "a Secret no account names is not held"
    );

    // The account moves to the other Secret: the first is released, the second held.
    apply(
        &client,
        &ns,
        &[account[1].replace("name: databricks-sp\n", "name: databricks-sp-2\n")],
    )
    .await;
    held("databricks-sp-2", true).await;
    held("databricks-sp", false).await;

    // The account goes: its Secret is released and can be deleted at once.
    dynamic(&client, &ns, "DatabricksAccount")
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    held("databricks-sp-2", false).await;
    common::remove_namespace(&client, &ns, Duration::from_secs(30))
        .await
        .unwrap();
    sim.shutdown().await;
}

/// Without the Secret hold (`--hold-account-secrets=false`): the operator dies; meanwhile the
/// account's Secret is deleted, then the account and its credential. The new process has never
/// had a client for the account: both wait, the credential's condition names the missing
/// Secret, and restoring the Secret finishes both deletes (the remote credential is deleted,
/// not leaked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_deleted_while_the_operator_was_down_finishes_once_its_secret_is_back() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "deletes").await;
    let sim = common::fast_sim().await;
    let unheld = ["--hold-account-secrets", "false"];
    let op = OperatorProcess::start("deletes", &ns, &unheld);
    let account = common::account_docs(&sim, 100);
    let mut docs = account.clone();
    docs.push(credential_doc("cred"));
    apply(&client, &ns, &docs).await;
    common::wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "cred",
        "Ready",
        "Available",
        60,
    )
    .await;
    assert_eq!(
        sim.snapshot()["credentials"].as_array().map(Vec::len),
        Some(1)
    );

    op.signal("KILL");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .delete("databricks-sp", &DeleteParams::default())
        .await
        .unwrap();
    for (kind, name) in [
        ("DatabricksCredential", "cred"),
        ("DatabricksAccount", "default"),
    ] {
        dynamic(&client, &ns, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let _op = OperatorProcess::start("deletes-again", &ns, &unheld);

    let waiting = eventually("the credential to name the missing Secret", 60, || {
        let creds = dynamic(&client, &ns, "DatabricksCredential");
        async move {
            let c = common::condition(&creds.get("cred").await.ok()?, "Synced")?;
            (c.reason == "WaitingForDependency" && c.message.contains("databricks-sp"))
                .then_some(c.message)
        }
    })
    .await;
    assert!(
        waiting.contains("DatabricksAccount \"default\""),
        "{waiting}"
    );
    assert_eq!(
        sim.snapshot()["credentials"].as_array().map(Vec::len),
        Some(1),
        "nothing is released without a confirmed delete"
    );

    // The Secret is back: the deletes finish, the remote credential with them.
    apply(&client, &ns, &account[..1]).await;
    eventually("the credential and the account to go", 60, || {
        let creds = dynamic(&client, &ns, "DatabricksCredential");
        let accounts = dynamic(&client, &ns, "DatabricksAccount");
        async move {
            (creds.get_opt("cred").await.ok()?.is_none()
                && accounts.get_opt("default").await.ok()?.is_none())
            .then_some(())
        }
    })
    .await;
    assert_eq!(
        sim.snapshot()["credentials"].as_array().map(Vec::len),
        Some(0)
    );
    common::remove_namespace(&client, &ns, Duration::from_secs(60))
        .await
        .unwrap();
    sim.shutdown().await;
}

/// A proxy's HTML 404 on a DELETE is not the API saying the object is gone: a fresh list shows
/// it is still there, the finalizer stays, and the delete is tried again with backoff (not at
/// the poll interval, which here is ten minutes) until it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_by_a_proxy_page_is_retried_with_backoff() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "deletes-proxy").await;
    let sim = common::fast_sim().await;
    let op = OperatorProcess::start("deletes-proxy", &ns, &["--poll-interval", "10m"]);
    let mut docs = common::account_docs(&sim, 100);
    docs.push(credential_doc("cred"));
    apply(&client, &ns, &docs).await;
    common::wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "cred",
        "Ready",
        "Available",
        60,
    )
    .await;
    sim.set_faults(
        serde_json::from_value(serde_json::json!({
            "proxy_not_found": {"count": 3, "path_contains": "/credentials/"}
        }))
        .unwrap(),
    );
    dynamic(&client, &ns, "DatabricksCredential")
        .delete("cred", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the credential to go", 45, || {
        let creds = dynamic(&client, &ns, "DatabricksCredential");
        async move { creds.get_opt("cred").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let counts = sim.request_count();
    assert_eq!(
        (
            counts.get("DELETE /credentials/{id}", 404),
            counts.get("DELETE /credentials/{id}", 200)
        ),
        (3, 1),
        "three proxy pages, then the delete: {counts:?}"
    );
    // Its log is a file, not a terminal: plain text, no colour codes.
    let log = op.log_text();
    assert!(log.contains("delete failed"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log}");
    assert_eq!(
        sim.snapshot()["credentials"].as_array().map(Vec::len),
        Some(0)
    );
    common::remove_namespace(&client, &ns, Duration::from_secs(60))
        .await
        .unwrap();
    sim.shutdown().await;
}
