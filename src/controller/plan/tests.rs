//! Each kind's decisions, without a cluster or an API: create, adopt, name conflicts, updates
//! and their masks per workspace state, immutable changes, waits and deletes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::controller::managed::DepKind;
use crate::crd::{
    DatabricksCredential, DatabricksKeyConfig, DatabricksNetwork, DatabricksPrivateAccessSettings,
    DatabricksStorageConfig, DatabricksVpcEndpoint, DatabricksWorkspace, PendingCreate, SentUpdate,
};

const POLL: Duration = Duration::from_secs(600);

/// When the pending create in [`pending`] began.
const SINCE: &str = "2026-11-29T12:00:00Z";
/// Epoch milliseconds of [`SINCE`].
const SINCE_MS: i64 = 1_795_953_600_000;

/// An object of `kind` named `x` in namespace `ns`, with this spec and status.
fn object<K: DeserializeOwned>(kind: &str, spec: Value, status: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "account.databricks-operator.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

/// An Account API object, as the API sends it.
fn remote<R: DeserializeOwned>(v: Value) -> R {
    serde_json::from_value(v).unwrap()
}

fn deps(fields: &[(&'static str, &[&str])]) -> Resolved {
    Resolved(
        fields
            .iter()
            .map(|(f, ids)| (*f, ids.iter().map(|s| s.to_string()).collect()))
            .collect(),
    )
}

/// The plan when no other custom resource manages any remote object.
fn decide<K: Managed>(
    obj: &K,
    status: &K::Status,
    deps: &Resolved,
    observed: Observed<'_, K::Remote>,
) -> Plan<K::Remote> {
    plan(obj, status, deps, observed, &|_| None)
}

fn status<K: Managed>(obj: &K) -> K::Status {
    obj.current_status().cloned().unwrap_or_default()
}

/// The status of an object whose create was sent but not answered.
fn pending<K: Managed>(obj: &K) -> K::Status {
    let mut s = status(obj);
    K::common(&mut s).pending_create = Some(PendingCreate {
        name: obj.desired_name(),
        since: SINCE.into(),
    });
    s
}

fn credential(spec: Value, status: Value) -> DatabricksCredential {
    object("DatabricksCredential", spec, status)
}

fn cred_remote(id: &str, name: &str, role: &str) -> m::Credential {
    remote(json!({"credentials_id": id, "credentials_name": name,
                  "aws_credentials": {"sts_role": {"role_arn": role}}}))
}

const ROLE: &str = "arn:aws:iam::123456789012:role/x";

// ---------------------------------------------------------------------------------------------
// Before any API call.

fn clear() -> Facts {
    Facts {
        paused: false,
        annotation_problem: None,
        account: AccountState::Ready,
        gated: None,
        dependencies: Ok(deps(&[("credentials", &["c-1"])])),
        poll: POLL,
    }
}

fn wait(p: Precheck) -> Wait {
    match p {
        Precheck::Wait(w) => w,
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn with_nothing_in_the_way_the_reconcile_goes_on_with_the_dependency_ids() {
    let c = credential(json!({"roleArn": ROLE}), json!({}));
    assert_eq!(
        precheck(&c, &status(&c), clear()),
        Precheck::Go(deps(&[("credentials", &["c-1"])]))
    );
}

#[test]
fn paused_comes_first_and_leaves_ready_alone() {
    let c = credential(json!({"roleArn": ROLE}), json!({}));
    let facts = Facts {
        paused: true,
        annotation_problem: Some("annotation x: bad".into()),
        account: AccountState::NotReady("down".into()),
        ..clear()
    };
    let w = wait(precheck(&c, &status(&c), facts));
    assert_eq!(w.reason, Reason::Paused);
    assert!(!w.ready && !w.warn);
    assert_eq!(w.requeue, POLL);
}

#[test]
fn a_bad_annotation_warns_and_turns_ready_false_only_without_an_id() {
    let facts = || Facts {
        annotation_problem: Some("annotation poll-interval: too long".into()),
        ..clear()
    };
    let fresh = credential(json!({"roleArn": ROLE}), json!({}));
    let w = wait(precheck(&fresh, &status(&fresh), facts()));
    assert_eq!(
        (w.reason, w.ready, w.warn),
        (Reason::InvalidSpec, true, true)
    );
    assert_eq!(w.message, "annotation poll-interval: too long");

    let created = credential(json!({"roleArn": ROLE}), json!({"credentialsId": "c-9"}));
    let w = wait(precheck(&created, &status(&created), facts()));
    assert_eq!((w.reason, w.ready), (Reason::InvalidSpec, false));
}

#[test]
fn an_object_with_an_id_never_moves_to_another_account_or_remote_object() {
    let moved_account = credential(
        json!({"roleArn": ROLE, "accountRef": {"name": "other"}}),
        json!({"credentialsId": "c-9", "accountName": "main"}),
    );
    let w = wait(precheck(&moved_account, &status(&moved_account), clear()));
    assert_eq!(w.reason, Reason::ImmutableFieldChanged);
    assert!(
        w.message
            .contains("accountRef changed from \"main\" to \"other\"")
    );
    assert!(w.warn && !w.ready);

    let other_id = credential(
        json!({"roleArn": ROLE, "externalId": "c-1"}),
        json!({"credentialsId": "c-9"}),
    );
    let w = wait(precheck(&other_id, &status(&other_id), clear()));
    assert_eq!(w.reason, Reason::ImmutableFieldChanged);
    assert!(w.message.contains("spec.externalId \"c-1\" differs"));

    // Without an ID yet, both may change freely.
    let fresh = credential(
        json!({"roleArn": ROLE, "externalId": "c-1", "accountRef": {"name": "other"}}),
        json!({"accountName": "main"}),
    );
    assert!(matches!(
        precheck(&fresh, &status(&fresh), clear()),
        Precheck::Go(_)
    ));
}

#[test]
fn an_account_not_ready_is_waited_for_and_an_unchecked_one_is_not_reported() {
    let c = credential(
        json!({"roleArn": ROLE, "accountRef": {"name": "acct"}}),
        json!({}),
    );
    let facts = Facts {
        account: AccountState::NotReady("its Secret is missing".into()),
        dependencies: Err((Reason::WaitingForDependency, "dep".into())),
        ..clear()
    };
    let w = wait(precheck(&c, &status(&c), facts));
    assert_eq!(w.reason, Reason::WaitingForDependency);
    assert_eq!(
        w.message,
        "waiting for DatabricksAccount \"acct\" to be Ready: its Secret is missing"
    );
    assert!(w.ready);
    assert_eq!(w.requeue, Duration::from_secs(10));

    let facts = Facts {
        account: AccountState::Unchecked,
        ..clear()
    };
    assert_eq!(
        precheck(&c, &status(&c), facts),
        Precheck::Hold(Duration::from_secs(2))
    );
}

#[test]
fn a_backoff_holds_without_writing_and_dependencies_come_last() {
    let c = credential(json!({"roleArn": ROLE}), json!({}));
    let facts = Facts {
        gated: Some(Duration::from_secs(7)),
        dependencies: Err((Reason::WaitingForDependency, "dep".into())),
        ..clear()
    };
    assert_eq!(
        precheck(&c, &status(&c), facts),
        Precheck::Hold(Duration::from_secs(7))
    );
    let facts = Facts {
        dependencies: Err((Reason::InvalidSpec, "spec.network: set exactly one".into())),
        ..clear()
    };
    let w = wait(precheck(&c, &status(&c), facts));
    assert_eq!(
        (w.reason, w.ready, w.warn, w.requeue),
        (Reason::InvalidSpec, true, false, POLL)
    );
}

// ---------------------------------------------------------------------------------------------
// Credentials: named, nothing updatable.

#[test]
fn a_credential_is_created_when_the_account_has_none_by_its_name() {
    let c = credential(
        json!({"roleArn": ROLE, "credentialsName": "prod"}),
        json!({}),
    );
    let others = [cred_remote("c-1", "staging", ROLE)];
    let Plan::Create(request) = decide(&c, &status(&c), &deps(&[]), Observed::Listed(&others))
    else {
        panic!("expected a create");
    };
    assert_eq!(request.credentials_name, "prod");
    assert_eq!(request.aws_credentials.sts_role.role_arn, ROLE);
}

#[test]
fn a_credential_name_taken_is_a_conflict_unless_an_earlier_attempt_took_it() {
    let c = credential(json!({"roleArn": ROLE}), json!({}));
    let listed = [cred_remote("c-7", "x", ROLE)];
    assert_eq!(
        decide(&c, &status(&c), &deps(&[]), Observed::Listed(&listed)),
        Plan::NameConflict {
            id: "c-7".into(),
            owner: None
        }
    );
    assert_eq!(
        decide(&c, &pending(&c), &deps(&[]), Observed::Listed(&listed)),
        Plan::Adopt(listed[0].clone())
    );
}

#[test]
fn a_credential_role_change_is_reported_not_applied() {
    let c = credential(
        json!({"roleArn": "arn:aws:iam::123456789012:role/new"}),
        json!({"credentialsId": "c-1"}),
    );
    let r = cred_remote("c-1", "x", ROLE);
    assert_eq!(
        decide(&c, &status(&c), &deps(&[]), Observed::Found(&r)),
        Plan::Sync {
            remote: r.clone(),
            change: Change::Immutable(vec!["roleArn"])
        }
    );
    let same = credential(json!({"roleArn": ROLE}), json!({"credentialsId": "c-1"}));
    assert_eq!(
        decide(&same, &status(&same), &deps(&[]), Observed::Found(&r)),
        Plan::Sync {
            remote: r,
            change: Change::None
        }
    );
}

#[test]
fn a_missing_object_is_recreated_only_when_this_object_created_it() {
    let created = credential(json!({"roleArn": ROLE}), json!({"credentialsId": "c-1"}));
    assert_eq!(
        decide(
            &created,
            &status(&created),
            &deps(&[]),
            Observed::Missing("c-1".into())
        ),
        Plan::Recreate { id: "c-1".into() }
    );
    // Adopting by ID: what the spec names must exist; nothing is created in its place.
    let adopting = credential(json!({"roleArn": ROLE, "externalId": "c-1"}), json!({}));
    assert_eq!(
        decide(
            &adopting,
            &status(&adopting),
            &deps(&[]),
            Observed::Missing("c-1".into())
        ),
        Plan::NotFound {
            message: "credential configuration c-1 does not exist in the account".into(),
            synced: Reason::Synced
        }
    );
}

#[test]
fn observe_only_never_creates_or_changes_but_still_reports_differences() {
    let spec = |role: &str| json!({"roleArn": role, "managementPolicy": "ObserveOnly"});
    let c = credential(spec(ROLE), json!({}));
    let Plan::NotFound { message, synced } =
        decide(&c, &status(&c), &deps(&[]), Observed::Listed(&[]))
    else {
        panic!("expected not found");
    };
    assert_eq!(synced, Reason::ObserveOnly);
    assert!(message.starts_with("observe-only: no credential configuration named \"x\""));

    let listed = [cred_remote("c-3", "x", ROLE)];
    assert_eq!(
        decide(&c, &status(&c), &deps(&[]), Observed::Listed(&listed)),
        Plan::Sync {
            remote: listed[0].clone(),
            change: Change::None
        }
    );
    let observed_gone = credential(spec(ROLE), json!({"credentialsId": "c-3"}));
    assert!(matches!(
        decide(
            &observed_gone,
            &status(&observed_gone),
            &deps(&[]),
            Observed::Missing("c-3".into())
        ),
        Plan::NotFound { .. }
    ));
    let differs = credential(spec("arn:aws:iam::123456789012:role/other"), json!({}));
    assert_eq!(
        change(&differs, &listed[0], &deps(&[])),
        Change::Immutable(vec!["roleArn"])
    );
}

// ---------------------------------------------------------------------------------------------
// Storage configurations.

#[test]
fn a_storage_configuration_is_created_with_its_bucket_and_the_bucket_cannot_change() {
    let s: DatabricksStorageConfig = object(
        "DatabricksStorageConfig",
        json!({"bucketName": "root-bucket"}),
        json!({}),
    );
    let Plan::Create(request) = decide(&s, &status(&s), &deps(&[]), Observed::Listed(&[])) else {
        panic!("expected a create");
    };
    assert_eq!(request.storage_configuration_name, "x");
    assert_eq!(request.root_bucket_info.bucket_name, "root-bucket");

    let r: m::StorageConfiguration = remote(json!({
        "storage_configuration_id": "s-1", "storage_configuration_name": "x",
        "root_bucket_info": {"bucket_name": "old-bucket"}}));
    assert!(matches!(
        change(&s, &r, &deps(&[])),
        Change::Immutable(f) if f.contains(&"bucketName")
    ));
}

// ---------------------------------------------------------------------------------------------
// Keys: no name, matched by content.

fn key(spec: Value) -> DatabricksKeyConfig {
    object("DatabricksKeyConfig", spec, json!({}))
}

fn key_remote(id: &str, arn: &str, use_cases: &[&str]) -> m::CustomerManagedKey {
    remote(
        json!({"customer_managed_key_id": id, "use_cases": use_cases,
                  "aws_key_info": {"key_arn": arn}}),
    )
}

const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/k";

#[test]
fn a_key_with_the_same_content_is_no_conflict_and_is_adopted_only_after_a_lost_answer() {
    let k = key(json!({"keyArn": KEY, "useCases": ["MANAGED_SERVICES"]}));
    let same = [key_remote("k-1", KEY, &["MANAGED_SERVICES"])];
    assert!(matches!(
        decide(&k, &status(&k), &deps(&[]), Observed::Listed(&same)),
        Plan::Create(_)
    ));
    assert_eq!(
        decide(&k, &pending(&k), &deps(&[]), Observed::Listed(&same)),
        Plan::Adopt(same[0].clone())
    );
    // Other use cases are another key configuration: never adopted.
    let other = [key_remote("k-2", KEY, &["MANAGED_SERVICES", "STORAGE"])];
    assert!(matches!(
        decide(&k, &pending(&k), &deps(&[]), Observed::Listed(&other)),
        Plan::Create(_)
    ));
}

#[test]
fn a_key_reports_each_field_it_cannot_change() {
    let k = key(
        json!({"keyArn": KEY, "useCases": ["STORAGE", "MANAGED_SERVICES"],
                       "keyAlias": "alias/new", "reuseKeyForClusterVolumes": true}),
    );
    let r = key_remote("k-1", KEY, &["MANAGED_SERVICES", "STORAGE"]);
    assert_eq!(
        change(&k, &r, &deps(&[])),
        Change::Immutable(vec!["keyAlias", "reuseKeyForClusterVolumes"])
    );
}

// ---------------------------------------------------------------------------------------------
// Networks and endpoints.

/// A WARNED network works: it stays Ready, and its message names every warning, bounded like
/// everything else the API says.
#[test]
fn a_warned_network_is_ready_and_names_its_warnings() {
    let n: DatabricksNetwork = object(
        "DatabricksNetwork",
        json!({"vpcId": "vpc-1", "subnetIds": ["a", "b"], "securityGroupIds": ["sg"]}),
        json!({}),
    );
    let mut s = status(&n);
    let warnings: Vec<Value> = (0..30)
        .map(|i| json!({"warning_type": "subnet", "warning_message": format!("warning {i} {}", "x".repeat(500))}))
        .collect();
    let r: m::Network = remote(
        json!({"network_id": "n-1", "network_name": "x", "vpc_id": "vpc-1",
        "subnet_ids": ["a", "b"], "security_group_ids": ["sg"], "vpc_status": "WARNED",
        "warning_messages": [{"warning_type": "securityGroup", "warning_message": "sg is open"}]}),
    );
    let o = n.observe(&r, &deps(&[]), &mut s, "", None);
    assert!(o.ready && o.reason == Reason::Available, "{o:?}");
    assert!(
        o.message
            .contains("VPC validation warnings (the network works; review them in AWS): securityGroup: sg is open"),
        "{}",
        o.message
    );
    assert_eq!(s.vpc_status.as_deref(), Some("WARNED"));
    assert!(DatabricksNetwork::warnings(&r).is_some());
    let many: m::Network = remote(
        json!({"network_id": "n-1", "network_name": "x", "vpc_id": "vpc-1",
        "subnet_ids": ["a", "b"], "security_group_ids": ["sg"], "vpc_status": "WARNED",
        "warning_messages": warnings}),
    );
    let o = n.observe(&many, &deps(&[]), &mut s, "", None);
    assert!(o.ready);
    assert!(o.message.len() < 16 * 1024, "{}", o.message.len());
    assert!(s.warning_messages.len() <= 11);
    let valid: m::Network = remote(json!({"network_id": "n-1", "network_name": "x",
        "vpc_id": "vpc-1", "subnet_ids": ["a", "b"], "security_group_ids": ["sg"], "vpc_status": "VALID"}));
    assert_eq!(DatabricksNetwork::warnings(&valid), None);
}

#[test]
fn a_network_takes_its_endpoint_ids_from_the_dependencies_and_ignores_list_order() {
    let n: DatabricksNetwork = object(
        "DatabricksNetwork",
        json!({"vpcId": "vpc-1", "subnetIds": ["a", "b"], "securityGroupIds": ["sg"],
               "vpcEndpoints": {"restApi": [{"name": "rest"}], "dataplaneRelay": [{"id": "e-2"}]}}),
        json!({}),
    );
    let d = deps(&[
        ("vpcEndpoints.restApi", &["e-1"]),
        ("vpcEndpoints.dataplaneRelay", &["e-2"]),
    ]);
    let Plan::Create(request) = decide(&n, &status(&n), &d, Observed::Listed(&[])) else {
        panic!("expected a create");
    };
    let endpoints = request.vpc_endpoints.unwrap();
    assert_eq!(
        (endpoints.rest_api, endpoints.dataplane_relay),
        (vec!["e-1".to_string()], vec!["e-2".to_string()])
    );

    let r: m::Network = remote(
        json!({"network_id": "n-1", "network_name": "x", "vpc_id": "vpc-1",
        "subnet_ids": ["b", "a"], "security_group_ids": ["sg"],
        "vpc_endpoints": {"rest_api": ["e-1"], "dataplane_relay": ["e-2"]}}),
    );
    assert_eq!(change(&n, &r, &d), Change::None);
    let moved = deps(&[
        ("vpcEndpoints.restApi", &["e-9"]),
        ("vpcEndpoints.dataplaneRelay", &["e-2"]),
    ]);
    assert_eq!(
        change(&n, &r, &moved),
        Change::Immutable(vec!["vpcEndpoints"])
    );
}

#[test]
fn a_vpc_endpoint_cannot_change_region_or_aws_endpoint() {
    let e: DatabricksVpcEndpoint = object(
        "DatabricksVpcEndpoint",
        json!({"awsVpcEndpointId": "vpce-2", "region": "eu-west-1"}),
        json!({}),
    );
    let r: m::VpcEndpoint = remote(json!({"vpc_endpoint_id": "e-1", "vpc_endpoint_name": "x",
        "aws_vpc_endpoint_id": "vpce-1", "region": "us-west-2"}));
    assert_eq!(
        change(&e, &r, &deps(&[])),
        Change::Immutable(vec!["awsVpcEndpointId", "region"])
    );
}

// ---------------------------------------------------------------------------------------------
// Private access settings: replaced as a whole.

fn pas(allowed: Value) -> DatabricksPrivateAccessSettings {
    object(
        "DatabricksPrivateAccessSettings",
        json!({"region": "us-west-2", "publicAccessEnabled": false,
               "privateAccessLevel": "ENDPOINT", "allowedVpcEndpoints": allowed}),
        json!({}),
    )
}

fn pas_remote(region: &str, allowed: &[&str]) -> m::PrivateAccessSettings {
    remote(
        json!({"private_access_settings_id": "p-1", "private_access_settings_name": "x",
        "region": region, "public_access_enabled": false, "private_access_level": "ENDPOINT",
        "allowed_vpc_endpoint_ids": allowed}),
    )
}

#[test]
fn private_access_settings_are_replaced_when_their_endpoints_change() {
    let p = pas(json!([{"name": "a"}, {"name": "b"}]));
    let d = deps(&[("allowedVpcEndpoints", &["e-1", "e-2"])]);
    assert_eq!(
        change(&p, &pas_remote("us-west-2", &["e-2", "e-1"]), &d),
        Change::None
    );
    let Change::Update(update) = change(&p, &pas_remote("us-west-2", &["e-1"]), &d) else {
        panic!("expected an update");
    };
    assert_eq!(
        update.describe(),
        "private access settings p-1 (replaced as a whole)"
    );
    let Update::PrivateAccess { id, request } = update else {
        panic!("expected a replacement");
    };
    assert_eq!(id, "p-1");
    assert_eq!(request.allowed_vpc_endpoint_ids, vec!["e-1", "e-2"]);
    assert_eq!(request.private_access_settings_name, "x");
    // The region is fixed: reported, and nothing is sent.
    assert_eq!(
        change(&p, &pas_remote("eu-west-1", &["e-1"]), &d),
        Change::Immutable(vec!["region"])
    );
}

// ---------------------------------------------------------------------------------------------
// Workspaces: what may change depends on the workspace's state.

fn workspace(extra: Value) -> DatabricksWorkspace {
    let mut spec = json!({"awsRegion": "us-west-2", "credentials": {"name": "cred"},
                          "storageConfiguration": {"name": "storage"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    object("DatabricksWorkspace", spec, json!({"workspaceId": 42}))
}

fn ws_remote(state: &str, extra: Value) -> m::Workspace {
    let mut v = json!({"workspace_id": 42, "workspace_name": "x", "aws_region": "us-west-2",
        "credentials_id": "c-1", "storage_configuration_id": "s-1", "workspace_status": state});
    if let (Some(s), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    remote(v)
}

fn ws_deps(fields: &[(&'static str, &str)]) -> Resolved {
    let mut d = deps(&[
        ("credentials", &["c-1"]),
        ("storageConfiguration", &["s-1"]),
    ]);
    for (f, id) in fields {
        d.0.insert(f, vec![id.to_string()]);
    }
    d
}

/// The update mask a change sends, or what else it is.
fn mask(c: Change) -> String {
    match c {
        Change::Update(Update::Workspace { fields, .. }) => fields.update_mask(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_running_workspace_is_patched_with_only_the_fields_that_changed() {
    let w = workspace(json!({"customTags": {"team": "data"}}));
    let r = ws_remote("RUNNING", json!({}));
    assert_eq!(
        mask(change(&w, &r, &ws_deps(&[("credentials", "c-2")]))),
        "credentials_id,custom_tags"
    );
    let tagged = ws_remote("RUNNING", json!({"custom_tags": {"team": "data"}}));
    assert_eq!(mask(change(&w, &tagged, &ws_deps(&[]))), "None");
    let Change::Update(update) = change(&w, &r, &ws_deps(&[("network", "n-1")])) else {
        panic!("expected an update");
    };
    assert_eq!(
        update.describe(),
        "workspace 42 fields custom_tags,network_id"
    );
}

#[test]
fn a_running_workspace_gains_a_storage_key_once_but_never_swaps_storage() {
    let w = workspace(json!({"storageKey": {"name": "k"}}));
    let without = ws_remote("RUNNING", json!({}));
    assert_eq!(
        mask(change(&w, &without, &ws_deps(&[("storageKey", "k-1")]))),
        "storage_customer_managed_key_id"
    );
    let with = ws_remote("RUNNING", json!({"storage_customer_managed_key_id": "k-0"}));
    assert_eq!(
        change(&w, &with, &ws_deps(&[("storageKey", "k-1")])),
        Change::Immutable(vec!["storageKey"])
    );
    assert_eq!(
        change(&w, &without, &ws_deps(&[("storageConfiguration", "s-2")])),
        Change::Immutable(vec!["storageConfiguration"])
    );
    let elsewhere = ws_remote("RUNNING", json!({"aws_region": "eu-west-1"}));
    assert_eq!(
        change(&w, &elsewhere, &ws_deps(&[("storageKey", "k-1")])),
        Change::Immutable(vec!["awsRegion"])
    );
}

#[test]
fn a_failed_workspace_takes_new_storage_region_and_storage_key() {
    let w = workspace(json!({"storageKey": {"name": "k"}}));
    let failed = ws_remote(
        "FAILED",
        json!({"aws_region": "eu-west-1", "storage_customer_managed_key_id": "k-0"}),
    );
    assert_eq!(
        mask(change(
            &w,
            &failed,
            &ws_deps(&[("storageConfiguration", "s-2"), ("storageKey", "k-1")])
        )),
        "aws_region,storage_configuration_id,storage_customer_managed_key_id"
    );
}

/// A cancelling workspace is going; a banned one takes nothing until it is RUNNING again, and
/// says that the change waits rather than that all is in sync.
#[test]
fn cancelling_and_banned_workspaces_take_no_patch() {
    let w = workspace(json!({}));
    let r = ws_remote("CANCELLING", json!({}));
    assert_eq!(
        change(&w, &r, &ws_deps(&[("credentials", "c-2")])),
        Change::None
    );
    let banned = ws_remote("BANNED", json!({}));
    let wanted = change(&w, &banned, &ws_deps(&[("credentials", "c-2")]));
    let blocked = DatabricksWorkspace::update_blocked(&banned);
    let a = follow_update(wanted, None, Some(1), blocked.as_deref(), at(0), limits());
    assert_eq!(reason(&a), "UpdatePending");
    assert!(message(&a).contains("BANNED"), "{}", message(&a));
    let provisioning = ws_remote("PROVISIONING", json!({}));
    assert_eq!(
        mask(change(
            &w,
            &provisioning,
            &ws_deps(&[("credentials", "c-2")])
        )),
        "credentials_id"
    );
}

#[test]
fn a_workspace_reports_what_it_cannot_change_and_patches_nothing_then() {
    let w = workspace(json!({"workspaceName": "renamed", "pricingTier": "ENTERPRISE"}));
    let r = ws_remote(
        "RUNNING",
        json!({"pricing_tier": "PREMIUM", "network_id": "n-1", "private_access_settings_id": "p-1"}),
    );
    assert_eq!(
        change(&w, &r, &ws_deps(&[("credentials", "c-2")])),
        Change::Immutable(vec![
            "workspaceName",
            "pricingTier",
            "privateAccessSettings",
            "network"
        ])
    );
}

#[test]
fn a_workspace_is_adopted_by_name_and_deployment_after_a_lost_answer() {
    let w: DatabricksWorkspace = object(
        "DatabricksWorkspace",
        json!({"awsRegion": "us-west-2", "credentials": {"name": "cred"},
               "storageConfiguration": {"name": "storage"}, "deploymentName": "analytics"}),
        json!({}),
    );
    let listed = [
        ws_remote(
            "RUNNING",
            json!({"workspace_id": 7, "deployment_name": "acme-other"}),
        ),
        ws_remote(
            "PROVISIONING",
            json!({"workspace_id": 8, "deployment_name": "acme-analytics"}),
        ),
    ];
    assert_eq!(
        decide(&w, &pending(&w), &ws_deps(&[]), Observed::Listed(&listed)),
        Plan::Adopt(listed[1].clone())
    );
    assert_eq!(
        decide(&w, &status(&w), &ws_deps(&[]), Observed::Listed(&listed)),
        Plan::NameConflict {
            id: "8".into(),
            owner: None
        }
    );
    let Plan::Create(request) = decide(&w, &status(&w), &ws_deps(&[]), Observed::Listed(&[]))
    else {
        panic!("expected a create");
    };
    assert_eq!(
        (
            request.credentials_id.as_deref(),
            request.storage_configuration_id.as_deref(),
            request.deployment_name.as_deref()
        ),
        (Some("c-1"), Some("s-1"), Some("analytics"))
    );
}

// ---------------------------------------------------------------------------------------------
// Deletes.

#[test]
fn a_delete_waits_while_paused_or_used_and_follows_the_policies() {
    let with_id = |spec: Value| credential(spec, json!({"credentialsId": "c-1"}));
    let c = with_id(json!({"roleArn": ROLE}));
    let s = status(&c);
    let delete = DeletionPolicy::Delete;
    assert_eq!(
        plan_delete(&c, &s, false, delete, &[], POLL),
        DeletePlan::Delete("c-1".into())
    );
    let DeletePlan::Wait(w) = plan_delete(&c, &s, true, delete, &[], POLL) else {
        panic!("expected a wait");
    };
    assert_eq!((w.reason, w.ready), (Reason::Paused, false));
    let users = ["DatabricksWorkspace/a".to_string()];
    let DeletePlan::Wait(w) = plan_delete(&c, &s, false, delete, &users, POLL) else {
        panic!("expected a wait");
    };
    assert_eq!((w.reason, w.ready), (Reason::InUse, true));
    assert!(w.message.contains("still used by DatabricksWorkspace/a"));

    assert_eq!(
        plan_delete(&c, &s, false, DeletionPolicy::Orphan, &[], POLL),
        DeletePlan::Orphan(Some("c-1".into()))
    );
    let kept = with_id(json!({"roleArn": ROLE, "deletionPolicy": "Orphan"}));
    assert_eq!(
        plan_delete(&kept, &status(&kept), false, delete, &[], POLL),
        DeletePlan::Orphan(Some("c-1".into()))
    );
    let observed = with_id(json!({"roleArn": ROLE, "managementPolicy": "ObserveOnly"}));
    assert_eq!(
        plan_delete(&observed, &status(&observed), false, delete, &[], POLL),
        DeletePlan::Orphan(Some("c-1".into()))
    );
}

#[test]
fn a_delete_without_an_id_releases_or_finds_what_a_lost_create_made() {
    let c = credential(json!({"roleArn": ROLE}), json!({}));
    let delete = DeletionPolicy::Delete;
    assert_eq!(
        plan_delete(&c, &status(&c), false, delete, &[], POLL),
        DeletePlan::Release
    );
    assert_eq!(
        plan_delete(&c, &pending(&c), false, delete, &[], POLL),
        DeletePlan::FindPending
    );
}

// ---------------------------------------------------------------------------------------------
// After a create whose answer was lost: only what that attempt can have made.

#[test]
fn a_lost_create_adopts_only_an_object_made_after_it_began_with_the_asked_content() {
    let minute = 60_000;
    let s: DatabricksStorageConfig = object(
        "DatabricksStorageConfig",
        json!({"bucketName": "root"}),
        json!({}),
    );
    let storage = |id: &str, bucket: &str, created: i64| -> m::StorageConfiguration {
        remote(
            json!({"storage_configuration_id": id, "storage_configuration_name": "x",
            "root_bucket_info": {"bucket_name": bucket}, "creation_time": created}),
        )
    };
    let older = storage("s-old", "root", SINCE_MS - 10 * minute);
    let other_bucket = storage("s-other", "elsewhere", SINCE_MS + minute);
    let ours = storage("s-new", "root", SINCE_MS + minute);
    let listed = [older.clone(), other_bucket.clone(), ours.clone()];
    assert_eq!(
        decide(&s, &pending(&s), &deps(&[]), Observed::Listed(&listed)),
        Plan::Adopt(ours.clone())
    );
    // Databricks' clock may run a little behind ours.
    let skewed = storage("s-skew", "root", SINCE_MS - 30_000);
    assert_eq!(
        decide(
            &s,
            &pending(&s),
            &deps(&[]),
            Observed::Listed(std::slice::from_ref(&skewed))
        ),
        Plan::Adopt(skewed)
    );
    // Nothing the attempt can have made: the name is someone else's.
    let Plan::NameConflict { id, owner } = decide(
        &s,
        &pending(&s),
        &deps(&[]),
        Observed::Listed(&[older, other_bucket]),
    ) else {
        panic!("expected a name conflict");
    };
    assert_eq!((id.as_str(), owner), ("s-old", None));
    // One that another custom resource manages is never taken.
    let owned = |id: &str| (id == "s-new").then(|| "DatabricksStorageConfig/ns/y".to_string());
    assert_eq!(
        plan(
            &s,
            &pending(&s),
            &deps(&[]),
            Observed::Listed(&[ours]),
            &owned
        ),
        Plan::NameConflict {
            id: "s-new".into(),
            owner: Some("DatabricksStorageConfig/ns/y".into())
        }
    );
}

#[test]
fn a_lost_key_create_never_adopts_another_resources_key() {
    let k = key(json!({"keyArn": KEY, "useCases": ["MANAGED_SERVICES"]}));
    let theirs = key_remote("k-1", KEY, &["MANAGED_SERVICES"]);
    let owned = |id: &str| (id == "k-1").then(|| "DatabricksKeyConfig/ns/other".to_string());
    assert!(matches!(
        plan(
            &k,
            &pending(&k),
            &deps(&[]),
            Observed::Listed(std::slice::from_ref(&theirs)),
            &owned
        ),
        Plan::Create(_)
    ));
    let p = pending(&k);
    let marker = DatabricksKeyConfig::common_ref(&p)
        .pending_create
        .clone()
        .unwrap();
    assert!(!adoptable(&k, &marker, &theirs, None, &owned));
    assert!(adoptable(&k, &marker, &theirs, None, &|_| None));
}

// ---------------------------------------------------------------------------------------------
// Serverless workspaces.

/// A serverless workspace spec (no credential, storage or network).
fn serverless(extra: Value, status: Value) -> DatabricksWorkspace {
    let mut spec = json!({"awsRegion": "eu-west-3", "computeMode": "SERVERLESS"});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    object("DatabricksWorkspace", spec, status)
}

/// On API servers without CEL (before 1.25) the operator itself refuses a workspace that mixes the
/// modes, before any API call, with the rule's message; once the object has an ID, Ready is left
/// as it is (the workspace still runs).
#[test]
fn a_workspace_that_mixes_serverless_and_classic_is_refused_before_any_call() {
    let fresh = serverless(json!({"credentials": {"name": "cred"}}), json!({}));
    let w = wait(precheck(&fresh, &status(&fresh), clear()));
    assert_eq!(
        (w.reason, w.ready, w.warn),
        (Reason::InvalidSpec, true, true)
    );
    assert!(
        w.message
            .starts_with(crate::crd::workspace::SERVERLESS_TAKES_NONE),
        "{}",
        w.message
    );

    let with_network = serverless(
        json!({"network": {"id": "n-1"}}),
        json!({"workspaceId": 42}),
    );
    let w = wait(precheck(&with_network, &status(&with_network), clear()));
    assert_eq!((w.reason, w.ready), (Reason::InvalidSpec, false));

    let classic_without_storage: DatabricksWorkspace = object(
        "DatabricksWorkspace",
        json!({"awsRegion": "us-east-1", "credentials": {"name": "cred"}}),
        json!({}),
    );
    let w = wait(precheck(
        &classic_without_storage,
        &status(&classic_without_storage),
        clear(),
    ));
    assert_eq!(w.reason, Reason::InvalidSpec);
    assert!(
        w.message.starts_with(crate::crd::workspace::CLASSIC_NEEDS),
        "{}",
        w.message
    );

    let fine = serverless(json!({}), json!({}));
    assert_eq!(
        precheck(
            &fine,
            &status(&fine),
            Facts {
                dependencies: Ok(deps(&[])),
                ..clear()
            }
        ),
        Precheck::Go(deps(&[]))
    );
    assert!(
        fine.dependencies().is_empty(),
        "a serverless workspace waits for nothing"
    );
}

/// The create asks for SERVERLESS and sends no credential or storage; a classic create sends no
/// mode (the API's default, HYBRID).
#[test]
fn a_serverless_workspace_is_created_with_its_mode_and_nothing_of_yours() {
    let w = serverless(json!({}), json!({}));
    let Plan::Create(request) = decide(&w, &status(&w), &deps(&[]), Observed::Listed(&[])) else {
        panic!("expected a create");
    };
    assert_eq!(request.compute_mode, Some(m::ComputeMode::Serverless));
    assert_eq!(
        (
            request.credentials_id,
            request.storage_configuration_id,
            request.network_id
        ),
        (None, None, None)
    );
    let body = serde_json::to_value(w.create_request(&deps(&[]))).unwrap();
    assert_eq!(body["compute_mode"], "SERVERLESS");
    assert!(body.get("credentials_id").is_none(), "{body}");

    let classic = workspace(json!({}));
    let body = serde_json::to_value(classic.create_request(&ws_deps(&[]))).unwrap();
    assert!(body.get("compute_mode").is_none(), "{body}");
}

/// The mode is fixed at create: a workspace whose mode differs from the spec is reported, not
/// patched; one that reports no mode counts as classic.
#[test]
fn a_workspace_mode_cannot_change() {
    let w = serverless(json!({}), json!({"workspaceId": 42}));
    let classic_remote = ws_remote("RUNNING", json!({"aws_region": "eu-west-3"}));
    assert_eq!(
        change(&w, &classic_remote, &deps(&[])),
        Change::Immutable(vec!["computeMode"])
    );
    let serverless_remote = ws_remote(
        "RUNNING",
        json!({"compute_mode": "SERVERLESS", "credentials_id": null, "storage_configuration_id": null, "aws_region": "eu-west-3"}),
    );
    assert_eq!(change(&w, &serverless_remote, &deps(&[])), Change::None);
    let classic = workspace(json!({"awsRegion": "eu-west-3"}));
    assert!(
        matches!(
            change(&classic, &serverless_remote, &ws_deps(&[])),
            Change::Immutable(f) if f.contains(&"computeMode")
        ),
        "a classic spec never patches a serverless workspace"
    );
}

// ---------------------------------------------------------------------------------------------
// Network connectivity configurations.

fn ncc(rules: Value) -> crate::crd::DatabricksNetworkConnectivityConfig {
    object(
        "DatabricksNetworkConnectivityConfig",
        json!({"region": "eu-west-3", "privateEndpointRules": rules}),
        json!({"networkConnectivityConfigId": "ncc-1"}),
    )
}

fn ncc_remote(rules: Value) -> m::NetworkConnectivityConfig {
    remote(
        json!({"network_connectivity_config_id": "ncc-1", "name": "x", "region": "eu-west-3",
        "egress_config": {"default_rules": {"aws_stable_ip_rule": {"cidr_blocks": ["192.0.2.0/28"]}},
                          "target_rules": {"aws_private_endpoint_rules": rules}}}),
    )
}

/// Rules the spec adds are created, rules it drops are deleted, a rule already there (in any
/// order of its buckets) is left alone, and a deactivated rule counts as gone.
#[test]
fn ncc_rules_follow_the_spec() {
    let n = ncc(json!([
        {"resourceNames": ["a", "b"]},
        {"endpointService": "com.amazonaws.vpce.eu-west-3.vpce-svc-1", "domainNames": ["db.internal"]}
    ]));
    let r = ncc_remote(json!([
        {"rule_id": "r-s3", "endpoint_service": "com.amazonaws.eu-west-3.s3", "resource_names": ["b", "a"], "connection_state": "ESTABLISHED"},
        {"rule_id": "r-old", "endpoint_service": "com.amazonaws.vpce.eu-west-3.vpce-svc-9", "connection_state": "PENDING"},
        {"rule_id": "r-gone", "endpoint_service": "com.amazonaws.vpce.eu-west-3.vpce-svc-1", "domain_names": ["db.internal"], "deactivated": true}
    ]));
    let Change::Update(Update::NccRules { id, create, delete }) = change(&n, &r, &deps(&[])) else {
        panic!("expected a rule update");
    };
    assert_eq!(id, "ncc-1");
    assert_eq!(delete, ["r-old"]);
    assert_eq!(create.len(), 1);
    assert_eq!(
        create[0].endpoint_service.as_deref(),
        Some("com.amazonaws.vpce.eu-west-3.vpce-svc-1")
    );
    assert_eq!(create[0].domain_names, ["db.internal"]);

    let settled = ncc_remote(json!([
        {"rule_id": "r-s3", "endpoint_service": "com.amazonaws.eu-west-3.s3", "resource_names": ["a", "b"], "connection_state": "ESTABLISHED"},
        {"rule_id": "r-nlb", "endpoint_service": "com.amazonaws.vpce.eu-west-3.vpce-svc-1", "domain_names": ["db.internal"], "connection_state": "PENDING"}
    ]));
    assert_eq!(change(&n, &settled, &deps(&[])), Change::None);
    let elsewhere = remote::<m::NetworkConnectivityConfig>(
        json!({"network_connectivity_config_id": "ncc-1", "name": "x", "region": "us-east-1"}),
    );
    assert_eq!(
        change(&n, &elsewhere, &deps(&[])),
        Change::Immutable(vec!["region"])
    );
}

/// Status lists the live rules with their states and the egress CIDRs; a rule still being
/// created keeps the NCC busy, a PENDING one says what to do, a failed one is not Ready.
#[test]
fn ncc_readiness_follows_its_rules() {
    let n = ncc(json!([]));
    let mut s = status(&n);
    let pending = ncc_remote(json!([
        {"rule_id": "r-1", "endpoint_service": "com.amazonaws.vpce.eu-west-3.vpce-svc-1", "connection_state": "PENDING"},
        {"rule_id": "r-2", "connection_state": "ESTABLISHED", "deactivated": true}
    ]));
    let o = n.observe(&pending, &deps(&[]), &mut s, "", None);
    assert!(o.ready, "{o:?}");
    assert!(
        o.message
            .contains("accept the connection on your endpoint service"),
        "{}",
        o.message
    );
    assert_eq!(s.egress_cidr_blocks, ["192.0.2.0/28"]);
    assert_eq!(
        s.private_endpoint_rules.len(),
        1,
        "the deactivated rule is not listed"
    );
    assert_eq!(
        s.private_endpoint_rules[0].connection_state.as_deref(),
        Some("PENDING")
    );

    let creating = ncc_remote(json!([{"rule_id": "r-1", "connection_state": "CREATING"}]));
    let o = n.observe(&creating, &deps(&[]), &mut s, "", None);
    assert_eq!(
        (o.ready, o.busy, o.reason),
        (false, true, Reason::Provisioning)
    );

    let failed = ncc_remote(
        json!([{"rule_id": "r-1", "connection_state": "CREATE_FAILED", "error_message": "no such service"}]),
    );
    let o = n.observe(&failed, &deps(&[]), &mut s, "", None);
    assert_eq!((o.ready, o.reason), (false, Reason::ProvisioningFailed));
    assert!(
        o.message.contains("CREATE_FAILED: no such service"),
        "{}",
        o.message
    );
}

/// A workspace binds its NCC at create and by PATCH when it changes; it cannot unbind one.
#[test]
fn a_workspace_binds_its_ncc_and_never_unbinds_it() {
    let w = serverless(
        json!({"networkConnectivityConfig": {"name": "egress"}}),
        json!({"workspaceId": 42}),
    );
    let d = deps(&[("networkConnectivityConfig", &["ncc-1"])]);
    assert_eq!(
        w.create_request(&d)
            .network_connectivity_config_id
            .as_deref(),
        Some("ncc-1")
    );
    let r = ws_remote(
        "RUNNING",
        json!({"compute_mode": "SERVERLESS", "credentials_id": null, "storage_configuration_id": null, "aws_region": "eu-west-3"}),
    );
    assert_eq!(mask(change(&w, &r, &d)), "network_connectivity_config_id");
    let bound = ws_remote(
        "RUNNING",
        json!({"compute_mode": "SERVERLESS", "credentials_id": null, "storage_configuration_id": null, "aws_region": "eu-west-3", "network_connectivity_config_id": "ncc-1"}),
    );
    assert_eq!(change(&w, &bound, &d), Change::None);
    let unbound = serverless(json!({}), json!({"workspaceId": 42}));
    assert_eq!(
        change(&unbound, &bound, &deps(&[])),
        Change::Immutable(vec!["networkConnectivityConfig"])
    );
    let dep = &w.dependencies()[0];
    assert_eq!(
        (dep.kind, dep.region.as_deref()),
        (DepKind::Ncc, Some("eu-west-3"))
    );
}

// ---------------------------------------------------------------------------------------------
// Following a workspace update until Databricks shows it.

/// When the update in [`sent`] was sent.
const SENT_AT: &str = "2026-11-29T12:00:00Z";

fn at(offset_secs: i64) -> Timestamp {
    SENT_AT.parse::<Timestamp>().unwrap()
        + k8s_openapi::jiff::SignedDuration::from_secs(offset_secs)
}

fn limits() -> ApplyLimits {
    ApplyLimits {
        update: Duration::from_secs(20 * 60),
        tags: Duration::from_secs(60 * 60),
    }
}

/// The record of a PATCH of `fields` (name, value) at [`SENT_AT`] for generation 2.
fn sent(fields: &[(&str, &str)]) -> SentUpdate {
    SentUpdate {
        fields: fields.iter().map(|(f, _)| f.to_string()).collect(),
        values: fields
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect(),
        generation: Some(2),
        sent_at: SENT_AT.into(),
        applied_at: None,
    }
}

fn patch(fields: m::WorkspaceUpdate) -> Change {
    Change::Update(Update::Workspace { id: 42, fields })
}

fn creds(id: &str) -> m::WorkspaceUpdate {
    m::WorkspaceUpdate {
        credentials_id: Some(id.into()),
        ..Default::default()
    }
}

fn reason(a: &Act) -> String {
    match a {
        Act::Wait { reason, .. } => reason.as_str().to_string(),
        Act::Change(c) => format!("Change({})", mask(c.clone())),
        Act::Applied => "Applied".into(),
    }
}

fn message(a: &Act) -> String {
    match a {
        Act::Wait { message, .. } => message.clone(),
        other => panic!("expected a wait, got {other:?}"),
    }
}

/// A first difference is sent at once: nothing was sent before.
#[test]
fn a_new_difference_on_a_running_workspace_is_sent() {
    let a = follow_update(patch(creds("c-2")), None, Some(2), None, at(0), limits());
    assert_eq!(reason(&a), "Change(credentials_id)");
}

/// The bug of issue 12: the GET still shows the old value while Databricks applies it, and
/// sending it again at every poll re-provisions the workspace each time.
#[test]
fn an_update_sent_is_not_sent_again_while_databricks_applies_it() {
    let s = sent(&[("credentials_id", "c-2")]);
    let a = follow_update(
        patch(creds("c-2")),
        Some(&s),
        Some(2),
        None,
        at(60),
        limits(),
    );
    assert_eq!(reason(&a), "Updating");
    let msg = message(&a);
    assert!(
        msg.contains("credentials_id") && msg.contains(SENT_AT),
        "{msg}"
    );
    // A later spec edit elsewhere does not resend what is still being applied.
    let a = follow_update(
        patch(creds("c-2")),
        Some(&s),
        Some(3),
        None,
        at(60),
        limits(),
    );
    assert_eq!(reason(&a), "Updating");
}

/// Past the bound, the operator says the API did not apply it, and still does not resend it.
#[test]
fn an_update_not_shown_after_its_limit_is_reported_not_applied() {
    let s = sent(&[("credentials_id", "c-2")]);
    let a = follow_update(
        patch(creds("c-2")),
        Some(&s),
        Some(2),
        None,
        at(20 * 60),
        limits(),
    );
    assert_eq!(reason(&a), "UpdateNotApplied");
    assert!(message(&a).contains("credentials_id"), "{a:?}");
    // Tags get an hour: 20 minutes in, they are still being applied.
    let tags = m::WorkspaceUpdate {
        custom_tags: Some([("team".to_string(), "b".to_string())].into()),
        ..Default::default()
    };
    let s = sent(&[("custom_tags", r#"{"team":"b"}"#)]);
    let a = follow_update(
        patch(tags.clone()),
        Some(&s),
        Some(2),
        None,
        at(20 * 60),
        limits(),
    );
    assert_eq!(reason(&a), "Updating");
    let a = follow_update(patch(tags), Some(&s), Some(2), None, at(3600), limits());
    assert_eq!(reason(&a), "UpdateNotApplied");
}

/// Only what was not sent yet goes out: a new value, or a field added since.
#[test]
fn only_the_fields_not_sent_yet_are_sent() {
    let s = sent(&[("custom_tags", r#"{"team":"b"}"#)]);
    let both = m::WorkspaceUpdate {
        credentials_id: Some("c-2".into()),
        custom_tags: Some([("team".to_string(), "b".to_string())].into()),
        ..Default::default()
    };
    let a = follow_update(patch(both), Some(&s), Some(3), None, at(60), limits());
    assert_eq!(reason(&a), "Change(credentials_id)");
    let other_value = creds("c-3");
    let s = sent(&[("credentials_id", "c-2")]);
    let a = follow_update(
        patch(other_value),
        Some(&s),
        Some(3),
        None,
        at(60),
        limits(),
    );
    assert_eq!(reason(&a), "Change(credentials_id)");
}

/// An edit while the workspace provisions waits for it with its own reason, instead of being
/// refused by the API (`INVALID_STATE`, reported `ApiRejected`).
#[test]
fn an_edit_while_the_workspace_provisions_waits_with_update_pending() {
    let why = "the workspace is PROVISIONING";
    let a = follow_update(
        patch(creds("c-2")),
        None,
        Some(2),
        Some(why),
        at(0),
        limits(),
    );
    assert_eq!(reason(&a), "UpdatePending");
    let msg = message(&a);
    assert!(
        msg.contains("credentials_id") && msg.contains("PROVISIONING"),
        "{msg}"
    );
    // Sent already, and the workspace re-provisions for it: Updating.
    let s = sent(&[("credentials_id", "c-2")]);
    let a = follow_update(
        patch(creds("c-2")),
        Some(&s),
        Some(2),
        Some(why),
        at(5),
        limits(),
    );
    assert_eq!(reason(&a), "Updating");
}

/// Once the workspace shows every field and no longer provisions, the update is applied; while
/// it still provisions for it, it is `Updating`.
#[test]
fn an_update_is_applied_when_shown_and_settled() {
    let s = sent(&[("credentials_id", "c-2")]);
    let why = "the workspace is PROVISIONING";
    let a = follow_update(Change::None, Some(&s), Some(2), Some(why), at(30), limits());
    assert_eq!(reason(&a), "Updating");
    assert_eq!(
        follow_update(Change::None, Some(&s), Some(2), None, at(60), limits()),
        Act::Applied
    );
    let done = SentUpdate {
        applied_at: Some(at(60).to_string()),
        ..s
    };
    assert_eq!(
        follow_update(Change::None, Some(&done), Some(2), None, at(90), limits()),
        Act::Change(Change::None)
    );
}

/// A value that showed and went back (a storage key change can revert silently) is reported,
/// not sent in a loop; an edit of the spec sends it again.
#[test]
fn a_value_that_went_back_is_reported_until_the_spec_changes() {
    let key = m::WorkspaceUpdate {
        storage_customer_managed_key_id: Some("k-1".into()),
        ..Default::default()
    };
    let s = SentUpdate {
        applied_at: Some(at(60).to_string()),
        ..sent(&[("storage_customer_managed_key_id", "k-1")])
    };
    let a = follow_update(
        patch(key.clone()),
        Some(&s),
        Some(2),
        None,
        at(30 * 60),
        limits(),
    );
    assert_eq!(reason(&a), "UpdateNotApplied");
    assert!(message(&a).contains("went back"), "{a:?}");
    let a = follow_update(patch(key), Some(&s), Some(3), None, at(30 * 60), limits());
    assert_eq!(reason(&a), "Change(storage_customer_managed_key_id)");
}

/// Other kinds' updates (PUT of private access settings) are sent as before.
#[test]
fn updates_that_show_at_once_are_not_followed() {
    let put = Change::Update(Update::PrivateAccess {
        id: "p".into(),
        request: m::PrivateAccessSettingsRequest {
            private_access_settings_name: "p".into(),
            region: "us-west-2".into(),
            public_access_enabled: false,
            private_access_level: None,
            allowed_vpc_endpoint_ids: Vec::new(),
        },
    });
    assert_eq!(
        follow_update(put.clone(), None, Some(1), None, at(0), limits()),
        Act::Change(put)
    );
}

/// The record keeps the fields still being applied, so that they are not sent again.
#[test]
fn the_record_keeps_fields_still_being_applied() {
    let s = sent(&[("custom_tags", r#"{"team":"b"}"#)]);
    let r = record_sent(Some(&s), &creds("c-2").values(), Some(3), at(60));
    assert_eq!(r.fields, vec!["credentials_id", "custom_tags"]);
    assert_eq!(r.generation, Some(3));
    assert_eq!(r.sent_at, at(60).to_string());
    assert_eq!(r.applied_at, None);
    let applied = SentUpdate {
        applied_at: Some(at(30).to_string()),
        ..s
    };
    let r = record_sent(Some(&applied), &creds("c-2").values(), Some(3), at(60));
    assert_eq!(r.fields, vec!["credentials_id"]);
}

/// The API cannot remove keys, an NCC binding or every tag: such an edit names the field and
/// sends nothing.
#[test]
fn removing_what_databricks_cannot_remove_is_an_immutable_change() {
    let w = workspace(json!({}));
    let r = ws_remote(
        "RUNNING",
        json!({"managed_services_customer_managed_key_id": "k-m",
               "storage_customer_managed_key_id": "k-s",
               "network_connectivity_config_id": "ncc-1",
               "custom_tags": {"team": "a"}}),
    );
    assert_eq!(
        change(&w, &r, &ws_deps(&[])),
        Change::Immutable(vec![
            "managedServicesKey",
            "storageKey",
            "customTags",
            "networkConnectivityConfig"
        ])
    );
    // Replacing the tags is an update; keeping the keys is nothing.
    let kept = workspace(
        json!({"customTags": {"team": "b"}, "managedServicesKey": {"name": "m"},
                               "storageKey": {"name": "s"}}),
    );
    let r = ws_remote(
        "RUNNING",
        json!({"managed_services_customer_managed_key_id": "k-m",
               "storage_customer_managed_key_id": "k-s", "custom_tags": {"team": "a"}}),
    );
    assert_eq!(
        mask(change(
            &kept,
            &r,
            &ws_deps(&[("managedServicesKey", "k-m"), ("storageKey", "k-s")])
        )),
        "custom_tags"
    );
    // An adopted workspace whose spec names no tags leaves the ones it came with alone.
    let adopted = workspace(json!({"externalId": "123"}));
    let r = ws_remote("RUNNING", json!({"custom_tags": {"team": "a"}}));
    assert_eq!(change(&adopted, &r, &ws_deps(&[])), Change::None);
}
