#!/usr/bin/env python3
"""Drive the simulator with the official Databricks Python SDK (databricks-sdk).

The SDK is the reference client: if it authenticates (discovery documents + OAuth M2M), parses
every response and its create-and-wait reaches RUNNING, the simulator speaks the real wire format.

Environment: SIM_HOST (e.g. http://127.0.0.1:8085), SIM_ACCOUNT_ID, SIM_CLIENT_ID,
SIM_CLIENT_SECRET, SIM_DEPLOYMENT_PREFIX (the prefix the simulator was started with, or empty).
Prints one line per check and `N passed, M failed` at the end; exits 1 on any failure.
"""

import datetime
import os
import sys
import time
import traceback
import uuid

from databricks.sdk import AccountClient
from databricks.sdk.errors import BadRequest, DatabricksError, NotFound
from databricks.sdk.service import provisioning as p
from databricks.sdk.service import settings as st_

PASSED = 0
FAILED = 0


def check(name, condition, detail=""):
    global PASSED, FAILED
    if condition:
        PASSED += 1
        print(f"ok    {name}")
    else:
        FAILED += 1
        print(f"FAIL  {name} {detail}")


def expect_error(name, fn, cls=DatabricksError, code=None, contains=None):
    """Check that fn raises the SDK error class (which the SDK derives from the HTTP status and
    error_code), with the given error_code and message substring."""
    try:
        fn()
    except DatabricksError as e:
        ok = isinstance(e, cls)
        if code is not None and e.error_code != code:
            ok = False
        if contains is not None and contains not in str(e):
            ok = False
        check(name, ok, f"(got {type(e).__name__} code={e.error_code} msg={e})")
        return
    check(name, False, "(no error raised)")


