//! The trust boundary end to end, with the real binary: Secret rotation within seconds, no moves
//! between accounts, and annotations that cannot panic the operator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::process::OperatorProcess;
use common::{apply, condition, eventually, resource, samples_of, wait_condition};
use databricks_account_operator::databricks::models as m;
use databricks_account_sim::{self as sim, SimConfig, SimHandle};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

async fn setup(prefix: &str) -> (Client, String) {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    (client, ns)
}

async fn start_sim(account_id: Option<&str>) -> SimHandle {
    let mut config = SimConfig::default();
    if let Some(id) = account_id {
        config.account_id = id.into();
    }
    sim::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn dynamic(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(kind))
}

fn credential(name: &str, spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksCredential\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\nspec:\n  roleArn: arn:aws:iam::123456789012:role/{name}\n{spec}"
    )
}

async fn merge_patch(api: &Api<DynamicObject>, name: &str, patch: serde_json::Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn posts(sim: &SimHandle, collection: &str) -> u64 {
    sim.request_count().total(&format!("POST /{collection}"))
}

/// Removes the finalizers so the namespace can go without the operator, then deletes it.
async fn teardown(client: &Client, ns: &str) {
    for kind in ["DatabricksCredential", "DatabricksAccount"] {
        let api = dynamic(client, ns, kind);
        for o in api.list(&Default::default()).await.unwrap() {
            let name = o.metadata.name.clone().unwrap();
            let _ = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
    }
    common::delete_namespace(client, ns).await;
}

/// A wrong client secret put into the account's Secret is noticed within seconds, without a poll
/// or a restart: the account turns `AuthenticationFailed` and nothing new is created; restoring
/// the Secret makes it Ready again and the waiting object is created.
#[tokio::test]
async fn a_rotated_secret_takes_effect_within_seconds() {
    let (client, ns) = setup("rotate").await;
    let sim = start_sim(None).await;
    // The account's own poll is an hour away: only the Secret watch can explain a quick change.
    let mut op = OperatorProcess::start("rotate", &ns, &["--poll-interval", "1h"]);
    apply(
        &client,
        &ns,
        &samples_of(&sim, &["Secret", "DatabricksAccount"]),
    )
    .await;
    wait_condition(
        &client,
        &ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "Available",
        60,
    )
    .await;

    let secrets: Api<KubeSecret> = Api::namespaced(client.clone(), &ns);
    let set_secret = |value: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "databricks-sp",
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"stringData": {"client-secret": value}})),
                )
                .await
                .unwrap();
        }
    };
    set_secret("a-wrong-secret").await;
    let changed = Instant::now();
    wait_condition(
        &client,
        &ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "AuthenticationFailed",
        30,
    )
    .await;
    let noticed = changed.elapsed();
    // The acceptance bound; it is measured from the Secret write to the status read.
    assert!(noticed <= Duration::from_secs(5), "took {noticed:?}");

    // No creates while the credentials are refused.
    let before = posts(&sim, "credentials");
    apply(&client, &ns, &[credential("waiting", "", "")]).await;
    let waiting = wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "waiting",
        "Ready",
        "WaitingForDependency",
        30,
    )
    .await;
    assert!(
        condition(&waiting, "Ready")
            .unwrap()
            .message
            .contains("refused the credentials"),
        "{:?}",
        condition(&waiting, "Ready")
    );
    assert_eq!(posts(&sim, "credentials"), before);

    set_secret("sim-client-secret").await;
    let restored = Instant::now();
    wait_condition(
        &client,
        &ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "Available",
        30,
    )
    .await;
    let recovered = restored.elapsed();
    assert!(recovered <= Duration::from_secs(5), "took {recovered:?}");
    wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "waiting",
        "Ready",
        "Available",
        60,
    )
    .await;
    assert_eq!(posts(&sim, "credentials"), before + 1);
    assert!(op.running(), "the operator must not restart");
    println!("wrong secret noticed in {noticed:?}, restored in {recovered:?}");
    teardown(&client, &ns).await;
}

