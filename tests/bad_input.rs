//! A corpus of bad input against the real API server and the real operator binary.
//!
//! Each row is a bad manifest, annotation or edit with the outcome it must have: refused at
//! admission with a message naming the field and the rule, or a named condition reason on the
//! object (with a distinctive part of its message). Rows that edit an object after it has a
//! Databricks ID also check that the simulator saw no new write. A valid object in the same
//! namespace must still become Ready once every bad row is in place, and the operator must still
//! be running without a panic in its log.
//!
//! The expectations are those of the API server CI runs, Kubernetes v1.20: CEL rules
//! (`x-kubernetes-validations`) are dropped there, so transition rules show up as the operator's
//! own `ImmutableFieldChanged`, while the OpenAPI checks (enum, pattern, bounds, required, oneOf,
//! maxItems) refuse at admission. On 1.25+ the edits covered by a CEL rule would be refused at
//! the patch instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::process::OperatorProcess;
use databricks_account_sim::SimHandle;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

const GROUP_VERSION: &str = "account.databricks-operator.dev/v1alpha1";
const SECRET_LABEL: &str = "account.databricks-operator.dev/account-secret";
const POLL_ANNOTATION: &str = "account.databricks-operator.dev/poll-interval";
/// How long one batch of expected conditions may take. Once, a fresh CI-like run saw the sample
/// storage configuration still Creating after 90 s (reconciles are capped at 16 per kind and share
/// one account rate limit with about 170 objects); 180 s leaves room while that is looked into.
const WAIT_SECS: u64 = 180;

const KINDS: [&str; 9] = [
    "DatabricksAccount",
    "DatabricksCredential",
    "DatabricksStorageConfig",
    "DatabricksKeyConfig",
    "DatabricksNetwork",
    "DatabricksVpcEndpoint",
    "DatabricksPrivateAccessSettings",
    "DatabricksNetworkConnectivityConfig",
    "DatabricksWorkspace",
];

/// The Account API collections whose writes the simulator counts.
const COLLECTIONS: [&str; 8] = [
    "credentials",
    "storage-configurations",
    "customer-managed-keys",
    "networks",
    "vpc-endpoints",
    "private-access-settings",
    "network-connectivity-configs",
    "workspaces",
];

// ------------------------------------------------------------------------------------------------
// The table

/// What a row must lead to.
enum Outcome {
    /// The API server refuses the row's one document; its message contains every fragment.
    Refused { contains: Vec<String> },
    /// The object's condition gets this reason, with a message containing `message_contains`.
    Condition(Expect),
}

#[derive(Clone, Debug)]
struct Expect {
    kind: &'static str,
    name: String,
    type_: &'static str,
    reason: &'static str,
    message_contains: String,
}

/// An edit made once the row's `ready_kind/ready_name` is Ready (and so has its Databricks ID).
enum Change {
    /// A JSON merge patch of one object.
    Patch {
        kind: &'static str,
        name: String,
        patch: Value,
    },
    /// More documents.
    Apply(Vec<Value>),
}

struct Then {
    ready_kind: &'static str,
    ready_name: String,
    change: Change,
}

struct Case {
    name: String,
    docs: Vec<Value>,
    then: Option<Then>,
    expect: Outcome,
}

fn refused(name: &str, doc: Value, contains: &[&str]) -> Case {
    Case {
        name: name.into(),
        docs: vec![doc],
        then: None,
        expect: Outcome::Refused {
            contains: contains.iter().map(|s| s.to_string()).collect(),
        },
    }
}

fn expect(
    kind: &'static str,
    name: &str,
    type_: &'static str,
    reason: &'static str,
    msg: &str,
) -> Expect {
    Expect {
        kind,
        name: name.into(),
        type_,
        reason,
        message_contains: msg.into(),
    }
}

fn condition(case: &str, docs: Vec<Value>, e: Expect) -> Case {
    Case {
        name: case.into(),
        docs,
        then: None,
        expect: Outcome::Condition(e),
    }
}

