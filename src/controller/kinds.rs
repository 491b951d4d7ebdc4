//! What each managed kind contributes to the shared loop: its create request, how it matches a
//! remote object, what it can update, and what its status shows.

use kube::ResourceExt;

use super::Context;
use super::managed::{Dep, DepKind, Managed, Observation, Resolved};
use super::plan::Update;
use crate::bounds;
use crate::crd::credential::CredentialStatus;
use crate::crd::key::{KeyConfigStatus, KeyUseCase};
use crate::crd::ncc::{
    NetworkConnectivityConfigStatus, PrivateEndpointRuleSpec, PrivateEndpointRuleStatus,
};
use crate::crd::network::{NetworkMessage, NetworkStatus};
use crate::crd::private_access::{PrivateAccessLevel, PrivateAccessSettingsStatus};
use crate::crd::storage::StorageConfigStatus;
use crate::crd::vpc_endpoint::VpcEndpointStatus;
use crate::crd::workspace::WorkspaceStatus;
use crate::crd::{
    CommonStatus, DatabricksCredential, DatabricksKeyConfig, DatabricksNetwork,
    DatabricksNetworkConnectivityConfig, DatabricksPrivateAccessSettings, DatabricksStorageConfig,
    DatabricksVpcEndpoint, DatabricksWorkspace, DependencyRef, Management, Reason, SentUpdate,
};
use crate::databricks::AccountClient;
use crate::databricks::models as m;

fn name_or(spec_name: &Option<String>, meta_name: String) -> String {
    spec_name.clone().unwrap_or(meta_name)
}

macro_rules! status_access {
    ($status:ty, $id:ident) => {
        type Status = $status;
        fn current_status(&self) -> Option<&Self::Status> {
            self.status.as_ref()
        }
        fn status_mut(&mut self) -> Option<&mut Self::Status> {
            self.status.as_mut()
        }
        fn common(status: &mut Self::Status) -> &mut CommonStatus {
            &mut status.common
        }
        fn common_ref(status: &Self::Status) -> &CommonStatus {
            &status.common
        }
        fn remote_id(status: &Self::Status) -> Option<String> {
            status.$id.clone()
        }
        fn set_remote_id(status: &mut Self::Status, id: Option<String>) {
            status.$id = id;
        }
        fn management(&self) -> &Management {
            &self.spec.management
        }
    };
}

// ------------------------------------------------------------------------------------------------

impl Managed for DatabricksCredential {
    type Remote = m::Credential;
    status_access!(CredentialStatus, credentials_id);

    fn desired_name(&self) -> String {
        name_or(&self.spec.credentials_name, self.name_any())
    }
    fn create_request(&self, _: &Resolved) -> m::CreateCredential {
        m::CreateCredential {
            credentials_name: self.desired_name(),
            aws_credentials: m::AwsCredentials {
                sts_role: m::StsRole {
                    role_arn: self.spec.role_arn.clone(),
                    external_id: None,
                },
            },
        }
    }
    fn matches(&self, r: &m::Credential) -> bool {
        r.credentials_name == self.desired_name()
    }
    fn immutable_changes(&self, r: &m::Credential, _: &Resolved) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.aws_credentials.sts_role.role_arn != self.spec.role_arn {
            v.push("roleArn");
        }
        if r.credentials_name != self.desired_name() {
            v.push("credentialsName");
        }
        v
    }
    fn observe(
        &self,
        r: &m::Credential,
        _: &Resolved,
        _: &mut CredentialStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        Observation::available(format!(
            "credential configuration {} is registered",
            r.credentials_id
        ))
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::Credential)
    }
}

// ------------------------------------------------------------------------------------------------

impl Managed for DatabricksStorageConfig {
    type Remote = m::StorageConfiguration;
    status_access!(StorageConfigStatus, storage_configuration_id);

    fn desired_name(&self) -> String {
        name_or(&self.spec.storage_configuration_name, self.name_any())
    }
    fn create_request(&self, _: &Resolved) -> m::CreateStorageConfiguration {
        m::CreateStorageConfiguration {
            storage_configuration_name: self.desired_name(),
            root_bucket_info: m::RootBucketInfo {
                bucket_name: self.spec.bucket_name.clone(),
            },
            role_arn: self.spec.role_arn.clone(),
        }
    }
    fn matches(&self, r: &m::StorageConfiguration) -> bool {
        r.storage_configuration_name == self.desired_name()
    }
    fn immutable_changes(&self, r: &m::StorageConfiguration, _: &Resolved) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.root_bucket_info.bucket_name != self.spec.bucket_name {
            v.push("bucketName");
        }
        if r.role_arn != self.spec.role_arn {
            v.push("roleArn");
        }
        if r.storage_configuration_name != self.desired_name() {
            v.push("storageConfigurationName");
        }
        v
    }
    fn observe(
        &self,
        r: &m::StorageConfiguration,
        _: &Resolved,
        _: &mut StorageConfigStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        Observation::available(format!(
            "storage configuration {} uses bucket {}",
            r.storage_configuration_id, r.root_bucket_info.bucket_name
        ))
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::Storage)
    }
}

