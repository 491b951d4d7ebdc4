//! The custom resources: one file per kind, plus what they share.

pub mod account;
pub mod common;
pub mod credential;
pub mod key;
pub mod ncc;
pub mod network;
pub mod private_access;
pub mod region;
pub mod storage;
pub mod vpc_endpoint;
pub mod workspace;

pub use account::DatabricksAccount;
pub use common::*;
pub use credential::DatabricksCredential;
pub use key::DatabricksKeyConfig;
pub use ncc::DatabricksNetworkConnectivityConfig;
pub use network::DatabricksNetwork;
pub use private_access::DatabricksPrivateAccessSettings;
pub use storage::DatabricksStorageConfig;
pub use vpc_endpoint::DatabricksVpcEndpoint;
pub use workspace::DatabricksWorkspace;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD, in dependency order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        DatabricksAccount::crd(),
        DatabricksCredential::crd(),
        DatabricksStorageConfig::crd(),
        DatabricksKeyConfig::crd(),
        DatabricksNetwork::crd(),
        DatabricksVpcEndpoint::crd(),
        DatabricksPrivateAccessSettings::crd(),
        DatabricksNetworkConnectivityConfig::crd(),
        DatabricksWorkspace::crd(),
    ]
}

/// The file name of a CRD in `crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default())
}

/// A CRD as YAML.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are part of the API: a typo here costs users a migration later.
    #[test]
    fn kinds_have_the_documented_names() {
        let expected = [
            ("DatabricksAccount", "databricksaccounts", "dbacct"),
            ("DatabricksCredential", "databrickscredentials", "dbcred"),
            (
                "DatabricksStorageConfig",
                "databricksstorageconfigs",
                "dbstorage",
            ),
            ("DatabricksKeyConfig", "databrickskeyconfigs", "dbkey"),
            ("DatabricksNetwork", "databricksnetworks", "dbnet"),
            ("DatabricksVpcEndpoint", "databricksvpcendpoints", "dbvpce"),
            (
                "DatabricksPrivateAccessSettings",
                "databricksprivateaccesssettings",
                "dbpas",
            ),
            (
                "DatabricksNetworkConnectivityConfig",
                "databricksnetworkconnectivityconfigs",
                "dbncc",
            ),
            ("DatabricksWorkspace", "databricksworkspaces", "dbws"),
        ];
        let crds = all();
        assert_eq!(crds.len(), expected.len());
        for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.names.kind, kind);
            assert_eq!(crd.spec.names.plural, plural);
            assert_eq!(
                crd.spec.names.short_names.as_deref(),
                Some(&[short.to_string()][..])
            );
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["databricks".to_string()][..])
            );
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{plural}.{GROUP}").as_str())
            );
            assert_eq!(crd.spec.versions[0].name, "v1alpha1");
            assert!(
                crd.spec.versions[0]
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
    }
}

/// Errors of [`install`].
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API server refused a request.
    #[error("installing CRD {name}: {source}")]
    Kube {
        /// CRD name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A CRD did not become Established in time.
    #[error("CRD {0} did not become Established within 60 s")]
    NotEstablished(String),
}

/// Creates or replaces the CRDs and waits until each is Established. Uses create/replace rather
/// than server-side apply, because API servers older than 1.25 refuse an apply that carries
/// `x-kubernetes-validations` (they store the CRD without the rules on create/replace).
pub async fn install(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), InstallError> {
    use kube::api::{Api, PostParams};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let err = |source| InstallError::Kube {
            name: name.clone(),
            source,
        };
        match api.get_opt(&name).await.map_err(err)? {
            Some(existing) => {
                let mut desired = crd.clone();
                desired.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &desired)
                    .await
                    .map_err(err)?;
            }
            None => {
                api.create(&PostParams::default(), crd).await.map_err(err)?;
            }
        }
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let cond = kube::runtime::wait::conditions::is_crd_established();
        let wait = kube::runtime::wait::await_condition(api.clone(), &name, cond);
        match tokio::time::timeout(std::time::Duration::from_secs(60), wait).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(InstallError::NotEstablished(format!("{name} ({e})")));
            }
            Err(_) => return Err(InstallError::NotEstablished(name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod generated_files {
    /// `crds/` must hold exactly what the code generates: users and the chart install those files.
    #[test]
    fn committed_crd_files_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for crd in super::all() {
            let path = dir.join(super::file_name(&crd));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            let generated = super::to_yaml(&crd).unwrap();
            assert!(
                on_disk == generated,
                "{} is stale: run `bash hack/generate.sh`",
                path.display()
            );
        }
    }
}