/// A row that creates `docs`, waits for `ready_kind/ready_name` to be Ready, then patches
/// `kind/name` and expects `e`.
fn transition(
    case: &str,
    docs: Vec<Value>,
    ready: (&'static str, &str),
    patch: (&'static str, &str, Value),
    e: Expect,
) -> Case {
    Case {
        name: case.into(),
        docs,
        then: Some(Then {
            ready_kind: ready.0,
            ready_name: ready.1.into(),
            change: Change::Patch {
                kind: patch.0,
                name: patch.1.into(),
                patch: patch.2,
            },
        }),
        expect: Outcome::Condition(e),
    }
}

/// A row that waits for `ready_kind/ready_name` to be Ready, then applies `later`.
fn after_ready(case: &str, ready: (&'static str, &str), later: Vec<Value>, e: Expect) -> Case {
    Case {
        name: case.into(),
        docs: vec![],
        then: Some(Then {
            ready_kind: ready.0,
            ready_name: ready.1.into(),
            change: Change::Apply(later),
        }),
        expect: Outcome::Condition(e),
    }
}

// ------------------------------------------------------------------------------------------------
// Documents

fn obj(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn annotated(mut doc: Value, key: &str, value: &str) -> Value {
    doc["metadata"]["annotations"][key] = json!(value);
    doc
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Secret with raw `data` (values are bytes), labelled with `label` when given.
fn secret(name: &str, label: Option<&str>, data: &[(&str, &[u8])]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(b64(v))))
        .collect();
    let mut doc = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "type": "Opaque", "data": data});
    if let Some(l) = label {
        doc["metadata"]["labels"][SECRET_LABEL] = json!(l);
    }
    doc
}

fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// What the documents need to know about the simulator.
struct Sim {
    url: String,
    account_id: String,
    client_id: String,
    client_secret: String,
    username: String,
}

impl Sim {
    fn of(handle: &SimHandle) -> Self {
        let c = handle.config();
        Self {
            url: handle.base_url(),
            account_id: c.account_id.clone(),
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone(),
            username: c.username.clone(),
        }
    }

    /// A labelled Secret with the simulator's OAuth client.
    fn m2m_secret(&self, name: &str) -> Value {
        secret(
            name,
            Some("true"),
            &[
                ("client-id", self.client_id.as_bytes()),
                ("client-secret", self.client_secret.as_bytes()),
            ],
        )
    }

    /// An account on the simulator with OAuth M2M from `secret_name`.
    fn account(&self, name: &str, secret_name: &str) -> Value {
        self.account_with(
            name,
            json!({"oauthM2M": {"secretRef": {"name": secret_name}}}),
        )
    }

    fn account_with(&self, name: &str, auth: Value) -> Value {
        obj(
            "DatabricksAccount",
            name,
            json!({"host": self.url, "accountId": self.account_id, "auth": auth}),
        )
    }

    /// A usable account and its Secret.
    fn account_pair(&self, name: &str) -> Vec<Value> {
        let secret = format!("{name}-sp");
        vec![self.m2m_secret(&secret), self.account(name, &secret)]
    }
}

fn credential(name: &str) -> Value {
    obj(
        "DatabricksCredential",
        name,
        json!({"roleArn": format!("arn:aws:iam::123456789012:role/{name}")}),
    )
}

fn credential_with(name: &str, extra: Value) -> Value {
    let mut doc = credential(name);
    merge(&mut doc["spec"], extra);
    doc
}

fn storage(name: &str, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksStorageConfig",
        name,
        json!({"bucketName": format!("bucket-{name}")}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

fn key(name: &str, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksKeyConfig",
        name,
        json!({"useCases": ["MANAGED_SERVICES"],
            "keyArn": format!("arn:aws:kms:us-east-1:123456789012:key/{name}")}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

/// A network with its own subnets and security group (the API refuses to share them).
fn network(name: &str, n: u32, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksNetwork",
        name,
        json!({"vpcId": format!("vpc-{n:x}0"),
            "subnetIds": [format!("subnet-{n:x}1"), format!("subnet-{n:x}2")],
            "securityGroupIds": [format!("sg-{n:x}3")]}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

fn endpoint(name: &str, n: u32, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksVpcEndpoint",
        name,
        json!({"awsVpcEndpointId": format!("vpce-{n:x}"), "region": "us-east-1"}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

fn pas(name: &str, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksPrivateAccessSettings",
        name,
        json!({"region": "us-east-1"}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

/// A workspace using the sample credential and storage configuration (Databricks-managed VPC).
fn workspace(name: &str, extra: Value) -> Value {
    let mut doc = obj(
        "DatabricksWorkspace",
        name,
        json!({"awsRegion": "us-east-1",
            "credentials": {"name": "cross-account"},
            "storageConfiguration": {"name": "root-bucket"}}),
    );
    merge(&mut doc["spec"], extra);
    doc
}

/// Shallow-merges the fields of `extra` into `into`; a null removes the field.
fn merge(into: &mut Value, extra: Value) {
    if let (Some(map), Value::Object(extra)) = (into.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The corpus

// One row per line: the corpus reads as a table.
#[rustfmt::skip]
fn admission_cases(s: &Sim) -> Vec<Case> {
    let acct = |spec: Value| {
        let mut doc = s.account_with(
            "bad-acct",
            json!({"oauthM2M": {"secretRef": {"name": "x"}}}),
        );
        merge(&mut doc["spec"], spec);
        doc
    };
    let long = |n: usize| "a".repeat(n);
    let oneof_none = "must validate one and only one schema (oneOf). Found none valid";
    let oneof_two = "must validate one and only one schema (oneOf). Found 2 valid alternatives";
    let sr = |n: &str| json!({"secretRef": {"name": n}});
    let mut tags = serde_json::Map::new();
    for i in 0..51 {
        tags.insert(format!("tag-{i}"), json!("v"));
    }
    vec![
        // DatabricksAccount
        refused("account: accountId missing", acct(json!({"accountId": null})), &["spec.accountId: Required value"]),
        refused("account: accountId not a UUID", acct(json!({"accountId": "123456"})), &["spec.accountId in body should match"]),
        refused("account: host with a path", acct(json!({"host": "https://accounts.cloud.databricks.com/api/2.0"})), &["spec.host in body should match"]),
        refused("account: host without a scheme", acct(json!({"host": "accounts.cloud.databricks.com"})), &["spec.host in body should match"]),
        refused("account: host with whitespace", acct(json!({"host": "https://accounts .cloud.databricks.com"})), &["spec.host in body should match"]),
        refused("account: two auth methods (oauthM2M + basic)", acct(json!({"auth": {"oauthM2M": sr("a"), "basic": sr("b")}})), &["\"spec.auth\" ", oneof_two]),
        refused("account: two auth methods (oauthM2M + federation)", acct(json!({"auth": {"oauthM2M": sr("a"), "federation": {}}})), &["\"spec.auth\" ", oneof_two]),
        refused("account: three auth methods", acct(json!({"auth": {"oauthM2M": sr("a"), "federation": {}, "basic": sr("b")}})), &["\"spec.auth\" ", "must validate one and only one schema (oneOf). Found 3 valid alternatives"]),
        refused("account: no auth method", acct(json!({"auth": {}})), &["\"spec.auth\" ", oneof_none]),
        refused("account: auth missing", acct(json!({"auth": null})), &["spec.auth: Required value"]),
        refused("account: rateLimit 0", acct(json!({"rateLimit": 0})), &["spec.rateLimit in body should be greater than or equal to 1"]),
        refused("account: rateLimit negative", acct(json!({"rateLimit": -5})), &["spec.rateLimit in body should be greater than or equal to 1"]),
        refused("account: rateLimit 1001", acct(json!({"rateLimit": 1001})), &["spec.rateLimit in body should be less than or equal to 1000"]),
        refused("account: rateLimit a string", acct(json!({"rateLimit": "10"})), &["spec.rateLimit in body must be of type integer"]),
        refused("account: rateLimit a fraction", acct(json!({"rateLimit": 1.5})), &["spec.rateLimit in body must be of type integer"]),
        refused("account: empty clientIdKey", acct(json!({"auth": {"oauthM2M": {"secretRef": {"name": "x"}, "clientIdKey": ""}}})), &["spec.auth.oauthM2M.clientIdKey: Unsupported value: \"\""]),
        refused("account: undocumented clientSecretKey", acct(json!({"auth": {"oauthM2M": {"secretRef": {"name": "x"}, "clientSecretKey": "token"}}})), &["spec.auth.oauthM2M.clientSecretKey: Unsupported value: \"token\""]),
        refused("account: empty basic usernameKey", acct(json!({"auth": {"basic": {"secretRef": {"name": "x"}, "usernameKey": ""}}})), &["spec.auth.basic.usernameKey: Unsupported value: \"\""]),
        refused("account: undocumented basic passwordKey", acct(json!({"auth": {"basic": {"secretRef": {"name": "x"}, "passwordKey": "pass"}}})), &["spec.auth.basic.passwordKey: Unsupported value: \"pass\""]),
        refused("account: empty Secret name", acct(json!({"auth": {"oauthM2M": sr("")}})), &["spec.auth.oauthM2M.secretRef.name in body should be at least 1 chars long"]),
        refused("account: secretRef missing", acct(json!({"auth": {"oauthM2M": {}}})), &["spec.auth.oauthM2M.secretRef: Required value"]),
        refused("account: empty federation clientId", acct(json!({"auth": {"federation": {"clientId": ""}}})), &["spec.auth.federation.clientId in body should be at least 1 chars long"]),
        refused("account: empty caBundle configMap", acct(json!({"caBundle": {"configMap": ""}})), &["spec.caBundle.configMap in body should be at least 1 chars long"]),
        // Kubernetes 1.20 reads an empty string in a non-nullable field as null.
        refused("account: empty caBundle key name", acct(json!({"caBundle": {"configMap": "ca", "key": ""}})), &["spec.caBundle.key in body must be of type string"]),
        refused("account: caBundle without configMap", acct(json!({"caBundle": {"key": "ca.crt"}})), &["spec.caBundle.configMap: Required value"]),
        refused("account: no spec", json!({"apiVersion": GROUP_VERSION, "kind": "DatabricksAccount", "metadata": {"name": "no-spec"}}), &["spec: Required value"]),
        refused("secret: empty key name", secret("empty-key-name", Some("true"), &[("", b"x")]), &["data[]: Invalid value: \"\"", "a valid config key must consist of alphanumeric characters"]),
        refused("secret: key name with a slash", secret("slash-key-name", Some("true"), &[("client/secret", b"x")]), &["data[client/secret]", "a valid config key must consist of alphanumeric characters"]),
        // DatabricksCredential
        refused("credential: roleArn missing", obj("DatabricksCredential", "bad-cred", json!({})), &["spec.roleArn: Required value"]),
        refused("credential: roleArn of a user, not a role", credential_with("bad-cred", json!({"roleArn": "arn:aws:iam::123456789012:user/x"})), &["spec.roleArn in body should match"]),
        refused("credential: empty credentialsName", credential_with("bad-cred", json!({"credentialsName": ""})), &["spec.credentialsName in body should be at least 1 chars long"]),
        refused("credential: credentialsName of 257 characters", credential_with("bad-cred", json!({"credentialsName": long(257)})), &["spec.credentialsName in body should be at most 256 chars long"]),
        refused("credential: deletionPolicy Keep", credential_with("bad-cred", json!({"deletionPolicy": "Keep"})), &["spec.deletionPolicy: Unsupported value: \"Keep\""]),
        refused("credential: managementPolicy ReadOnly", credential_with("bad-cred", json!({"managementPolicy": "ReadOnly"})), &["spec.managementPolicy: Unsupported value: \"ReadOnly\""]),
        refused("credential: empty accountRef name", credential_with("bad-cred", json!({"accountRef": {"name": ""}})), &["spec.accountRef.name in body should be at least 1 chars long"]),
        refused("credential: accountRef without a name", credential_with("bad-cred", json!({"accountRef": {}})), &["spec.accountRef.name: Required value"]),
        refused("credential: empty externalId", credential_with("bad-cred", json!({"externalId": ""})), &["spec.externalId in body should be at least 1 chars long"]),
        // DatabricksStorageConfig
        refused("storage: bucket name with capitals and underscore", storage("bad-storage", json!({"bucketName": "Bad_Bucket"})), &["spec.bucketName in body should match"]),
        refused("storage: bucket name of 2 characters", storage("bad-storage", json!({"bucketName": "ab"})), &["spec.bucketName in body should match"]),
        refused("storage: roleArn not an ARN", storage("bad-storage", json!({"roleArn": "my-role"})), &["spec.roleArn in body should match"]),
        refused("storage: empty storageConfigurationName", storage("bad-storage", json!({"storageConfigurationName": ""})), &["spec.storageConfigurationName in body should be at least 1 chars long"]),
        // DatabricksKeyConfig
        refused("key: no useCases", key("bad-key", json!({"useCases": []})), &["spec.useCases in body should have at least 1 items"]),
        refused("key: three useCases", key("bad-key", json!({"useCases": ["STORAGE", "MANAGED_SERVICES", "STORAGE"]})), &["spec.useCases in body should have at most 2 items"]),
        refused("workspace: custom tag value of 1 MiB", workspace("bad-ws", json!({"customTags": {"huge": "x".repeat(1 << 20)}})), &["spec.customTags.huge", "should be at most 255 chars long"]),
        refused("private access: 10,000 allowedVpcEndpoints", pas("bad-pas", json!({"privateAccessLevel": "ENDPOINT", "allowedVpcEndpoints": (0..10_000).map(|i| json!({"id": format!("vpce-{i:05x}")})).collect::<Vec<_>>()})), &["spec.allowedVpcEndpoints in body should have at most 100 items"]),
        refused("key: the same use case twice", key("bad-key", json!({"useCases": ["STORAGE", "STORAGE"]})), &["spec.useCases[1]: Duplicate value: \"STORAGE\""]),
        refused("key: unknown use case", key("bad-key", json!({"useCases": ["BOGUS"]})), &["spec.useCases: Unsupported value: \"BOGUS\": supported values: \"MANAGED_SERVICES\", \"STORAGE\""]),
        refused("key: keyArn of an IAM role", key("bad-key", json!({"keyArn": "arn:aws:iam::123456789012:role/x"})), &["spec.keyArn in body should match"]),
        refused("key: keyAlias without alias/", key("bad-key", json!({"keyAlias": "databricks"})), &["spec.keyAlias in body should match"]),
        refused("key: reuseKeyForClusterVolumes a string", key("bad-key", json!({"reuseKeyForClusterVolumes": "yes"})), &["spec.reuseKeyForClusterVolumes in body must be of type boolean"]),
        // DatabricksNetwork
        refused("network: one subnet", network("bad-net", 1, json!({"subnetIds": ["subnet-1"]})), &["spec.subnetIds in body should have at least 2 items"]),
        refused("network: six security groups", network("bad-net", 1, json!({"securityGroupIds": ["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"]})), &["spec.securityGroupIds in body should have at most 5 items"]),
        refused("network: no security group", network("bad-net", 1, json!({"securityGroupIds": []})), &["spec.securityGroupIds in body should have at least 1 items"]),
        refused("network: malformed subnet ID", network("bad-net", 1, json!({"subnetIds": ["subnet-1", "sn-2"]})), &["spec.subnetIds: Invalid value: \"sn-2\"", "spec.subnetIds in body should match"]),
        refused("network: malformed VPC ID", network("bad-net", 1, json!({"vpcId": "vpc-XYZ"})), &["spec.vpcId in body should match"]),
        refused("network: networkName of 3 characters", network("bad-net", 1, json!({"networkName": "abc"})), &["spec.networkName in body should be at least 4 chars long"]),
        refused("network: two restApi endpoints", network("bad-net", 1, json!({"vpcEndpoints": {"restApi": [{"name": "a"}, {"name": "b"}]}})), &["spec.vpcEndpoints.restApi in body should have at most 1 items"]),
        refused("network: dataplaneRelay reference with neither name nor id", network("bad-net", 1, json!({"vpcEndpoints": {"dataplaneRelay": [{}]}})), &["\"spec.vpcEndpoints.dataplaneRelay\" ", oneof_none]),
        // DatabricksVpcEndpoint
        refused("vpc endpoint: malformed endpoint ID", endpoint("bad-vpce", 1, json!({"awsVpcEndpointId": "vpc-123"})), &["spec.awsVpcEndpointId in body should match"]),
        refused("vpc endpoint: not a region name", endpoint("bad-vpce", 1, json!({"region": "mars-north-1"})), &["spec.region in body should match"]),
        refused("vpc endpoint: region missing", endpoint("bad-vpce", 1, json!({"region": null})), &["spec.region: Required value"]),
        refused("vpc endpoint: empty vpcEndpointName", endpoint("bad-vpce", 1, json!({"vpcEndpointName": ""})), &["spec.vpcEndpointName in body should be at least 1 chars long"]),
        // DatabricksPrivateAccessSettings
        refused("private access: unknown privateAccessLevel", pas("bad-pas", json!({"privateAccessLevel": "NONE"})), &["spec.privateAccessLevel: Unsupported value: \"NONE\""]),
        refused("private access: endpoint with both name and id", pas("bad-pas", json!({"allowedVpcEndpoints": [{"name": "a", "id": "b"}]})), &["\"spec.allowedVpcEndpoints\" ", oneof_two]),
        refused("private access: name of 3 characters", pas("bad-pas", json!({"privateAccessSettingsName": "abc"})), &["spec.privateAccessSettingsName in body should be at least 4 chars long"]),
        refused("private access: publicAccessEnabled a string", pas("bad-pas", json!({"publicAccessEnabled": "true"})), &["spec.publicAccessEnabled in body must be of type boolean"]),
        // DatabricksWorkspace
        refused("workspace: 51 custom tags", workspace("bad-ws", json!({"customTags": tags})), &["spec.customTags in body should have at most 50 properties"]),
        refused("workspace: custom tag value a number", workspace("bad-ws", json!({"customTags": {"team": 5}})), &["spec.customTags.team in body must be of type string"]),
        refused("workspace: credentials with neither name nor id", workspace("bad-ws", json!({"credentials": {}})), &["\"spec.credentials\" ", oneof_none]),
        refused("workspace: credentials with both name and id", workspace("bad-ws", json!({"credentials": {"name": "a", "id": "b"}})), &["\"spec.credentials\" ", oneof_two]),
        refused("workspace: unknown computeMode", workspace("bad-ws", json!({"computeMode": "HYBRID_PLUS"})), &["spec.computeMode: Unsupported value: \"HYBRID_PLUS\""]),
        refused("workspace: awsRegion missing", workspace("bad-ws", json!({"awsRegion": null})), &["spec.awsRegion: Required value"]),
        refused("workspace: awsRegion in capitals", workspace("bad-ws", json!({"awsRegion": "US-EAST-1"})), &["spec.awsRegion in body should match"]),
        refused("workspace: awsRegion without its number", workspace("bad-ws", json!({"awsRegion": "us-east"})), &["spec.awsRegion in body should match"]),
        refused("private access: region with underscores", pas("bad-pas", json!({"region": "us_east_1"})), &["spec.region in body should match"]),
        refused("workspace: deploymentName with capitals", workspace("bad-ws", json!({"deploymentName": "Bad_Name"})), &["spec.deploymentName in body should match"]),
        refused("workspace: deploymentName with a leading hyphen", workspace("bad-ws", json!({"deploymentName": "-lead"})), &["spec.deploymentName in body should match"]),
        refused("workspace: deploymentName of 65 characters", workspace("bad-ws", json!({"deploymentName": long(65)})), &["spec.deploymentName in body should be at most 64 chars long"]),
        refused("workspace: unknown pricingTier", workspace("bad-ws", json!({"pricingTier": "FREE"})), &["spec.pricingTier: Unsupported value: \"FREE\""]),
        refused("workspace: workspaceName of 101 characters", workspace("bad-ws", json!({"workspaceName": long(101)})), &["spec.workspaceName in body should be at most 100 chars long"]),
        refused("workspace: empty workspaceName", workspace("bad-ws", json!({"workspaceName": ""})), &["spec.workspaceName in body should be at least 1 chars long"]),
        refused("workspace: empty managedServicesKey id", workspace("bad-ws", json!({"managedServicesKey": {"id": ""}})), &["spec.managedServicesKey.id in body should be at least 1 chars long"]),
        // DatabricksNetworkConnectivityConfig
        refused("ncc: name with a space", obj("DatabricksNetworkConnectivityConfig", "bad-ncc", json!({"region": "us-east-1", "name": "my ncc"})), &["spec.name in body should match"]),
        refused("ncc: region missing", obj("DatabricksNetworkConnectivityConfig", "bad-ncc", json!({})), &["spec.region: Required value"]),
        refused("ncc: rule with 11 domain names", obj("DatabricksNetworkConnectivityConfig", "bad-ncc", json!({"region": "us-east-1", "privateEndpointRules": [{"endpointService": "com.amazonaws.vpce.us-east-1.vpce-svc-1", "domainNames": (0..11).map(|i| format!("d{i}.internal")).collect::<Vec<_>>()}]})), &["spec.privateEndpointRules.domainNames in body should have at most 10 items"]),
        refused("ncc: endpoint service not an AWS service name", obj("DatabricksNetworkConnectivityConfig", "bad-ncc", json!({"region": "us-east-1", "privateEndpointRules": [{"endpointService": "vpce-svc-1"}]})), &["spec.privateEndpointRules.endpointService in body should match"]),
        // Annotations
        refused("annotation: poll-interval of 300 KiB", annotated(credential("bad-annotation"), POLL_ANNOTATION, &"1".repeat(300 * 1024)), &["metadata.annotations: Too long: must have at most 262144 bytes"]),
        refused("annotation: key with a space", annotated(credential("bad-annotation"), "account.databricks-operator.dev/poll interval", "30s"), &["metadata.annotations: Invalid value: \"account.databricks-operator.dev/poll interval\""]),
    ]
}

// One row per line: the corpus reads as a table.
#[rustfmt::skip]
fn condition_cases(s: &Sim) -> Vec<Case> {
    let acct_invalid =
        |case: &str, docs: Vec<Value>, acct: &str, reason: &'static str, msg: &str| {
            condition(
                case,
                docs,
                expect("DatabricksAccount", acct, "Ready", reason, msg),
            )
        };
    let m2m = |name: &str, secret_name: &str| s.account(name, secret_name);
    let basic = |name: &str, secret_name: &str| {
        s.account_with(name, json!({"basic": {"secretRef": {"name": secret_name}}}))
    };
    let id = s.client_id.as_bytes();
    let sec = s.client_secret.as_bytes();
    let with_host = |name: &str, host: &str| {
        let mut doc = s.account(name, "default-sp-copy");
        doc["spec"]["host"] = json!(host);
        doc
    };
    let with_ca = |name: &str, ca: Value| {
        let mut doc = s.account(name, "default-sp-copy");
        doc["spec"]["caBundle"] = ca;
        doc
    };
    let annotation = |value: &str, n: usize| {
        let name = format!("poll-interval-{n}");
        annotated(credential(&name), POLL_ANNOTATION, value)
    };
    let immutable = |kind: &'static str, name: &str, field: &str| {
        expect(
            kind,
            name,
            "Synced",
            "ImmutableFieldChanged",
            &format!("spec field(s) {field} changed"),
        )
    };
    let not_pem = "this is not a certificate";
    let garbage_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let mut cases = vec![
        // The account: its Secret, its host, its CA bundle.
        acct_invalid("account: Secret missing", vec![m2m("acct-secret-missing", "no-such-secret")], "acct-secret-missing", "InvalidSpec", "Secret \"no-such-secret\" not found"),
        acct_invalid("account: Secret without the opt-in label", vec![secret("sp-unlabelled", None, &[("client-id", id), ("client-secret", sec)]), m2m("acct-unlabelled", "sp-unlabelled")], "acct-unlabelled", "InvalidSpec", "Secret \"sp-unlabelled\" not found in namespace"),
        acct_invalid("account: Secret labelled \"false\"", vec![secret("sp-label-false", Some("false"), &[("client-id", id), ("client-secret", sec)]), m2m("acct-label-false", "sp-label-false")], "acct-label-false", "InvalidSpec", "Secret \"sp-label-false\" not found in namespace"),
        acct_invalid("account: Secret key client-secret missing", vec![secret("sp-no-secret-key", Some("true"), &[("client-id", id)]), m2m("acct-no-secret-key", "sp-no-secret-key")], "acct-no-secret-key", "InvalidSpec", "Secret \"sp-no-secret-key\" has no key \"client-secret\""),
        acct_invalid("account: Secret key client-id missing", vec![secret("sp-no-id-key", Some("true"), &[("client-secret", sec)]), m2m("acct-no-id-key", "sp-no-id-key")], "acct-no-id-key", "InvalidSpec", "Secret \"sp-no-id-key\" has no key \"client-id\""),
        acct_invalid("account: Secret key under an undocumented name", vec![secret("sp-other-key", Some("true"), &[("client-id", id), ("client_secret", sec)]), m2m("acct-other-key", "sp-other-key")], "acct-other-key", "InvalidSpec", "has no key \"client-secret\""),
        acct_invalid("account: Secret key empty", vec![secret("sp-empty", Some("true"), &[("client-id", id), ("client-secret", b"")]), m2m("acct-empty-key", "sp-empty")], "acct-empty-key", "InvalidSpec", "Secret \"sp-empty\" key \"client-secret\" is empty"),
        acct_invalid("account: Secret key only whitespace", vec![secret("sp-blank", Some("true"), &[("client-id", id), ("client-secret", b" \n\t ")]), m2m("acct-blank-key", "sp-blank")], "acct-blank-key", "InvalidSpec", "Secret \"sp-blank\" key \"client-secret\" is empty"),
        acct_invalid("account: Secret client-secret not UTF-8", vec![secret("sp-not-utf8", Some("true"), &[("client-id", id), ("client-secret", &[0xff, 0xfe, 0x00, 0x80])]), m2m("acct-not-utf8", "sp-not-utf8")], "acct-not-utf8", "InvalidSpec", "Secret \"sp-not-utf8\" key \"client-secret\" is not UTF-8 text"),
        acct_invalid("account: Secret client-id not UTF-8", vec![secret("sp-id-not-utf8", Some("true"), &[("client-id", &[0xc3, 0x28]), ("client-secret", sec)]), m2m("acct-id-not-utf8", "sp-id-not-utf8")], "acct-id-not-utf8", "InvalidSpec", "Secret \"sp-id-not-utf8\" key \"client-id\" is not UTF-8 text"),
        acct_invalid("account: Secret value of 5000 bytes", vec![secret("sp-huge", Some("true"), &[("client-id", id), ("client-secret", &[b'x'; 5000])]), m2m("acct-huge-key", "sp-huge")], "acct-huge-key", "InvalidSpec", "key \"client-secret\" is longer than 4096 bytes"),
        acct_invalid("account: wrong client secret", vec![secret("sp-wrong", Some("true"), &[("client-id", id), ("client-secret", b"not-the-secret")]), m2m("acct-wrong-secret", "sp-wrong")], "acct-wrong-secret", "AuthenticationFailed", "the Account API refused the credentials"),
        acct_invalid("account: basic Secret without password", vec![secret("sp-basic-nopass", Some("true"), &[("username", s.username.as_bytes())]), basic("acct-basic-nopass", "sp-basic-nopass")], "acct-basic-nopass", "InvalidSpec", "Secret \"sp-basic-nopass\" has no key \"password\""),
        acct_invalid("account: basic with a wrong password", vec![secret("sp-basic-wrong", Some("true"), &[("username", s.username.as_bytes()), ("password", b"wrong")]), basic("acct-basic-wrong", "sp-basic-wrong")], "acct-basic-wrong", "AuthenticationFailed", "the Account API refused the credentials"),
        acct_invalid("account: federation tokenPath set", vec![s.account_with("acct-token-path", json!({"federation": {"tokenPath": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}))], "acct-token-path", "InvalidSpec", "auth.federation.tokenPath is not accepted"),
        acct_invalid("account: host not on the allow-list", vec![with_host("acct-host-databricks", "https://accounts.cloud.databricks.com")], "acct-host-databricks", "HostNotAllowed", "host https://accounts.cloud.databricks.com is not on the operator's allow-list"),
        acct_invalid("account: host is the cloud metadata address", vec![with_host("acct-host-metadata", "http://169.254.169.254")], "acct-host-metadata", "HostNotAllowed", "host http://169.254.169.254 is not on the operator's allow-list"),
        acct_invalid("account: host localhost (not the listed 127.0.0.1)", vec![with_host("acct-host-localhost", &s.url.replace("127.0.0.1", "localhost"))], "acct-host-localhost", "HostNotAllowed", "is not on the operator's allow-list"),
        acct_invalid("account: accountId the API does not know", vec![{
            let mut doc = s.account("acct-unknown-id", "default-sp-copy");
            doc["spec"]["accountId"] = json!("11111111-2222-3333-4444-555555555555");
            doc
        }], "acct-unknown-id", "AuthenticationFailed", "Account 11111111-2222-3333-4444-555555555555 does not exist"),
        acct_invalid("account: allowed host where nothing listens", vec![with_host("acct-host-closed", "http://127.0.0.1:1")], "acct-host-closed", "ApiUnavailable", "connection failed"),
        acct_invalid("account: CA bundle ConfigMap missing", vec![with_ca("acct-ca-missing", json!({"configMap": "no-such-ca"}))], "acct-ca-missing", "InvalidSpec", "ConfigMap \"no-such-ca\" not found"),
        acct_invalid("account: CA bundle key missing", vec![config_map("ca-other-key", &[("bundle.pem", garbage_pem)]), with_ca("acct-ca-no-key", json!({"configMap": "ca-other-key"}))], "acct-ca-no-key", "InvalidSpec", "ConfigMap \"ca-other-key\" has no key \"ca.crt\""),
        acct_invalid("account: CA bundle not PEM", vec![config_map("ca-not-pem", &[("ca.crt", not_pem)]), with_ca("acct-ca-not-pem", json!({"configMap": "ca-not-pem"}))], "acct-ca-not-pem", "InvalidSpec", "invalid CA bundle: no PEM certificate found"),
        acct_invalid("account: CA bundle PEM armour around garbage", vec![config_map("ca-garbage", &[("ca.crt", garbage_pem)]), with_ca("acct-ca-garbage", json!({"configMap": "ca-garbage"}))], "acct-ca-garbage", "InvalidSpec", "invalid CA bundle"),
        // The account of a managed object.
        condition("credential: account missing", vec![credential_with("cred-no-account", json!({"accountRef": {"name": "no-such-account"}}))], expect("DatabricksCredential", "cred-no-account", "Ready", "WaitingForDependency", "waiting for DatabricksAccount \"no-such-account\" to be Ready")),
        condition("credential: account not Ready", vec![credential_with("cred-account-not-ready", json!({"accountRef": {"name": "acct-secret-missing"}}))], expect("DatabricksCredential", "cred-account-not-ready", "Ready", "WaitingForDependency", "waiting for DatabricksAccount \"acct-secret-missing\" to be Ready")),
        // Dependencies.
        condition("workspace: credential missing", vec![workspace("ws-cred-missing", json!({"credentials": {"name": "no-such-credential"}}))], expect("DatabricksWorkspace", "ws-cred-missing", "Ready", "WaitingForDependency", "DatabricksCredential \"no-such-credential\" (spec.credentials) does not exist")),
        condition("workspace: storage configuration not Ready", vec![annotated(storage("storage-not-ready", json!({})), POLL_ANNOTATION, "1s"), workspace("ws-storage-not-ready", json!({"storageConfiguration": {"name": "storage-not-ready"}}))], expect("DatabricksWorkspace", "ws-storage-not-ready", "Ready", "WaitingForDependency", "waiting for DatabricksStorageConfig \"storage-not-ready\" (spec.storageConfiguration) to be Ready")),
        condition("workspace: dependency managed through another account", vec![credential_with("cred-other-account", json!({"accountRef": {"name": "acct-secret-missing"}})), workspace("ws-cross-account", json!({"credentials": {"name": "cred-other-account"}}))], expect("DatabricksWorkspace", "ws-cross-account", "Ready", "InvalidSpec", "is managed through DatabricksAccount \"acct-secret-missing\", but this object uses \"default\"")),
        condition("network: restApi endpoint missing", vec![network("net-endpoint-missing", 0x10, json!({"vpcEndpoints": {"restApi": [{"name": "no-such-endpoint"}]}}))], expect("DatabricksNetwork", "net-endpoint-missing", "Ready", "WaitingForDependency", "DatabricksVpcEndpoint \"no-such-endpoint\" (spec.vpcEndpoints.restApi) does not exist")),
        condition("private access: allowed endpoint missing", vec![pas("pas-endpoint-missing", json!({"privateAccessLevel": "ENDPOINT", "allowedVpcEndpoints": [{"name": "no-such-endpoint"}]}))], expect("DatabricksPrivateAccessSettings", "pas-endpoint-missing", "Ready", "WaitingForDependency", "DatabricksVpcEndpoint \"no-such-endpoint\" (spec.allowedVpcEndpoints) does not exist")),
        condition("workspace: credential ID unknown to the API", vec![workspace("ws-cred-id-unknown", json!({"credentials": {"id": "no-such-credential-id"}}))], expect("DatabricksWorkspace", "ws-cred-id-unknown", "Ready", "ApiRejected", "Invalid credentialsId: no-such-credential-id")),
        condition("workspace: storageKey whose key is not for STORAGE", vec![workspace("ws-wrong-key-use", json!({"storageKey": {"name": "managed-services-key"}}))], expect("DatabricksWorkspace", "ws-wrong-key-use", "Ready", "ApiRejected", "must have use case STORAGE")),
        // What a CEL rule refuses on 1.25+: on 1.20 the operator says it, before any API call.
        condition("workspace: classic without storageConfiguration", vec![workspace("ws-no-storage", json!({"storageConfiguration": null}))], expect("DatabricksWorkspace", "ws-no-storage", "Ready", "InvalidSpec", "a classic workspace (no computeMode) needs credentials and storageConfiguration")),
        condition("workspace: serverless with credentials", vec![workspace("ws-serverless-cred", json!({"computeMode": "SERVERLESS", "storageConfiguration": null}))], expect("DatabricksWorkspace", "ws-serverless-cred", "Ready", "InvalidSpec", "a SERVERLESS workspace takes no credentials, storageConfiguration or network")),
        // Values the schema lets through and the API refuses.
        condition("workspace: region-shaped but not one the account has", vec![workspace("ws-region-unknown", json!({"awsRegion": "us-east-9"}))], expect("DatabricksWorkspace", "ws-region-unknown", "Ready", "ApiRejected", "Region us-east-9 is not supported")),
        condition("workspace: empty custom tag key", vec![workspace("ws-empty-tag-key", json!({"customTags": {"": "x"}}))], expect("DatabricksWorkspace", "ws-empty-tag-key", "Ready", "ApiRejected", "Invalid custom tag key ''")),
        condition("workspace: custom tag key of 128 characters", vec![workspace("ws-long-tag-key", json!({"customTags": {"k".repeat(128): "x"}}))], expect("DatabricksWorkspace", "ws-long-tag-key", "Ready", "ApiRejected", "keys must be 1 to 127 characters")),
        // Adoption and observation.
        condition("workspace: externalId not a number", vec![workspace("ws-external-nan", json!({"externalId": "not-a-number"}))], expect("DatabricksWorkspace", "ws-external-nan", "Ready", "ApiRejected", "Invalid workspaceId: not-a-number")),
        condition("workspace: externalId beyond i64", vec![workspace("ws-external-huge", json!({"externalId": "99999999999999999999"}))], expect("DatabricksWorkspace", "ws-external-huge", "Ready", "ApiRejected", "Invalid workspaceId: 99999999999999999999")),
        condition("workspace: externalId of no workspace", vec![workspace("ws-external-absent", json!({"externalId": "4242"}))], expect("DatabricksWorkspace", "ws-external-absent", "Ready", "NotFound", "workspace 4242 does not exist in the account")),
        condition("credential: externalId of no credential", vec![credential_with("cred-external-absent", json!({"externalId": "00000000-dead-beef-0000-000000000000"}))], expect("DatabricksCredential", "cred-external-absent", "Ready", "NotFound", "00000000-dead-beef-0000-000000000000 does not exist in the account")),
        condition("credential: observe-only of a name not in the account", vec![credential_with("cred-observe-absent", json!({"managementPolicy": "ObserveOnly"}))], expect("DatabricksCredential", "cred-observe-absent", "Ready", "NotFound", "observe-only: no credential configuration named \"cred-observe-absent\"")),
        // Optional name fields added or removed after create.
        transition("credential: credentialsName added after create", vec![credential("t-cred-name-added")], ("DatabricksCredential", "t-cred-name-added"), ("DatabricksCredential", "t-cred-name-added", json!({"spec": {"credentialsName": "another-name"}})), immutable("DatabricksCredential", "t-cred-name-added", "credentialsName")),
        transition("credential: credentialsName removed after create", vec![credential_with("t-cred-name-removed", json!({"credentialsName": "t-cred-remote-name"}))], ("DatabricksCredential", "t-cred-name-removed"), ("DatabricksCredential", "t-cred-name-removed", json!({"spec": {"credentialsName": null}})), immutable("DatabricksCredential", "t-cred-name-removed", "credentialsName")),
        transition("storage: storageConfigurationName added after create", vec![storage("t-storage-name-added", json!({}))], ("DatabricksStorageConfig", "t-storage-name-added"), ("DatabricksStorageConfig", "t-storage-name-added", json!({"spec": {"storageConfigurationName": "another-name"}})), immutable("DatabricksStorageConfig", "t-storage-name-added", "storageConfigurationName")),
        transition("storage: storageConfigurationName removed after create", vec![storage("t-storage-name-removed", json!({"storageConfigurationName": "t-storage-remote-name"}))], ("DatabricksStorageConfig", "t-storage-name-removed"), ("DatabricksStorageConfig", "t-storage-name-removed", json!({"spec": {"storageConfigurationName": null}})), immutable("DatabricksStorageConfig", "t-storage-name-removed", "storageConfigurationName")),
        transition("network: networkName added after create", vec![network("t-net-name-added", 0x20, json!({}))], ("DatabricksNetwork", "t-net-name-added"), ("DatabricksNetwork", "t-net-name-added", json!({"spec": {"networkName": "another-name"}})), immutable("DatabricksNetwork", "t-net-name-added", "networkName")),
        transition("network: networkName removed after create", vec![network("t-net-name-removed", 0x21, json!({"networkName": "t-net-remote-name"}))], ("DatabricksNetwork", "t-net-name-removed"), ("DatabricksNetwork", "t-net-name-removed", json!({"spec": {"networkName": null}})), immutable("DatabricksNetwork", "t-net-name-removed", "networkName")),
        transition("workspace: workspaceName added after create", vec![workspace("t-ws-name-added", json!({}))], ("DatabricksWorkspace", "t-ws-name-added"), ("DatabricksWorkspace", "t-ws-name-added", json!({"spec": {"workspaceName": "another-name"}})), immutable("DatabricksWorkspace", "t-ws-name-added", "workspaceName")),
        transition("workspace: workspaceName removed after create", vec![workspace("t-ws-name-removed", json!({"workspaceName": "t-ws-remote-name"}))], ("DatabricksWorkspace", "t-ws-name-removed"), ("DatabricksWorkspace", "t-ws-name-removed", json!({"spec": {"workspaceName": null}})), immutable("DatabricksWorkspace", "t-ws-name-removed", "workspaceName")),
        transition("vpc endpoint: vpcEndpointName added after create", vec![endpoint("t-vpce-name-added", 0x51, json!({}))], ("DatabricksVpcEndpoint", "t-vpce-name-added"), ("DatabricksVpcEndpoint", "t-vpce-name-added", json!({"spec": {"vpcEndpointName": "another-name"}})), immutable("DatabricksVpcEndpoint", "t-vpce-name-added", "vpcEndpointName")),
        transition("key: keyAlias added after create", vec![key("t-key-alias-added", json!({}))], ("DatabricksKeyConfig", "t-key-alias-added"), ("DatabricksKeyConfig", "t-key-alias-added", json!({"spec": {"keyAlias": "alias/added"}})), immutable("DatabricksKeyConfig", "t-key-alias-added", "keyAlias")),
        transition("storage: roleArn added after create", vec![storage("t-storage-role-added", json!({}))], ("DatabricksStorageConfig", "t-storage-role-added"), ("DatabricksStorageConfig", "t-storage-role-added", json!({"spec": {"roleArn": "arn:aws:iam::123456789012:role/added"}})), immutable("DatabricksStorageConfig", "t-storage-role-added", "roleArn")),
        transition("workspace: deploymentName added after create", vec![workspace("t-ws-deploy-added", json!({}))], ("DatabricksWorkspace", "t-ws-deploy-added"), ("DatabricksWorkspace", "t-ws-deploy-added", json!({"spec": {"deploymentName": "another-deployment"}})), immutable("DatabricksWorkspace", "t-ws-deploy-added", "deploymentName")),
        // Fields Databricks cannot change (CEL transition rules on 1.25+).
        transition("credential: roleArn changed", vec![credential("t-cred-role")], ("DatabricksCredential", "t-cred-role"), ("DatabricksCredential", "t-cred-role", json!({"spec": {"roleArn": "arn:aws:iam::123456789012:role/another"}})), immutable("DatabricksCredential", "t-cred-role", "roleArn")),
        transition("storage: bucketName changed", vec![storage("t-storage-bucket", json!({}))], ("DatabricksStorageConfig", "t-storage-bucket"), ("DatabricksStorageConfig", "t-storage-bucket", json!({"spec": {"bucketName": "another-bucket"}})), immutable("DatabricksStorageConfig", "t-storage-bucket", "bucketName")),
        transition("network: subnetIds changed", vec![network("t-net-subnets", 0x22, json!({}))], ("DatabricksNetwork", "t-net-subnets"), ("DatabricksNetwork", "t-net-subnets", json!({"spec": {"subnetIds": ["subnet-221", "subnet-229"]}})), immutable("DatabricksNetwork", "t-net-subnets", "subnetIds")),
        transition("key: useCases changed", vec![key("t-key-use", json!({}))], ("DatabricksKeyConfig", "t-key-use"), ("DatabricksKeyConfig", "t-key-use", json!({"spec": {"useCases": ["STORAGE"]}})), immutable("DatabricksKeyConfig", "t-key-use", "useCases")),
        transition("vpc endpoint: region changed", vec![endpoint("t-vpce-region", 0x30, json!({}))], ("DatabricksVpcEndpoint", "t-vpce-region"), ("DatabricksVpcEndpoint", "t-vpce-region", json!({"spec": {"region": "eu-west-1"}})), immutable("DatabricksVpcEndpoint", "t-vpce-region", "region")),
        transition("private access: region changed", vec![pas("t-pas-region", json!({}))], ("DatabricksPrivateAccessSettings", "t-pas-region"), ("DatabricksPrivateAccessSettings", "t-pas-region", json!({"spec": {"region": "eu-west-1"}})), immutable("DatabricksPrivateAccessSettings", "t-pas-region", "region")),
        transition("workspace: pricingTier changed", vec![workspace("t-ws-tier", json!({"pricingTier": "PREMIUM"}))], ("DatabricksWorkspace", "t-ws-tier"), ("DatabricksWorkspace", "t-ws-tier", json!({"spec": {"pricingTier": "ENTERPRISE"}})), immutable("DatabricksWorkspace", "t-ws-tier", "pricingTier")),
        transition("vpc endpoint: awsVpcEndpointId changed", vec![endpoint("t-vpce-aws-id", 0x32, json!({}))], ("DatabricksVpcEndpoint", "t-vpce-aws-id"), ("DatabricksVpcEndpoint", "t-vpce-aws-id", json!({"spec": {"awsVpcEndpointId": "vpce-3299"}})), immutable("DatabricksVpcEndpoint", "t-vpce-aws-id", "awsVpcEndpointId")),
        transition("key: keyArn changed", vec![key("t-key-arn", json!({}))], ("DatabricksKeyConfig", "t-key-arn"), ("DatabricksKeyConfig", "t-key-arn", json!({"spec": {"keyArn": "arn:aws:kms:us-east-1:123456789012:key/another"}})), immutable("DatabricksKeyConfig", "t-key-arn", "keyArn")),
        // accountRef / externalId once the object has an ID.
        transition("credential: accountRef changed after create", vec![credential("t-cred-account")], ("DatabricksCredential", "t-cred-account"), ("DatabricksCredential", "t-cred-account", json!({"spec": {"accountRef": {"name": "acct-elsewhere"}}})), expect("DatabricksCredential", "t-cred-account", "Synced", "ImmutableFieldChanged", "spec.accountRef changed from \"default\" to \"acct-elsewhere\"")),
        transition("storage: accountRef changed to a Ready account", {
            let mut d = s.account_pair("acct-second");
            d.push(storage("t-storage-account", json!({})));
            d
        }, ("DatabricksStorageConfig", "t-storage-account"), ("DatabricksStorageConfig", "t-storage-account", json!({"spec": {"accountRef": {"name": "acct-second"}}})), expect("DatabricksStorageConfig", "t-storage-account", "Synced", "ImmutableFieldChanged", "spec.accountRef changed from \"default\" to \"acct-second\"")),
        transition("credential: externalId set to another ID after create", vec![credential("t-cred-external")], ("DatabricksCredential", "t-cred-external"), ("DatabricksCredential", "t-cred-external", json!({"spec": {"externalId": "00000000-dead-beef-0000-000000000001"}})), expect("DatabricksCredential", "t-cred-external", "Synced", "ImmutableFieldChanged", "spec.externalId \"00000000-dead-beef-0000-000000000001\" differs")),
        transition("workspace: externalId set to another ID after create", vec![workspace("t-ws-external", json!({}))], ("DatabricksWorkspace", "t-ws-external"), ("DatabricksWorkspace", "t-ws-external", json!({"spec": {"externalId": "123"}})), expect("DatabricksWorkspace", "t-ws-external", "Synced", "ImmutableFieldChanged", "spec.externalId \"123\" differs")),
        // The account's host and accountId while objects use it.
        transition("account: host changed while in use", {
            let mut d = s.account_pair("acct-moves-host");
            d.push(credential_with("user-of-moves-host", json!({"accountRef": {"name": "acct-moves-host"}})));
            d
        }, ("DatabricksCredential", "user-of-moves-host"), ("DatabricksAccount", "acct-moves-host", json!({"spec": {"host": "http://127.0.0.1:1"}})), expect("DatabricksAccount", "acct-moves-host", "Ready", "ImmutableFieldChanged", &format!("spec field(s) host (was {:?}) changed while 1 object(s) use this account", s.url))),
        transition("account: accountId changed while in use", {
            let mut d = s.account_pair("acct-moves-id");
            d.push(credential_with("user-of-moves-id", json!({"accountRef": {"name": "acct-moves-id"}})));
            d
        }, ("DatabricksCredential", "user-of-moves-id"), ("DatabricksAccount", "acct-moves-id", json!({"spec": {"accountId": "11111111-2222-3333-4444-555555555555"}})), expect("DatabricksAccount", "acct-moves-id", "Ready", "ImmutableFieldChanged", &format!("spec field(s) accountId (was {:?}) changed", s.account_id))),
        // Two objects asking for the same remote name (or the same AWS resources).
        after_ready("credential: credentialsName already taken", ("DatabricksCredential", "cross-account"), vec![credential_with("dup-credential", json!({"credentialsName": "cross-account"}))], expect("DatabricksCredential", "dup-credential", "Ready", "NameConflict", "a credential configuration named \"cross-account\" already exists")),
        after_ready("storage: storageConfigurationName already taken", ("DatabricksStorageConfig", "root-bucket"), vec![storage("dup-storage", json!({"storageConfigurationName": "root-bucket"}))], expect("DatabricksStorageConfig", "dup-storage", "Ready", "NameConflict", "named \"root-bucket\" already exists")),
        after_ready("network: networkName already taken", ("DatabricksNetwork", "workspace-vpc"), vec![network("dup-network", 0x40, json!({"networkName": "workspace-vpc"}))], expect("DatabricksNetwork", "dup-network", "Ready", "NameConflict", "named \"workspace-vpc\" already exists")),
        after_ready("workspace: workspaceName already taken", ("DatabricksWorkspace", "analytics"), vec![workspace("dup-workspace", json!({"workspaceName": "analytics"}))], expect("DatabricksWorkspace", "dup-workspace", "Ready", "NameConflict", "named \"analytics\" already exists")),
        after_ready("network: subnets already used by another network", ("DatabricksNetwork", "workspace-vpc"), vec![obj("DatabricksNetwork", "net-reused-subnets", json!({"vpcId": "vpc-0a1b2c3d4e5f", "subnetIds": ["subnet-0a1b2c3d4e5f", "subnet-1a2b3c4d5e6f"], "securityGroupIds": ["sg-41"]}))], expect("DatabricksNetwork", "net-reused-subnets", "Ready", "ApiRejected", "Subnet subnet-0a1b2c3d4e5f is already used by network configuration")),
        after_ready("workspace: network already used by another workspace", ("DatabricksWorkspace", "analytics"), vec![workspace("ws-reused-network", json!({"network": {"name": "workspace-vpc"}}))], expect("DatabricksWorkspace", "ws-reused-network", "Ready", "ApiRejected", "is already used by workspace")),
    ];
    // The poll-interval annotation: out of range, or not a duration.
    let out_of_range = [
        "5s",
        "9s",
        "0",
        "25h",
        "1441m",
        "86401",
        "99999999999999h",
        "18446744073709551616",
    ];
    let not_a_duration = [
        "abc", "1.5m", "", "010s", "30 s", "-10s", "1d", "10S", "1h30m",
    ];
    let mut n = 0;
    for (values, what) in [
        (&out_of_range[..], "is out of range: between 10s and 24h"),
        (&not_a_duration[..], "is not a duration"),
    ] {
        for v in values {
            n += 1;
            let doc = annotation(v, n);
            let name = format!("poll-interval-{n}");
            cases.push(condition(
                &format!("annotation: poll-interval {v:?}"),
                vec![doc],
                expect(
                    "DatabricksCredential",
                    &name,
                    "Ready",
                    "InvalidSpec",
                    &format!("{POLL_ANNOTATION}: {v:?} {what}"),
                ),
            ));
        }
    }
    cases
}

// ------------------------------------------------------------------------------------------------
// Talking to the API server

fn resource(doc: &Value) -> ApiResource {
    if doc["apiVersion"] == GROUP_VERSION {
        return ours(doc["kind"].as_str().unwrap());
    }
    let (group, version) = doc["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap_or(("", "v1"));
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        group,
        version,
        doc["kind"].as_str().unwrap(),
    ))
}

/// One of our kinds; the plural is spelled out (`...settings` takes no `es`).
fn ours(kind: &str) -> ApiResource {
    let lower = kind.to_ascii_lowercase();
    ApiResource {
        group: "account.databricks-operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: GROUP_VERSION.into(),
        kind: kind.into(),
        plural: if lower.ends_with("settings") {
            lower
        } else {
            format!("{lower}s")
        },
    }
}

async fn apply_doc(client: &Client, ns: &str, doc: &Value) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(doc));
    let name = doc["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply("bad-input-test").force(),
        &Patch::Apply(doc),
    )
    .await
    .map(drop)
}

async fn create_doc(client: &Client, ns: &str, doc: &Value) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(doc));
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    api.create(&PostParams::default(), &obj).await.map(drop)
}

/// Every object of our kinds in the namespace, by (kind, name).
async fn list_ours(client: &Client, ns: &str) -> HashMap<(String, String), DynamicObject> {
    let mut out = HashMap::new();
    for kind in KINDS {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ours(kind));
        if let Ok(list) = api.list(&ListParams::default()).await {
            for o in list {
                out.insert((kind.to_string(), o.metadata.name.clone().unwrap()), o);
            }
        }
    }
    out
}

fn condition_of(obj: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    let c = obj
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.into(),
        c["reason"].as_str()?.into(),
        c["message"].as_str()?.into(),
    ))
}

/// The Databricks ID in an object's status.
fn remote_id(obj: &DynamicObject) -> Option<String> {
    let status = obj.data.get("status")?;
    [
        "credentialsId",
        "storageConfigurationId",
        "customerManagedKeyId",
        "networkId",
        "vpcEndpointId",
        "privateAccessSettingsId",
    ]
    .iter()
    .find_map(|f| status.get(*f).and_then(Value::as_str).map(str::to_string))
    .or_else(|| {
        status
            .get("workspaceId")
            .and_then(Value::as_i64)
            .map(|i| i.to_string())
    })
}

/// Whether the expectation holds now, or what the condition is instead.
fn check(objs: &HashMap<(String, String), DynamicObject>, e: &Expect) -> Result<String, String> {
    let Some(obj) = objs.get(&(e.kind.to_string(), e.name.clone())) else {
        return Err(format!("{}/{} does not exist", e.kind, e.name));
    };
    match condition_of(obj, e.type_) {
        Some((_, reason, message))
            if reason == e.reason && message.contains(&e.message_contains) =>
        {
            Ok(message)
        }
        Some((status, reason, message)) => Err(format!(
            "{}={status} reason {reason}: {}",
            e.type_,
            short(&message, 300)
        )),
        None => Err(format!("no {} condition", e.type_)),
    }
}

/// Waits until every expectation holds (each is done once it holds), for at most `secs`.
async fn wait_all(
    client: &Client,
    ns: &str,
    expects: &[Expect],
    secs: u64,
) -> Vec<Result<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut done: Vec<Option<Result<String, String>>> = vec![None; expects.len()];
    loop {
        let objs = list_ours(client, ns).await;
        let mut last = Vec::new();
        for (i, e) in expects.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            match check(&objs, e) {
                Ok(m) => done[i] = Some(Ok(m)),
                Err(why) => last.push((i, why)),
            }
        }
        if last.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for (i, why) in last {
                done[i] = Some(Err(format!(
                    "timed out after {secs} s waiting for {}={} ({:?}); last: {why}",
                    expects[i].type_, expects[i].reason, expects[i].message_contains
                )));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    done.into_iter().map(Option::unwrap).collect()
}

/// Successful writes (create, update, replace, delete) the simulator answered, per route.
fn writes(sim: &SimHandle) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in sim.request_count().entries {
        let Some((method, path)) = e.route.split_once(' ') else {
            continue;
        };
        let collection = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if ["POST", "PUT", "PATCH", "DELETE"].contains(&method)
            && COLLECTIONS.contains(&collection)
            && (200..300).contains(&e.status)
        {
            *out.entry(e.route.clone()).or_default() += e.count;
        }
    }
    out
}

fn short(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// ------------------------------------------------------------------------------------------------
// The test

struct Row {
    name: String,
    phase: &'static str,
    result: Result<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus() {
    let started = Instant::now();
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "bad-input").await;
    let handle = common::fast_sim().await;
    let s = Sim::of(&handle);
    let mut op = OperatorProcess::start("bad-input", &ns, &["--api-timeout", "10s"]);

    // A valid full stack in the same namespace, plus a copy of its Secret for accounts whose
    // problem lies elsewhere.
    let mut valid: Vec<Value> = common::samples(&handle)
        .iter()
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    valid.push(s.m2m_secret("default-sp-copy"));
    for doc in &valid {
        apply_doc(&client, &ns, doc).await.unwrap();
    }

    let admission = admission_cases(&s);
    let conditions = condition_cases(&s);
    let mut rows: Vec<Row> = Vec::new();

    // Admission: each row's document must be refused with the expected message.
    for (i, case) in admission.iter().enumerate() {
        let Outcome::Refused { contains } = &case.expect else {
            unreachable!()
        };
        // A distinct name per row, so that a row wrongly accepted cannot make the next one fail.
        let mut doc = case.docs[0].clone();
        doc["metadata"]["name"] = json!(format!("admission-{i}"));
        let result = match create_doc(&client, &ns, &doc).await {
            Ok(()) => Err("accepted at admission".into()),
            Err(kube::Error::Api(status)) if status.code == 422 => {
                let missing: Vec<&String> = contains
                    .iter()
                    .filter(|c| !status.message.contains(c.as_str()))
                    .collect();
                if missing.is_empty() {
                    Ok(status.message.clone())
                } else {
                    Err(format!(
                        "refused, but the message lacks {missing:?}: {}",
                        short(&status.message, 600)
                    ))
                }
            }
            Err(e) => Err(format!("failed otherwise: {e}")),
        };
        rows.push(Row {
            name: case.name.clone(),
            phase: "admission",
            result,
        });
    }

    // Conditions: create every row's documents, then make the edits of the rows that need an ID
    // first, then wait for every expected condition.
    let mut setup_errors: HashMap<usize, String> = HashMap::new();
    for (i, case) in conditions.iter().enumerate() {
        for d in &case.docs {
            if let Err(e) = apply_doc(&client, &ns, d).await {
                setup_errors.insert(i, format!("a document was refused: {e}"));
            }
        }
    }
    let bases: Vec<(usize, Expect)> = conditions
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let t = c.then.as_ref()?;
            Some((
                i,
                expect(t.ready_kind, &t.ready_name, "Ready", "Available", ""),
            ))
        })
        .collect();
    let base_expects: Vec<Expect> = bases.iter().map(|(_, e)| e.clone()).collect();
    let base_results = wait_all(&client, &ns, &base_expects, WAIT_SECS).await;
    for ((i, e), r) in bases.iter().zip(&base_results) {
        if let Err(why) = r {
            setup_errors
                .entry(*i)
                .or_insert_with(|| format!("{}/{} never became Ready: {why}", e.kind, e.name));
        }
    }
    let objs = list_ours(&client, &ns).await;
    let ids_before: HashMap<usize, Option<String>> = bases
        .iter()
        .map(|(i, e)| {
            let id = objs
                .get(&(e.kind.to_string(), e.name.clone()))
                .and_then(remote_id);
            (*i, id)
        })
        .collect();
    let writes_before = writes(&handle);
    for (i, case) in conditions.iter().enumerate() {
        let Some(then) = &case.then else { continue };
        if setup_errors.contains_key(&i) {
            continue;
        }
        let outcome = match &then.change {
            Change::Patch { kind, name, patch } => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &ns, &ours(kind));
                api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Change::Apply(docs) => {
                let mut r = Ok(());
                for d in docs {
                    r = r.and(apply_doc(&client, &ns, d).await);
                }
                r
            }
        };
        if let Err(e) = outcome {
            setup_errors.insert(i, format!("the change was refused: {e}"));
        }
    }
    let expects: Vec<Expect> = conditions
        .iter()
        .map(|c| match &c.expect {
            Outcome::Condition(e) => e.clone(),
            Outcome::Refused { .. } => unreachable!(),
        })
        .collect();
    let mut results = wait_all(&client, &ns, &expects, WAIT_SECS).await;
    // No edit made after an ID exists may lead to a new remote write.
    let writes_after = writes(&handle);
    let objs = list_ours(&client, &ns).await;
    for (i, case) in conditions.iter().enumerate() {
        if let Some(e) = setup_errors.get(&i) {
            results[i] = Err(e.clone());
            continue;
        }
        let Some(then) = &case.then else { continue };
        if results[i].is_err() {
            continue;
        }
        if writes_after != writes_before {
            results[i] = Err(format!(
                "the simulator saw new writes after the edits: before {writes_before:?}, after {writes_after:?}"
            ));
            continue;
        }
        let id_now = objs
            .get(&(then.ready_kind.to_string(), then.ready_name.clone()))
            .and_then(remote_id);
        if id_now != ids_before[&i] {
            results[i] = Err(format!(
                "{}/{} changed its Databricks ID from {:?} to {id_now:?}",
                then.ready_kind, then.ready_name, ids_before[&i]
            ));
        }
    }

    // A valid object created after all the bad ones still becomes Ready, and so does the stack.
    apply_doc(&client, &ns, &credential("still-works"))
        .await
        .unwrap();
    let sanity = vec![
        expect(
            "DatabricksCredential",
            "still-works",
            "Ready",
            "Available",
            "",
        ),
        expect("DatabricksAccount", "default", "Ready", "Available", ""),
        expect(
            "DatabricksWorkspace",
            "analytics",
            "Ready",
            "Available",
            "RUNNING",
        ),
    ];
    let sanity_results = wait_all(&client, &ns, &sanity, WAIT_SECS).await;

    // Each condition still holds (none was only a passing state).
    let objs = list_ours(&client, &ns).await;
    for (i, e) in expects.iter().enumerate() {
        if results[i].is_ok()
            && let Err(why) = check(&objs, e)
        {
            results[i] = Err(format!("held, then changed: {why}"));
        }
    }
    for (case, result) in conditions.iter().zip(results) {
        rows.push(Row {
            name: case.name.clone(),
            phase: if case.then.is_some() {
                "transition"
            } else {
                "condition"
            },
            result,
        });
    }

    // The report.
    let mut failed = 0;
    for row in &rows {
        let (mark, detail) = match &row.result {
            Ok(m) => ("ok  ", short(m, 140)),
            Err(e) => {
                failed += 1;
                ("FAIL", e.clone())
            }
        };
        println!("{mark} {:<10} {:<62} {detail}", row.phase, row.name);
    }
    for (e, r) in sanity.iter().zip(&sanity_results) {
        println!(
            "{} valid      {}/{} Ready: {}",
            if r.is_ok() { "ok  " } else { "FAIL" },
            e.kind,
            e.name,
            match r {
                Ok(m) => short(m, 100),
                Err(e) => e.clone(),
            }
        );
    }
    let count = |p: &str| rows.iter().filter(|r| r.phase == p).count();
    println!(
        "{} cases ({} admission, {} condition, {} transition): {} passed, {failed} failed, in {} s",
        rows.len(),
        count("admission"),
        count("condition"),
        count("transition"),
        rows.len() - failed,
        started.elapsed().as_secs()
    );

    let running = op.running();
    let log = op.log_text();
    let panicked = log.contains("panicked");
    if running && !panicked && failed == 0 {
        delete_namespace_and_wait(&client, &ns).await;
    }
    assert!(rows.len() >= 60, "the corpus has {} cases", rows.len());
    assert_eq!(failed, 0, "{failed} bad-input case(s) failed (see above)");
    assert!(
        sanity_results.iter().all(Result::is_ok),
        "a valid object did not become Ready: {sanity_results:?}"
    );
    assert!(running, "the operator exited; log: {}", short(&log, 4000));
    assert!(!panicked, "the operator panicked; log: {log}");
}

/// Deletes the namespace with the operator still running: no bad object may wedge a deletion.
async fn delete_namespace_and_wait(client: &Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if namespaces.get_opt(ns).await.unwrap().is_none() {
            return;
        }
        if Instant::now() >= deadline {
            let left: Vec<String> = list_ours(client, ns)
                .await
                .into_iter()
                .map(|((k, n), o)| {
                    format!(
                        "{k}/{n}: {:?}",
                        condition_of(&o, "Ready").map(|c| (c.1, short(&c.2, 200)))
                    )
                })
                .collect();
            panic!("namespace {ns} still exists after 120 s; left: {left:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
