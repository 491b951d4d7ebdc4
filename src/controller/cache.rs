//! The shared caches: one reflector per kind per watched scope, fed by one watch and read by every
//! controller. Reconciles read dependencies, referrers and account users from here, typed, and
//! never from the API server.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::managed::{DepKind, Managed};
use crate::crd::DatabricksAccount;

/// What an object shows to the objects that depend on it.
#[derive(Clone, Debug, PartialEq)]
pub struct DepView {
    /// The DatabricksAccount it is managed through.
    pub account: String,
    /// Whether its `Ready` condition is true.
    pub ready: bool,
    /// Its `Ready` reason, if it has the condition.
    pub reason: Option<String>,
    /// Its Databricks ID, if it has one.
    pub id: Option<String>,
    /// Its region, for kinds that serve only their own region.
    pub region: Option<String>,
}

/// The questions the controllers ask about the objects of one managed kind.
pub trait KindCache: Send + Sync {
    /// The kind.
    fn kind(&self) -> String;
    /// The object `namespace/name` as a dependency.
    fn view(&self, namespace: &str, name: &str) -> Option<DepView>;
    /// Whether the cache still shows the object `namespace/name` with this `uid` carrying the
    /// operator's finalizer.
    fn finalizing(&self, namespace: &str, name: &str, uid: &str) -> bool;
    /// The cached object's resourceVersion.
    fn version(&self, namespace: &str, name: &str) -> Option<String>;
    /// `Kind/namespace/name` of the object (other than the one with `uid`) whose status holds
    /// the Databricks ID `id`.
    fn owner(&self, id: &str, uid: &str) -> Option<String>;
    /// `Kind/name` of the objects in `namespace` that name `name` of `dep` in their spec.
    fn referrers(&self, namespace: &str, dep: DepKind, name: &str) -> Vec<String>;
    /// `Kind/name` of the objects in `namespace` that use the account `account`: they name it in
    /// `accountRef`, or their Databricks ID belongs to it.
    fn account_users(&self, namespace: &str, account: &str) -> Vec<String>;
}

impl<K: Managed> KindCache for Store<K> {
    fn kind(&self) -> String {
        K::kind(&()).into_owned()
    }

    fn view(&self, namespace: &str, name: &str) -> Option<DepView> {
        let o = self.get(&ObjectRef::new(name).within(namespace))?;
        let status = o.current_status();
        let ready = status.and_then(|s| K::common_ref(s).condition("Ready"));
        Some(DepView {
            account: o.management().account_ref.name.clone(),
            ready: ready.is_some_and(|c| c.status == "True"),
            reason: ready.map(|c| c.reason.clone()),
            id: status.and_then(K::remote_id),
            region: o.region(),
        })
    }

    fn finalizing(&self, namespace: &str, name: &str, uid: &str) -> bool {
        self.get(&ObjectRef::new(name).within(namespace))
            .is_some_and(|o| {
                o.uid().as_deref() == Some(uid)
                    && o.finalizers().iter().any(|f| f == crate::crd::FINALIZER)
            })
    }

    fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.get(&ObjectRef::new(name).within(namespace))?
            .resource_version()
    }

    fn owner(&self, id: &str, uid: &str) -> Option<String> {
        self.state()
            .iter()
            .find(|o| {
                o.uid().as_deref() != Some(uid)
                    && o.current_status()
                        .and_then(K::remote_id)
                        .is_some_and(|have| have == id)
            })
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    K::kind(&()),
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                )
            })
    }

    fn referrers(&self, namespace: &str, dep: DepKind, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(namespace))
            .filter(|o| {
                o.dependencies()
                    .iter()
                    .any(|d| d.kind == dep && d.reference.name.as_deref() == Some(name))
            })
            .map(|o| format!("{}/{}", K::kind(&()), o.name_any()))
            .collect();
        out.sort();
        out
    }

    fn account_users(&self, namespace: &str, account: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(namespace))
            .filter(|o| {
                o.management().account_ref.name == account
                    || o.current_status()
                        .and_then(|s| K::common_ref(s).account_name.as_deref())
                        == Some(account)
            })
            .map(|o| format!("{}/{}", K::kind(&()), o.name_any()))
            .collect();
        out.sort();
        out
    }
}

/// The caches of one watched scope (every namespace, or one).
pub struct ScopeCaches {
    /// The namespace, or `None` for all.
    pub namespace: Option<String>,
    /// DatabricksAccounts.
    pub accounts: Store<DatabricksAccount>,
    /// Secrets that opt in (label-selected: no other Secret is cached).
    pub secrets: Store<KubeSecret>,
    /// Every managed kind.
    pub kinds: Vec<Arc<dyn KindCache>>,
    /// How many of the scope's watches have listed in full at least once.
    pub listed: tokio::sync::watch::Receiver<usize>,
}

/// The watches of a scope besides one per managed kind: accounts and opted-in Secrets.
pub const SHARED_WATCHES: usize = 2;

impl ScopeCaches {
    /// Whether this scope watches `namespace`.
    pub fn covers(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// The cache of a kind.
    pub fn kind(&self, kind: &str) -> Option<&Arc<dyn KindCache>> {
        self.kinds.iter().find(|c| c.kind() == kind)
    }

    /// Resolves once every watch of the scope has listed in full once.
    ///
    /// This never waits on a `Store` itself: a store's readiness signal wakes only the last of
    /// several concurrent waiters, and the controller's own runner is already one of them.
    pub async fn ready(&self) {
        let mut rx = self.listed.clone();
        let watches = SHARED_WATCHES + self.kinds.len();
        let _ = rx.wait_for(|n| *n >= watches).await;
    }

    /// Every object of any managed kind in `namespace` that uses `account`.
    pub fn account_users(&self, namespace: &str, account: &str) -> Vec<String> {
        self.kinds
            .iter()
            .flat_map(|k| k.account_users(namespace, account))
            .collect()
    }

    /// Every object in `namespace` that names `name` of `dep`.
    pub fn referrers(&self, namespace: &str, dep: DepKind, name: &str) -> Vec<String> {
        self.kinds
            .iter()
            .flat_map(|k| k.referrers(namespace, dep, name))
            .collect()
    }
}
