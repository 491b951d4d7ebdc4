//! The `DatabricksAccount` controller: builds one client per account from its opted-in Secret,
//! proves it works with a cheap list call, keeps it bound to one host and account ID while objects
//! use it, and holds the account while objects still use it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::managed::{Error, set_finalizer, write_status};
use super::{AccountEntry, Context, ObjKey};
use crate::bounds;
use crate::crd::account::{AccountStatus, DatabricksAccount};
use crate::crd::{FINALIZER, Reason, SECRET_FINALIZER, SECRET_LABEL};
use crate::databricks::{AccountClient, AccountConfig, ConfigError, Credentials, SecretString};

/// Longest Secret value used (bytes): client IDs, secrets, usernames and passwords are far shorter.
const MAX_SECRET_VALUE: usize = 4096;

/// Why the client could not be configured: the condition reason and a message naming what to fix.
type Refusal = (Reason, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (Reason::InvalidSpec, message.into())
}

/// A key's value, or why it cannot be used. Messages name the Secret and key, never a value.
fn secret_value(secret: &KubeSecret, name: &str, key: &str) -> Result<String, Refusal> {
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| invalid(format!("Secret {name:?} has no key {key:?}")))?;
    if raw.len() > MAX_SECRET_VALUE {
        return Err(invalid(format!(
            "Secret {name:?} key {key:?} is longer than {MAX_SECRET_VALUE} bytes"
        )));
    }
    let text = String::from_utf8(raw)
        .map_err(|_| invalid(format!("Secret {name:?} key {key:?} is not UTF-8 text")))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(invalid(format!("Secret {name:?} key {key:?} is empty")));
    }
    Ok(text)
}

/// Reads the two documented keys of an opted-in Secret from the watched store and adds a hash of
/// what was read to the fingerprint (not the Secret's version: the operator's own finalizer
/// changes that, and a new client would mean a new token and a new check). The fingerprint stays
/// in memory; it is never logged or written. A Secret without the opt-in label is never read.
fn read_keys(
    ctx: &Context,
    ns: &str,
    name: &str,
    keys: [(&str, &'static str); 2],
    fingerprint: &mut String,
) -> Result<[String; 2], Refusal> {
    use std::hash::{Hash, Hasher};
    for (asked, documented) in keys {
        if asked != documented {
            return Err(invalid(format!(
                "Secret {name:?}: key {asked:?} is not accepted; the operator reads only the documented key {documented:?}"
            )));
        }
    }
    let secret = ctx.secret(ns, name).ok_or_else(|| {
        invalid(format!(
            "Secret {name:?} not found in namespace {ns}, or it does not carry the label {SECRET_LABEL}=true that lets the operator read it"
        ))
    })?;
    let values = [
        secret_value(&secret, name, keys[0].1)?,
        secret_value(&secret, name, keys[1].1)?,
    ];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, &values).hash(&mut h);
    fingerprint.push_str(&format!("/{:x}", h.finish()));
    Ok(values)
}

/// Reads what the spec names and builds the client configuration. Returns the configuration and a
/// fingerprint of everything it was built from.
async fn build_config(
    ctx: &Context,
    acct: &DatabricksAccount,
    ns: &str,
) -> Result<(AccountConfig, String), Refusal> {
    let spec = &acct.spec;
    // Nothing is read, and nothing sent, for a host that is not allowed.
    if !ctx.settings.allowed_hosts.allows(&spec.host) {
        return Err((
            Reason::HostNotAllowed,
            format!(
                "host {} is not on the operator's allow-list ({}); nothing is sent to it. Ask the operator's administrators to add it (--allowed-hosts, chart value allowedHosts)",
                spec.host,
                ctx.settings.allowed_hosts.describe()
            ),
        ));
    }
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
                [
                    (&m2m.client_id_key, "client-id"),
                    (&m2m.client_secret_key, "client-secret"),
                ],
                &mut fingerprint,
            )?;
            Credentials::OAuthM2M {
                client_id: id,
                client_secret: SecretString::from(secret),
            }
        }
        (None, Some(fed), None) => {
            if fed.token_path.is_some() {
                return Err(invalid(format!(
                    "auth.federation.tokenPath is not accepted: the operator exchanges its own token file ({}); remove the field",
                    ctx.settings.federation_token_file.display()
                )));
            }
            Credentials::Federation {
                client_id: fed.client_id.clone(),
                token_file: ctx.settings.federation_token_file.clone(),
            }
        }
        (None, None, Some(basic)) => {
            let [user, pass] = read_keys(
                ctx,
                ns,
                &basic.secret_ref.name,
                [
                    (&basic.username_key, "username"),
                    (&basic.password_key, "password"),
                ],
                &mut fingerprint,
            )?;
            Credentials::Basic {
                username: user,
                password: SecretString::from(pass),
            }
        }
        _ => {
            return Err(invalid(
                "set exactly one of auth.oauthM2M, auth.federation, auth.basic",
            ));
        }
    };
    let mut config = AccountConfig::new(spec.host.clone(), spec.account_id.clone(), credentials);
    config.ca_bundle_pem = ctx.settings.extra_ca_pem.clone();
    config.allowed_hosts = Some(ctx.settings.allowed_hosts.clone());
    config.resolve = ctx.settings.resolve.clone();
    config.timeout = ctx.settings.api_timeout;
    config.user_agent_comment = Some(ctx.instance.clone());
    if let Some(r) = spec.rate_limit {
        config.rate_limit = f64::from(r);
    }
    if let Some(ca) = &spec.ca_bundle {
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let cm = cms
            .get_opt(&ca.config_map)
            .await
            .map_err(|e| {
                invalid(format!(
                    "cannot read ConfigMap {:?}: {}",
                    ca.config_map,
                    bounds::truncate(&e.to_string(), 256)
                ))
            })?
            .ok_or_else(|| invalid(format!("ConfigMap {:?} not found", ca.config_map)))?;
        fingerprint.push_str(&format!(
            "/{}",
            cm.metadata.resource_version.clone().unwrap_or_default()
        ));
        let pem = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&ca.key))
            .ok_or_else(|| {
                invalid(format!(
                    "ConfigMap {:?} has no key {:?}",
                    ca.config_map, ca.key
                ))
            })?;
        let mut bundle = config.ca_bundle_pem.take().unwrap_or_default();
        bundle.extend_from_slice(b"\n");
        bundle.extend_from_slice(pem.as_bytes());
        config.ca_bundle_pem = Some(bundle);
    }
    Ok((config, fingerprint))
}

