//! The CRDs' transition rules (`x-kubernetes-validations`, `self == oldSelf`), evaluated by a CEL
//! interpreter against the committed CRD files. The local API server (v1.20) predates CEL, so
//! this is where the rules that newer servers enforce at admission are proven.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::core::cel::Validator;
use serde_json::{Value, json};

fn schema(plural: &str) -> Value {
    let path = format!(
        "{}/crds/{plural}.account.databricks-operator.dev.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn with_spec(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": kind,
           "metadata": {"name": "x", "namespace": "ns"}, "spec": spec})
}

/// The messages of the rules an update breaks (empty when it is allowed).
fn broken(plural: &str, kind: &str, old: Value, new: Value) -> Vec<String> {
    let v = Validator::new();
    match v.validate(
        &schema(plural),
        &with_spec(kind, new),
        Some(&with_spec(kind, old)),
    ) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn set(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

/// Changing what Databricks cannot change is refused, naming the field; an unchanged spec passes.
#[test]
fn credential_role_and_name_are_immutable() {
    let old = json!({"roleArn": "arn:aws:iam::123456789012:role/a", "credentialsName": "a"});
    assert!(
        broken(
            "databrickscredentials",
            "DatabricksCredential",
            old.clone(),
            old.clone()
        )
        .is_empty()
    );
    let msgs = broken(
        "databrickscredentials",
        "DatabricksCredential",
        old.clone(),
        set(
            old.clone(),
            "roleArn",
            json!("arn:aws:iam::123456789012:role/b"),
        ),
    );
    assert!(
        msgs.iter().any(|m| m.contains("roleArn cannot be changed")),
        "{msgs:?}"
    );
    let msgs = broken(
        "databrickscredentials",
        "DatabricksCredential",
        old.clone(),
        set(old, "credentialsName", json!("b")),
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("credentialsName cannot be changed")),
        "{msgs:?}"
    );
}

/// A workspace's name, deployment name and pricing tier are fixed; its credential, network, keys
/// and tags can change (the operator patches them).
#[test]
fn workspace_rules_separate_fixed_from_patchable_fields() {
    let old = json!({
        "awsRegion": "us-east-1", "workspaceName": "w", "deploymentName": "w", "pricingTier": "PREMIUM",
        "credentials": {"name": "c1"}, "storageConfiguration": {"name": "s"}, "customTags": {"a": "b"}
    });
    for (field, value) in [
        ("workspaceName", json!("w2")),
        ("deploymentName", json!("w2")),
        ("pricingTier", json!("ENTERPRISE")),
    ] {
        let msgs = broken(
            "databricksworkspaces",
            "DatabricksWorkspace",
            old.clone(),
            set(old.clone(), field, value),
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("{field} cannot be changed"))),
            "{field}: {msgs:?}"
        );
    }
    for (field, value) in [
        ("credentials", json!({"name": "c2"})),
        ("network", json!({"name": "n"})),
        ("managedServicesKey", json!({"id": "k"})),
        ("customTags", json!({"a": "c"})),
    ] {
        let msgs = broken(
            "databricksworkspaces",
            "DatabricksWorkspace",
            old.clone(),
            set(old.clone(), field, value),
        );
        assert!(msgs.is_empty(), "{field} must stay patchable: {msgs:?}");
    }
}

/// Network, key, storage and endpoint registrations cannot change at all in Databricks.
#[test]
fn registrations_are_immutable() {
    let cases = [
        (
            "databricksnetworks",
            "DatabricksNetwork",
            json!({"vpcId": "vpc-1", "subnetIds": ["subnet-1", "subnet-2"], "securityGroupIds": ["sg-1"]}),
            "subnetIds",
            json!(["subnet-1", "subnet-3"]),
        ),
        (
            "databrickskeyconfigs",
            "DatabricksKeyConfig",
            json!({"useCases": ["STORAGE"], "keyArn": "arn:aws:kms:us-east-1:123456789012:key/a"}),
            "keyArn",
            json!("arn:aws:kms:us-east-1:123456789012:key/b"),
        ),
        (
            "databricksstorageconfigs",
            "DatabricksStorageConfig",
            json!({"bucketName": "bucket-a"}),
            "bucketName",
            json!("bucket-b"),
        ),
        (
            "databricksvpcendpoints",
            "DatabricksVpcEndpoint",
            json!({"awsVpcEndpointId": "vpce-1", "region": "us-east-1"}),
            "region",
            json!("eu-west-1"),
        ),
    ];
    for (plural, kind, old, field, value) in cases {
        let msgs = broken(plural, kind, old.clone(), set(old.clone(), field, value));
        assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("{field} cannot be changed"))),
            "{kind}.{field}: {msgs:?}"
        );
        assert!(
            broken(plural, kind, old.clone(), old).is_empty(),
            "{kind}: unchanged spec passes"
        );
    }
}

