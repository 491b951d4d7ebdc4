//! The local control plane behaves like Kubernetes for everything the operator relies on: CRD
//! schemas, watches, the status subresource, finalizers and deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use databricks_account_operator::crd::{DatabricksCredential, DatabricksNetwork, FINALIZER};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

fn credential(name: &str) -> DatabricksCredential {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1",
        "kind": "DatabricksCredential",
        "metadata": {"name": name},
        "spec": {"roleArn": "arn:aws:iam::123456789012:role/databricks-cross-account"}
    }))
    .unwrap()
}

/// The whole life of a custom resource on the real API server: CRDs from `crds/` installed and
/// Established, a watch that sees the object, a status-subresource patch that leaves the spec
/// alone, a finalizer that holds deletion, and the object gone once the finalizer is removed.
#[tokio::test]
async fn custom_resource_lifecycle_on_a_real_api_server() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "lifecycle").await;
    let api: Api<DatabricksCredential> = Api::namespaced(client.clone(), &ns);

    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    let created = api
        .create(&PostParams::default(), &credential("cred"))
        .await
        .unwrap();
    // Defaults from the schema are applied by the server.
    assert_eq!(created.spec.management.account_ref.name, "default");

    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let obj = events.next().await.unwrap().unwrap();
            if obj.metadata.name.as_deref() == Some("cred") {
                return obj;
            }
        }
    })
    .await
    .expect("the watch delivers the new object");
    assert_eq!(seen.metadata.uid, created.metadata.uid);

    // Status goes through the status subresource and does not touch the spec or generation.
    let status = serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1",
        "kind": "DatabricksCredential",
        "status": {"credentialsId": "c-123", "conditions": [{
            "type": "Ready", "status": "True", "reason": "Available", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    let patched = api
        .patch_status(
            "cred",
            &PatchParams::apply("lifecycle-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().unwrap().credentials_id.as_deref(),
        Some("c-123")
    );
    assert_eq!(patched.metadata.generation, created.metadata.generation);
    // A status apply that names an older resourceVersion is refused: the operator relies on this
    // so that a reconcile started from a stale cache cannot erase a newer status.
    let stale = serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1",
        "kind": "DatabricksCredential",
        "metadata": {"name": "cred", "resourceVersion": created.metadata.resource_version},
        "status": {"credentialsId": "stale"}
    });
    let err = api
        .patch_status(
            "cred",
            &PatchParams::apply("lifecycle-test").force(),
            &Patch::Apply(&stale),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err}"
    );
    // A status written through the main resource is ignored by the server.
    let sneaky = serde_json::json!({"status": {"credentialsId": "overwritten"}});
    let after = api
        .patch("cred", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(
        after.status.unwrap().credentials_id.as_deref(),
        Some("c-123")
    );

    // A finalizer holds the object after delete.
    let fin = serde_json::json!({"metadata": {"finalizers": [FINALIZER]}});
    api.patch("cred", &PatchParams::default(), &Patch::Merge(&fin))
        .await
        .unwrap();
    api.delete("cred", &DeleteParams::default()).await.unwrap();
    let held = api.get("cred").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp is set"
    );
    assert_eq!(
        held.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_string()][..])
    );

    let unfin = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch("cred", &PatchParams::default(), &Patch::Merge(&unfin))
        .await
        .unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if api.get_opt("cred").await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the object disappears once the finalizer is removed"
    );
    common::delete_namespace(&client, &ns).await;
}

/// The schema refuses bad manifests at admission, with a message naming the field.
#[tokio::test]
async fn schema_validation_refuses_bad_manifests() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "schema").await;

    let nets: Api<DatabricksNetwork> = Api::namespaced(client.clone(), &ns);
    let one_subnet: DatabricksNetwork = serde_json::from_value(serde_json::json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksNetwork",
        "metadata": {"name": "net"},
        "spec": {"vpcId": "vpc-0abc", "subnetIds": ["subnet-01"], "securityGroupIds": ["sg-01"]}
    }))
    .unwrap();
    let err = nets
        .create(&PostParams::default(), &one_subnet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("subnetIds"), "{err}");

    let creds: Api<DatabricksCredential> = Api::namespaced(client.clone(), &ns);
    let mut bad_arn = credential("bad-arn");
    bad_arn.spec.role_arn = "not-an-arn".into();
    let err = creds
        .create(&PostParams::default(), &bad_arn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("roleArn"), "{err}");

    // ref and ID both set, bad region, bad deployment name: refused.
    let dyn_api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::erase::<databricks_account_operator::crd::DatabricksWorkspace>(&()),
    );
    for (field, spec) in [
        (
            "credentials",
            serde_json::json!({"awsRegion": "us-east-1", "credentials": {"name": "a", "id": "b"}, "storageConfiguration": {"name": "s"}}),
        ),
        (
            "awsRegion",
            serde_json::json!({"awsRegion": "mars-north-1", "credentials": {"name": "a"}, "storageConfiguration": {"name": "s"}}),
        ),
        (
            "deploymentName",
            serde_json::json!({"awsRegion": "us-east-1", "deploymentName": "Bad_Name", "credentials": {"name": "a"}, "storageConfiguration": {"name": "s"}}),
        ),
        (
            "pricingTier",
            serde_json::json!({"awsRegion": "us-east-1", "pricingTier": "GOLD", "credentials": {"name": "a"}, "storageConfiguration": {"name": "s"}}),
        ),
    ] {
        let obj: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksWorkspace",
            "metadata": {"name": "ws"}, "spec": spec
        }))
        .unwrap();
        let err = dyn_api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    common::delete_namespace(&client, &ns).await;
}