// ------------------------------------------------------------------------------------------------

fn key_use_cases(spec: &[KeyUseCase]) -> Vec<m::KeyUseCase> {
    spec.iter()
        .map(|u| match u {
            KeyUseCase::ManagedServices => m::KeyUseCase::ManagedServices,
            KeyUseCase::Storage => m::KeyUseCase::Storage,
        })
        .collect()
}

/// Whether two lists hold the same elements, in any order and however often each appears.
fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

impl Managed for DatabricksKeyConfig {
    type Remote = m::CustomerManagedKey;
    status_access!(KeyConfigStatus, customer_managed_key_id);

    fn desired_name(&self) -> String {
        self.spec.key_arn.clone()
    }
    fn named() -> bool {
        false
    }
    fn create_request(&self, _: &Resolved) -> m::CreateCustomerManagedKey {
        m::CreateCustomerManagedKey {
            use_cases: key_use_cases(&self.spec.use_cases),
            aws_key_info: m::AwsKeyInfo {
                key_arn: self.spec.key_arn.clone(),
                key_alias: self.spec.key_alias.clone(),
                key_region: None,
                reuse_key_for_cluster_volumes: self.spec.reuse_key_for_cluster_volumes,
            },
        }
    }
    fn matches(&self, r: &m::CustomerManagedKey) -> bool {
        r.aws_key_info
            .as_ref()
            .is_some_and(|k| k.key_arn == self.spec.key_arn)
            && same_set(&r.use_cases, &key_use_cases(&self.spec.use_cases))
    }
    fn immutable_changes(&self, r: &m::CustomerManagedKey, _: &Resolved) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.aws_key_info
            .as_ref()
            .is_none_or(|k| k.key_arn != self.spec.key_arn)
        {
            v.push("keyArn");
        }
        if !same_set(&r.use_cases, &key_use_cases(&self.spec.use_cases)) {
            v.push("useCases");
        }
        let info = r.aws_key_info.clone().unwrap_or_default();
        if info.key_alias != self.spec.key_alias {
            v.push("keyAlias");
        }
        // Unset in the spec leaves the API's default; set, it must be what the key has.
        if self
            .spec
            .reuse_key_for_cluster_volumes
            .is_some_and(|want| info.reuse_key_for_cluster_volumes != Some(want))
        {
            v.push("reuseKeyForClusterVolumes");
        }
        v
    }
    fn observe(
        &self,
        r: &m::CustomerManagedKey,
        _: &Resolved,
        s: &mut KeyConfigStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        s.key_region = r.aws_key_info.as_ref().and_then(|k| k.key_region.clone());
        Observation::available(format!(
            "key configuration {} is registered",
            r.customer_managed_key_id
        ))
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::Key)
    }
}

// ------------------------------------------------------------------------------------------------

fn endpoint_deps(field: &'static str, refs: &[DependencyRef]) -> Vec<Dep> {
    refs.iter()
        .map(|r| Dep {
            kind: DepKind::VpcEndpoint,
            field,
            reference: r.clone(),
            region: None,
        })
        .collect()
}

impl Managed for DatabricksNetwork {
    type Remote = m::Network;
    status_access!(NetworkStatus, network_id);

