#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests of the Account API client (`databricks::AccountClient`): every endpoint
//! against the in-process simulator, and the error shapes, token handling, retries and rate limit
//! against small fake HTTP servers written here (raw Tokio TCP, so a test can also drop a
//! connection without answering).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use databricks_account_operator::databricks::models::{
    AwsCredentials, AwsKeyInfo, ComputeMode, CreateCredential, CreateCustomerManagedKey,
    CreateNetwork, CreateStorageConfiguration, CreateVpcEndpoint, CreateWorkspace, Credential,
    CustomerManagedKey, KeyUseCase, Network, PrivateAccessLevel, PrivateAccessSettings,
    PrivateAccessSettingsRequest, RootBucketInfo, StorageConfiguration, StorageMode, StsRole,
    VpcEndpoint, Workspace, WorkspaceStatus, WorkspaceUpdate,
};
use databricks_account_operator::databricks::{
    AccountClient, AccountConfig, AuthError, CallObserver, CallRecord, Credentials, Error,
    ResolveOverrides, SecretString, Unreachable,
};
use databricks_account_sim::{
    self as sim, Faults, LostResponse, RateLimit, ServerError, SimConfig, SimHandle,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

// ------------------------------------------------------------------------------------------------
// Helpers

const ACCOUNT: &str = "acc-1";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn m2m() -> Credentials {
    Credentials::OAuthM2M {
        client_id: sim::DEFAULT_CLIENT_ID.into(),
        client_secret: SecretString::from(sim::DEFAULT_CLIENT_SECRET),
    }
}

fn basic() -> Credentials {
    Credentials::Basic {
        username: sim::DEFAULT_USERNAME.into(),
        password: SecretString::from(sim::DEFAULT_PASSWORD),
    }
}

fn build(config: AccountConfig) -> AccountClient {
    install_crypto();
    AccountClient::new(config).unwrap()
}

fn fast_sim_config() -> SimConfig {
    SimConfig {
        provisioning: Duration::from_millis(300),
        deletion: Duration::from_millis(200),
        endpoint_pending: Duration::from_millis(100),
        ..SimConfig::default()
    }
}

async fn start_sim() -> SimHandle {
    sim::start(fast_sim_config(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn sim_client(handle: &SimHandle, credentials: Credentials) -> AccountClient {
    build(AccountConfig::new(
        handle.base_url(),
        handle.config().account_id.clone(),
        credentials,
    ))
}

fn credential_request(name: &str) -> CreateCredential {
    CreateCredential {
        credentials_name: name.into(),
        aws_credentials: AwsCredentials {
            sts_role: StsRole {
                role_arn: format!("arn:aws:iam::123456789012:role/{name}"),
                external_id: None,
            },
        },
    }
}

fn storage_request(name: &str) -> CreateStorageConfiguration {
    CreateStorageConfiguration {
        storage_configuration_name: name.into(),
        root_bucket_info: RootBucketInfo {
            bucket_name: format!("{name}-bucket"),
        },
        role_arn: None,
    }
}

fn pas_request(name: &str, public: bool) -> PrivateAccessSettingsRequest {
    PrivateAccessSettingsRequest {
        private_access_settings_name: name.into(),
        region: "us-east-1".into(),
        public_access_enabled: public,
        private_access_level: Some(PrivateAccessLevel::Account),
        allowed_vpc_endpoint_ids: vec![],
    }
}

/// The objects of one kind in a simulator snapshot.
fn snapshot_len(handle: &SimHandle, kind: &str) -> usize {
    handle.snapshot()[kind].as_array().map_or(0, Vec::len)
}

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    #[allow(dead_code)]
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    fn is_token(&self) -> bool {
        self.path.starts_with("/oidc/")
    }
}

/// What the fake server does with one request.
enum Reply {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        delay: Duration,
    },
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self::Http {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "application/json", body)
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        if let Self::Http { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    fn delayed(mut self, d: Duration) -> Self {
        if let Self::Http { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A tiny HTTP/1.1 server: one request per connection, canned answers from a closure.
struct Fake {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let Some(req) = read_request(&mut stream).await else {
                        return;
                    };
                    recorded.lock().unwrap().push(req.clone());
                    match handler(&req) {
                        Reply::Drop => drop(stream),
                        Reply::Http {
                            status,
                            headers,
                            body,
                            delay,
                        } => {
                            tokio::time::sleep(delay).await;
                            let reason = http::StatusCode::from_u16(status)
                                .ok()
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("Unknown");
                            let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
                            for (k, v) in headers {
                                out.push_str(&format!("{k}: {v}\r\n"));
                            }
                            out.push_str(&format!(
                                "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            ));
                            let stream = stream.get_mut();
                            let _ = stream.write_all(out.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self, credentials: Credentials) -> AccountClient {
        build(self.config(credentials))
    }

    fn config(&self, credentials: Credentials) -> AccountConfig {
        AccountConfig::new(self.url(), ACCOUNT, credentials)
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    fn token_requests(&self) -> usize {
        self.requests().iter().filter(|r| r.is_token()).count()
    }

    fn api_requests(&self) -> usize {
        self.requests().iter().filter(|r| !r.is_token()).count()
    }
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(stream: &mut R) -> Option<Req> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    Some(Req {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A token endpoint issuing `tok-1`, `tok-2`, ... valid `ttl` seconds, in front of `api`.
fn with_tokens(
    ttl: u64,
    token_delay: Duration,
    api: impl Fn(&Req) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    let issued = AtomicUsize::new(0);
    move |req: &Req| {
        if req.is_token() {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(
                200,
                format!(
                    r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{ttl},"scope":"all-apis"}}"#
                ),
            )
            .delayed(token_delay)
        } else {
            api(req)
        }
    }
}

// ------------------------------------------------------------------------------------------------
// 1. Every endpoint against the simulator

/// Every kind through create/list/get/delete, the PAS replace, the workspace PATCH and the
/// in-use refusal, with OAuth M2M.
#[tokio::test]
async fn every_endpoint_works_against_the_simulator_with_oauth_m2m() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    c.check().await.unwrap();

    // Credentials.
    let cred: Credential = c.create(&credential_request("cred-a")).await.unwrap();
    assert!(!cred.credentials_id.is_empty());
    assert_eq!(cred.credentials_name, "cred-a");
    assert_eq!(
        cred.aws_credentials.sts_role.role_arn,
        "arn:aws:iam::123456789012:role/cred-a"
    );
    let got: Credential = c.get(&cred.credentials_id).await.unwrap();
    assert_eq!(got.credentials_id, cred.credentials_id);
    let listed: Vec<Credential> = c.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].credentials_name, "cred-a");

    // Storage configurations.
    let storage: StorageConfiguration = c.create(&storage_request("root")).await.unwrap();
    assert_eq!(storage.root_bucket_info.bucket_name, "root-bucket");
    let got: StorageConfiguration = c.get(&storage.storage_configuration_id).await.unwrap();
    assert_eq!(got.storage_configuration_name, "root");
    assert_eq!(c.list::<StorageConfiguration>().await.unwrap().len(), 1);

    // Customer-managed keys.
    let key: CustomerManagedKey = c
        .create(&CreateCustomerManagedKey {
            use_cases: vec![KeyUseCase::ManagedServices, KeyUseCase::Storage],
            aws_key_info: AwsKeyInfo {
                key_arn: "arn:aws:kms:us-east-1:123456789012:key/k1".into(),
                key_alias: Some("alias/k".into()),
                key_region: None,
                reuse_key_for_cluster_volumes: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(
        key.aws_key_info.as_ref().unwrap().key_region.as_deref(),
        Some("us-east-1")
    );
    assert_eq!(key.use_cases.len(), 2);
    let got: CustomerManagedKey = c.get(&key.customer_managed_key_id).await.unwrap();
    assert_eq!(got.customer_managed_key_id, key.customer_managed_key_id);
    assert_eq!(c.list::<CustomerManagedKey>().await.unwrap().len(), 1);

    // Networks.
    let net: Network = c
        .create(&CreateNetwork {
            network_name: "net".into(),
            vpc_id: "vpc-1".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_ids: vec!["sg-1".into()],
            vpc_endpoints: None,
        })
        .await
        .unwrap();
    assert_eq!(net.subnet_ids, vec!["subnet-a", "subnet-b"]);
    let got: Network = c.get(&net.network_id).await.unwrap();
    assert_eq!(got.network_name, "net");
    assert_eq!(c.list::<Network>().await.unwrap().len(), 1);

    // VPC endpoints.
    let vpce: VpcEndpoint = c
        .create(&CreateVpcEndpoint {
            vpc_endpoint_name: "rest".into(),
            aws_vpc_endpoint_id: "vpce-0123".into(),
            region: "us-east-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(vpce.aws_vpc_endpoint_id, "vpce-0123");
    let got: VpcEndpoint = c.get(&vpce.vpc_endpoint_id).await.unwrap();
    assert_eq!(got.vpc_endpoint_name, "rest");
    assert_eq!(c.list::<VpcEndpoint>().await.unwrap().len(), 1);

    // Private access settings, replaced with PUT.
    let pas: PrivateAccessSettings = c.create(&pas_request("pas", false)).await.unwrap();
    assert_eq!(pas.public_access_enabled, Some(false));
    let replaced = c
        .replace_private_access_settings(
            &pas.private_access_settings_id,
            &pas_request("pas2", true),
        )
        .await
        .unwrap()
        .expect("the simulator answers PUT with the object");
    assert_eq!(replaced.private_access_settings_name, "pas2");
    assert_eq!(replaced.public_access_enabled, Some(true));
    let got: PrivateAccessSettings = c.get(&pas.private_access_settings_id).await.unwrap();
    assert_eq!(got.private_access_settings_name, "pas2");
    assert_eq!(got.public_access_enabled, Some(true));
    assert_eq!(c.list::<PrivateAccessSettings>().await.unwrap().len(), 1);

    // Workspaces: create, poll to RUNNING, PATCH.
    let ws: Workspace = c
        .create(&CreateWorkspace {
            workspace_name: "ws".into(),
            aws_region: "us-east-1".into(),
            credentials_id: Some(cred.credentials_id.clone()),
            storage_configuration_id: Some(storage.storage_configuration_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ws.workspace_id > 0);
    let mut status = ws.workspace_status.clone();
    for _ in 0..100 {
        if status == Some(WorkspaceStatus::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = c
            .get::<Workspace>(&ws.workspace_id.to_string())
            .await
            .unwrap()
            .workspace_status;
    }
    assert_eq!(status, Some(WorkspaceStatus::Running));
    assert_eq!(c.list::<Workspace>().await.unwrap().len(), 1);
    let tags = BTreeMap::from([("team".to_string(), "platform".to_string())]);
    let updated = c
        .update_workspace(
            ws.workspace_id,
            &WorkspaceUpdate {
                custom_tags: Some(tags.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("the simulator answers PATCH with the workspace");
    assert_eq!(updated.workspace_id, ws.workspace_id);
    assert_eq!(updated.custom_tags, tags);
    let got: Workspace = c.get(&ws.workspace_id.to_string()).await.unwrap();
    assert_eq!(got.custom_tags, tags, "the update_mask named custom_tags");

    // A serverless workspace: compute_mode goes out, no credential or storage is needed, and the
    // answer says Databricks hosts its storage.
    let serverless: Workspace = c
        .create(&CreateWorkspace {
            workspace_name: "ws-serverless".into(),
            aws_region: "sa-east-1".into(),
            compute_mode: Some(ComputeMode::Serverless),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(serverless.compute_mode, Some(ComputeMode::Serverless));
    assert_eq!(serverless.storage_mode, Some(StorageMode::DefaultStorage));
    assert_eq!(serverless.credentials_id, None);
    let got: Workspace = c.get(&serverless.workspace_id.to_string()).await.unwrap();
    assert_eq!(got.storage_mode, Some(StorageMode::DefaultStorage));
    let classic: Workspace = c.get(&ws.workspace_id.to_string()).await.unwrap();
    assert_eq!(classic.storage_mode, Some(StorageMode::CustomerHosted));
    c.delete::<Workspace>(&serverless.workspace_id.to_string())
        .await
        .unwrap();

    // A credential used by the workspace cannot go.
    let err = c
        .delete::<Credential>(&cred.credentials_id)
        .await
        .unwrap_err();
    assert!(err.is_in_use(), "{err}");
    assert_eq!(
        err.api().unwrap().in_use_by_workspace(),
        Some(ws.workspace_id)
    );
    assert_eq!(err.category(), "Rejected");
    assert!(!err.is_retryable());

    // Delete the workspace and wait until it is gone.
    c.delete::<Workspace>(&ws.workspace_id.to_string())
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        match c.get::<Workspace>(&ws.workspace_id.to_string()).await {
            Err(e) if e.is_not_found() => {
                assert_eq!(e.category(), "NotFound");
                gone = true;
                break;
            }
            Ok(w) => assert_eq!(w.workspace_status, Some(WorkspaceStatus::Cancelling)),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the workspace never disappeared");

    // Delete everything else; each is then not found.
    c.delete::<PrivateAccessSettings>(&pas.private_access_settings_id)
        .await
        .unwrap();
    c.delete::<VpcEndpoint>(&vpce.vpc_endpoint_id)
        .await
        .unwrap();
    c.delete::<Network>(&net.network_id).await.unwrap();
    c.delete::<CustomerManagedKey>(&key.customer_managed_key_id)
        .await
        .unwrap();
    c.delete::<StorageConfiguration>(&storage.storage_configuration_id)
        .await
        .unwrap();
    c.delete::<Credential>(&cred.credentials_id).await.unwrap();
    assert!(
        c.get::<PrivateAccessSettings>(&pas.private_access_settings_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.get::<VpcEndpoint>(&vpce.vpc_endpoint_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.get::<Network>(&net.network_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.get::<CustomerManagedKey>(&key.customer_managed_key_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.get::<StorageConfiguration>(&storage.storage_configuration_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = c
        .delete::<Credential>(&cred.credentials_id)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    for (kind, items) in s.snapshot().as_object().unwrap() {
        assert!(items.as_array().unwrap().is_empty(), "{kind} left behind");
    }
    let counts = s.request_count();
    assert_eq!(counts.get("PATCH /workspaces/{id}", 200), 1);
    assert_eq!(counts.get("PUT /private-access-settings/{id}", 200), 1);
    assert_eq!(
        counts.get("POST /workspaces", 200),
        2,
        "classic and serverless"
    );
    s.shutdown().await;
}

/// Legacy basic auth works; a wrong password is an authentication error that is not retried.
#[tokio::test]
async fn basic_auth_works_and_a_wrong_password_is_unauthorized() {
    let s = start_sim().await;
    let c = sim_client(&s, basic());
    c.check().await.unwrap();
    let cred: Credential = c.create(&credential_request("basic")).await.unwrap();
    assert_eq!(c.list::<Credential>().await.unwrap()[0], cred);

    let bad = sim_client(
        &s,
        Credentials::Basic {
            username: sim::DEFAULT_USERNAME.into(),
            password: SecretString::from("wrong"),
        },
    );
    let err = bad.check().await.unwrap_err();
    assert_eq!(err.api().unwrap().status, 401);
    assert!(err.is_auth());
    assert_eq!(err.category(), "Unauthorized");
    assert!(!err.is_retryable());
    assert_eq!(
        s.request_count().get("GET /credentials", 401),
        1,
        "resending the same password after a 401 is pointless"
    );
    s.shutdown().await;
}

/// A wrong M2M secret fails at the token endpoint, without calling the API.
#[tokio::test]
async fn a_wrong_client_secret_is_refused_by_the_token_endpoint() {
    let s = start_sim().await;
    let c = sim_client(
        &s,
        Credentials::OAuthM2M {
            client_id: sim::DEFAULT_CLIENT_ID.into(),
            client_secret: SecretString::from("wrong"),
        },
    );
    let err = c.check().await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::Refused { status: 401, code, .. }) if code == "invalid_client"),
        "{err:?}"
    );
    assert!(err.is_auth());
    assert!(!err.is_retryable());
    assert_eq!(err.category(), "AuthFailed");
    assert_eq!(s.request_count().total("GET /credentials"), 0);
    s.shutdown().await;
}

fn fake_jwt() -> String {
    use base64::Engine;
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        e(r#"{"alg":"RS256","typ":"JWT"}"#),
        e(
            r#"{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:ops:op","aud":["databricks"]}"#
        ),
        e("signature")
    )
}

/// Token federation: the JWT in a file is exchanged for an account token; a file that is not a
/// JWT is refused.
#[tokio::test]
async fn token_federation_exchanges_the_jwt_from_a_file() {
    let s = start_sim().await;
    let dir = std::env::temp_dir().join(format!("client-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{}\n", fake_jwt())).unwrap();
    let c = sim_client(
        &s,
        Credentials::Federation {
            client_id: Some(sim::DEFAULT_CLIENT_ID.into()),
            token_file: token_file.clone(),
        },
    );
    c.check().await.unwrap();
    let cred: Credential = c.create(&credential_request("fed")).await.unwrap();
    assert_eq!(cred.credentials_name, "fed");

    let bad_file = dir.join("not-a-jwt");
    std::fs::write(&bad_file, "hello").unwrap();
    let bad = sim_client(
        &s,
        Credentials::Federation {
            client_id: None,
            token_file: bad_file,
        },
    );
    let err = bad.check().await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::Refused { status: 400, .. })),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let mut cfg = AccountConfig::new(
        s.base_url(),
        s.config().account_id.clone(),
        Credentials::Federation {
            client_id: None,
            token_file: dir.join("missing"),
        },
    );
    cfg.retry_budget = Duration::from_millis(300);
    let err = build(cfg).check().await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::TokenFile { .. })),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    s.shutdown().await;
}

// ------------------------------------------------------------------------------------------------
// 2. Error body shapes

/// Serves one canned error for every API call (basic auth, so no token endpoint) and returns the
/// error of a `get` and how many attempts the client made. The retry budget (1 s) leaves room for
/// at least one retry after the first backoff (at most 500 ms), so one attempt means the error was
/// not retried, not that the budget was spent.
async fn error_of(reply: impl Fn() -> Reply + Send + Sync + 'static) -> (Error, usize) {
    let fake = Fake::start(move |_| reply()).await;
    let mut cfg = fake.config(basic());
    cfg.retry_budget = Duration::from_secs(1);
    let c = build(cfg);
    let err = c.get::<Credential>("c-1").await.unwrap_err();
    (err, fake.api_requests())
}

/// The standard JSON body with a string `error_code`.
#[tokio::test]
async fn a_json_error_code_string_is_parsed() {
    let (err, attempts) = error_of(|| {
        Reply::json(
            404,
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Credential c-1 does not exist."}"#,
        )
    })
    .await;
    let api = err.api().expect("an API error");
    assert_eq!(api.status, 404);
    assert_eq!(api.error_code, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(api.message, "Credential c-1 does not exist.");
    assert_eq!(api.method, "GET");
    assert_eq!(
        api.path,
        format!("/api/2.0/accounts/{ACCOUNT}/credentials/c-1")
    );
    assert!(err.is_not_found());
    assert!(!err.is_in_use());
    assert!(!err.is_retryable());
    assert_eq!(err.retry_after(), None);
    assert_eq!(err.category(), "NotFound");
    assert_eq!(attempts, 1);

    // The not-found code also counts under another status.
    let (err, _) =
        error_of(|| Reply::json(400, r#"{"error_code":"NOT_FOUND","message":"x"}"#)).await;
    assert!(err.is_not_found());
}

/// Some endpoints send a numeric `error_code`.
#[tokio::test]
async fn a_numeric_error_code_is_parsed() {
    let (err, attempts) = error_of(|| {
        Reply::json(
            403,
            r#"{"error_code": 403, "message": "Invalid access token."}"#,
        )
    })
    .await;
    let api = err.api().unwrap();
    assert_eq!(api.error_code, "403");
    assert_eq!(api.message, "Invalid access token.");
    assert!(err.is_auth());
    assert!(!err.is_not_found());
    assert!(!err.is_retryable());
    assert_eq!(err.category(), "Unauthorized");
    assert_eq!(attempts, 1);
}

/// Legacy `{"error": "..."}` bodies.
#[tokio::test]
async fn a_legacy_error_field_is_parsed() {
    let (err, _) = error_of(|| Reply::json(400, r#"{"error":"Bad things happened"}"#)).await;
    let api = err.api().unwrap();
    assert_eq!(api.message, "Bad things happened");
    assert_eq!(err.category(), "Rejected");
}

/// `text/plain` `CODE: message`, including the IAM-propagation and in-use texts.
#[tokio::test]
async fn a_plain_text_code_and_message_are_parsed() {
    let (err, attempts) = error_of(|| {
        Reply::new(
            400,
            "text/plain",
            "MALFORMED_REQUEST: Failed credential validation checks: please use a valid cross account IAM role with permissions setup correctly",
        )
    })
    .await;
    let api = err.api().unwrap();
    assert_eq!(api.error_code, "MALFORMED_REQUEST");
    assert!(
        api.message
            .starts_with("Failed credential validation checks")
    );
    assert!(err.is_credential_propagation());
    assert!(!err.is_in_use());
    assert!(!err.is_not_found());
    assert!(!err.is_retryable());
    assert_eq!(err.category(), "Rejected");
    assert_eq!(attempts, 1, "a 400 is not retried");

    let (err, _) = error_of(|| {
        Reply::new(
            400,
            "text/plain; charset=utf-8",
            "INVALID_STATE: Unable to delete, Network is being used by active workspace 538037098245817",
        )
    })
    .await;
    assert!(err.is_in_use());
    assert!(!err.is_credential_propagation());
    assert_eq!(err.api().unwrap().error_code, "INVALID_STATE");
    assert_eq!(
        err.api().unwrap().in_use_by_workspace(),
        Some(538_037_098_245_817)
    );
}

/// HTML error pages: the `<pre>` text is the message, the reason phrase the code.
#[tokio::test]
async fn an_html_error_page_uses_its_pre_text() {
    let (err, attempts) = error_of(|| {
        Reply::new(
            502,
            "text/html",
            "<html><head><title>Error 502</title></head><body><h2>HTTP ERROR: 502</h2><pre>upstream connect error or disconnect/reset before headers</pre></body></html>",
        )
    })
    .await;
    let api = err.api().unwrap();
    assert_eq!(api.status, 502);
    assert_eq!(api.error_code, "BAD_GATEWAY");
    assert_eq!(
        api.message,
        "upstream connect error or disconnect/reset before headers"
    );
    assert_eq!(err.category(), "ServerError");
    assert!(!err.is_not_found());
    assert!(attempts > 1, "a read is retried after a 502: {attempts}");
}

/// An empty body gives the status text.
#[tokio::test]
async fn an_empty_error_body_uses_the_status_text() {
    let (err, attempts) = error_of(|| Reply::new(500, "text/plain", "")).await;
    let api = err.api().unwrap();
    assert_eq!(api.error_code, "INTERNAL_SERVER_ERROR");
    assert_eq!(api.message, "Internal Server Error");
    assert!(!err.is_retryable(), "a write is not retried after a 500");
    assert_eq!(err.category(), "ServerError");
    assert!(attempts > 1, "a read is retried after a 500: {attempts}");

    // An empty 404 may come from any proxy in the way: it does not confirm the object is gone.
    let (err, _) = error_of(|| Reply::new(404, "text/plain", "")).await;
    assert!(!err.is_not_found());
    assert_eq!(err.api().unwrap().error_code, "NOT_FOUND");
}

/// A 429 carries its `Retry-After`; a rate-limit code under another status is retryable too.
#[tokio::test]
async fn rate_limit_errors_are_retryable_and_carry_retry_after() {
    let (err, attempts) = error_of(|| {
        Reply::json(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"Too many requests."}"#,
        )
        .header("Retry-After", "7")
    })
    .await;
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.category(), "RateLimited");
    assert_eq!(
        attempts, 1,
        "a Retry-After beyond the retry budget ends the call at once"
    );

    let (err, _) = error_of(|| {
        Reply::json(
            400,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
        )
    })
    .await;
    assert!(err.is_retryable());
    assert_eq!(err.category(), "RateLimited");
}

const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Databricks - Sign in</title></head><body><div id=\"login\"></div></body></html>";

/// A 200 login page (the mis-host / outage pattern) is a decode error on list and get, never an
/// empty list or a panic.
#[tokio::test]
async fn a_200_html_login_page_is_a_decode_error() {
    let fake = Fake::start(|_| Reply::new(200, "text/html; charset=utf-8", LOGIN_PAGE)).await;
    let c = fake.client(basic());
    let err = c.list::<Credential>().await.unwrap_err();
    assert!(matches!(&err, Error::Decode { status: 200, .. }), "{err:?}");
    assert_eq!(err.category(), "BadResponse");
    assert!(!err.is_retryable());
    assert!(err.api().is_none());
    assert!(err.to_string().contains("account console host"), "{err}");
    assert_eq!(fake.api_requests(), 1, "a decode error is not retried");
    let err = c.get::<Workspace>("123").await.unwrap_err();
    assert!(matches!(&err, Error::Decode { .. }), "{err:?}");
}

/// The same login page must not pass for a successful delete, PATCH or PUT either.
#[tokio::test]
async fn a_200_html_login_page_fails_delete_update_and_replace() {
    let fake = Fake::start(|_| Reply::new(200, "text/html", LOGIN_PAGE)).await;
    let c = fake.client(basic());
    let err = c.delete::<Credential>("c-1").await.unwrap_err();
    assert!(matches!(&err, Error::Decode { .. }), "delete: {err:?}");
    let err = c
        .update_workspace(
            1,
            &WorkspaceUpdate {
                credentials_id: Some("c".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Decode { .. }), "update: {err:?}");
    let err = c
        .replace_private_access_settings("p-1", &pas_request("p", true))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Decode { .. }), "replace: {err:?}");
}

/// The legacy API answers `{}` or nothing to PATCH, PUT and DELETE: that is a success without
/// an object. The PATCH carries the update mask.
#[tokio::test]
async fn empty_successful_answers_are_accepted() {
    let fake = Fake::start(|r| {
        if r.method == "DELETE" {
            Reply::new(200, "application/json", "")
        } else {
            Reply::json(200, "{}")
        }
    })
    .await;
    let c = fake.client(basic());
    c.delete::<Network>("n-1").await.unwrap();
    let updated = c
        .update_workspace(
            42,
            &WorkspaceUpdate {
                network_id: Some("n".into()),
                credentials_id: Some("c".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated, None);
    let replaced = c
        .replace_private_access_settings("p-1", &pas_request("p", true))
        .await
        .unwrap();
    assert_eq!(replaced, None);
    let reqs = fake.requests();
    let patch = reqs.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(
        patch.path,
        format!(
            "/api/2.0/accounts/{ACCOUNT}/workspaces/42?update_mask=credentials_id%2Cnetwork_id"
        )
    );
    assert_eq!(patch.header("content-type"), Some("application/json"));
    let put = reqs.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(
        put.path,
        format!("/api/2.0/accounts/{ACCOUNT}/private-access-settings/p-1")
    );
    for r in &reqs {
        assert_eq!(r.header("accept"), Some("application/json"));
        assert!(r.header("authorization").unwrap().starts_with("Basic "));
    }
}

// ------------------------------------------------------------------------------------------------
// 3. Tokens

/// Tokens that live 5 s are refreshed ahead of expiry (a fifth of their lifetime before), not
/// sooner and not later: an API that refuses expired tokens never answers 401, and the second
/// token is fetched once the first is 4 s old.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_expiry() {
    const LIFETIME: Duration = Duration::from_secs(5);
    let issued: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let (issued_token, issued_api) = (issued.clone(), issued.clone());
    let counter = AtomicUsize::new(0);
    let rejected = Arc::new(AtomicUsize::new(0));
    let rejected_api = rejected.clone();
    let fake = Fake::start(move |r| {
        if r.is_token() {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("tok-{n}");
            issued_token
                .lock()
                .unwrap()
                .insert(token.clone(), Instant::now());
            return Reply::json(
                200,
                format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                    LIFETIME.as_secs()
                ),
            );
        }
        let fresh = r
            .bearer()
            .and_then(|t| issued_api.lock().unwrap().get(t).copied())
            .is_some_and(|at| at.elapsed() < LIFETIME);
        if fresh {
            Reply::json(200, "[]")
        } else {
            rejected_api.fetch_add(1, Ordering::SeqCst);
            Reply::json(
                401,
                r#"{"error_code":"UNAUTHENTICATED","message":"expired"}"#,
            )
        }
    })
    .await;
    let c = fake.client(m2m());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    while !fake.requests().iter().any(|r| r.bearer() == Some("tok-2")) {
        assert!(Instant::now() < deadline, "no second token");
        c.list::<Credential>().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client switches 1 s (the refresh lead) before expiry: a request would have to take
    // that long between the client's check of the token and the server's for this to fail.
    assert_eq!(
        rejected.load(Ordering::SeqCst),
        0,
        "a token was used after it expired"
    );
    assert_eq!(fake.token_requests(), 2);
    let tokens: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| !r.is_token())
        .filter_map(|r| r.bearer().map(str::to_string))
        .collect();
    assert_eq!(tokens.first().map(String::as_str), Some("tok-1"));
    assert_eq!(tokens.last().map(String::as_str), Some("tok-2"));
    // Not refreshed early: the first token was fetched after `start`, and is kept 4 s.
    let second = issued.lock().unwrap()["tok-2"];
    assert!(
        second.duration_since(start) >= LIFETIME - LIFETIME / 5,
        "refreshed {:?} after the first fetch",
        second.duration_since(start)
    );
}

/// Twenty concurrent calls on a cold cache share one token fetch.
#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let fake = Fake::start(with_tokens(3600, Duration::from_millis(300), |r| {
        assert_eq!(r.bearer(), Some("tok-1"));
        Reply::json(200, "[]")
    }))
    .await;
    let mut cfg = fake.config(m2m());
    cfg.rate_limit = 100.0;
    let c = build(cfg);
    let calls = (0..20).map(|_| {
        let c = c.clone();
        async move { c.list::<Credential>().await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.api_requests(), 20);
    // The token request is the documented client-credentials form with HTTP Basic client auth.
    let token_req = fake.requests().into_iter().find(Req::is_token).unwrap();
    assert_eq!(token_req.method, "POST");
    assert_eq!(token_req.path, format!("/oidc/accounts/{ACCOUNT}/v1/token"));
    assert!(
        token_req
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(token_req.body.contains("grant_type=client_credentials"));
    assert!(token_req.body.contains("scope=all-apis"));
}

/// A 401 on an API call makes the client fetch a new token once and retry.
#[tokio::test]
async fn a_401_fetches_a_new_token_once_and_retries() {
    let fake = Fake::start(with_tokens(3600, Duration::ZERO, |r| {
        if r.bearer() == Some("tok-1") {
            Reply::json(
                401,
                r#"{"error_code":"UNAUTHENTICATED","message":"revoked"}"#,
            )
        } else {
            Reply::json(200, "[]")
        }
    }))
    .await;
    let c = fake.client(m2m());
    assert!(c.list::<Credential>().await.unwrap().is_empty());
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.api_requests(), 2);
    // The new token stays cached.
    c.list::<Credential>().await.unwrap();
    assert_eq!(fake.token_requests(), 2);

    // A server that refuses every token: one refresh, then the 401 is returned.
    let fake = Fake::start(with_tokens(3600, Duration::ZERO, |_| {
        Reply::json(401, r#"{"error_code":"UNAUTHENTICATED","message":"no"}"#)
    }))
    .await;
    let c = fake.client(m2m());
    let err = c.list::<Credential>().await.unwrap_err();
    assert!(err.is_auth());
    assert_eq!(err.category(), "Unauthorized");
    assert_eq!(fake.api_requests(), 2);
    assert_eq!(fake.token_requests(), 2);
}

/// When a token is revoked under many concurrent calls, they all get a 401 but share one new
/// token rather than each throwing away the one the others just fetched.
#[tokio::test]
async fn concurrent_401s_share_one_token_refresh() {
    let fake = Fake::start(with_tokens(3600, Duration::from_millis(50), |r| {
        if r.bearer() == Some("tok-1") {
            Reply::json(
                401,
                r#"{"error_code":"UNAUTHENTICATED","message":"revoked"}"#,
            )
            .delayed(Duration::from_millis(20))
        } else {
            Reply::json(200, "[]")
        }
    }))
    .await;
    let mut cfg = fake.config(m2m());
    cfg.rate_limit = 100.0;
    let c = build(cfg);
    let calls = (0..10).map(|_| {
        let c = c.clone();
        async move { c.list::<Credential>().await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(fake.api_requests(), 20);
    assert_eq!(
        fake.token_requests(),
        2,
        "one fetch, then one shared refresh"
    );
}

/// A token endpoint that is briefly unavailable is retried.
#[tokio::test]
async fn a_transient_token_endpoint_failure_is_retried() {
    let n = AtomicUsize::new(0);
    let fake = Fake::start(move |r| {
        if r.is_token() && n.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::new(503, "text/plain", "");
        }
        if r.is_token() {
            return Reply::json(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#,
            );
        }
        Reply::json(200, "[]")
    })
    .await;
    let c = fake.client(m2m());
    c.check().await.unwrap();
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.api_requests(), 1);
}

// ------------------------------------------------------------------------------------------------
// 4. Retries

/// A 429 with `Retry-After: 1` is retried after exactly that long (on a paused clock, which
/// only the client's own sleeps advance).
#[tokio::test(start_paused = true)]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    c.check().await.unwrap();
    s.set_faults(Faults {
        rate_limit: Some(RateLimit {
            count: 1,
            retry_after_seconds: 1,
            path_contains: Some("/networks".into()),
        }),
        ..Faults::default()
    });
    let start = tokio::time::Instant::now();
    c.list::<Network>().await.unwrap();
    let elapsed = start.elapsed();
    // Retry-After (1 s) is longer than the first backoff (250-500 ms), so it decides the wait;
    // the timer rounds a sleep up to its next millisecond.
    assert!(
        (Duration::from_secs(1)..=Duration::from_millis(1001)).contains(&elapsed),
        "{elapsed:?}"
    );
    let counts = s.request_count();
    assert_eq!(counts.get("GET /networks", 429), 1);
    assert_eq!(counts.get("GET /networks", 200), 1);
    s.shutdown().await;
}

/// Two 503s then a 200: a read succeeds after backing off, in three attempts. A 504 is retried
/// too. (A create is not: see `a_create_answered_with_a_5xx_is_outcome_unknown_and_not_retried`.)
/// The clock is paused: only the client's own sleeps advance it.
#[tokio::test(start_paused = true)]
async fn a_503_twice_then_200_succeeds_with_backoff() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    c.check().await.unwrap();
    s.set_faults(Faults {
        server_error: Some(ServerError {
            count: 2,
            status: 503,
            path_contains: Some("/credentials".into()),
            method: None,
        }),
        ..Faults::default()
    });
    let start = tokio::time::Instant::now();
    let creds: Vec<Credential> = c.list().await.unwrap();
    let elapsed = start.elapsed();
    assert!(creds.is_empty());
    let counts = s.request_count();
    assert_eq!(counts.get("GET /credentials", 503), 2);
    assert_eq!(
        counts.get("GET /credentials", 200),
        2,
        "the check, then the list"
    );
    // Backoff: 500 ms, then 1 s, each with 50-100 % jitter; the timer rounds each sleep up to
    // its next millisecond.
    assert!(
        (Duration::from_millis(750)..=Duration::from_millis(1502)).contains(&elapsed),
        "{elapsed:?}"
    );

    s.set_faults(Faults {
        server_error: Some(ServerError {
            count: 1,
            status: 504,
            path_contains: None,
            method: None,
        }),
        ..Faults::default()
    });
    c.list::<Credential>().await.unwrap();
    assert_eq!(s.request_count().get("GET /credentials", 504), 1);
    s.shutdown().await;
}

/// A non-retryable 400, and a 500 on a write, are answered after exactly one attempt; a read
/// (which changes nothing) is repeated after a 500.
#[tokio::test]
async fn non_retryable_errors_are_not_retried() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    let err = c
        .create::<CustomerManagedKey>(&CreateCustomerManagedKey {
            use_cases: vec![KeyUseCase::Storage],
            aws_key_info: AwsKeyInfo {
                key_arn: "not-an-arn".into(),
                ..Default::default()
            },
        })
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().status, 400, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(s.request_count().total("POST /customer-managed-keys"), 1);

    let fail_once = || Faults {
        server_error: Some(ServerError {
            count: 1,
            status: 500,
            path_contains: None,
            method: None,
        }),
        ..Faults::default()
    };
    s.set_faults(fail_once());
    let err = c
        .create::<CustomerManagedKey>(&CreateCustomerManagedKey {
            use_cases: vec![KeyUseCase::Storage],
            aws_key_info: AwsKeyInfo {
                key_arn: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
                ..Default::default()
            },
        })
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().status, 500);
    assert_eq!(err.category(), "ServerError");
    assert_eq!(s.request_count().total("POST /customer-managed-keys"), 2);

    s.set_faults(fail_once());
    c.list::<Network>().await.expect("the read is repeated");
    assert_eq!(s.request_count().get("GET /networks", 500), 1);
    assert_eq!(s.request_count().get("GET /networks", 200), 1);
    s.shutdown().await;
}

/// A server that always answers 503 makes the call give up once the next wait would end past
/// the retry budget, returning the last error. With `Retry-After: 1` and a 1.9 s budget that is
/// exactly after the second attempt (sent at least 1 s in, so the next wait would end at 2 s or
/// later); the first attempt would have to take 0.9 s for the count to change.
#[tokio::test]
async fn the_retry_budget_bounds_the_time_spent_on_503s() {
    let fake = Fake::start(|_| {
        Reply::json(
            503,
            r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"later"}"#,
        )
        .header("Retry-After", "1")
    })
    .await;
    let mut cfg = fake.config(basic());
    cfg.retry_budget = Duration::from_millis(1900);
    let c = build(cfg);
    let start = Instant::now();
    let err = c.list::<Credential>().await.unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.api().unwrap().status, 503);
    assert!(err.is_retryable());
    assert_eq!(fake.api_requests(), 2, "attempts");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
}

// ------------------------------------------------------------------------------------------------
// 5. Lost responses and dropped connections

/// A create whose response is lost is `OutcomeUnknown`, not retried, and found by name after.
#[tokio::test]
async fn a_lost_create_response_is_outcome_unknown_and_not_retried() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    c.check().await.unwrap();
    s.set_faults(Faults {
        lost_response: Some(LostResponse {
            count: 1,
            route: Some("POST /credentials".into()),
            status: 0,
            ..LostResponse::default()
        }),
        ..Faults::default()
    });
    let err = c
        .create::<Credential>(&credential_request("lost"))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(err.category(), "OutcomeUnknown");
    assert_eq!(s.request_count().total("POST /credentials"), 1);
    assert_eq!(snapshot_len(&s, "credentials"), 1);
    let found: Vec<Credential> = c.list().await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].credentials_name, "lost");
    s.shutdown().await;
}

/// A create committed before the server answered 503 (or 500, 502, 504) is `OutcomeUnknown` and
/// sent once: retrying it would make a second object.
#[tokio::test]
async fn a_create_answered_with_a_5xx_is_outcome_unknown_and_not_retried() {
    for (i, status) in [500u16, 502, 503, 504].into_iter().enumerate() {
        let s = start_sim().await;
        let c = sim_client(&s, m2m());
        c.check().await.unwrap();
        s.set_faults(Faults {
            lost_response: Some(LostResponse {
                count: 1,
                route: Some("POST /credentials".into()),
                status,
                ..LostResponse::default()
            }),
            ..Faults::default()
        });
        let err = c
            .create::<Credential>(&credential_request(&format!("committed-{i}")))
            .await
            .unwrap_err();
        assert!(err.is_outcome_unknown(), "{status}: {err:?}");
        assert_eq!(err.api().map(|a| a.status), Some(status));
        assert_eq!(
            s.request_count().total("POST /credentials"),
            1,
            "{status}: sent once"
        );
        assert_eq!(
            snapshot_len(&s, "credentials"),
            1,
            "{status}: committed once"
        );
        s.shutdown().await;
    }
}

/// A 429 on a create is not an unknown outcome: the server refused it before doing anything,
/// so the client waits and sends it again.
#[tokio::test]
async fn a_rate_limited_create_is_retried() {
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    c.check().await.unwrap();
    s.set_faults(Faults {
        rate_limit: Some(RateLimit {
            count: 1,
            retry_after_seconds: 1,
            path_contains: Some("/credentials".into()),
        }),
        ..Faults::default()
    });
    c.create::<Credential>(&credential_request("throttled"))
        .await
        .unwrap();
    let counts = s.request_count();
    assert_eq!(counts.get("POST /credentials", 429), 1);
    assert_eq!(counts.get("POST /credentials", 200), 1);
    assert_eq!(snapshot_len(&s, "credentials"), 1);
    s.shutdown().await;
}

/// A GET whose connection drops without an answer is retried.
#[tokio::test]
async fn a_dropped_get_connection_is_retried() {
    let n = AtomicUsize::new(0);
    let fake = Fake::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Drop
        } else {
            Reply::json(200, r#"[{"network_id":"n-1","network_name":"net"}]"#)
        }
    })
    .await;
    let c = fake.client(basic());
    let nets: Vec<Network> = c.list().await.unwrap();
    assert_eq!(nets[0].network_id, "n-1");
    assert_eq!(fake.api_requests(), 2);
}

/// A POST that never connected cannot have reached the server: a transport error, not an unknown
/// outcome.
#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = AccountConfig::new(format!("http://{addr}"), ACCOUNT, basic());
    cfg.retry_budget = Duration::from_millis(400);
    let c = build(cfg);
    let err = c
        .create::<Credential>(&credential_request("x"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Transport { .. }), "{err:?}");
    assert!(!err.is_outcome_unknown());
    assert!(err.is_retryable());
    assert_eq!(err.category(), "Transport");
}

// ------------------------------------------------------------------------------------------------
// 6. Client-side rate limit

/// Records how long the client-side rate limit held each call back.
#[derive(Default)]
struct Throttled(Mutex<Vec<Duration>>);

impl CallObserver for Throttled {
    fn observe(&self, record: &CallRecord<'_>) {
        self.0.lock().unwrap().push(record.throttled);
    }
}

/// With 5 requests per second, 15 calls take 2 s: a burst of 5, then one every 200 ms; with the
/// default (15 per second) they are never held back. The clock is paused, so only the limiter's
/// sleeps advance it.
#[tokio::test(start_paused = true)]
async fn the_client_side_rate_limit_spaces_calls() {
    let s = start_sim().await;
    let observed = Arc::new(Throttled::default());
    let mut cfg = AccountConfig::new(s.base_url(), s.config().account_id.clone(), m2m());
    cfg.rate_limit = 5.0;
    install_crypto();
    let slow = AccountClient::with_observer(cfg, Some(observed.clone())).unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..15 {
        slow.list::<Credential>().await.unwrap();
    }
    let elapsed = start.elapsed();
    // The timer rounds each of the ten sleeps up to its next millisecond.
    assert!(
        (Duration::from_millis(1999)..=Duration::from_millis(2010)).contains(&elapsed),
        "{elapsed:?}"
    );
    let held: Vec<u128> = observed
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_micros().div_ceil(1000))
        .collect();
    assert_eq!(
        held,
        [[0; 5].as_slice(), &[200; 10]].concat(),
        "ms held back"
    );

    let fast = sim_client(&s, m2m());
    let start = tokio::time::Instant::now();
    for _ in 0..15 {
        fast.list::<Credential>().await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    s.shutdown().await;
}

// ------------------------------------------------------------------------------------------------
// 7. Secrets

/// Neither the configuration nor the client shows a secret in `Debug`.
#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let secret = "s3cr3t-client-secret-value";
    let password = "pa55w0rd-value";
    for creds in [
        Credentials::OAuthM2M {
            client_id: "cid".into(),
            client_secret: SecretString::from(secret),
        },
        Credentials::Basic {
            username: "admin".into(),
            password: SecretString::from(password),
        },
    ] {
        let cfg = AccountConfig::new("https://accounts.cloud.databricks.com", ACCOUNT, creds);
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains(secret) && !shown.contains(password),
            "{shown}"
        );
        assert!(shown.contains("REDACTED"), "{shown}");
        let client = build(cfg.clone());
        let shown = format!("{client:?} {client:#?}");
        assert!(
            !shown.contains(secret) && !shown.contains(password),
            "{shown}"
        );
        assert!(shown.contains(ACCOUNT));
    }

    // Nor does an error from a refused secret or a failed API call show the secret or the token.
    let s = start_sim().await;
    let c = sim_client(
        &s,
        Credentials::OAuthM2M {
            client_id: sim::DEFAULT_CLIENT_ID.into(),
            client_secret: SecretString::from(secret),
        },
    );
    let err = c.check().await.unwrap_err();
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains(secret), "{shown}");
    s.shutdown().await;
}

// ------------------------------------------------------------------------------------------------
// 8. IDs in paths

/// An ID is one path segment: a slash or a dot segment in it (for example a composite
/// `account/id` import ID, or worse) must never reach another endpoint.
#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let fake = Fake::start(|r| {
        if r.method != "GET" {
            Reply::json(200, "{}")
        } else {
            Reply::json(
                400,
                r#"{"error_code":"MALFORMED_REQUEST","message":"Invalid credentialsId"}"#,
            )
        }
    })
    .await;
    let c = fake.client(basic());
    c.get::<Credential>("acc/c-1").await.unwrap_err();
    c.delete::<Credential>("../workspaces/538037098245817")
        .await
        .unwrap();
    c.replace_private_access_settings("p 1?x=y#z", &pas_request("p", true))
        .await
        .unwrap();
    c.delete::<Credential>("%2e%2E").await.unwrap();
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    let base = format!("/api/2.0/accounts/{ACCOUNT}");
    assert_eq!(
        paths,
        vec![
            format!("{base}/credentials/acc%2Fc-1"),
            format!("{base}/credentials/..%2Fworkspaces%2F538037098245817"),
            format!("{base}/private-access-settings/p%201%3Fx%3Dy%23z"),
            format!("{base}/credentials/%252e%252E"),
        ]
    );

    // Empty and dot IDs name no object at all: refused before anything is sent.
    for id in ["", ".", ".."] {
        let err = c.delete::<Credential>(id).await.unwrap_err();
        assert!(!err.is_retryable(), "{id:?}: {err}");
        assert!(!err.is_not_found(), "{id:?}: {err}");
        assert_eq!(err.category(), "Rejected", "{id:?}");
    }
    assert_eq!(fake.api_requests(), 4);
}

/// The NCC list follows `next_page_token` (the simulator pages by two) and rules are created,
/// listed and deleted under their NCC.
#[tokio::test]
async fn network_connectivity_configs_are_listed_across_pages() {
    use databricks_account_operator::databricks::models::{
        CreateNetworkConnectivityConfig, CreatePrivateEndpointRule, NetworkConnectivityConfig,
    };
    let s = start_sim().await;
    let c = sim_client(&s, m2m());
    let mut ids = Vec::new();
    for i in 0..5 {
        let n: NetworkConnectivityConfig = c
            .create(&CreateNetworkConnectivityConfig {
                name: format!("ncc-{i}"),
                region: "us-east-1".into(),
            })
            .await
            .unwrap();
        ids.push(n.network_connectivity_config_id);
    }
    let listed: Vec<String> = c
        .list::<NetworkConnectivityConfig>()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.network_connectivity_config_id)
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(
        s.request_count()
            .get("GET /network-connectivity-configs", 200),
        3,
        "five objects in pages of two"
    );
    let rule = c
        .create_private_endpoint_rule(
            &ids[0],
            &CreatePrivateEndpointRule {
                resource_names: vec!["bucket".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rules = c.list_private_endpoint_rules(&ids[0]).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].rule_id, rule.rule_id);
    c.delete_private_endpoint_rule(&ids[0], &rule.rule_id)
        .await
        .unwrap();
    c.delete::<NetworkConnectivityConfig>(&ids[1])
        .await
        .unwrap();
    assert!(
        c.get::<NetworkConnectivityConfig>(&ids[1])
            .await
            .unwrap_err()
            .is_not_found()
    );
    s.shutdown().await;
}

// ------------------------------------------------------------------------------------------------
// Workspace reachability (`AccountClient::probe_workspace`) against the simulator's workspace hosts

/// A simulator that serves its workspaces' hosts over TLS, publishing them in a hosts file
/// after `dns_delay`; returns it, the hosts file and the test CA's PEM.
async fn start_sim_with_workspace_hosts(
    dns_delay: Duration,
) -> (SimHandle, std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("ws-hosts-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    let ca = dir.join("ca.pem");
    let handle = sim::start(
        SimConfig {
            workspace_hosts: Some(sim::WorkspaceHosts {
                listen: "127.0.0.1:0".parse().unwrap(),
                ca_file: Some(ca.clone()),
                hosts_file: Some(hosts.clone()),
                dns_delay,
            }),
            ..fast_sim_config()
        },
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .await
    .unwrap();
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert_eq!(Some(&pem), handle.workspace_ca_pem.as_ref());
    (handle, hosts, pem)
}

/// A client of the simulator whose resolver maps the workspace domain to the hosts file and
/// that trusts `ca` (the production code path; only name resolution and the CA differ).
fn reach_client(
    handle: &SimHandle,
    hosts: &std::path::Path,
    ca: Option<&str>,
    credentials: Credentials,
) -> AccountClient {
    let mut config = AccountConfig::new(
        handle.base_url(),
        handle.config().account_id.clone(),
        credentials,
    );
    config.ca_bundle_pem = ca.map(|p| p.as_bytes().to_vec());
    let spec = format!("*.cloud.databricks.com=@{}", hosts.display());
    config.resolve = ResolveOverrides::parse([spec.as_str()]).unwrap();
    build(config)
}

async fn running_serverless_workspace(c: &AccountClient, name: &str) -> String {
    let ws: Workspace = c
        .create(&CreateWorkspace {
            workspace_name: name.into(),
            aws_region: "us-west-2".into(),
            compute_mode: Some(ComputeMode::Serverless),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Workspace = c.get(&ws.workspace_id.to_string()).await.unwrap();
        if got.workspace_status == Some(WorkspaceStatus::Running) {
            return got.deployment_name.unwrap();
        }
        assert!(Instant::now() < deadline, "not RUNNING: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The check tells DNS that has not propagated, a TLS path without the CA and refused
/// credentials apart, and answers once the host resolves, with each auth method.
#[tokio::test]
async fn workspace_probe_names_what_stands_in_the_way() {
    let (handle, hosts, ca) = start_sim_with_workspace_hosts(Duration::from_secs(2)).await;
    let c = reach_client(&handle, &hosts, Some(&ca), m2m());
    let deployment = running_serverless_workspace(&c, "reach-1").await;

    let err = c.probe_workspace(&deployment).await.unwrap_err();
    assert!(matches!(err, Unreachable::Dns(_)), "{err:?}");
    assert!(err.message().contains("no such host"), "{err:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        match c.probe_workspace(&deployment).await {
            Ok(url) => break url,
            Err(Unreachable::Dns(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(url, format!("https://{deployment}.cloud.databricks.com"));
    let counts = handle.request_count();
    assert_eq!(counts.get("POST /workspace/oidc/v1/token", 200), 1);
    assert_eq!(counts.get("GET /workspace/scim/v2/Me", 200), 1);

    // Basic auth sends its header to SCIM Me directly; federation exchanges at the workspace.
    let b = reach_client(&handle, &hosts, Some(&ca), basic());
    b.probe_workspace(&deployment).await.unwrap();
    assert_eq!(
        handle
            .request_count()
            .get("POST /workspace/oidc/v1/token", 200),
        1,
        "basic auth needs no token"
    );
    let dir = hosts.parent().unwrap();
    let jwt = dir.join("jwt");
    std::fs::write(&jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln").unwrap();
    let f = reach_client(
        &handle,
        &hosts,
        Some(&ca),
        Credentials::Federation {
            client_id: Some(sim::DEFAULT_CLIENT_ID.into()),
            token_file: jwt,
        },
    );
    f.probe_workspace(&deployment).await.unwrap();

    // Without the test CA: the public roots do not know it.
    let no_ca = reach_client(&handle, &hosts, None, m2m());
    let err = no_ca.probe_workspace(&deployment).await.unwrap_err();
    assert!(matches!(err, Unreachable::Tls(_)), "{err:?}");

    // The workspace refuses the service principal.
    handle.set_faults(Faults {
        workspace_unauthorized: true,
        ..Faults::default()
    });
    let err = c.probe_workspace(&deployment).await.unwrap_err();
    assert!(matches!(err, Unreachable::Unauthorized(_)), "{err:?}");
    assert!(!err.message().contains(sim::DEFAULT_CLIENT_SECRET));
    let err = b.probe_workspace(&deployment).await.unwrap_err();
    assert!(matches!(err, Unreachable::Unauthorized(_)), "{err:?}");
    handle.set_faults(Faults::default());

    // A simulator's workspace that no resolver override covers is not checked: a real
    // Databricks host of the same name must not get the simulator's credentials.
    let uncovered = sim_client(&handle, m2m());
    assert!(!uncovered.checks_workspace(&deployment));
    assert!(c.checks_workspace(&deployment));
    let err = uncovered.probe_workspace(&deployment).await.unwrap_err();
    assert!(err.message().contains("not checked"), "{err:?}");

    // A deployment name that is not one host label is never called.
    let err = c.probe_workspace("evil.example/x").await.unwrap_err();
    assert!(matches!(err, Unreachable::Unavailable(_)), "{err:?}");

    // A published host whose server is gone: refused, not DNS.
    let addr = handle.workspace_addr.unwrap();
    handle.shutdown().await;
    std::fs::write(
        &hosts,
        format!("{deployment}.cloud.databricks.com {addr}\n"),
    )
    .unwrap();
    let err = c.probe_workspace(&deployment).await.unwrap_err();
    assert!(matches!(err, Unreachable::Unavailable(_)), "{err:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