def main():
    host = os.environ.get("SIM_HOST", "http://127.0.0.1:8085")
    account_id = os.environ.get("SIM_ACCOUNT_ID", "00000000-0000-0000-0000-000000000001")
    prefix = os.environ.get("SIM_DEPLOYMENT_PREFIX", "")
    a = AccountClient(
        host=host,
        account_id=account_id,
        client_id=os.environ.get("SIM_CLIENT_ID", "sim-client-id"),
        client_secret=os.environ.get("SIM_CLIENT_SECRET", "sim-client-secret"),
        auth_type="oauth-m2m",
    )
    run = uuid.uuid4().hex[:8]

    # Credentials
    cred = a.credentials.create(
        credentials_name=f"sdk-cred-{run}",
        aws_credentials=p.CreateCredentialAwsCredentials(
            sts_role=p.CreateCredentialStsRole(role_arn=f"arn:aws:iam::123456789012:role/sdk-{run}")
        ),
    )
    check("credentials.create returns an id", bool(cred.credentials_id))
    check("credential carries account_id", cred.account_id == account_id, cred.account_id)
    check("credential creation_time is epoch ms", (cred.creation_time or 0) > 1_000_000_000_000, cred.creation_time)
    got = a.credentials.get(cred.credentials_id)
    check("credentials.get round-trips the role", got.aws_credentials.sts_role.role_arn.endswith(f"sdk-{run}"))
    check("credentials.list contains it", any(c.credentials_id == cred.credentials_id for c in a.credentials.list()))
    expect_error(
        "duplicate credential name is refused",
        lambda: a.credentials.create(
            credentials_name=f"sdk-cred-{run}",
            aws_credentials=p.CreateCredentialAwsCredentials(
                sts_role=p.CreateCredentialStsRole(role_arn="arn:aws:iam::123456789012:role/other")
            ),
        ),
        cls=BadRequest,
        contains="already exists",
    )

    # Storage
    st = a.storage.create(
        storage_configuration_name=f"sdk-storage-{run}", root_bucket_info=p.RootBucketInfo(bucket_name=f"sdk-{run}")
    )
    check("storage.get", a.storage.get(st.storage_configuration_id).root_bucket_info.bucket_name == f"sdk-{run}")
    st2 = a.storage.create(
        storage_configuration_name=f"sdk-storage2-{run}", root_bucket_info=p.RootBucketInfo(bucket_name=f"sdk2-{run}")
    )
    check("storage.list", any(s.storage_configuration_id == st.storage_configuration_id for s in a.storage.list()))

    # Keys
    key = a.encryption_keys.create(
        use_cases=[p.KeyUseCase.MANAGED_SERVICES, p.KeyUseCase.STORAGE],
        aws_key_info=p.CreateAwsKeyInfo(key_arn="arn:aws:kms:us-east-1:123456789012:key/sdk"),
    )
    check("encryption_keys.create fills key_region", key.aws_key_info.key_region == "us-east-1")
    check("encryption_keys.get use cases parse as enums", p.KeyUseCase.STORAGE in a.encryption_keys.get(key.customer_managed_key_id).use_cases)
    check("encryption_keys.list", any(k.customer_managed_key_id == key.customer_managed_key_id for k in a.encryption_keys.list()))

    # VPC endpoints
    rest = a.vpc_endpoints.create(vpc_endpoint_name=f"sdk-rest-{run}", aws_vpc_endpoint_id=f"vpce-rest{run}", region="us-east-1")
    relay = a.vpc_endpoints.create(vpc_endpoint_name=f"sdk-relay-{run}", aws_vpc_endpoint_id=f"vpce-relay{run}", region="us-east-1")
    check("vpc endpoint starts pending", rest.state == "pending", rest.state)
    check("vpc endpoint use_case parses", rest.use_case == p.EndpointUseCase.WORKSPACE_ACCESS, rest.use_case)
    check("vpc_endpoints.list", len([e for e in a.vpc_endpoints.list() if e.vpc_endpoint_name.endswith(run)]) == 2)

    # Network using the endpoints
    net = a.networks.create(
        network_name=f"sdk-net-{run}",
        vpc_id="vpc-sdk",
        subnet_ids=[f"subnet-{run}-a", f"subnet-{run}-b"],
        security_group_ids=[f"sg-{run}"],
        vpc_endpoints=p.NetworkVpcEndpoints(rest_api=[rest.vpc_endpoint_id], dataplane_relay=[relay.vpc_endpoint_id]),
    )
    check("network starts UNATTACHED", net.vpc_status == p.VpcStatus.UNATTACHED, net.vpc_status)
    check("relay endpoint takes DATAPLANE_RELAY_ACCESS", a.vpc_endpoints.get(relay.vpc_endpoint_id).use_case == p.EndpointUseCase.DATAPLANE_RELAY_ACCESS)
    expect_error(
        "subnet reuse is refused",
        lambda: a.networks.create(network_name="dup", vpc_id="vpc-sdk", subnet_ids=[f"subnet-{run}-a", "subnet-x"], security_group_ids=["sg-x"]),
        cls=BadRequest,
    )

    # Private access settings
    pas = a.private_access.create(private_access_settings_name=f"sdk-pas-{run}", region="us-east-1")
    check("PAS defaults to ACCOUNT level", pas.private_access_level == p.PrivateAccessLevel.ACCOUNT, pas.private_access_level)
    replaced = a.private_access.replace(
        pas.private_access_settings_id,
        p.PrivateAccessSettings(
            private_access_settings_name=f"sdk-pas2-{run}",
            region="us-east-1",
            public_access_enabled=True,
            private_access_level=p.PrivateAccessLevel.ENDPOINT,
            allowed_vpc_endpoint_ids=[rest.vpc_endpoint_id],
        ),
    )
    check("private_access.replace returns the new object", replaced.private_access_settings_name == f"sdk-pas2-{run}")
    check("private_access.get sees the replacement", a.private_access.get(pas.private_access_settings_id).public_access_enabled is True)

    # Workspace: create and wait
    kwargs = dict(
        workspace_name=f"sdk-ws-{run}",
        aws_region="us-east-1",
        credentials_id=cred.credentials_id,
        storage_configuration_id=st.storage_configuration_id,
        network_id=net.network_id,
        managed_services_customer_managed_key_id=key.customer_managed_key_id,
        private_access_settings_id=pas.private_access_settings_id,
        custom_tags={"owner": "sdk"},
    )
    if prefix:
        kwargs["deployment_name"] = f"sdk-{run}"
    ws = a.workspaces.create(**kwargs).result(timeout=datetime.timedelta(minutes=2))
    check("workspaces.create(...).result() reaches RUNNING", ws.workspace_status == p.WorkspaceStatus.RUNNING, ws.workspace_status)
    check("workspace_id is an int", isinstance(ws.workspace_id, int) and ws.workspace_id > 0, ws.workspace_id)
    if prefix:
        check("deployment_name carries the prefix", ws.deployment_name == f"{prefix}-sdk-{run}", ws.deployment_name)
    else:
        check("deployment_name is generated", (ws.deployment_name or "").startswith("dbc-"), ws.deployment_name)
    check("workspaces.list", any(w.workspace_id == ws.workspace_id for w in a.workspaces.list()))
    check("network becomes VALID", a.networks.get(net.network_id).vpc_status == p.VpcStatus.VALID)

    # Update (PATCH with update_mask): storage key added once to a RUNNING customer-managed-VPC workspace.
    updated = a.workspaces.update(
        ws.workspace_id,
        p.Workspace(storage_customer_managed_key_id=key.customer_managed_key_id, custom_tags={"owner": "sdk", "env": "test"}),
        update_mask="custom_tags,storage_customer_managed_key_id",
    ).result(timeout=datetime.timedelta(minutes=2))
    check("workspaces.update applies tags", (updated.custom_tags or {}).get("env") == "test", updated.custom_tags)
    check("workspaces.update adds the storage key", updated.storage_customer_managed_key_id == key.customer_managed_key_id)
    expect_error(
        "RUNNING workspace refuses a storage configuration change",
        lambda: a.workspaces.update(ws.workspace_id, p.Workspace(storage_configuration_id=st2.storage_configuration_id), update_mask="storage_configuration_id"),
        cls=BadRequest,
    )

    # Refusals while in use
    expect_error(
        "in-use network delete is refused",
        lambda: a.networks.delete(net.network_id),
        cls=BadRequest,
        code="INVALID_STATE",
        contains=f"Unable to delete, Network is being used by active workspace {ws.workspace_id}",
    )
    expect_error("unknown id is NotFound", lambda: a.networks.get(str(uuid.uuid4())), cls=NotFound, code="RESOURCE_DOES_NOT_EXIST")
    expect_error(
        "plain-text MALFORMED_REQUEST parses",
        lambda: a.workspaces.create(workspace_name="x", aws_region="us-east-1", credentials_id="nope", storage_configuration_id=st.storage_configuration_id),
        cls=BadRequest,
        code="MALFORMED_REQUEST",
        contains="Invalid credentialsId: nope",
    )

    # Serverless: compute_mode SERVERLESS with no credential, storage or network reaches RUNNING on
    # Databricks-hosted storage; mixing in a credential is refused.
    sl = a.workspaces.create(
        workspace_name=f"sdk-serverless-{run}",
        aws_region="sa-east-1",
        compute_mode=p.CustomerFacingComputeMode.SERVERLESS,
    ).result(timeout=datetime.timedelta(minutes=2))
    check("serverless workspaces.create(...).result() reaches RUNNING", sl.workspace_status == p.WorkspaceStatus.RUNNING, sl.workspace_status)
    check("serverless workspace reports compute_mode SERVERLESS", sl.compute_mode == p.CustomerFacingComputeMode.SERVERLESS, sl.compute_mode)
    check("serverless workspace has default storage", sl.storage_mode == p.CustomerFacingStorageMode.DEFAULT_STORAGE, sl.storage_mode)
    check("serverless workspace has no credential", sl.credentials_id is None, sl.credentials_id)
    expect_error(
        "serverless with a credential is refused",
        lambda: a.workspaces.create(
            workspace_name=f"sdk-mixed-{run}",
            aws_region="us-east-1",
            compute_mode=p.CustomerFacingComputeMode.SERVERLESS,
            credentials_id=cred.credentials_id,
        ),
        cls=BadRequest,
        contains="SERVERLESS workspace cannot have credentials",
    )

    # Network connectivity configurations: the lists are paginated (the simulator pages by 2), a
    # rule to S3 becomes ESTABLISHED, the binding is a workspace PATCH, and a bound NCC or one with
    # rules cannot be deleted.
    nc = a.network_connectivity
    nccs = [
        nc.create_network_connectivity_configuration(
            network_connectivity_config=st_.CreateNetworkConnectivityConfiguration(name=f"sdk-ncc-{run}-{i}", region="sa-east-1")
        )
        for i in range(3)
    ]
    ncc = nccs[0]
    check("NCC create returns an ID", bool(ncc.network_connectivity_config_id), ncc)
    check("NCC reports stable egress CIDRs", bool(ncc.egress_config.default_rules.aws_stable_ip_rule.cidr_blocks), ncc.egress_config)
    listed = [n.network_connectivity_config_id for n in nc.list_network_connectivity_configurations()]
    check("NCC list follows next_page_token", all(n.network_connectivity_config_id in listed for n in nccs), listed)
    expect_error(
        "NCC name with a space is refused",
        lambda: nc.create_network_connectivity_configuration(
            network_connectivity_config=st_.CreateNetworkConnectivityConfiguration(name="bad name", region="sa-east-1")
        ),
        cls=BadRequest,
    )
    rule = nc.create_private_endpoint_rule(
        ncc.network_connectivity_config_id,
        st_.CreatePrivateEndpointRule(resource_names=[f"sdk-bucket-{run}"]),
    )
    check("rule create starts CREATING", rule.connection_state == st_.NccPrivateEndpointRulePrivateLinkConnectionState.CREATING, rule.connection_state)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    while datetime.datetime.now() < deadline:
        rule = nc.get_private_endpoint_rule(ncc.network_connectivity_config_id, rule.rule_id)
        if rule.connection_state != st_.NccPrivateEndpointRulePrivateLinkConnectionState.CREATING:
            break
        time.sleep(0.5)
    check("an S3 rule becomes ESTABLISHED", rule.connection_state == st_.NccPrivateEndpointRulePrivateLinkConnectionState.ESTABLISHED, rule.connection_state)
    check("the rule is listed", any(r.rule_id == rule.rule_id for r in nc.list_private_endpoint_rules(ncc.network_connectivity_config_id)))
    bound = a.workspaces.update(
        sl.workspace_id,
        p.Workspace(network_connectivity_config_id=ncc.network_connectivity_config_id),
        update_mask="network_connectivity_config_id",
    ).result(timeout=datetime.timedelta(minutes=2))
    check("the workspace PATCH binds the NCC", bound.network_connectivity_config_id == ncc.network_connectivity_config_id, bound.network_connectivity_config_id)
    expect_error(
        "an NCC with rules cannot be deleted",
        lambda: nc.delete_network_connectivity_configuration(ncc.network_connectivity_config_id),
        cls=BadRequest,
        contains="has one or more private endpoint rules",
    )
    deleted_rule = nc.delete_private_endpoint_rule(ncc.network_connectivity_config_id, rule.rule_id)
    check("deleting an ESTABLISHED rule deactivates it", deleted_rule.deactivated is True, deleted_rule)
    a.workspaces.delete(sl.workspace_id)
    for other in nccs[1:]:
        nc.delete_network_connectivity_configuration(other.network_connectivity_config_id)
    expect_error("a deleted NCC is NotFound", lambda: nc.get_network_connectivity_configuration(nccs[1].network_connectivity_config_id), cls=NotFound)

    # Deletes in order
    deleted = a.workspaces.delete(ws.workspace_id)
    check("workspaces.delete returns CANCELLING", deleted.workspace_status == p.WorkspaceStatus.CANCELLING, deleted.workspace_status)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
    gone = False
    while datetime.datetime.now() < deadline:
        try:
            a.workspaces.get(ws.workspace_id)
        except NotFound:
            gone = True
            break
        time.sleep(0.5)
    check("deleted workspace eventually 404s", gone)
    check("networks.delete returns the network", a.networks.delete(net.network_id).network_id == net.network_id)
    check("private_access.delete", a.private_access.delete(pas.private_access_settings_id).private_access_settings_id == pas.private_access_settings_id)
    for ep in (rest, relay):
        check(f"vpc_endpoints.delete {ep.vpc_endpoint_name}", a.vpc_endpoints.delete(ep.vpc_endpoint_id).vpc_endpoint_id == ep.vpc_endpoint_id)
    check("encryption_keys.delete", a.encryption_keys.delete(key.customer_managed_key_id).customer_managed_key_id == key.customer_managed_key_id)
    a.storage.delete(st2.storage_configuration_id)
    check("storage.delete", a.storage.delete(st.storage_configuration_id).storage_configuration_id == st.storage_configuration_id)
    check("credentials.delete", a.credentials.delete(cred.credentials_id).credentials_id == cred.credentials_id)
    expect_error("deleted credential is gone", lambda: a.credentials.get(cred.credentials_id), cls=NotFound)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        FAILED += 1
        print("FAIL  unexpected exception:")
        traceback.print_exc()
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