    fn dependencies(&self) -> Vec<Dep> {
        let mut v = Vec::new();
        if let Some(e) = &self.spec.vpc_endpoints {
            v.extend(endpoint_deps("vpcEndpoints.restApi", &e.rest_api));
            v.extend(endpoint_deps(
                "vpcEndpoints.dataplaneRelay",
                &e.dataplane_relay,
            ));
        }
        v
    }
    fn desired_name(&self) -> String {
        name_or(&self.spec.network_name, self.name_any())
    }
    fn create_request(&self, deps: &Resolved) -> m::CreateNetwork {
        let endpoints = m::NetworkVpcEndpoints {
            rest_api: deps.all("vpcEndpoints.restApi"),
            dataplane_relay: deps.all("vpcEndpoints.dataplaneRelay"),
        };
        m::CreateNetwork {
            network_name: self.desired_name(),
            vpc_id: self.spec.vpc_id.clone(),
            subnet_ids: self.spec.subnet_ids.clone(),
            security_group_ids: self.spec.security_group_ids.clone(),
            vpc_endpoints: (!endpoints.is_empty()).then_some(endpoints),
        }
    }
    fn matches(&self, r: &m::Network) -> bool {
        r.network_name == self.desired_name()
    }
    fn immutable_changes(&self, r: &m::Network, deps: &Resolved) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.vpc_id != self.spec.vpc_id {
            v.push("vpcId");
        }
        if !same_set(&r.subnet_ids, &self.spec.subnet_ids) {
            v.push("subnetIds");
        }
        if !same_set(&r.security_group_ids, &self.spec.security_group_ids) {
            v.push("securityGroupIds");
        }
        let remote = r.vpc_endpoints.clone().unwrap_or_default();
        if !same_set(&remote.rest_api, &deps.all("vpcEndpoints.restApi"))
            || !same_set(
                &remote.dataplane_relay,
                &deps.all("vpcEndpoints.dataplaneRelay"),
            )
        {
            v.push("vpcEndpoints");
        }
        if r.network_name != self.desired_name() {
            v.push("networkName");
        }
        v
    }
    fn observe(
        &self,
        r: &m::Network,
        deps: &Resolved,
        s: &mut NetworkStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        s.vpc_status = r.vpc_status.as_ref().map(|v| v.to_string());
        // The API's lists are copied bounded: a status must stay writable whatever the API says.
        let bounded = |pairs: Vec<(&str, &str)>| {
            let mut out: Vec<NetworkMessage> = pairs
                .iter()
                .take(bounds::MAX_MESSAGES)
                .map(|(t, m)| NetworkMessage {
                    type_: bounds::truncate(t, 64),
                    message: bounds::truncate(m, bounds::MAX_MESSAGE_BYTES / 4),
                })
                .collect();
            if pairs.len() > bounds::MAX_MESSAGES {
                out.push(NetworkMessage {
                    type_: "Truncated".into(),
                    message: format!("… and {} more", pairs.len() - bounds::MAX_MESSAGES),
                });
            }
            out
        };
        s.error_messages = bounded(
            r.error_messages
                .iter()
                .map(|e| (e.error_type.as_str(), e.error_message.as_str()))
                .collect(),
        );
        s.warning_messages = bounded(
            r.warning_messages
                .iter()
                .map(|w| (w.warning_type.as_str(), w.warning_message.as_str()))
                .collect(),
        );
        s.workspace_id = r.workspace_id;
        s.rest_api_endpoint_ids = deps.all("vpcEndpoints.restApi");
        s.dataplane_relay_endpoint_ids = deps.all("vpcEndpoints.dataplaneRelay");
        let mut msg = format!("network configuration {} is registered", r.network_id);
        if !r.error_messages.is_empty() {
            msg.push_str(&format!("; Databricks reports: {}", network_errors(r)));
        }
        if let Some(w) = Self::warnings(r) {
            msg.push_str(&format!(
                "; VPC validation warnings (the network works; review them in AWS): {w}"
            ));
        }
        Observation::available(msg)
    }
    fn warnings(r: &m::Network) -> Option<String> {
        (!r.warning_messages.is_empty()).then(|| network_warnings(r))
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::Network)
    }
}

/// The network's validation warnings as one line (bounded like [`network_errors`]).
pub fn network_warnings(n: &m::Network) -> String {
    let all: Vec<String> = n
        .warning_messages
        .iter()
        .map(|w| format!("{}: {}", w.warning_type, w.warning_message))
        .collect();
    bounds::messages(&all).join("; ")
}

/// The network's validation errors as one line (bounded: at most ten, each cut short).
pub fn network_errors(n: &m::Network) -> String {
    let all: Vec<String> = n
        .error_messages
        .iter()
        .map(|e| format!("{}: {}", e.error_type, e.error_message))
        .collect();
    bounds::messages(&all).join("; ")
}

// ------------------------------------------------------------------------------------------------

impl Managed for DatabricksVpcEndpoint {
    type Remote = m::VpcEndpoint;
    status_access!(VpcEndpointStatus, vpc_endpoint_id);

    fn desired_name(&self) -> String {
        name_or(&self.spec.vpc_endpoint_name, self.name_any())
    }
    fn create_request(&self, _: &Resolved) -> m::CreateVpcEndpoint {
        m::CreateVpcEndpoint {
            vpc_endpoint_name: self.desired_name(),
            aws_vpc_endpoint_id: self.spec.aws_vpc_endpoint_id.clone(),
            region: self.spec.region.as_str().into(),
        }
    }
    fn matches(&self, r: &m::VpcEndpoint) -> bool {
        r.vpc_endpoint_name == self.desired_name()
            && r.aws_vpc_endpoint_id == self.spec.aws_vpc_endpoint_id
    }
    fn immutable_changes(&self, r: &m::VpcEndpoint, _: &Resolved) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.aws_vpc_endpoint_id != self.spec.aws_vpc_endpoint_id {
            v.push("awsVpcEndpointId");
        }
        if r.region != self.spec.region.as_str() {
            v.push("region");
        }
        if r.vpc_endpoint_name != self.desired_name() {
            v.push("vpcEndpointName");
        }
        v
    }
    fn observe(
        &self,
        r: &m::VpcEndpoint,
        _: &Resolved,
        s: &mut VpcEndpointStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        s.state = r.state.as_deref().map(|v| bounds::truncate(v, 64));
        s.use_case = r.use_case.as_ref().map(|u| u.to_string());
        let state = r.state.clone().unwrap_or_default();
        match state.to_ascii_lowercase().as_str() {
            "available" => {
                Observation::available(format!("endpoint {} is available", r.aws_vpc_endpoint_id))
            }
            "pending" | "pendingacceptance" | "" => Observation {
                ready: false,
                reason: Reason::Provisioning,
                message: format!(
                    "endpoint {} is {state}; waiting for AWS to accept it",
                    r.aws_vpc_endpoint_id
                ),
                busy: true,
            },
            _ => Observation {
                ready: false,
                reason: Reason::ProvisioningFailed,
                message: format!(
                    "endpoint {} is {state}: check the endpoint's service name and acceptance in AWS",
                    r.aws_vpc_endpoint_id
                ),
                busy: false,
            },
        }
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::VpcEndpoint)
    }
}

