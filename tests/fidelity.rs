//! States of the real API that the operator only meets in production, shown end to end: the
//! operator binary against the real API server and the simulator, which models them (a VPC
//! endpoint's use case from its endpoint service, a network `WARNED` with warnings, a `BANNED`
//! workspace, the account's object quotas, an update refused because the operator's list was
//! older than the workspace's move to PROVISIONING, 409 conflicts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::OperatorProcess;
use common::{apply, condition, eventually, samples_of};

use std::time::Duration;

use databricks_account_operator::databricks::models as m;
use databricks_account_sim::{
    self as sim, BannedWorkspaces, Faults, LostResponse, NetworkWarning, NetworkWarnings, Quotas,
    ServerError, SimConfig, SimHandle,
};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;

const PATCH_WS: &str = "PATCH /workspaces/{id}";

async fn start_sim(config: SimConfig) -> SimHandle {
    sim::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn dynamic(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &common::resource(kind))
}

async fn get(client: &Client, ns: &str, kind: &str, name: &str) -> DynamicObject {
    dynamic(client, ns, kind).get(name).await.unwrap()
}

async fn merge_spec(client: &Client, ns: &str, kind: &str, name: &str, spec: serde_json::Value) {
    dynamic(client, ns, kind)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// The events about `name` with `reason`.
async fn events(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event")),
    );
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.data["reason"] == reason && e.data["regarding"]["name"] == name)
        .collect()
}

/// The account, credential and storage of `config/samples/`, plus `extra`.
fn stack(sim: &SimHandle, extra: &[String]) -> Vec<String> {
    let mut docs = common::account_docs(sim, 100);
    docs.extend(samples_of(
        sim,
        &["DatabricksCredential", "DatabricksStorageConfig"],
    ));
    docs.extend_from_slice(extra);
    docs
}

/// A workspace on the samples' credential and storage; `network` names a `DatabricksNetwork`.
fn workspace_doc(name: &str, network: Option<&str>) -> String {
    let network = network
        .map(|n| format!("  network: {{name: {n}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksWorkspace\nmetadata:\n  name: {name}\nspec:\n  awsRegion: us-east-1\n  credentials: {{name: cross-account}}\n  storageConfiguration: {{name: root-bucket}}\n{network}"
    )
}

fn endpoint_doc(name: &str, aws_id: &str) -> String {
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksVpcEndpoint\nmetadata:\n  name: {name}\nspec:\n  awsVpcEndpointId: {aws_id}\n  region: us-east-1\n"
    )
}

