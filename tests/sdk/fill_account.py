#!/usr/bin/env python3
"""Fill an account with the official Databricks Python SDK, as a team that used it would have.

tests/export.rs runs this against the simulator, then exports the account and adopts it. The SDK
reads its usual configuration from the environment (DATABRICKS_HOST, DATABRICKS_ACCOUNT_ID,
DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET). Objects: a classic PrivateLink workspace with a
customer-managed key and private access settings, a serverless workspace with a network
connectivity configuration and a rule, and a credential nothing uses. Waits, with the SDK's own
waiters, until both workspaces are RUNNING and the endpoints available. Prints nothing on
success; exits 1 with the SDK's error otherwise.
"""

import datetime
import sys
import time

from databricks.sdk import AccountClient
from databricks.sdk.service import provisioning as p
from databricks.sdk.service import settings as st


def role(name):
    return p.CreateCredentialAwsCredentials(
        sts_role=p.CreateCredentialStsRole(role_arn=f"arn:aws:iam::123456789012:role/{name}")
    )


def available(a, endpoint_id):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if a.vpc_endpoints.get(endpoint_id).state == "available":
            return
        time.sleep(0.2)
    raise TimeoutError(f"VPC endpoint {endpoint_id} did not become available")


def main():
    a = AccountClient(auth_type="oauth-m2m")
    wait = datetime.timedelta(minutes=2)

    cred = a.credentials.create(credentials_name="Prod Cross-Account", aws_credentials=role("prod"))
    a.credentials.create(credentials_name="spare", aws_credentials=role("spare"))
    storage = a.storage.create(
        storage_configuration_name="prod-root", root_bucket_info=p.RootBucketInfo(bucket_name="prod-root-bucket")
    )
    key = a.encryption_keys.create(
        use_cases=[p.KeyUseCase.MANAGED_SERVICES],
        aws_key_info=p.CreateAwsKeyInfo(
            key_arn="arn:aws:kms:us-east-1:123456789012:key/prod", key_alias="alias/prod-services"
        ),
    )
    rest = a.vpc_endpoints.create(vpc_endpoint_name="prod-rest", aws_vpc_endpoint_id="vpce-0aa1", region="us-east-1")
    relay = a.vpc_endpoints.create(vpc_endpoint_name="prod-relay", aws_vpc_endpoint_id="vpce-0bb2", region="us-east-1")
    available(a, rest.vpc_endpoint_id)
    available(a, relay.vpc_endpoint_id)
    network = a.networks.create(
        network_name="prod_vpc",
        vpc_id="vpc-0cc3",
        subnet_ids=["subnet-0dd4", "subnet-0ee5"],
        security_group_ids=["sg-0ff6"],
        vpc_endpoints=p.NetworkVpcEndpoints(rest_api=[rest.vpc_endpoint_id], dataplane_relay=[relay.vpc_endpoint_id]),
    )
    pas = a.private_access.create(
        private_access_settings_name="prod-pas", region="us-east-1", public_access_enabled=True
    )
    classic = a.workspaces.create(
        workspace_name="Prod Analytics",
        aws_region="us-east-1",
        pricing_tier=p.PricingTier.ENTERPRISE,
        credentials_id=cred.credentials_id,
        storage_configuration_id=storage.storage_configuration_id,
        network_id=network.network_id,
        private_access_settings_id=pas.private_access_settings_id,
        managed_services_customer_managed_key_id=key.customer_managed_key_id,
        custom_tags={"team": "data"},
    )
    nc = a.network_connectivity
    ncc = nc.create_network_connectivity_configuration(
        network_connectivity_config=st.CreateNetworkConnectivityConfiguration(name="serverless-egress", region="us-east-1")
    )
    nc.create_private_endpoint_rule(
        ncc.network_connectivity_config_id, st.CreatePrivateEndpointRule(resource_names=["prod-data"])
    )
    serverless = a.workspaces.create(
        workspace_name="serverless-sql",
        aws_region="us-east-1",
        pricing_tier=p.PricingTier.ENTERPRISE,
        compute_mode=p.CustomerFacingComputeMode.SERVERLESS,
        network_connectivity_config_id=ncc.network_connectivity_config_id,
    )
    for w in (classic, serverless):
        ws = w.result(timeout=wait)
        if ws.workspace_status != p.WorkspaceStatus.RUNNING:
            raise RuntimeError(f"workspace {ws.workspace_name} is {ws.workspace_status}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the SDK's error, whatever its class, is the message
        print(f"fill_account.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