// ------------------------------------------------------------------------------------------------

impl DatabricksPrivateAccessSettings {
    fn request(&self, deps: &Resolved) -> m::PrivateAccessSettingsRequest {
        m::PrivateAccessSettingsRequest {
            private_access_settings_name: self.desired_name(),
            region: self.spec.region.as_str().into(),
            public_access_enabled: self.spec.public_access_enabled,
            private_access_level: Some(match self.spec.private_access_level {
                PrivateAccessLevel::Account => m::PrivateAccessLevel::Account,
                PrivateAccessLevel::Endpoint => m::PrivateAccessLevel::Endpoint,
            }),
            allowed_vpc_endpoint_ids: deps.all("allowedVpcEndpoints"),
        }
    }

    fn differs(&self, r: &m::PrivateAccessSettings, deps: &Resolved) -> bool {
        let want = self.request(deps);
        r.private_access_settings_name != want.private_access_settings_name
            || r.public_access_enabled.unwrap_or(false) != want.public_access_enabled
            || r.private_access_level
                .clone()
                .unwrap_or(m::PrivateAccessLevel::Account)
                != want
                    .private_access_level
                    .clone()
                    .unwrap_or(m::PrivateAccessLevel::Account)
            || !same_set(&r.allowed_vpc_endpoint_ids, &want.allowed_vpc_endpoint_ids)
    }
}

impl Managed for DatabricksPrivateAccessSettings {
    type Remote = m::PrivateAccessSettings;
    status_access!(PrivateAccessSettingsStatus, private_access_settings_id);

    fn dependencies(&self) -> Vec<Dep> {
        endpoint_deps("allowedVpcEndpoints", &self.spec.allowed_vpc_endpoints)
    }
    fn desired_name(&self) -> String {
        name_or(&self.spec.private_access_settings_name, self.name_any())
    }
    fn create_request(&self, deps: &Resolved) -> m::PrivateAccessSettingsRequest {
        self.request(deps)
    }
    fn matches(&self, r: &m::PrivateAccessSettings) -> bool {
        r.private_access_settings_name == self.desired_name()
    }
    fn immutable_changes(&self, r: &m::PrivateAccessSettings, _: &Resolved) -> Vec<&'static str> {
        if r.region == self.spec.region.as_str() {
            vec![]
        } else {
            vec!["region"]
        }
    }
    fn desired_update(&self, r: &m::PrivateAccessSettings, deps: &Resolved) -> Option<Update> {
        self.differs(r, deps).then(|| Update::PrivateAccess {
            id: r.private_access_settings_id.clone(),
            request: self.request(deps),
        })
    }
    fn observe(
        &self,
        r: &m::PrivateAccessSettings,
        deps: &Resolved,
        s: &mut PrivateAccessSettingsStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        s.allowed_vpc_endpoint_ids = deps.all("allowedVpcEndpoints");
        Observation::available(format!(
            "private access settings {} are registered",
            r.private_access_settings_id
        ))
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::PrivateAccess)
    }
}

// ------------------------------------------------------------------------------------------------

/// Whether a remote rule is the one a spec rule asks for (same service when both name one, same
/// domains and buckets in any order). Deactivated rules match nothing: they are on their way out.
fn rule_matches(want: &PrivateEndpointRuleSpec, have: &m::PrivateEndpointRule) -> bool {
    have.deactivated != Some(true)
        && want
            .endpoint_service
            .as_ref()
            .is_none_or(|s| have.endpoint_service.as_ref() == Some(s))
        && same_set(&want.domain_names, &have.domain_names)
        && same_set(&want.resource_names, &have.resource_names)
}

impl DatabricksNetworkConnectivityConfig {
    /// The rules to create (spec rules no remote rule matches) and to delete (live remote rules
    /// no spec rule matches). Each remote rule serves one spec rule.
    fn rule_changes(
        &self,
        r: &m::NetworkConnectivityConfig,
    ) -> (Vec<m::CreatePrivateEndpointRule>, Vec<String>) {
        let mut unused: Vec<&m::PrivateEndpointRule> = r
            .rules()
            .iter()
            .filter(|x| x.deactivated != Some(true))
            .collect();
        let mut create = Vec::new();
        for want in &self.spec.private_endpoint_rules {
            match unused.iter().position(|have| rule_matches(want, have)) {
                Some(i) => {
                    unused.remove(i);
                }
                None => create.push(m::CreatePrivateEndpointRule {
                    endpoint_service: want.endpoint_service.clone(),
                    domain_names: want.domain_names.clone(),
                    resource_names: want.resource_names.clone(),
                }),
            }
        }
        (create, unused.iter().map(|x| x.rule_id.clone()).collect())
    }
}