fn network_doc(name: &str, n: u32, rest: &[&str], relay: &[&str]) -> String {
    let refs = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{{name: {n}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let endpoints = if rest.is_empty() && relay.is_empty() {
        String::new()
    } else {
        format!(
            "  vpcEndpoints:\n    restApi: [{}]\n    dataplaneRelay: [{}]\n",
            refs(rest),
            refs(relay)
        )
    };
    format!(
        "apiVersion: account.databricks-operator.dev/v1alpha1\nkind: DatabricksNetwork\nmetadata:\n  name: {name}\nspec:\n  vpcId: vpc-0a1b2c3d4e5f\n  subnetIds: [subnet-a{n}, subnet-b{n}]\n  securityGroupIds: [sg-{n}]\n{endpoints}"
    )
}

/// A fresh namespace and simulator; the body runs with an operator started with `flags`, then
/// the namespace is deleted and must be gone within 120 s; on a panic it is removed anyway. Both
/// while the operator still runs.
async fn run<F, Fut>(prefix: &str, config: SimConfig, flags: &[&str], body: F)
where
    F: FnOnce(Client, String, SimHandle) -> Fut,
    Fut: std::future::Future<Output = SimHandle> + Send + 'static,
{
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    let sim = start_sim(config).await;
    let op = OperatorProcess::start(prefix, &ns, flags);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let fut = body(client.clone(), ns.clone(), sim);
    let (c, n) = (client.clone(), ns.clone());
    common::run_then_remove(
        &client,
        std::slice::from_ref(&ns),
        Duration::from_secs(60),
        async move {
            let sim = fut.await;
            // Every test ends by deleting its namespace while the operator runs: the deletes
            // complete, and nothing is left behind.
            common::remove_namespace(&c, &n, Duration::from_secs(120))
                .await
                .unwrap();
            let _ = tx.send(sim);
        },
    )
    .await;
    drop(op);
    if let Ok(sim) = rx.await {
        sim.shutdown().await;
    }
}

/// The endpoint's use case comes from the AWS endpoint service (as Databricks derives it); a
/// relay endpoint listed for the REST API is refused with Databricks' own text, shown on the
/// network, and nothing is registered for it; listed right, the network is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_in_the_wrong_network_list_is_refused_with_databricks_text() {
    let config = SimConfig {
        relay_endpoints: vec!["vpce-0ee*".into()],
        ..common::fast_sim_config()
    };
    run("fid-endpoints", config, &[], |client, ns, sim| async move {
        let docs = stack(
            &sim,
            &[
                endpoint_doc("relay", "vpce-0ee1a1b2c3"),
                endpoint_doc("rest", "vpce-0aa1b2c3d4"),
                network_doc("wrong", 1, &["relay"], &[]),
                network_doc("right", 2, &["rest"], &["relay"]),
            ],
        );
        apply(&client, &ns, &docs).await;
        for (name, use_case) in [
            ("relay", "DATAPLANE_RELAY_ACCESS"),
            ("rest", "GENERAL_ACCESS"),
        ] {
            let ep = common::wait_condition(
                &client,
                &ns,
                "DatabricksVpcEndpoint",
                name,
                "Ready",
                "Available",
                60,
            )
            .await;
            assert_eq!(ep.data["status"]["useCase"], use_case, "{name}");
        }
        let relay_id = get(&client, &ns, "DatabricksVpcEndpoint", "relay").await.data["status"]
            ["vpcEndpointId"]
            .as_str()
            .unwrap()
            .to_string();
        let wrong = common::wait_condition(
            &client,
            &ns,
            "DatabricksNetwork",
            "wrong",
            "Ready",
            "ApiRejected",
            60,
        )
        .await;
        let ready = condition(&wrong, "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("MALFORMED_REQUEST")
                && ready.message.contains(&format!(
                    "vpc_endpoints malformed parameters: VPC Endpoint {relay_id} with use_case DATAPLANE_RELAY_ACCESS cannot be attached in rest_api list"
                )),
            "{}",
            ready.message
        );
        common::wait_condition(
            &client,
            &ns,
            "DatabricksNetwork",
            "right",
            "Ready",
            "Available",
            60,
        )
        .await;
        let snap = sim.snapshot();
        let networks = snap["networks"].as_array().unwrap();
        assert_eq!(networks.len(), 1, "only the right network: {snap:#}");
        assert_eq!(
            networks[0]["vpc_endpoints"]["dataplane_relay"],
            serde_json::json!([relay_id])
        );
        sim
    })
    .await;
}

/// A WARNED network works: the workspace on it is Ready, the network stays Ready and its message
/// names the warnings, status lists them, and one `Warning` event says so (not one per poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warned_network_stays_ready_and_names_its_warnings_once() {
    run(
        "fid-warned",
        common::fast_sim_config(),
        &["--poll-interval", "2s"],
        |client, ns, sim| async move {
            sim.set_faults(Faults {
                network_warnings: Some(NetworkWarnings {
                    workspace_name_contains: None,
                    warnings: vec![NetworkWarning {
                        warning_type: "securityGroup".into(),
                        warning_message: "sg-1 allows SSH from 0.0.0.0/0".into(),
                    }],
                }),
                ..Faults::default()
            });
            let docs = stack(
                &sim,
                &[
                    network_doc("vpc", 1, &[], &[]),
                    workspace_doc("warned", Some("vpc")),
                ],
            );
            apply(&client, &ns, &docs).await;
            common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "warned",
                "Ready",
                "Available",
                90,
            )
            .await;
            let net = eventually("the network to name its warnings", 30, || {
                let client = client.clone();
                let ns = ns.clone();
                async move {
                    let n = get(&client, &ns, "DatabricksNetwork", "vpc").await;
                    let ready = condition(&n, "Ready")?;
                    ready.message.contains("VPC validation warnings").then_some(n)
                }
            })
            .await;
            let ready = condition(&net, "Ready").unwrap();
            assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Available"));
            assert!(
                ready
                    .message
                    .contains("securityGroup: sg-1 allows SSH from 0.0.0.0/0"),
                "{}",
                ready.message
            );
            assert_eq!(net.data["status"]["vpcStatus"], "WARNED");
            assert_eq!(
                net.data["status"]["warningMessages"],
                serde_json::json!([{"type": "securityGroup", "message": "sg-1 allows SSH from 0.0.0.0/0"}])
            );
            // Several polls later: still one event.
            tokio::time::sleep(Duration::from_secs(7)).await;
            let warned = events(&client, &ns, "vpc", "ValidationWarnings").await;
            assert_eq!(warned.len(), 1, "{warned:#?}");
            assert_eq!(warned[0].data["type"], "Warning");
            assert!(
                warned[0].data["note"]
                    .as_str()
                    .unwrap()
                    .contains("sg-1 allows SSH"),
                "{:?}",
                warned[0].data["note"]
            );
            sim
        },
    )
    .await;
}