/// Reconciles one `DatabricksAccount`.
pub async fn reconcile(acct: Arc<DatabricksAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    // A restart must not read "Secret not found" or "no users" from caches that have not listed.
    ctx.caches_ready().await;
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
                ctx.forget(&ObjKey::of(&*acct));
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
    let obj_key = ObjKey::of(&*acct);
    let generation = acct.metadata.generation;
    let mut status = acct.status.clone().unwrap_or_default();
    status.common.observed_generation = generation;
    let poll = ctx.settings.poll_interval;
    let refuse = |status: &mut AccountStatus, reason: Reason, message: &str| {
        status
            .common
            .set_condition("Ready", false, reason, message, generation);
        status
            .common
            .set_condition("Synced", false, reason, message, generation);
    };

    // The account stays bound to the host and account ID its objects were created in.
    let users = ctx.account_users(ns, &acct.name_any());
    status.in_use_by = Some(u32::try_from(users.len()).unwrap_or(u32::MAX));
    let moved = [
        ("host", status.host.as_deref(), acct.spec.host.as_str()),
        (
            "accountId",
            status.account_id.as_deref(),
            acct.spec.account_id.as_str(),
        ),
    ]
    .into_iter()
    .filter(|(_, bound, now)| bound.is_some_and(|b| b != *now))
    .map(|(field, bound, _)| format!("{field} (was {:?})", bound.unwrap_or_default()))
    .collect::<Vec<_>>();
    if !moved.is_empty() && !users.is_empty() {
        // The client stays bound to the old host and account, where the objects live: it still
        // serves their deletes, but nothing new.
        ctx.disable_account(&key, "host or accountId changed while in use");
        let message = format!(
            "spec field(s) {} changed while {} object(s) use this account ({}); they would all be created again in the other account and the old ones left running. Revert the change, or move the objects to a new DatabricksAccount first",
            moved.join(", "),
            users.len(),
            users.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        refuse(&mut status, Reason::ImmutableFieldChanged, &message);
        write_account_status(&ctx, &acct, ns, status).await?;
        return Ok(Action::requeue(poll));
    }

    hold_secret(&ctx, &acct, ns).await;
    // A Secret this account named before is let go once no account names it.
    release_unused_secrets(&ctx, ns).await;
    let (config, fingerprint) = match build_config(&ctx, &acct, ns).await {
        Ok(c) => c,
        Err((reason, message)) => {
            // No new work through this account; a client built earlier stays for deletes (a
            // namespace delete may remove the Secret before the objects that need it).
            ctx.disable_account(&key, &message);
            refuse(&mut status, reason, &message);
            write_account_status(&ctx, &acct, ns, status).await?;
            return Ok(Action::requeue(
                ctx.backoff(&obj_key, None).max(Duration::from_secs(5)),
            ));
        }
    };
    status.auth_method = Some(config.credentials.method().to_string());
    let existing = ctx.account(&key).filter(|e| e.fingerprint == fingerprint);
    // Credentials that worked a moment ago are not checked again: the account's own status
    // writes wake it, and each check is an Account API call.
    if let Some(at) = existing
        .as_ref()
        .filter(|e| e.ready)
        .and_then(|e| e.checked)
        && at.elapsed() < poll / 2
        && status
            .common
            .condition("Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
    {
        write_account_status(&ctx, &acct, ns, status).await?;
        return Ok(Action::requeue(bounds::requeue(
            poll.saturating_sub(at.elapsed()),
        )));
    }
    // The check is a list of credentials shared with the credentials' own reads: a periodic
    // check of a client that worked accepts a list made within the poll interval (steady state
    // costs one credentials list per interval, not two); a new client, one that failed, or a
    // nudge (credentials refused somewhere, the Secret changed) asks the API now.
    let max_age = match &existing {
        Some(e) if e.ready && e.checked.is_some() => poll,
        _ => Duration::ZERO,
    };
    let fence: Arc<dyn crate::databricks::WriteGate> = Arc::new(ctx.settings.fence.clone());
    let client = match existing {
        Some(e) => e.client,
        None => match AccountClient::with_hooks(config, Some(ctx.metrics.clone()), Some(fence)) {
            Ok(c) => c,
            Err(e) => {
                let reason = match e {
                    ConfigError::HostNotAllowed { .. } => Reason::HostNotAllowed,
                    _ => Reason::InvalidSpec,
                };
                ctx.forget_account(&key);
                refuse(&mut status, reason, &e.to_string());
                write_account_status(&ctx, &acct, ns, status).await?;
                return Ok(Action::requeue(poll));
            }
        },
    };
    let mut checked = None;
    let listed = ctx
        .list_asked::<crate::databricks::models::Credential>(&key, &client, max_age)
        .await;
    let (ready, reason, message, next) = match listed {
        Ok((_, asked)) => {
            checked = Some(asked);
            ctx.succeeded(&obj_key);
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
            ctx.backoff(&obj_key, None).max(Duration::from_secs(10)),
        ),
        Err(e) => (
            false,
            Reason::ApiUnavailable,
            format!("the Account API check failed: {e}"),
            ctx.backoff(&obj_key, e.retry_after()),
        ),
    };
    let was_ready = ctx.account(&key).is_some_and(|e| e.ready);
    ctx.set_account(
        &key,
        AccountEntry {
            client,
            fingerprint,
            ready,
            message: bounds::message(&message),
            checked,
        },
    );
    if ready != was_ready {
        tracing::info!(account = %key, ready, "account readiness changed");
    }
    if ready {
        status.host = Some(acct.spec.host.clone());
        status.account_id = Some(acct.spec.account_id.clone());
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
    Ok(Action::requeue(bounds::requeue(next)))
}

/// Returns when to look again, or `None` when the finalizer can go.
async fn cleanup(
    acct: Arc<DatabricksAccount>,
    ctx: Arc<Context>,
    ns: &str,
) -> Result<Option<Duration>, Error> {
    let name = acct.name_any();
    let key = format!("{ns}/{name}");
    let users = ctx.account_users(ns, &name);
    if !users.is_empty() {
        hold_secret(&ctx, &acct, ns).await;
        // The objects are deleted through this account: make sure it has a client (after a
        // restart none was built yet). Why it cannot have one is what its users wait for.
        let mut cannot: Option<String> = None;
        if ctx.account(&key).is_none() {
            match build_config(&ctx, &acct, ns).await {
                Ok((config, fingerprint)) => {
                    let fence: Arc<dyn crate::databricks::WriteGate> =
                        Arc::new(ctx.settings.fence.clone());
                    if let Ok(client) =
                        AccountClient::with_hooks(config, Some(ctx.metrics.clone()), Some(fence))
                    {
                        ctx.set_account(
                            &key,
                            AccountEntry {
                                client,
                                fingerprint,
                                ready: false,
                                message: "the account is being deleted".into(),
                                checked: None,
                            },
                        );
                    }
                }
                Err((_, message)) => {
                    tracing::warn!(account = %key, %message, "cannot build a client to delete the account's objects");
                    cannot = Some(message);
                }
            }
        }
        let mut status = acct.status.clone().unwrap_or_default();
        // The same words until the last user is gone: a message listing the users would change
        // (and be written) at each of their deletes, a thousand writes for a thousand objects.
        let mut message = String::from(
            "still used by objects that name it (each says what it waits for); they are deleted through this account first",
        );
        if let Some(why) = cannot {
            message.push_str(&format!(
                ", but it cannot connect: {why}. Restore it to let the deletes finish"
            ));
        }
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
    ctx.forget_account(&key);
    Ok(None)
}

/// Puts [`SECRET_FINALIZER`] on the opted-in Secret the account names, unless it is there or the
/// Secret is already being deleted (no finalizer can be added then). A refusal (RBAC without
/// `patch` on Secrets) is logged, not fatal: the account works, only a namespace delete after a
/// restart may then wait for the Secret to be restored.
async fn hold_secret(ctx: &Context, acct: &DatabricksAccount, ns: &str) {
    if !ctx.settings.hold_secrets {
        return;
    }
    let Some(name) = acct.spec.auth.secret_name() else {
        return;
    };
    let Some(secret) = ctx.secret(ns, name) else {
        return;
    };
    if secret.metadata.deletion_timestamp.is_some()
        || secret.finalizers().iter().any(|f| f == SECRET_FINALIZER)
    {
        return;
    }
    let api: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"finalizers": [SECRET_FINALIZER]}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => tracing::debug!(secret = %format!("{ns}/{name}"), "holding the account's Secret"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "cannot put the finalizer on the account's Secret; a namespace delete may need it restored");
        }
    }
}

/// Removes [`SECRET_FINALIZER`] from every opted-in Secret of `ns` that no `DatabricksAccount`
/// names any more (its last account is gone, or names another Secret). Reads the caches only:
/// call it once they are ready.
pub(super) async fn release_unused_secrets(ctx: &Context, ns: &str) {
    let Some(scope) = ctx.scope(ns) else {
        return;
    };
    let in_ns = |o: &Option<String>| o.as_deref() == Some(ns);
    let used: std::collections::HashSet<String> = scope
        .accounts
        .state()
        .iter()
        .filter(|a| in_ns(&a.metadata.namespace))
        .filter_map(|a| a.spec.auth.secret_name().map(str::to_string))
        .collect();
    let api: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), ns);
    for s in scope.secrets.state() {
        let name = s.name_any();
        if !in_ns(&s.metadata.namespace)
            || used.contains(&name)
            || !s.finalizers().iter().any(|f| f == SECRET_FINALIZER)
        {
            continue;
        }
        let patch = serde_json::json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": [SECRET_FINALIZER]}
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!(secret = %format!("{ns}/{name}"), "released the Secret: no account names it")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "cannot remove the finalizer from a Secret no account names");
            }
        }
    }
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
