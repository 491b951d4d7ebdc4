//! Deletes that must finish after the operator restarts: an account being deleted still serves
//! its objects' deletes, and an account that cannot connect says why on every waiting object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;
use common::{apply, eventually};

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject};

fn credential_doc(name: &str) -> String {
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksCredential\nmetadata:\n  name: {name}\nspec:\n  roleArn: arn:aws:iam::123456789012:role/{name}\n"
    )
}

fn dynamic(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &common::resource(kind))
}

/// The operator dies; meanwhile the account's Secret is deleted, then the account and its
/// credential. The new process has never had a client for the account: both wait, the
/// credential's condition names the missing Secret, and restoring the Secret finishes both
/// deletes (the remote credential is deleted, not leaked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_deleted_while_the_operator_was_down_finishes_once_its_secret_is_back() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "deletes").await;
    let sim = common::fast_sim().await;
    let op = OperatorProcess::start("deletes", &ns, &[]);
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
    let _op = OperatorProcess::start("deletes-again", &ns, &[]);

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
