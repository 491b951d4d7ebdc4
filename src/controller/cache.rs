//! The shared caches: one reflector per kind per watched scope, fed by one watch and read by every
//! controller. Reconciles read dependencies, referrers and account users from here, typed, and
//! never from the API server.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::managed::{DepKind, Managed};
use crate::crd::DatabricksAccount;
use crate::intern::{Name, intern};

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
    fn finalizing(&self, namespace: &str, name: &str, uid: u128) -> bool;
    /// The cached object's resourceVersion.
    fn version(&self, namespace: &str, name: &str) -> Option<String>;
    /// `Kind/namespace/name` of the object (other than the one with `uid`) whose status holds
    /// the Databricks ID `id`.
    fn owner(&self, id: &str, uid: &str) -> Option<String>;
    /// Whether the cache holds the object `namespace/name`.
    fn contains(&self, namespace: &str, name: &str) -> bool;
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

    fn finalizing(&self, namespace: &str, name: &str, uid: u128) -> bool {
        self.get(&ObjectRef::new(name).within(namespace))
            .is_some_and(|o| {
                o.meta().uid.as_deref().map(crate::intern::uid) == Some(uid)
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

    fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(&ObjectRef::new(name).within(namespace)).is_some()
    }
}

/// What an object names: a dependency (kind and name) or an account, in its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `spec.<field>: {name}` of a dependency of this kind.
    Dep(Name, DepKind, Name),
    /// `spec.accountRef`, or the account its Databricks ID belongs to.
    Account(Name, Name),
}

impl Target {
    /// What `o` names now.
    pub fn of<K: Managed>(o: &K) -> Vec<Target> {
        let ns = intern(o.meta().namespace.as_deref().unwrap_or_default());
        let mut out: Vec<Target> = o
            .dependencies()
            .into_iter()
            .filter_map(|d| {
                d.reference
                    .name
                    .map(|name| Target::Dep(ns.clone(), d.kind, intern(&name)))
            })
            .collect();
        out.push(Target::Account(
            ns.clone(),
            intern(&o.management().account_ref.name),
        ));
        if let Some(bound) = o
            .current_status()
            .and_then(|s| K::common_ref(s).account_name.as_deref())
        {
            out.push(Target::Account(ns, intern(bound)));
        }
        out.sort();
        out.dedup();
        out
    }
}

