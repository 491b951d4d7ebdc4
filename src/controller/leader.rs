//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica reconciles.
//!
//! The holder renews the lease every `renew_every`; another replica takes it over once it has not
//! been renewed for `duration`. Every write carries the `resourceVersion` it read, so two replicas
//! can never both believe they won the same round. Every round is bounded by a deadline shorter
//! than the lease, and each success opens the [`WriteFence`] only until the lease could expire:
//! a replica that stalls (a hung API server, SIGSTOP) sends no Account API write once it resumes.
//!
//! Why not `kube-lease-manager` (0.13, the maintained crate that supports kube 5 and
//! k8s-openapi 0.29): the fence above needs the moment of every successful renewal, and the
//! crate reports only changes of holder (`changed()`, `watch()`), so a replica paused past its
//! lease resumes still "leader" until its next read and sends the creates it had pending, which
//! `tests/leader_fence.rs` forbids. Its renewal is an API call without a deadline (a hung API
//! server holds it for the client's read timeout, minutes), where each of our rounds ends within
//! `renew_every`; and it renews its own lease with a patch that carries no `resourceVersion`,
//! where ours replaces the lease only at the version it read. `kube-leader-election` (0.44)
//! requires kube 4.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use super::WriteFence;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// Opened while the lease is surely ours.
    pub fence: WriteFence,
}

/// A lease held by this replica.
pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec) -> bool {
    let Some(renewed) = spec.renew_time.as_ref() else {
        return true;
    };
    let duration = spec.lease_duration_seconds.unwrap_or(15).max(1);
    let until = renewed.0 + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(duration));
    until < Timestamp::now()
}

impl LeaseConfig {
    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(15)),
            acquire_time: acquired.or_else(|| Some(now())),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// One round, bounded by `renew_every`: `Ok(true)` when we hold the lease afterwards, and then the
/// fence is open until the lease could expire (counted from before the round began).
async fn round(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, String> {
    let started = std::time::Instant::now();
    let held = match tokio::time::timeout(cfg.renew_every, try_acquire(api, cfg)).await {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(_) => return Err(format!("no answer within {:?}", cfg.renew_every)),
    };
    if held {
        // Stop writing a little before another replica may take over.
        let margin = (cfg.duration / 5).max(Duration::from_millis(500));
        if let Some(deadline) = started.checked_add(cfg.duration.saturating_sub(margin)) {
            cfg.fence.hold_until(deadline);
        }
    }
    Ok(held)
}

/// One attempt: `Ok(true)` when we hold the lease afterwards.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(cfg.spec(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
            let free = spec.holder_identity.as_deref().is_none_or(str::is_empty) || expired(&spec);
            if !ours && !free {
                return Ok(false);
            }
            let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
            let acquired = if ours {
                spec.acquire_time.clone()
            } else {
                None
            };
            lease.spec = Some(cfg.spec(transitions, acquired));
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

impl Leadership {
    /// Waits until this replica holds the lease.
    pub async fn acquire(client: Client, config: LeaseConfig) -> Self {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut logged = false;
        loop {
            match round(&api, &config).await {
                Ok(true) => {
                    tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
                    return Self { api, config };
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(lease = %config.name, "another replica leads; standing by");
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read or write the lease"),
            }
            tokio::time::sleep(config.renew_every).await;
        }
    }

    /// Renews the lease until it cannot be renewed within its duration; then returns.
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            // Paused past the lease (SIGSTOP, a frozen VM): it may be someone else's by now.
            if last_renewal.elapsed() >= self.config.duration {
                self.config.fence.close();
            }
            match round(&self.api, &self.config).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.config.name, "the lease was taken over");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
            }
            // Stop before another replica may take over, so two never reconcile at once.
            if crate::bounds::add(last_renewal.elapsed(), self.config.renew_every)
                >= self.config.duration
            {
                self.config.fence.close();
                tracing::error!(lease = %self.config.name, "could not renew the lease in time");
                return;
            }
        }
    }

    /// Gives the lease up so another replica takes over at once (graceful shutdown).
    pub async fn release(&self) {
        self.config.fence.close();
        if tokio::time::timeout(self.config.renew_every, self.release_once())
            .await
            .is_err()
        {
            tracing::warn!(lease = %self.config.name, "could not release the lease in time; it expires on its own");
        }
    }

    async fn release_once(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.config.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(e) = self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(error = %e, "cannot release the lease");
            } else {
                tracing::info!(lease = %self.config.name, "released the lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease nobody renewed within its duration is free; a fresh one is not.
    #[test]
    fn lease_expiry_follows_the_renew_time() {
        let fresh = LeaseSpec {
            renew_time: Some(now()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(!expired(&fresh));
        let stale = LeaseSpec {
            renew_time: Some(MicroTime(
                Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(20),
            )),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(expired(&stale));
        assert!(expired(&LeaseSpec::default()));
    }
}