/// Private access settings are replaced in place, except for their region.
#[test]
fn private_access_settings_change_in_place_except_region() {
    let old = json!({"region": "us-east-1", "publicAccessEnabled": false, "privateAccessLevel": "ACCOUNT"});
    let plural = "databricksprivateaccesssettings";
    let kind = "DatabricksPrivateAccessSettings";
    assert!(
        broken(
            plural,
            kind,
            old.clone(),
            set(old.clone(), "publicAccessEnabled", json!(true))
        )
        .is_empty()
    );
    let msgs = broken(
        plural,
        kind,
        old.clone(),
        set(old, "region", json!("us-west-2")),
    );
    assert!(
        msgs.iter().any(|m| m.contains("region cannot be changed")),
        "{msgs:?}"
    );
}

/// The messages of the rules an update of whole objects (spec and status) breaks.
fn broken_objects(plural: &str, old: Value, new: Value) -> Vec<String> {
    match Validator::new().validate(&schema(plural), &new, Some(&old)) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn credential(account: &str, external_id: Option<&str>, id: Option<&str>) -> Value {
    let mut spec =
        json!({"roleArn": "arn:aws:iam::123456789012:role/a", "accountRef": {"name": account}});
    if let Some(e) = external_id {
        spec["externalId"] = json!(e);
    }
    let mut obj = with_spec("DatabricksCredential", spec);
    if let Some(id) = id {
        obj["status"] = json!({"credentialsId": id});
    }
    obj
}

/// Once an object has a Databricks ID, a new accountRef or externalId would create it again in
/// another account (or adopt another object) and leave the first one running: refused.
#[test]
fn account_ref_and_external_id_are_fixed_once_an_id_exists() {
    let plural = "databrickscredentials";
    let moved = |old, new| {
        broken_objects(plural, old, new)
            .iter()
            .any(|m| m.contains("accountRef and externalId cannot change"))
    };
    // Before an ID exists, both may change.
    assert!(!moved(
        credential("a", None, None),
        credential("b", Some("c-9"), None)
    ));
    // After, neither may change, be added or be removed.
    assert!(moved(
        credential("a", None, Some("c-1")),
        credential("b", None, Some("c-1"))
    ));
    assert!(moved(
        credential("a", None, Some("c-1")),
        credential("a", Some("c-9"), Some("c-1"))
    ));
    assert!(moved(
        credential("a", Some("c-1"), Some("c-1")),
        credential("a", Some("c-9"), Some("c-1"))
    ));
    assert!(moved(
        credential("a", Some("c-1"), Some("c-1")),
        credential("a", None, Some("c-1"))
    ));
    // Unchanged passes.
    assert!(!moved(
        credential("a", Some("c-1"), Some("c-1")),
        credential("a", Some("c-1"), Some("c-1"))
    ));
}

fn account(host: &str, account_id: &str, in_use_by: Option<u32>) -> Value {
    let mut obj = json!({"apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksAccount",
        "metadata": {"name": "default", "namespace": "ns"},
        "spec": {"host": host, "accountId": account_id,
                 "auth": {"oauthM2M": {"secretRef": {"name": "sp"}}}}});
    if let Some(n) = in_use_by {
        obj["status"] = json!({"inUseBy": n});
    }
    obj
}

/// An account's host and ID cannot change while objects use it; an unused one can be repointed.
#[test]
fn account_host_and_id_are_fixed_while_in_use() {
    let plural = "databricksaccounts";
    const A: &str = "00000000-0000-0000-0000-000000000001";
    const B: &str = "00000000-0000-0000-0000-000000000002";
    let host = "https://accounts.cloud.databricks.com";
    let refused = |old, new| {
        broken_objects(plural, old, new)
            .iter()
            .any(|m| m.contains("host and accountId cannot change while objects use this account"))
    };
    assert!(refused(
        account(host, A, Some(3)),
        account(host, B, Some(3))
    ));
    assert!(refused(
        account(host, A, Some(1)),
        account("https://accounts.cloud.databricks.us", A, Some(1))
    ));
    assert!(!refused(
        account(host, A, Some(0)),
        account(host, B, Some(0))
    ));
    assert!(!refused(account(host, A, None), account(host, B, None)));
    assert!(!refused(
        account(host, A, Some(3)),
        account(host, A, Some(3))
    ));
}

/// A custom resource cannot name a token file for the operator to send.
#[test]
fn federation_token_path_is_refused() {
    let with_path = json!({"apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": "DatabricksAccount",
        "metadata": {"name": "default", "namespace": "ns"},
        "spec": {"host": "https://accounts.cloud.databricks.com", "accountId": "00000000-0000-0000-0000-000000000001",
                 "auth": {"federation": {"tokenPath": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}}});
    let errs = match Validator::new().validate(&schema("databricksaccounts"), &with_path, None) {
        Ok(()) => Vec::new(),
        Err(e) => e.into_vec().into_iter().map(|e| e.message).collect(),
    };
    assert!(
        errs.iter().any(|m| m.contains("tokenPath is not accepted")),
        "{errs:?}"
    );
}

/// An optional field the API cannot change can be neither added nor removed after creation
/// (`self == oldSelf` on the field alone only sees a change of a field present on both sides).
#[test]
fn optional_immutable_fields_cannot_be_added_or_removed() {
    let base =
        json!({"keyArn": "arn:aws:kms:us-east-1:123456789012:key/k", "useCases": ["STORAGE"]});
    let with_alias = set(base.clone(), "keyAlias", json!("alias/k"));
    let added = broken(
        "databrickskeyconfigs",
        "DatabricksKeyConfig",
        base.clone(),
        with_alias.clone(),
    );
    assert!(
        added
            .iter()
            .any(|m| m.contains("keyAlias, reuseKeyForClusterVolumes cannot be added or removed")),
        "{added:?}"
    );
    let removed = broken(
        "databrickskeyconfigs",
        "DatabricksKeyConfig",
        with_alias.clone(),
        base.clone(),
    );
    assert!(!removed.is_empty(), "removing keyAlias must be refused");
    assert!(
        broken(
            "databrickskeyconfigs",
            "DatabricksKeyConfig",
            with_alias.clone(),
            with_alias
        )
        .is_empty()
    );
    let ws = json!({"workspaceName": "w", "awsRegion": "us-west-2", "credentials": {"name": "c"},
                    "storageConfiguration": {"name": "s"}});
    let msgs = broken(
        "databricksworkspaces",
        "DatabricksWorkspace",
        ws.clone(),
        set(ws, "deploymentName", json!("w")),
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("cannot be added or removed")),
        "{msgs:?}"
    );
}

/// The messages of the rules a new object breaks (empty when it is accepted).
fn refused_on_create(plural: &str, kind: &str, spec: Value) -> Vec<String> {
    match Validator::new().validate(&schema(plural), &with_spec(kind, spec), None) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// Credentials and storage belong to classic workspaces only: a classic workspace without them
/// and a serverless one with them (or with a network) are refused at admission on 1.25+, with
/// the message the operator reports itself on older servers.
#[test]
fn serverless_and_classic_workspaces_take_their_own_fields() {
    let ws = |spec: Value| refused_on_create("databricksworkspaces", "DatabricksWorkspace", spec);
    let classic = json!({"awsRegion": "us-east-1", "credentials": {"name": "c"}, "storageConfiguration": {"name": "s"}});
    let serverless = json!({"awsRegion": "us-east-1", "computeMode": "SERVERLESS"});
    assert!(ws(classic.clone()).is_empty(), "{:?}", ws(classic.clone()));
    assert!(
        ws(serverless.clone()).is_empty(),
        "{:?}",
        ws(serverless.clone())
    );
    let classic_needs = databricks_account_operator::crd::workspace::CLASSIC_NEEDS;
    let serverless_takes_none = databricks_account_operator::crd::workspace::SERVERLESS_TAKES_NONE;
    for missing in ["credentials", "storageConfiguration"] {
        let mut spec = classic.clone();
        spec.as_object_mut().unwrap().remove(missing);
        assert_eq!(ws(spec), [classic_needs], "classic without {missing}");
    }
    for (field, value) in [
        ("credentials", json!({"name": "c"})),
        ("storageConfiguration", json!({"id": "s-1"})),
        ("network", json!({"name": "n"})),
    ] {
        assert_eq!(
            ws(set(serverless.clone(), field, value)),
            [serverless_takes_none],
            "serverless with {field}"
        );
    }
    // Keys, private access settings and an NCC are not refused: nothing says serverless refuses them.
    assert!(
        ws(set(
            serverless.clone(),
            "managedServicesKey",
            json!({"name": "k"})
        ))
        .is_empty()
    );
}

/// The compute mode is chosen once: it cannot be switched, added or removed.
#[test]
fn a_workspace_compute_mode_is_fixed() {
    let serverless = json!({"awsRegion": "us-east-1", "computeMode": "SERVERLESS"});
    let classic = json!({"awsRegion": "us-east-1", "credentials": {"name": "c"}, "storageConfiguration": {"name": "s"}});
    let msgs = broken(
        "databricksworkspaces",
        "DatabricksWorkspace",
        serverless.clone(),
        classic.clone(),
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("computeMode cannot be added or removed")),
        "{msgs:?}"
    );
    let msgs = broken(
        "databricksworkspaces",
        "DatabricksWorkspace",
        classic,
        set(serverless.clone(), "awsRegion", json!("us-east-1")),
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("computeMode cannot be added or removed")),
        "{msgs:?}"
    );
    assert!(
        broken(
            "databricksworkspaces",
            "DatabricksWorkspace",
            serverless.clone(),
            serverless
        )
        .is_empty()
    );
}
