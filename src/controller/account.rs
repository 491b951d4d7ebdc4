//! The `DatabricksAccount` controller: builds one client per account from its Secret, proves it
//! works with a cheap list call, and holds the account while objects still use it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::managed::{Error, referrers_of_account, set_finalizer, write_status};
use super::{AccountEntry, Context, lock};
use crate::crd::account::{AccountStatus, DatabricksAccount};
use crate::crd::{FINALIZER, Reason};
use crate::databricks::{AccountClient, AccountConfig, Credentials, Secret};

fn secret_value(secret: &KubeSecret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Reads two keys of a Secret and adds the Secret's version to the fingerprint. The messages name
/// the Secret and key, never a value.
async fn read_keys(
    ctx: &Context,
    ns: &str,
    name: &str,
    keys: [&str; 2],
    fingerprint: &mut String,
) -> Result<[String; 2], String> {
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("Secret {name:?} not found in namespace {ns}")),
        Err(e) => return Err(format!("cannot read Secret {name:?}: {e}")),
    };
    fingerprint.push('/');
    fingerprint.push_str(
        secret
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default(),
    );
    let value = |key: &str| {
        secret_value(&secret, key).ok_or_else(|| format!("Secret {name:?} has no key {key:?}"))
    };
    Ok([value(keys[0])?, value(keys[1])?])
}

/// Reads what the spec names and builds the client configuration. Returns the configuration and a
/// fingerprint of everything it was built from.
async fn build_config(
    ctx: &Context,
    acct: &DatabricksAccount,
    ns: &str,
) -> Result<(AccountConfig, String), String> {
    let spec = &acct.spec;
    let mut fingerprint = format!("{}", acct.metadata.generation.unwrap_or_default());
    let credentials = match (
        &spec.auth.oauth_m2m,
        &spec.auth.federation,
        &spec.auth.basic,
    ) {
        (Some(m2m), None, None) => {
            let [id, secret] = read_keys(
                ctx,
                ns,
                &m2m.secret_ref.name,
                [&m2m.client_id_key, &m2m.client_secret_key],
                &mut fingerprint,
            )
            .await?;
            Credentials::OAuthM2M {
                client_id: id,
                client_secret: Secret::new(secret),
            }
        }
        (None, Some(fed), None) => Credentials::Federation {
            client_id: fed.client_id.clone(),
            token_file: fed.token_path.clone().into(),
        },
        (None, None, Some(basic)) => {
            let [user, pass] = read_keys(
                ctx,
                ns,
                &basic.secret_ref.name,
                [&basic.username_key, &basic.password_key],
                &mut fingerprint,
            )
            .await?;
            Credentials::Basic {
                username: user,
                password: Secret::new(pass),
            }
        }
        _ => return Err("set exactly one of auth.oauthM2M, auth.federation, auth.basic".into()),
    };
    let mut config = AccountConfig::new(spec.host.clone(), spec.account_id.clone(), credentials);
    config.ca_bundle_pem = ctx.settings.extra_ca_pem.clone();
    if let Some(r) = spec.rate_limit {
        config.rate_limit = f64::from(r);
    }
    if let Some(ca) = &spec.ca_bundle {
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let cm = cms
            .get_opt(&ca.config_map)
            .await
            .map_err(|e| format!("cannot read ConfigMap {:?}: {e}", ca.config_map))?
            .ok_or_else(|| format!("ConfigMap {:?} not found", ca.config_map))?;
        fingerprint.push_str(&format!(
            "/{}",
            cm.metadata.resource_version.clone().unwrap_or_default()
        ));
        let pem = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&ca.key))
            .ok_or_else(|| format!("ConfigMap {:?} has no key {:?}", ca.config_map, ca.key))?;
        let mut bundle = config.ca_bundle_pem.take().unwrap_or_default();
        bundle.extend_from_slice(b"\n");
        bundle.extend_from_slice(pem.as_bytes());
        config.ca_bundle_pem = Some(bundle);
    }
    Ok((config, fingerprint))
}

/// Reconciles one `DatabricksAccount`.
pub async fn reconcile(acct: Arc<DatabricksAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = acct.namespace().unwrap_or_default();
    let api: Api<DatabricksAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = acct.finalizers().iter().any(|f| f == FINALIZER);
    if acct.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return match cleanup(acct.clone(), ctx.clone(), &ns).await? {
            Some(next) => Ok(Action::requeue(next)),
            None => {
                set_finalizer(&api, &*acct, false).await?;
                Ok(Action::await_change())
            }
        };
    }
    if !has_finalizer {
        set_finalizer(&api, &*acct, true).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    apply(acct, ctx, &ns).await
}