/// Editing an object's `accountRef` or `externalId` after it has an ID, or an account's host or
/// account ID while objects use it, is reported as `ImmutableFieldChanged` and never creates
/// anything in the other account.
#[tokio::test]
async fn objects_never_move_between_accounts() {
    let (client, ns) = setup("moves").await;
    let sim_a = start_sim(None).await;
    let sim_b = start_sim(Some("00000000-0000-0000-0000-00000000000b")).await;
    let _op = OperatorProcess::start("moves", &ns, &[]);
    let mut docs = samples_of(&sim_a, &["Secret", "DatabricksAccount"]);
    // A second account on the second simulator, with its own Secret.
    let b = sim_b.config();
    docs.push(format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sp-b\n  labels: {{account.databricks-operator.dev/account-secret: \"true\"}}\nstringData:\n  client-id: {}\n  client-secret: {}\n",
        b.client_id, b.client_secret
    ));
    docs.push(format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksAccount\nmetadata:\n  name: other\nspec:\n  host: {}\n  accountId: {}\n  auth:\n    oauthM2M:\n      secretRef: {{name: sp-b}}\n",
        sim_b.base_url(),
        b.account_id
    ));
    docs.push(credential("moving", "", ""));
    docs.push(credential("adopting", "", ""));
    apply(&client, &ns, &docs).await;
    for name in ["default", "other"] {
        wait_condition(
            &client,
            &ns,
            "DatabricksAccount",
            name,
            "Ready",
            "Available",
            60,
        )
        .await;
    }
    for name in ["moving", "adopting"] {
        wait_condition(
            &client,
            &ns,
            "DatabricksCredential",
            name,
            "Ready",
            "Available",
            60,
        )
        .await;
    }
    let creds = dynamic(&client, &ns, "DatabricksCredential");
    let posts_a = posts(&sim_a, "credentials");
    assert_eq!(posts_a, 2);

    merge_patch(
        &creds,
        "moving",
        serde_json::json!({"spec": {"accountRef": {"name": "other"}}}),
    )
    .await;
    let moved = wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "moving",
        "Synced",
        "ImmutableFieldChanged",
        30,
    )
    .await;
    assert!(
        condition(&moved, "Synced")
            .unwrap()
            .message
            .contains("spec.accountRef changed from \"default\" to \"other\""),
        "{:?}",
        condition(&moved, "Synced")
    );
    assert_eq!(
        moved.data["status"]["accountName"], "default",
        "the ID stays with its account"
    );
    merge_patch(
        &creds,
        "adopting",
        serde_json::json!({"spec": {"externalId": "some-other-credential"}}),
    )
    .await;
    let adopted = wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "adopting",
        "Synced",
        "ImmutableFieldChanged",
        30,
    )
    .await;
    assert!(
        condition(&adopted, "Synced")
            .unwrap()
            .message
            .contains("spec.externalId \"some-other-credential\" differs"),
        "{:?}",
        condition(&adopted, "Synced")
    );

    // The account itself: a new account ID, then a new host, while two objects use it.
    let accounts = dynamic(&client, &ns, "DatabricksAccount");
    merge_patch(
        &accounts,
        "default",
        serde_json::json!({"spec": {"accountId": b.account_id}}),
    )
    .await;
    let acct = wait_condition(
        &client,
        &ns,
        "DatabricksAccount",
        "default",
        "Ready",
        "ImmutableFieldChanged",
        30,
    )
    .await;
    assert!(
        condition(&acct, "Ready")
            .unwrap()
            .message
            .contains("accountId (was \"00000000-0000-0000-0000-000000000001\")"),
        "{:?}",
        condition(&acct, "Ready")
    );
    merge_patch(
        &accounts,
        "default",
        serde_json::json!({"spec": {"accountId": sim_a.config().account_id, "host": sim_b.base_url()}}),
    )
    .await;
    let acct = eventually("the host change reported", 30, || async {
        let a = accounts.get("default").await.ok()?;
        let c = condition(&a, "Ready")?;
        (c.reason == "ImmutableFieldChanged" && c.message.contains("host (was")).then_some(a)
    })
    .await;
    assert!(
        condition(&acct, "Ready")
            .unwrap()
            .message
            .contains("2 object(s)")
    );

    // A new object under the moved account waits; nothing was created anywhere.
    apply(&client, &ns, &[credential("newcomer", "", "")]).await;
    wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "newcomer",
        "Ready",
        "WaitingForDependency",
        30,
    )
    .await;
    assert_eq!(posts(&sim_a, "credentials"), posts_a);
    assert_eq!(posts(&sim_b, "credentials"), 0);
    assert_eq!(
        sim_b.snapshot()["credentials"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(
        sim_a.snapshot()["credentials"].as_array().map(Vec::len),
        Some(2)
    );
    teardown(&client, &ns).await;
}

/// A poll interval no timer can hold, on an object that meets a name conflict, is refused with a
/// named reason; the longest valid one gates the object for a day without a panic; and the
/// operator goes on reconciling an object created afterwards.
#[tokio::test]
async fn a_huge_poll_interval_cannot_panic_the_operator() {
    let (client, ns) = setup("annot").await;
    let sim = start_sim(None).await;
    let mut op = OperatorProcess::start("annot", &ns, &[]);
    // Names already taken in the account, by objects this namespace never created.
    for name in ["taken", "taken-too"] {
        let c = common::api_client(&sim);
        c.create::<m::Credential>(&m::CreateCredential {
            credentials_name: name.into(),
            aws_credentials: m::AwsCredentials {
                sts_role: m::StsRole {
                    role_arn: format!("arn:aws:iam::123456789012:role/{name}"),
                    external_id: None,
                },
            },
        })
        .await
        .unwrap();
    }
    let mut docs = samples_of(&sim, &["Secret", "DatabricksAccount"]);
    docs.push(credential(
        "taken",
        "",
        r#""account.databricks-operator.dev/poll-interval": "18446744073709551615""#,
    ));
    docs.push(credential(
        "taken-too",
        "",
        r#""account.databricks-operator.dev/poll-interval": "24h""#,
    ));
    apply(&client, &ns, &docs).await;
    let refused = wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "taken",
        "Ready",
        "InvalidSpec",
        60,
    )
    .await;
    assert!(
        condition(&refused, "Ready").unwrap().message.contains(
            "poll-interval: \"18446744073709551615\" is out of range: between 10s and 24h"
        ),
        "{:?}",
        condition(&refused, "Ready")
    );
    wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "taken-too",
        "Ready",
        "NameConflict",
        60,
    )
    .await;
    apply(&client, &ns, &[credential("later", "", "")]).await;
    wait_condition(
        &client,
        &ns,
        "DatabricksCredential",
        "later",
        "Ready",
        "Available",
        60,
    )
    .await;
    assert!(op.running(), "the operator is still running");
    assert!(!op.log_text().contains("panicked"), "{}", op.log_text());
    teardown(&client, &ns).await;
}