/// RUNNING → BANNED → RUNNING: Ready turns False with reason `Banned` and Databricks' message; a
/// spec change waits (`UpdatePending`) and nothing is sent while banned; once the ban is lifted
/// the workspace is Ready again and the change is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_workspace_is_not_ready_takes_no_patch_and_recovers() {
    run(
        "fid-banned",
        common::fast_sim_config(),
        &["--poll-interval", "2s"],
        |client, ns, sim| async move {
            apply(&client, &ns, &stack(&sim, &[workspace_doc("banned", None)])).await;
            common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                "Ready",
                "Available",
                90,
            )
            .await;
            let text = "Workspace suspended: acceptable use policy violation (case 1234)";
            sim.set_faults(Faults {
                banned_workspaces: Some(BannedWorkspaces {
                    workspace_name_contains: None,
                    message: Some(text.into()),
                }),
                ..Faults::default()
            });
            let ws = common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                "Ready",
                "Banned",
                30,
            )
            .await;
            let ready = condition(&ws, "Ready").unwrap();
            assert_eq!(ready.status, "False");
            assert!(ready.message.contains(text), "{}", ready.message);
            assert_eq!(ws.data["status"]["workspaceStatus"], "BANNED");

            let patches = sim.request_count().total(PATCH_WS);
            merge_spec(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                serde_json::json!({"customTags": {"team": "after-ban"}}),
            )
            .await;
            let ws = common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                "Synced",
                "UpdatePending",
                30,
            )
            .await;
            let synced = condition(&ws, "Synced").unwrap();
            assert!(synced.message.contains("BANNED"), "{}", synced.message);
            assert_eq!(condition(&ws, "Ready").unwrap().reason, "Banned");
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(
                sim.request_count().total(PATCH_WS),
                patches,
                "nothing is sent to a banned workspace"
            );

            sim.set_faults(Faults::default());
            common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                "Ready",
                "Available",
                30,
            )
            .await;
            common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "banned",
                "Synced",
                "Synced",
                30,
            )
            .await;
            assert_eq!(sim.request_count().total(PATCH_WS), patches + 1);
            assert_eq!(
                sim.snapshot()["workspaces"][0]["custom_tags"],
                serde_json::json!({"team": "after-ban"})
            );
            sim
        },
    )
    .await;
}