impl Managed for DatabricksNetworkConnectivityConfig {
    type Remote = m::NetworkConnectivityConfig;
    status_access!(
        NetworkConnectivityConfigStatus,
        network_connectivity_config_id
    );

    fn desired_name(&self) -> String {
        name_or(&self.spec.name, self.name_any())
    }
    fn create_request(&self, _: &Resolved) -> m::CreateNetworkConnectivityConfig {
        m::CreateNetworkConnectivityConfig {
            name: self.desired_name(),
            region: self.spec.region.as_str().into(),
        }
    }
    fn matches(&self, r: &m::NetworkConnectivityConfig) -> bool {
        r.name == self.desired_name()
    }
    fn immutable_changes(
        &self,
        r: &m::NetworkConnectivityConfig,
        _: &Resolved,
    ) -> Vec<&'static str> {
        let mut v = Vec::new();
        if r.name != self.desired_name() {
            v.push("name");
        }
        if r.region != self.spec.region.as_str() {
            v.push("region");
        }
        v
    }
    fn desired_update(&self, r: &m::NetworkConnectivityConfig, _: &Resolved) -> Option<Update> {
        let (create, delete) = self.rule_changes(r);
        (!create.is_empty() || !delete.is_empty()).then(|| Update::NccRules {
            id: r.network_connectivity_config_id.clone(),
            create,
            delete,
        })
    }
    fn observe(
        &self,
        r: &m::NetworkConnectivityConfig,
        _: &Resolved,
        s: &mut NetworkConnectivityConfigStatus,
        _: &str,
        _: Option<String>,
    ) -> Observation {
        s.egress_cidr_blocks = r
            .cidr_blocks()
            .iter()
            .take(bounds::MAX_MESSAGES * 10)
            .map(|c| bounds::truncate(c, 64))
            .collect();
        let live: Vec<&m::PrivateEndpointRule> = r
            .rules()
            .iter()
            .filter(|x| x.deactivated != Some(true))
            .collect();
        s.private_endpoint_rules = live
            .iter()
            .take(bounds::MAX_MESSAGES * 10)
            .map(|x| PrivateEndpointRuleStatus {
                rule_id: bounds::truncate(&x.rule_id, 64),
                endpoint_service: x
                    .endpoint_service
                    .as_deref()
                    .map(|v| bounds::truncate(v, 256)),
                connection_state: x
                    .connection_state
                    .as_ref()
                    .map(|c| bounds::truncate(c.as_str(), 64)),
                vpc_endpoint_id: x
                    .vpc_endpoint_id
                    .as_deref()
                    .map(|v| bounds::truncate(v, 64)),
                error_message: x.error_message.as_deref().map(bounds::message),
            })
            .collect();
        let failed: Vec<String> = live
            .iter()
            .filter(|x| {
                matches!(
                    x.connection_state,
                    Some(
                        m::RuleConnectionState::CreateFailed
                            | m::RuleConnectionState::Rejected
                            | m::RuleConnectionState::Disconnected
                            | m::RuleConnectionState::Expired
                    )
                )
            })
            .map(|x| {
                format!(
                    "rule {} to {} is {}{}",
                    x.rule_id,
                    x.endpoint_service.as_deref().unwrap_or("?"),
                    x.connection_state.as_ref().map_or("", |c| c.as_str()),
                    x.error_message
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let creating = live
            .iter()
            .filter(|x| x.connection_state == Some(m::RuleConnectionState::Creating))
            .count();
        let pending = live
            .iter()
            .filter(|x| x.connection_state == Some(m::RuleConnectionState::Pending))
            .count();
        let id = &r.network_connectivity_config_id;
        if !failed.is_empty() {
            return Observation {
                ready: false,
                reason: Reason::ProvisioningFailed,
                message: format!(
                    "network connectivity configuration {id}: {}. Fix the endpoint service (or its approval) and remove and re-add the rule",
                    bounds::messages(&failed).join("; ")
                ),
                busy: false,
            };
        }
        if creating > 0 {
            return Observation {
                ready: false,
                reason: Reason::Provisioning,
                message: format!(
                    "network connectivity configuration {id}: {creating} private endpoint rule(s) being created"
                ),
                busy: true,
            };
        }
        let mut msg = format!(
            "network connectivity configuration {id} in {} has {} private endpoint rule(s)",
            r.region,
            live.len()
        );
        if pending > 0 {
            msg.push_str(&format!(
                "; {pending} PENDING: accept the connection on your endpoint service (rules carry traffic once ESTABLISHED)"
            ));
        }
        Observation::available(msg)
    }
    fn dep_kind() -> Option<DepKind> {
        Some(DepKind::Ncc)
    }
    fn region(&self) -> Option<String> {
        Some(self.spec.region.as_str().to_string())
    }
    async fn before_delete(
        &self,
        client: &AccountClient,
        id: &str,
    ) -> Result<(), crate::databricks::Error> {
        // Databricks refuses to delete an NCC that still has rules: delete them first. Rules
        // already deactivated are left to Databricks to purge; the NCC delete says in use meanwhile.
        for rule in client.list_private_endpoint_rules(id).await? {
            if rule.deactivated != Some(true) {
                match client.delete_private_endpoint_rule(id, &rule.rule_id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------

impl DatabricksWorkspace {
    /// The fields whose spec value differs from the workspace's, as far as its state lets them change.
    fn update_fields(&self, r: &m::Workspace, deps: &Resolved) -> m::WorkspaceUpdate {
        let failed = r.workspace_status == Some(m::WorkspaceStatus::Failed);
        let mut u = m::WorkspaceUpdate::default();
        let differs = |want: &Option<String>, have: &Option<String>| want.is_some() && want != have;
        let cred = deps.one("credentials");
        if differs(&cred, &r.credentials_id) {
            u.credentials_id = cred;
        }
        let net = deps.one("network");
        if differs(&net, &r.network_id) {
            u.network_id = net;
        }
        let pas = deps.one("privateAccessSettings");
        if differs(&pas, &r.private_access_settings_id) {
            u.private_access_settings_id = pas;
        }
        let msk = deps.one("managedServicesKey");
        if differs(&msk, &r.managed_services_customer_managed_key_id) {
            u.managed_services_customer_managed_key_id = msk;
        }
        let sk = deps.one("storageKey");
        if differs(&sk, &r.storage_customer_managed_key_id)
            && (failed || r.storage_customer_managed_key_id.is_none())
        {
            u.storage_customer_managed_key_id = sk;
        }
        let ncc = deps.one("networkConnectivityConfig");
        if differs(&ncc, &r.network_connectivity_config_id) {
            u.network_connectivity_config_id = ncc;
        }
        if !self.spec.custom_tags.is_empty() && self.spec.custom_tags != r.custom_tags {
            u.custom_tags = Some(self.spec.custom_tags.clone());
        }
        if failed {
            let storage = deps.one("storageConfiguration");
            if differs(&storage, &r.storage_configuration_id) {
                u.storage_configuration_id = storage;
            }
            let region = Some(self.spec.aws_region.as_str().to_string());
            if differs(&region, &r.aws_region) {
                u.aws_region = region;
            }
        }
        u
    }
}

impl Managed for DatabricksWorkspace {
    type Remote = m::Workspace;
    type Status = WorkspaceStatus;
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> Option<&mut Self::Status> {
        self.status.as_mut()
    }
    fn common(status: &mut Self::Status) -> &mut CommonStatus {
        &mut status.common
    }
    fn common_ref(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
    fn remote_id(status: &Self::Status) -> Option<String> {
        status.workspace_id.map(|i| i.to_string())
    }
    fn set_remote_id(status: &mut Self::Status, id: Option<String>) {
        status.workspace_id = id.and_then(|i| i.parse().ok());
    }
    fn management(&self) -> &Management {
        &self.spec.management
    }
    fn sent_update(status: &WorkspaceStatus) -> Option<&SentUpdate> {
        status.last_update.as_ref()
    }
    fn set_sent_update(status: &mut WorkspaceStatus, sent: SentUpdate) {
        status.last_update = Some(sent);
    }
    fn update_blocked(r: &m::Workspace) -> Option<String> {
        match &r.workspace_status {
            Some(
                s @ (m::WorkspaceStatus::Provisioning
                | m::WorkspaceStatus::NotProvisioned
                | m::WorkspaceStatus::Banned),
            ) => Some(format!("the workspace is {s}")),
            _ => None,
        }
    }

    fn dependencies(&self) -> Vec<Dep> {
        let s = &self.spec;
        let mut v = Vec::new();
        let optional = [
            (DepKind::Credential, "credentials", &s.credentials),
            (
                DepKind::Storage,
                "storageConfiguration",
                &s.storage_configuration,
            ),
            (DepKind::Network, "network", &s.network),
            (
                DepKind::PrivateAccess,
                "privateAccessSettings",
                &s.private_access_settings,
            ),
            (DepKind::Key, "managedServicesKey", &s.managed_services_key),
            (DepKind::Key, "storageKey", &s.storage_key),
            (
                DepKind::Ncc,
                "networkConnectivityConfig",
                &s.network_connectivity_config,
            ),
        ];
        for (kind, field, r) in optional {
            if let Some(r) = r {
                v.push(Dep {
                    kind,
                    field,
                    reference: r.clone(),
                    // An NCC serves only the workspaces of its region.
                    region: (kind == DepKind::Ncc).then(|| s.aws_region.as_str().to_string()),
                });
            }
        }
        v
    }
    fn desired_name(&self) -> String {
        name_or(&self.spec.workspace_name, self.name_any())
    }
    fn create_request(&self, deps: &Resolved) -> m::CreateWorkspace {
        let s = &self.spec;
        m::CreateWorkspace {
            workspace_name: self.desired_name(),
            aws_region: s.aws_region.as_str().into(),
            deployment_name: s.deployment_name.clone(),
            pricing_tier: s
                .pricing_tier
                .map(|p| m::PricingTier::from(serde_plain(&p).as_str())),
            credentials_id: deps.one("credentials"),
            storage_configuration_id: deps.one("storageConfiguration"),
            network_id: deps.one("network"),
            private_access_settings_id: deps.one("privateAccessSettings"),
            managed_services_customer_managed_key_id: deps.one("managedServicesKey"),
            storage_customer_managed_key_id: deps.one("storageKey"),
            network_connectivity_config_id: deps.one("networkConnectivityConfig"),
            custom_tags: s.custom_tags.clone(),
            compute_mode: s.serverless().then_some(m::ComputeMode::Serverless),
        }
    }
    fn spec_problem(&self) -> Option<String> {
        self.spec.problem().map(str::to_string)
    }
    fn matches(&self, r: &m::Workspace) -> bool {
        r.workspace_name == self.desired_name()
            && match &self.spec.deployment_name {
                Some(d) if d != "EMPTY" => r
                    .deployment_name
                    .as_deref()
                    .is_some_and(|rd| rd == d || rd.ends_with(&format!("-{d}"))),
                _ => true,
            }
    }
    fn immutable_changes(&self, r: &m::Workspace, deps: &Resolved) -> Vec<&'static str> {
        let failed = r.workspace_status == Some(m::WorkspaceStatus::Failed);
        let mut v = Vec::new();
        if r.workspace_name != self.desired_name() {
            v.push("workspaceName");
        }
        // The API prefixes the account's deployment prefix: `acme-analytics` for `analytics`.
        if let Some(want) = &self.spec.deployment_name
            && r.deployment_name
                .as_deref()
                .is_some_and(|have| have != want && !have.ends_with(&format!("-{want}")))
        {
            v.push("deploymentName");
        }
        if let (Some(want), Some(have)) = (self.spec.pricing_tier, &r.pricing_tier)
            && serde_plain(&want) != have.as_str()
        {
            v.push("pricingTier");
        }
        // A workspace that reports no mode is classic (HYBRID is the API's default).
        let remote_serverless = r.compute_mode == Some(m::ComputeMode::Serverless);
        if remote_serverless != self.spec.serverless() {
            v.push("computeMode");
        }
        if !failed {
            if r.aws_region
                .as_deref()
                .is_some_and(|a| a != self.spec.aws_region.as_str())
            {
                v.push("awsRegion");
            }
            if deps.one("storageConfiguration").is_some()
                && deps.one("storageConfiguration") != r.storage_configuration_id
            {
                v.push("storageConfiguration");
            }
            if let (Some(want), Some(have)) =
                (deps.one("storageKey"), &r.storage_customer_managed_key_id)
                && &want != have
            {
                v.push("storageKey");
            }
        }
        // Databricks can add or rotate keys, never remove them (account-api.md §4.4).
        let set = |v: &Option<String>| v.as_deref().is_some_and(|n| !n.is_empty());
        if deps.one("managedServicesKey").is_none()
            && set(&r.managed_services_customer_managed_key_id)
        {
            v.push("managedServicesKey");
        }
        if deps.one("storageKey").is_none() && set(&r.storage_customer_managed_key_id) {
            v.push("storageKey");
        }
        // Tags can be replaced, not all removed: an empty map on a workspace this operator made
        // is a removal it cannot apply. On an adopted one (externalId) it means "not managed
        // here": the tags it came with are left alone, not reported.
        if self.spec.custom_tags.is_empty()
            && !r.custom_tags.is_empty()
            && self.spec.management.external_id.is_none()
        {
            v.push("customTags");
        }
        if deps.one("privateAccessSettings").is_none() && r.private_access_settings_id.is_some() {
            v.push("privateAccessSettings");
        }
        if deps.one("network").is_none() && r.network_id.as_deref().is_some_and(|n| !n.is_empty()) {
            v.push("network");
        }
        // Databricks cannot unbind an NCC, only switch to another (account-api.md §11.5).
        if deps.one("networkConnectivityConfig").is_none()
            && r.network_connectivity_config_id
                .as_deref()
                .is_some_and(|n| !n.is_empty())
        {
            v.push("networkConnectivityConfig");
        }
        v
    }
    fn desired_update(&self, r: &m::Workspace, deps: &Resolved) -> Option<Update> {
        // A CANCELLING workspace takes no patches (a BANNED one neither: `update_blocked`
        // holds its changes until it is RUNNING again).
        if r.workspace_status == Some(m::WorkspaceStatus::Cancelling) {
            return None;
        }
        let fields = self.update_fields(r, deps);
        (!fields.is_empty()).then_some(Update::Workspace {
            id: r.workspace_id,
            fields,
        })
    }
    async fn explain(&self, client: &AccountClient, r: &m::Workspace) -> Option<String> {
        if r.workspace_status != Some(m::WorkspaceStatus::Failed) {
            return None;
        }
        let id = r.network_id.as_deref().filter(|n| !n.is_empty())?;
        let n = client.get::<m::Network>(id).await.ok()?;
        (!n.error_messages.is_empty()).then(|| network_errors(&n))
    }
    fn observe(
        &self,
        r: &m::Workspace,
        deps: &Resolved,
        s: &mut WorkspaceStatus,
        host: &str,
        explanation: Option<String>,
    ) -> Observation {
        s.workspace_status = r.workspace_status.as_ref().map(|w| w.to_string());
        s.workspace_status_message = r.workspace_status_message.as_deref().map(bounds::message);
        s.deployment_name = r
            .deployment_name
            .as_deref()
            .map(|d| bounds::truncate(d, 256));
        // Only a deployment name that is one host label makes a URL: an answer such as
        // `evil.example/#` must not put another host in status.
        s.workspace_url = s
            .deployment_name
            .as_deref()
            .and_then(|d| crate::databricks::workspace::workspace_host(host, d).ok());
        s.pricing_tier = r.pricing_tier.as_ref().map(|p| p.to_string());
        s.compute_mode = Some(r.compute_mode.as_ref().map_or_else(
            || m::ComputeMode::Hybrid.to_string(),
            |c| bounds::truncate(&c.to_string(), 64),
        ));
        s.storage_mode = r
            .storage_mode
            .as_ref()
            .map(|c| bounds::truncate(&c.to_string(), 64));
        s.credentials_id = deps.one("credentials");
        s.storage_configuration_id = deps.one("storageConfiguration");
        s.network_id = deps.one("network");
        s.private_access_settings_id = deps.one("privateAccessSettings");
        s.managed_services_customer_managed_key_id = deps.one("managedServicesKey");
        s.storage_customer_managed_key_id = deps.one("storageKey");
        s.network_connectivity_config_id = r.network_connectivity_config_id.clone();
        let msg = s.workspace_status_message.clone().unwrap_or_default();
        let status = r
            .workspace_status
            .clone()
            .unwrap_or(m::WorkspaceStatus::Unknown(String::new()));
        let busy = |reason, message: String| Observation {
            ready: false,
            reason,
            message,
            busy: true,
        };
        match status {
            m::WorkspaceStatus::Running => Observation::available(format!(
                "workspace is RUNNING at {}",
                s.workspace_url.clone().unwrap_or_default()
            )),
            m::WorkspaceStatus::Provisioning | m::WorkspaceStatus::NotProvisioned => busy(
                Reason::Provisioning,
                format!("workspace is {status}: {msg}"),
            ),
            m::WorkspaceStatus::Failed => {
                let mut message = format!("workspace provisioning FAILED: {msg}");
                if let Some(e) = explanation {
                    message.push_str(&format!("; network errors: {e}"));
                }
                message.push_str(". Fix the cause (for example the credential's IAM role or the network) and update the spec; the operator patches the failed workspace");
                Observation {
                    ready: false,
                    reason: Reason::ProvisioningFailed,
                    message,
                    busy: false,
                }
            }
            m::WorkspaceStatus::Banned => Observation {
                ready: false,
                reason: Reason::Banned,
                message: format!("workspace is BANNED: {msg}; contact Databricks support"),
                busy: false,
            },
            m::WorkspaceStatus::Cancelling => busy(
                Reason::Cancelling,
                format!("workspace is CANCELLING: {msg}"),
            ),
            m::WorkspaceStatus::Unknown(other) => busy(
                Reason::Provisioning,
                format!("workspace status {other:?}: {msg}"),
            ),
        }
    }
    fn waits_for_removal() -> bool {
        true
    }
    fn invalidate_related(ctx: &Context, account: &str) {
        ctx.expire::<m::Network>(account);
    }
    fn reach_target(r: &m::Workspace) -> Option<String> {
        (r.workspace_status == Some(m::WorkspaceStatus::Running))
            .then(|| r.deployment_name.clone())
            .flatten()
            .filter(|d| !d.is_empty())
    }
    fn removing(r: &m::Workspace) -> bool {
        r.workspace_status == Some(m::WorkspaceStatus::Cancelling)
    }
    fn dep_kind() -> Option<DepKind> {
        None
    }
}

/// The wire spelling of a serde enum value.
fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind that can be a dependency names itself: a reference to `DepKind::X` resolves
    /// in the cache of the kind whose `dep_kind()` is `X`, and every `DepKind` has one such kind.
    #[test]
    fn each_dependency_kind_is_one_kind() {
        fn pair<K: Managed>() -> Option<(DepKind, String)> {
            K::dep_kind().map(|d| (d, K::kind(&()).into_owned()))
        }
        let pairs: Vec<(DepKind, String)> = [
            pair::<DatabricksCredential>(),
            pair::<DatabricksStorageConfig>(),
            pair::<DatabricksKeyConfig>(),
            pair::<DatabricksNetwork>(),
            pair::<DatabricksVpcEndpoint>(),
            pair::<DatabricksPrivateAccessSettings>(),
            pair::<DatabricksNetworkConnectivityConfig>(),
            pair::<DatabricksWorkspace>(),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(pairs.len(), 7, "{pairs:?}");
        for (dep, kind) in &pairs {
            assert_eq!(dep.kind(), kind.as_str());
        }
        let distinct: std::collections::BTreeSet<DepKind> = pairs.iter().map(|(d, _)| *d).collect();
        assert_eq!(distinct.len(), pairs.len(), "{pairs:?}");
    }
}