/// An object in the index: kind, namespace, name.
type Indexed = (Cow<'static, str>, Name, Name);

/// An object that names a target (in the target's namespace): kind and name.
type Referrer = (Cow<'static, str>, Name);

/// The objects that name one target. Most targets are named by one object (a workspace's
/// credential, storage and network), which then costs no set of its own.
#[derive(Debug)]
enum Referrers {
    One(Referrer),
    Many(std::collections::BTreeSet<Referrer>),
}

impl Referrers {
    fn insert(&mut self, r: Referrer) {
        match self {
            Self::One(one) if *one == r => {}
            Self::One(one) => {
                let set = [one.clone(), r].into_iter().collect();
                *self = Self::Many(set);
            }
            Self::Many(set) => {
                set.insert(r);
            }
        }
    }

    /// Removes `r`; says whether none are left.
    fn remove(&mut self, r: &Referrer) -> bool {
        match self {
            Self::One(one) => one == r,
            Self::Many(set) => {
                set.remove(r);
                match set.len() {
                    0 => true,
                    1 => {
                        if let Some(last) = set.pop_first() {
                            *self = Self::One(last);
                        }
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &Referrer> + '_> {
        match self {
            Self::One(one) => Box::new(std::iter::once(one)),
            Self::Many(set) => Box::new(set.iter()),
        }
    }
}

/// Who names whom, kept by the fan-out from the watch events right after the stores apply them:
/// the referrers of an object and the users of an account are a lookup, not a scan of every
/// object (which made deletes quadratic in the number of objects). Its strings are interned, so
/// an object's entries share one copy of its namespace and name.
#[derive(Default)]
pub struct RefIndex {
    /// What each object names.
    names: HashMap<Indexed, Box<[Target]>>,
    /// The reverse: the objects that name each target.
    named_by: HashMap<Target, Referrers>,
}

impl RefIndex {
    /// Records what the object `kind/namespace/name` names now.
    pub fn set(
        &mut self,
        kind: Cow<'static, str>,
        namespace: &str,
        name: &str,
        targets: Vec<Target>,
    ) {
        let key = (kind, intern(namespace), intern(name));
        if self.names.get(&key).is_some_and(|t| **t == *targets) {
            return;
        }
        self.remove_key(&key);
        let referrer: Referrer = (key.0.clone(), key.2.clone());
        for t in &targets {
            match self.named_by.get_mut(t) {
                Some(r) => r.insert(referrer.clone()),
                None => {
                    self.named_by
                        .insert(t.clone(), Referrers::One(referrer.clone()));
                }
            }
        }
        self.names.insert(key, targets.into_boxed_slice());
    }

    /// Forgets the object `kind/namespace/name`.
    pub fn remove(&mut self, kind: Cow<'static, str>, namespace: &str, name: &str) {
        self.remove_key(&(kind, intern(namespace), intern(name)));
    }

    fn remove_key(&mut self, key: &Indexed) {
        let Some(old) = self.names.remove(key) else {
            return;
        };
        let referrer: Referrer = (key.0.clone(), key.2.clone());
        for t in &old {
            if let Some(r) = self.named_by.get_mut(t)
                && r.remove(&referrer)
            {
                self.named_by.remove(t);
            }
        }
    }

    /// Forgets the objects of `kind` for which `live(namespace, name)` is false (after a relist,
    /// which removes objects from a store without a delete event).
    pub fn retain(&mut self, kind: &str, live: impl Fn(&str, &str) -> bool) {
        let gone: Vec<Indexed> = self
            .names
            .keys()
            .filter(|(k, ns, name)| k == kind && !live(ns, name))
            .cloned()
            .collect();
        for key in gone {
            self.remove_key(&key);
        }
    }

    /// `Kind/name` of the objects that name `target`, sorted.
    pub fn named_by(&self, target: &Target) -> Vec<String> {
        self.named_by
            .get(target)
            .map(|r| {
                r.iter()
                    .map(|(kind, name)| format!("{kind}/{name}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many objects are indexed.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
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
    /// Who names whom, across the managed kinds.
    pub refs: std::sync::Mutex<RefIndex>,
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
        self.index()
            .named_by(&Target::Account(intern(namespace), intern(account)))
    }

    /// Every object in `namespace` that names `name` of `dep`.
    pub fn referrers(&self, namespace: &str, dep: DepKind, name: &str) -> Vec<String> {
        self.index()
            .named_by(&Target::Dep(intern(namespace), dep, intern(name)))
    }

    /// The reference index, locked.
    pub fn index(&self) -> std::sync::MutexGuard<'_, RefIndex> {
        self.refs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str) -> Target {
        Target::Dep(intern("ns"), DepKind::Credential, intern(name))
    }

    fn account(name: &str) -> Target {
        Target::Account(intern("ns"), intern(name))
    }

    /// The index follows each object's references as they change, and forgets objects that go,
    /// by delete or by a relist.
    #[test]
    fn the_index_follows_references() {
        let mut ix = RefIndex::default();
        ix.set("W".into(), "ns", "a", vec![dep("c1"), account("acct")]);
        ix.set("W".into(), "ns", "b", vec![dep("c1"), account("acct")]);
        ix.set("N".into(), "ns", "n", vec![account("acct")]);
        assert_eq!(ix.named_by(&dep("c1")), ["W/a", "W/b"]);
        assert_eq!(ix.named_by(&account("acct")), ["N/n", "W/a", "W/b"]);
        // `a` now names another credential and another account.
        ix.set("W".into(), "ns", "a", vec![dep("c2"), account("other")]);
        assert_eq!(ix.named_by(&dep("c1")), ["W/b"]);
        assert_eq!(ix.named_by(&dep("c2")), ["W/a"]);
        assert_eq!(ix.named_by(&account("acct")), ["N/n", "W/b"]);
        assert!(
            matches!(ix.named_by.get(&account("acct")), Some(Referrers::Many(s)) if s.len() == 2)
        );
        ix.remove("W".into(), "ns", "b");
        assert!(ix.named_by(&dep("c1")).is_empty());
        // A relist lost `a` of kind W; N is another kind and stays.
        ix.retain("W", |_, name| name != "a");
        assert!(ix.named_by(&dep("c2")).is_empty());
        assert_eq!(ix.named_by(&account("acct")), ["N/n"]);
        assert!(
            matches!(ix.named_by.get(&account("acct")), Some(Referrers::One(_))),
            "a target named by one object keeps no set"
        );
        assert_eq!(ix.len(), 1);
        ix.remove("N".into(), "ns", "n");
        assert!(ix.is_empty());
        assert!(ix.named_by.is_empty(), "no empty sets are kept");
    }
}