/// A create beyond the account's quota is reported `QuotaExceeded` with what to do, tried again
/// at the poll interval (not in a loop), and made exactly once when there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_beyond_the_account_quota_waits_for_room_and_creates_once() {
    let config = SimConfig {
        quotas: Some(Quotas {
            credentials: 1,
            ..Quotas::default()
        }),
        ..common::fast_sim_config()
    };
    run(
        "fid-quota",
        config,
        &["--poll-interval", "3s"],
        |client, ns, sim| async move {
            let api = common::api_client(&sim);
            let other: m::Credential = api
                .create::<m::Credential>(&m::CreateCredential {
                    credentials_name: "made-elsewhere".into(),
                    aws_credentials: m::AwsCredentials {
                        sts_role: m::StsRole {
                            role_arn: "arn:aws:iam::123456789012:role/elsewhere".into(),
                            external_id: None,
                        },
                    },
                })
                .await
                .unwrap();
            let mut docs = common::account_docs(&sim, 100);
            docs.extend(samples_of(&sim, &["DatabricksCredential"]));
            apply(&client, &ns, &docs).await;
            let cred = common::wait_condition(
                &client,
                &ns,
                "DatabricksCredential",
                "cross-account",
                "Ready",
                "QuotaExceeded",
                60,
            )
            .await;
            let ready = condition(&cred, "Ready").unwrap();
            assert_eq!(ready.status, "False");
            for part in [
                "RESOURCE_LIMIT_EXCEEDED",
                "delete unused",
                "raise the limit",
            ] {
                assert!(ready.message.contains(part), "{part}: {}", ready.message);
            }
            // Not hot: over 9 s with a 3 s poll, a handful of attempts at most.
            let refused = |sim: &SimHandle| sim.request_count().get("POST /credentials", 400);
            let first = refused(&sim);
            tokio::time::sleep(Duration::from_secs(9)).await;
            let attempts = refused(&sim) - first;
            assert!(
                (1..=5).contains(&attempts),
                "{attempts} refused creates in 9 s"
            );

            api.delete::<m::Credential>(&other.credentials_id)
                .await
                .unwrap();
            common::wait_condition(
                &client,
                &ns,
                "DatabricksCredential",
                "cross-account",
                "Ready",
                "Available",
                30,
            )
            .await;
            let snap = sim.snapshot();
            let creds = snap["credentials"].as_array().unwrap();
            assert_eq!(creds.len(), 1, "{snap:#}");
            assert_eq!(creds[0]["credentials_name"], "cross-account");
            // The one made elsewhere, and the operator's one.
            assert_eq!(sim.request_count().get("POST /credentials", 200), 2);
            sim
        },
    )
    .await;
}