async fn apply(acct: Arc<DatabricksAccount>, ctx: Arc<Context>, ns: &str) -> Result<Action, Error> {
    let key = format!("{ns}/{}", acct.name_any());
    let generation = acct.metadata.generation;
    let mut status = acct.status.clone().unwrap_or_default();
    status.common.observed_generation = generation;
    let poll = ctx.settings.poll_interval;
    let (config, fingerprint) = match build_config(&ctx, &acct, ns).await {
        Ok(c) => c,
        Err(message) => {
            lock(&ctx.accounts).remove(&key);
            status
                .common
                .set_condition("Ready", false, Reason::InvalidSpec, &message, generation);
            status
                .common
                .set_condition("Synced", false, Reason::InvalidSpec, &message, generation);
            write_account_status(&ctx, &acct, ns, status).await?;
            return Ok(Action::requeue(
                ctx.backoff(&key, None).max(Duration::from_secs(5)),
            ));
        }
    };
    status.auth_method = Some(config.credentials.method().to_string());
    let existing = ctx.account(&key).filter(|e| e.fingerprint == fingerprint);
    let client = match existing {
        Some(e) => e.client,
        None => match AccountClient::with_observer(config, Some(ctx.metrics.clone())) {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                status.common.set_condition(
                    "Ready",
                    false,
                    Reason::InvalidSpec,
                    &message,
                    generation,
                );
                status.common.set_condition(
                    "Synced",
                    false,
                    Reason::InvalidSpec,
                    &message,
                    generation,
                );
                write_account_status(&ctx, &acct, ns, status).await?;
                return Ok(Action::requeue(poll));
            }
        },
    };
    let (ready, reason, message, next) = match client.check().await {
        Ok(()) => {
            ctx.succeeded(&key);
            (
                true,
                Reason::Available,
                "authenticated; the Account API answers".to_string(),
                poll,
            )
        }
        Err(e) if e.is_auth() => (
            false,
            Reason::AuthenticationFailed,
            format!(
                "the Account API refused the credentials: {e}. Check the Secret's values and that the service principal is an account admin."
            ),
            ctx.backoff(&key, None).max(Duration::from_secs(10)),
        ),
        Err(e) => (
            false,
            Reason::ApiUnavailable,
            format!("cannot reach the Account API: {e}"),
            ctx.backoff(&key, e.retry_after()),
        ),
    };
    let was_ready = ctx.account(&key).is_some_and(|e| e.ready);
    lock(&ctx.accounts).insert(
        key.clone(),
        AccountEntry {
            client,
            fingerprint,
            ready,
            message: message.clone(),
        },
    );
    if ready != was_ready {
        tracing::info!(account = %key, ready, "account readiness changed");
    }
    status
        .common
        .set_condition("Ready", ready, reason, &message, generation);
    status.common.set_condition(
        "Synced",
        ready,
        if ready { Reason::Synced } else { reason },
        &message,
        generation,
    );
    write_account_status(&ctx, &acct, ns, status).await?;
    Ok(Action::requeue(next))
}

/// Returns when to look again, or `None` when the finalizer can go.
async fn cleanup(
    acct: Arc<DatabricksAccount>,
    ctx: Arc<Context>,
    ns: &str,
) -> Result<Option<Duration>, Error> {
    let name = acct.name_any();
    let users = referrers_of_account(&ctx.client, ns, &name).await?;
    if !users.is_empty() {
        let mut status = acct.status.clone().unwrap_or_default();
        let message = format!(
            "still used by {}; they are cleaned up through this account first",
            users.join(", ")
        );
        status.common.set_condition(
            "Ready",
            false,
            Reason::InUse,
            &message,
            acct.metadata.generation,
        );
        write_account_status(&ctx, &acct, ns, status).await?;
        return Ok(Some(Duration::from_secs(2)));
    }
    lock(&ctx.accounts).remove(&format!("{ns}/{name}"));
    Ok(None)
}

async fn write_account_status(
    ctx: &Context,
    acct: &DatabricksAccount,
    ns: &str,
    status: AccountStatus,
) -> Result<(), Error> {
    let api: Api<DatabricksAccount> = Api::namespaced(ctx.client.clone(), ns);
    write_status(
        &api,
        acct,
        acct.status.as_ref(),
        &status,
        acct.resource_version().as_deref(),
    )
    .await
    .map(drop)
}