/// The operator's list shows the workspace RUNNING, but it went PROVISIONING since (someone else
/// updated it): the PATCH is refused with INVALID_STATE. That is a wait (`UpdatePending`), never
/// `ApiRejected`, and the change is sent once the workspace is RUNNING again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_refused_because_the_list_was_stale_waits_instead_of_rejecting() {
    let config = SimConfig {
        provisioning: Duration::from_secs(6),
        ..common::fast_sim_config()
    };
    // A long poll: the list read when the workspace became Ready is still used at the edit.
    run(
        "fid-stale",
        config,
        &["--poll-interval", "5m"],
        |client, ns, sim| async move {
            apply(&client, &ns, &stack(&sim, &[workspace_doc("stale", None)])).await;
            let ws = common::wait_condition(
                &client,
                &ns,
                "DatabricksWorkspace",
                "stale",
                "Ready",
                "Available",
                90,
            )
            .await;
            let id: i64 = ws.data["status"]["workspaceId"]
                .as_i64()
                .or_else(|| ws.data["status"]["workspaceId"].as_str()?.parse().ok())
                .unwrap();
            // Someone else moves the workspace to another credential: it re-provisions.
            let api = common::api_client(&sim);
            let other: m::Credential = api
                .create::<m::Credential>(&m::CreateCredential {
                    credentials_name: "someone-elses".into(),
                    aws_credentials: m::AwsCredentials {
                        sts_role: m::StsRole {
                            role_arn: "arn:aws:iam::123456789012:role/someone-elses".into(),
                            external_id: None,
                        },
                    },
                })
                .await
                .unwrap();
            api.update_workspace(
                id,
                &m::WorkspaceUpdate {
                    credentials_id: Some(other.credentials_id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            merge_spec(
                &client,
                &ns,
                "DatabricksWorkspace",
                "stale",
                serde_json::json!({"customTags": {"team": "stale-list"}}),
            )
            .await;
            let mut seen: Vec<String> = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            loop {
                let w = get(&client, &ns, "DatabricksWorkspace", "stale").await;
                let (r, s) = (
                    condition(&w, "Ready").unwrap(),
                    condition(&w, "Synced").unwrap(),
                );
                for c in [&r, &s] {
                    assert_ne!(c.reason, "ApiRejected", "{c:?}");
                }
                if seen.last() != Some(&s.reason) {
                    seen.push(s.reason.clone());
                }
                let tags = &sim.snapshot()["workspaces"][0]["custom_tags"];
                if r.reason == "Available"
                    && s.reason == "Synced"
                    && *tags == serde_json::json!({"team": "stale-list"})
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not settled: Ready {r:?}, Synced {s:?}, seen {seen:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                seen.iter().any(|r| r == "UpdatePending"),
                "the refused update was reported as a wait: {seen:?}"
            );
            assert_eq!(
                sim.request_count().get(PATCH_WS, 400),
                1,
                "the stale list led to exactly one refused PATCH"
            );
            // Someone else's PATCH, and the operator's one.
            assert_eq!(sim.request_count().get(PATCH_WS, 200), 2);
            let remote = &sim.snapshot()["workspaces"][0];
            assert_eq!(
                remote["custom_tags"],
                serde_json::json!({"team": "stale-list"})
            );
            assert_ne!(remote["credentials_id"], other.credentials_id.as_str());
            sim
        },
    )
    .await;
}

/// 409s: a create committed but answered 409 `RESOURCE_ALREADY_EXISTS` (a second request made
/// the object: a retry by a proxy) is looked up by name and adopted, not created again and not
/// reported `ApiRejected`; a 409 `ABORTED` (a race with a concurrent change, nothing done) is
/// retried with backoff. Each object ends with exactly one remote object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_adopt_what_exists_and_retry_what_was_aborted() {
    run(
        "fid-conflict",
        common::fast_sim_config(),
        &[],
        |client, ns, sim| async move {
            sim.set_faults(Faults {
                lost_response: Some(LostResponse {
                    count: 1,
                    route: Some("POST /credentials".into()),
                    status: 409,
                    ..LostResponse::default()
                }),
                server_error: Some(ServerError {
                    count: 2,
                    status: 409,
                    path_contains: Some("/storage-configurations".into()),
                    method: Some("POST".into()),
                }),
                ..Faults::default()
            });
            apply(&client, &ns, &stack(&sim, &[])).await;
            for (kind, name) in [
                ("DatabricksCredential", "cross-account"),
                ("DatabricksStorageConfig", "root-bucket"),
            ] {
                let obj =
                    common::wait_condition(&client, &ns, kind, name, "Ready", "Available", 60)
                        .await;
                let synced = condition(&obj, "Synced").unwrap();
                assert_eq!(synced.status, "True", "{kind}: {}", synced.message);
            }
            let counts = sim.request_count();
            assert_eq!(counts.get("POST /credentials", 409), 1, "{counts:?}");
            assert_eq!(counts.get("POST /credentials", 200), 0, "{counts:?}");
            assert_eq!(
                counts.get("POST /storage-configurations", 409),
                2,
                "{counts:?}"
            );
            assert_eq!(
                counts.get("POST /storage-configurations", 200),
                1,
                "{counts:?}"
            );
            let snap = sim.snapshot();
            for list in ["credentials", "storage-configurations"] {
                assert_eq!(snap[list].as_array().unwrap().len(), 1, "{list}: {snap:#}");
            }
            // The adopted credential said why it looked the object up, and never ApiRejected.
            let rejected = events(&client, &ns, "cross-account", "ApiRejected").await;
            assert!(rejected.is_empty(), "{rejected:?}");
            sim
        },
    )
    .await;
}
