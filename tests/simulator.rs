//! End-to-end tests of the Account API simulator over HTTP: the simulator runs in-process on an
//! ephemeral port and is driven with reqwest, as a real client would.

// Test helpers (outside #[test] functions) panic on purpose: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use databricks_account_sim::{
    self as sim, Faults, LostResponse, RateLimit, ServerError, SimConfig, SimHandle,
};
use serde_json::{Value, json};

struct Sim {
    handle: SimHandle,
    client: reqwest::Client,
    token: String,
}

struct Reply {
    status: u16,
    content_type: String,
    text: String,
    retry_after: Option<String>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// How long a wait for a workspace's next state may take before the test fails: many times the
/// provisioning and deletion times below.
const WAIT: Duration = Duration::from_secs(30);

fn fast_config() -> SimConfig {
    SimConfig {
        provisioning: Duration::from_millis(600),
        deletion: Duration::from_millis(300),
        endpoint_pending: Duration::from_millis(200),
        deployment_prefix: Some("acme".into()),
        ..SimConfig::default()
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_token(client: &reqwest::Client, handle: &SimHandle) -> String {
    let cfg = handle.config();
    let url = format!(
        "{}/oidc/accounts/{}/v1/token",
        handle.base_url(),
        cfg.account_id
    );
    let resp = client
        .post(url)
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], cfg.token_ttl.as_secs());
    assert_eq!(body["scope"], "all-apis");
    body["access_token"].as_str().unwrap().to_string()
}

async fn start(config: SimConfig) -> Sim {
    let handle = sim::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let client = client();
    let token = get_token(&client, &handle).await;
    Sim {
        handle,
        client,
        token,
    }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/2.0/accounts/{}{path}",
            self.handle.base_url(),
            self.handle.config().account_id
        )
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let text = resp.text().await.unwrap();
        Reply {
            status,
            content_type,
            text,
            retry_after,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method.clone(), path, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
        r.json()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(reqwest::Method::GET, path, None).await
    }

    async fn credential(&self, name: &str) -> String {
        let c = self
            .post(
                "/credentials",
                json!({"credentials_name": name, "aws_credentials": {"sts_role": {"role_arn": format!("arn:aws:iam::123456789012:role/{name}")}}}),
            )
            .await;
        c["credentials_id"].as_str().unwrap().to_string()
    }

    async fn storage(&self) -> String {
        let s = self
            .post("/storage-configurations", json!({"storage_configuration_name": "root", "root_bucket_info": {"bucket_name": "acme-root"}}))
            .await;
        s["storage_configuration_id"].as_str().unwrap().to_string()
    }

    async fn network(&self, n: u32) -> String {
        let net = self
            .post(
                "/networks",
                json!({"network_name": format!("net-{n}"), "vpc_id": "vpc-1", "subnet_ids": [format!("subnet-{n}a"), format!("subnet-{n}b")], "security_group_ids": [format!("sg-{n}")]}),
            )
            .await;
        assert_eq!(net["vpc_status"], "UNATTACHED");
        net["network_id"].as_str().unwrap().to_string()
    }

    /// Polls the workspace until it has `wanted` (a deadline, not a number of polls: a slow
    /// machine makes fewer polls in the same time).
    async fn wait_status(&self, ws_id: i64, wanted: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            let ws = self.get(&format!("/workspaces/{ws_id}")).await;
            if ws["workspace_status"] == wanted {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("workspace {ws_id} never reached {wanted}");
    }

    async fn wait_gone(&self, ws_id: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            let r = self
                .call(reqwest::Method::GET, &format!("/workspaces/{ws_id}"), None)
                .await;
            if r.status == 404 {
                assert_eq!(r.json()["error_code"], "RESOURCE_DOES_NOT_EXIST");
                return;
            }
            assert_eq!(r.json()["workspace_status"], "CANCELLING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("workspace {ws_id} never disappeared");
    }
}

/// The seed flow of the demo: every object, a workspace to RUNNING, a FAILED workspace repaired
/// with a new credential, then deletes in dependency order.
#[tokio::test]
async fn the_seed_flow_reaches_running_and_cleans_up_in_order() {
    let s = start(fast_config()).await;
    let cred = s.credential("seed-cred").await;
    let storage = s.storage().await;
    let key = s
        .post("/customer-managed-keys", json!({"use_cases": ["MANAGED_SERVICES", "STORAGE"], "aws_key_info": {"key_arn": "arn:aws:kms:us-east-1:123456789012:key/k1", "key_alias": "alias/k"}}))
        .await;
    assert_eq!(key["aws_key_info"]["key_region"], "us-east-1");
    let key = key["customer_managed_key_id"].as_str().unwrap().to_string();
    let net = s.network(1).await;
    let ws = s
        .post(
            "/workspaces",
            json!({"workspace_name": "seed", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage,
                   "network_id": net, "managed_services_customer_managed_key_id": key, "storage_customer_managed_key_id": key,
                   "deployment_name": "seed", "custom_tags": {"team": "platform"}}),
        )
        .await;
    assert_eq!(ws["deployment_name"], "acme-seed");
    assert_eq!(ws["pricing_tier"], "PREMIUM");
    assert_eq!(ws["account_id"], sim::DEFAULT_ACCOUNT_ID);
    let ws_id = ws["workspace_id"]
        .as_i64()
        .expect("workspace_id is a JSON integer");
    assert!(ws_id > 0);
    assert!(matches!(
        ws["workspace_status"].as_str(),
        Some("NOT_PROVISIONED" | "PROVISIONING")
    ));
    let running = s.wait_status(ws_id, "RUNNING").await;
    assert_eq!(running["workspace_status_message"], "Workspace is running.");
    let network = s.get(&format!("/networks/{net}")).await;
    assert_eq!(network["vpc_status"], "VALID");
    assert_eq!(network["workspace_id"], json!(ws_id));
    let list = s.get("/workspaces").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A failing workspace, repaired by switching its credential.
    s.handle.set_faults(Faults {
        fail_workspaces: vec![sim::FailRule {
            workspace_name_contains: Some("broken".into()),
            while_initial_credentials: true,
            ..Default::default()
        }],
        ..Faults::default()
    });
    let cred2 = s.credential("broken-cred").await;
    let storage2 = s.storage().await;
    let net2 = s.network(2).await;
    let bad = s
        .post("/workspaces", json!({"workspace_name": "broken-ws", "aws_region": "us-east-1", "credentials_id": cred2, "storage_configuration_id": storage2, "network_id": net2}))
        .await;
    let bad_id = bad["workspace_id"].as_i64().unwrap();
    let failed = s.wait_status(bad_id, "FAILED").await;
    assert!(
        !failed["workspace_status_message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let net2_obj = s.get(&format!("/networks/{net2}")).await;
    assert_eq!(net2_obj["vpc_status"], "BROKEN");
    assert_eq!(net2_obj["error_messages"][0]["error_type"], "securityGroup");
    let cred3 = s.credential("fixed-cred").await;
    let patched = s
        .ok(
            reqwest::Method::PATCH,
            &format!("/workspaces/{bad_id}?update_mask=credentials_id"),
            Some(json!({"credentials_id": cred3})),
        )
        .await;
    assert_eq!(patched["workspace_status"], "PROVISIONING");
    assert_eq!(patched["credentials_id"], json!(cred3));
    s.wait_status(bad_id, "RUNNING").await;
    assert_eq!(
        s.get(&format!("/networks/{net2}")).await["vpc_status"],
        "VALID"
    );

    // Deletes in the allowed order.
    for id in [ws_id, bad_id] {
        let deleted = s
            .ok(reqwest::Method::DELETE, &format!("/workspaces/{id}"), None)
            .await;
        assert_eq!(deleted["workspace_status"], "CANCELLING");
    }
    for id in [ws_id, bad_id] {
        s.wait_gone(id).await;
    }
    for path in [
        format!("/networks/{net}"),
        format!("/networks/{net2}"),
        format!("/customer-managed-keys/{key}"),
        format!("/storage-configurations/{storage}"),
        format!("/storage-configurations/{storage2}"),
        format!("/credentials/{cred}"),
        format!("/credentials/{cred2}"),
        format!("/credentials/{cred3}"),
    ] {
        let deleted = s.ok(reqwest::Method::DELETE, &path, None).await;
        assert!(
            deleted["account_id"].is_string(),
            "DELETE {path} returns the object: {deleted}"
        );
    }
    let snap = s.handle.snapshot();
    for (kind, items) in snap.as_object().unwrap() {
        assert!(items.as_array().unwrap().is_empty(), "{kind} left behind");
    }
    assert_eq!(s.handle.request_count().get("POST /workspaces", 200), 2);
    s.handle.shutdown().await;
}

/// Deleting a credential used by a workspace is refused with the documented INVALID_STATE text.
#[tokio::test]
async fn deleting_a_credential_used_by_a_workspace_is_refused() {
    let s = start(fast_config()).await;
    let cred = s.credential("c").await;
    let storage = s.storage().await;
    let ws = s
        .post("/workspaces", json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage}))
        .await;
    let id = ws["workspace_id"].as_i64().unwrap();
    let r = s
        .call(
            reqwest::Method::DELETE,
            &format!("/credentials/{cred}"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.content_type.starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["error_code"], "INVALID_STATE");
    assert_eq!(
        body["message"],
        format!("Unable to delete, Credential is being used by active workspace {id}")
    );
    assert!(s.get(&format!("/credentials/{cred}")).await["credentials_id"] == json!(cred));
}

/// Deployment names need the account prefix; the error is the exact plain text of the real API.
#[tokio::test]
async fn a_deployment_name_without_an_account_prefix_is_refused_in_plain_text() {
    let s = start(SimConfig {
        deployment_prefix: None,
        ..fast_config()
    })
    .await;
    let cred = s.credential("c").await;
    let storage = s.storage().await;
    let r = s
        .call(
            reqwest::Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage, "deployment_name": "mine"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    assert_eq!(
        r.text,
        "MALFORMED_REQUEST: Failed parameter validation checks: Deployment name cannot be used until a deployment name prefix is defined. Please contact your Databricks representative"
    );
    let r = s
        .call(
            reqwest::Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["deployment_name"]
            .as_str()
            .unwrap()
            .starts_with("dbc-")
    );
}

/// Invalid deployment names, keys in a region set to refuse them (`no_cmk_regions`) and subnet
/// reuse are refused; nothing is created.
#[tokio::test]
async fn invalid_creates_are_refused_and_create_nothing() {
    let s = start(SimConfig {
        no_cmk_regions: vec!["us-west-1".into()],
        ..fast_config()
    })
    .await;
    let cred = s.credential("c").await;
    let storage = s.storage().await;
    let r = s
        .call(
            reqwest::Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage, "deployment_name": "Not_Valid"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text
            .starts_with("MALFORMED_REQUEST: Failed parameter validation checks"),
        "{}",
        r.text
    );
    let key = s
        .post("/customer-managed-keys", json!({"use_cases": ["MANAGED_SERVICES"], "aws_key_info": {"key_arn": "arn:aws:kms:us-west-1:123456789012:key/k"}}))
        .await["customer_managed_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(
            reqwest::Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "w", "aws_region": "us-west-1", "credentials_id": cred, "storage_configuration_id": storage, "managed_services_customer_managed_key_id": key})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("us-west-1"));
    s.network(1).await;
    let r = s
        .call(
            reqwest::Method::POST,
            "/networks",
            Some(json!({"network_name": "dup", "vpc_id": "vpc-1", "subnet_ids": ["subnet-1a", "subnet-9"], "security_group_ids": ["sg-9"]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_code"], "INVALID_PARAMETER_VALUE");
    let r = s
        .call(reqwest::Method::POST, "/workspaces", Some(json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": "9f3b0c8e-0000-4000-8000-000000000000", "storage_configuration_id": storage})))
        .await;
    assert_eq!(
        r.text,
        "MALFORMED_REQUEST: Invalid credentialsId: 9f3b0c8e-0000-4000-8000-000000000000"
    );
    let snap = s.handle.snapshot();
    assert!(snap["workspaces"].as_array().unwrap().is_empty());
    assert_eq!(snap["networks"].as_array().unwrap().len(), 1);
}

/// Unknown IDs give 404 RESOURCE_DOES_NOT_EXIST; composite IDs give the plain-text 400.
#[tokio::test]
async fn unknown_ids_are_not_found() {
    let s = start(fast_config()).await;
    let r = s
        .call(
            reqwest::Method::GET,
            "/networks/9f3b0c8e-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_code"], "RESOURCE_DOES_NOT_EXIST");
    let r = s
        .call(reqwest::Method::DELETE, "/workspaces/123456789", None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            reqwest::Method::GET,
            &format!("/customer-managed-keys/{}/abc", sim::DEFAULT_ACCOUNT_ID),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text,
        format!(
            "MALFORMED_REQUEST: Invalid customerManagedKeyId: {}/abc",
            sim::DEFAULT_ACCOUNT_ID
        )
    );
}

/// Bad tokens, bad client secrets and a foreign account are refused; basic auth still works.
#[tokio::test]
async fn authentication_is_enforced() {
    let s = start(fast_config()).await;
    let r = s
        .send(
            s.client
                .get(s.url("/credentials"))
                .bearer_auth("not-a-token"),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_code"], "UNAUTHENTICATED");
    let r = s.send(s.client.get(s.url("/credentials"))).await;
    assert_eq!(r.status, 401);
    let r = s
        .send(
            s.client
                .get(s.url("/credentials"))
                .basic_auth(sim::DEFAULT_USERNAME, Some(sim::DEFAULT_PASSWORD)),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([]));
    let other = format!(
        "{}/api/2.0/accounts/11111111-0000-0000-0000-000000000000/credentials",
        s.handle.base_url()
    );
    let r = s.send(s.client.get(other).bearer_auth(&s.token)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error_code"], "PERMISSION_DENIED");
    let token_url = format!(
        "{}/oidc/accounts/{}/v1/token",
        s.handle.base_url(),
        sim::DEFAULT_ACCOUNT_ID
    );
    let r = s
        .send(
            s.client
                .post(&token_url)
                .basic_auth(sim::DEFAULT_CLIENT_ID, Some("wrong"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    // Client secret in the form body, and token exchange of a JWT.
    let r = s
        .send(s.client.post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim::DEFAULT_CLIENT_ID),
            ("client_secret", sim::DEFAULT_CLIENT_SECRET),
        ]))
        .await;
    assert_eq!(r.status, 200);
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpvcCJ9.c2ln";
    let r = s
        .send(s.client.post(&token_url).form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", jwt),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let exchanged = r.json()["access_token"].as_str().unwrap().to_string();
    let r = s
        .send(s.client.get(s.url("/workspaces")).bearer_auth(exchanged))
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .send(s.client.post(&token_url).form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", "not.a-jwt"),
        ]))
        .await;
    assert_eq!(r.status, 400);
}

/// Discovery documents point the SDKs at the token endpoint.
#[tokio::test]
async fn discovery_documents_point_at_the_token_endpoint() {
    let s = start(fast_config()).await;
    let base = s.handle.base_url();
    let meta: Value = s
        .client
        .get(format!("{base}/.well-known/databricks-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["account_id"], sim::DEFAULT_ACCOUNT_ID);
    assert_eq!(meta["cloud"], "aws");
    let oidc = meta["oidc_endpoint"].as_str().unwrap();
    let doc: Value = s
        .client
        .get(format!("{oidc}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["token_endpoint"], format!("{oidc}/v1/token"));
}

/// A 429 carries Retry-After and the documented code; the call after it succeeds.
#[tokio::test]
async fn rate_limited_calls_get_429_with_retry_after() {
    let s = start(fast_config()).await;
    s.handle.set_faults(Faults {
        rate_limit: Some(RateLimit {
            count: 1,
            retry_after_seconds: 2,
            path_contains: None,
        }),
        ..Faults::default()
    });
    let r = s.call(reqwest::Method::GET, "/credentials", None).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("2"));
    assert_eq!(r.json()["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(
        s.call(reqwest::Method::GET, "/credentials", None)
            .await
            .status,
        200
    );
    let counts = s.handle.request_count();
    assert_eq!(counts.get("GET /credentials", 429), 1);
    assert_eq!(counts.get("GET /credentials", 200), 1);
}

/// With a server-side rate limit, a burst beyond one second's worth gets 429 with
/// `Retry-After: 1`, and the budget refills at the configured rate.
#[tokio::test]
async fn the_account_rate_limit_refuses_a_burst_and_refills() {
    let s = start(SimConfig {
        rate_limit: Some(5),
        ..fast_config()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = s.call(reqwest::Method::GET, "/credentials", None).await;
        if r.status == 429 {
            assert_eq!(r.retry_after.as_deref(), Some("1"));
            assert_eq!(r.json()["error_code"], "REQUEST_LIMIT_EXCEEDED");
        }
        statuses.push(r.status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // Five in the burst, and at most one more refilled while the eight calls ran.
    assert!((5..=6).contains(&ok), "{statuses:?}");
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..5 {
        let r = s.call(reqwest::Method::GET, "/credentials", None).await;
        assert_eq!(r.status, 200, "refilled after a second");
    }
}

/// A 503 fault fails the next call without creating anything, through the control API too.
#[tokio::test]
async fn a_server_error_fault_returns_503_and_commits_nothing() {
    let s = start(fast_config()).await;
    let faults = Faults {
        server_error: Some(ServerError {
            count: 1,
            status: 503,
            path_contains: Some("/credentials".into()),
            method: None,
        }),
        ..Faults::default()
    };
    let r = s
        .client
        .post(format!("{}/__sim/faults", s.handle.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(json!({"credentials_name": "c", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/r"}}})))
        .await;
    assert_eq!(r.status, 503);
    assert!(
        s.handle.snapshot()["credentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    s.credential("c").await;
    let state: Value = s
        .client
        .get(format!("{}/__sim/state", s.handle.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["credentials"].as_array().unwrap().len(), 1);
}

/// A lost response: the client sees a connection error, yet the object exists afterwards.
#[tokio::test]
async fn a_lost_response_commits_the_create_but_closes_the_connection() {
    let s = start(fast_config()).await;
    s.handle.set_faults(Faults {
        lost_response: Some(LostResponse {
            count: 1,
            route: Some("POST /credentials".into()),
            status: 0,
            ..LostResponse::default()
        }),
        ..Faults::default()
    });
    let err = s
        .client
        .post(s.url("/credentials"))
        .bearer_auth(&s.token)
        .json(&json!({"credentials_name": "lost", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/lost"}}}))
        .send()
        .await
        .expect_err("the response must be lost");
    assert!(
        !err.is_timeout(),
        "connection must be closed, not hang: {err}"
    );
    let list = s.get("/credentials").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["credentials_name"], "lost");
    // A retry of the same create now hits the duplicate-name check.
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(json!({"credentials_name": "lost", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/lost"}}})))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    assert_eq!(s.handle.request_count().get("POST /credentials", 0), 1);
}

/// The other ways a committed create's answer is spoiled: held until the client gives up, 200
/// with an empty body, 200 without the ID. Each time the object exists afterwards.
#[tokio::test]
async fn a_committed_create_can_hang_or_answer_without_a_body_or_an_id() {
    let s = start(fast_config()).await;
    let create = |name: &str| json!({"credentials_name": name, "aws_credentials": {"sts_role": {"role_arn": format!("arn:aws:iam::1:role/{name}")}}});
    let lose = |mode: sim::LostMode| {
        s.handle.set_faults(Faults {
            lost_response: Some(LostResponse {
                count: 1,
                mode,
                ..LostResponse::default()
            }),
            ..Faults::default()
        });
    };

    lose(sim::LostMode::Hang);
    let err = s
        .client
        .post(s.url("/credentials"))
        .bearer_auth(&s.token)
        .timeout(Duration::from_millis(500))
        .json(&create("hung"))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "the connection hangs: {err}");

    lose(sim::LostMode::EmptyBody);
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(create("empty")))
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));

    lose(sim::LostMode::NoId);
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(create("no-id")))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["credentials_name"], "no-id");
    assert!(r.json().get("credentials_id").is_none(), "{}", r.text);

    let names: Vec<String> = s
        .get("/credentials")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credentials_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3, "every create was committed: {names:?}");
    for n in ["hung", "empty", "no-id"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

/// A proxy's 404 is HTML, not the API's JSON, and it touches nothing behind it.
#[tokio::test]
async fn a_proxy_not_found_answers_html_and_deletes_nothing() {
    let s = start(fast_config()).await;
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(json!({"credentials_name": "kept", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/kept"}}})))
        .await;
    let id = r.json()["credentials_id"].as_str().unwrap().to_string();
    s.handle.set_faults(Faults {
        proxy_not_found: Some(sim::ProxyNotFound {
            count: 1,
            path_contains: Some("/credentials/".into()),
        }),
        ..Faults::default()
    });
    let r = s
        .call(reqwest::Method::DELETE, &format!("/credentials/{id}"), None)
        .await;
    assert_eq!(r.status, 404);
    assert!(r.text.starts_with("<html>"), "{}", r.text);
    assert_eq!(s.get("/credentials").await.as_array().unwrap().len(), 1);
    let r = s
        .call(reqwest::Method::DELETE, &format!("/credentials/{id}"), None)
        .await;
    assert_eq!(r.status, 200, "the fault is spent: {}", r.text);
}

/// The IAM-propagation fault refuses a new role, then accepts it after the window.
#[tokio::test]
async fn a_new_role_fails_credential_validation_until_propagated() {
    let s = start(fast_config()).await;
    s.handle.set_faults(Faults {
        credential_propagation: Some(sim::CredentialPropagation {
            seconds: 1,
            role_arn: None,
        }),
        ..Faults::default()
    });
    let body = json!({"credentials_name": "c", "aws_credentials": {"sts_role": {"role_arn": "arn:aws:iam::1:role/new"}}});
    let r = s
        .call(reqwest::Method::POST, "/credentials", Some(body.clone()))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(
        r.text,
        "MALFORMED_REQUEST: Failed credential validation checks: please use a valid cross account IAM role with permissions setup correctly"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        s.call(reqwest::Method::POST, "/credentials", Some(body))
            .await
            .status,
        200
    );
}

/// PATCH on a RUNNING workspace outside the allow-list is refused; PUT replaces PAS.
#[tokio::test]
async fn running_workspace_updates_follow_the_allow_list() {
    let s = start(fast_config()).await;
    let cred = s.credential("c").await;
    let storage = s.storage().await;
    let pas = s
        .post(
            "/private-access-settings",
            json!({"private_access_settings_name": "pas", "region": "us-east-1"}),
        )
        .await["private_access_settings_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = s
        .post("/workspaces", json!({"workspace_name": "w", "aws_region": "us-east-1", "credentials_id": cred, "storage_configuration_id": storage}))
        .await;
    let id = ws["workspace_id"].as_i64().unwrap();
    s.wait_status(id, "RUNNING").await;
    let storage2 = s.storage().await;
    let r = s
        .call(
            reqwest::Method::PATCH,
            &format!("/workspaces/{id}?update_mask=storage_configuration_id"),
            Some(json!({"storage_configuration_id": storage2})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Legacy PATCH (no mask) adding a PAS and tags: Databricks-managed VPC re-provisions.
    let v = s
        .ok(
            reqwest::Method::PATCH,
            &format!("/workspaces/{id}"),
            Some(json!({"private_access_settings_id": pas, "custom_tags": {"a": "b"}})),
        )
        .await;
    assert_eq!(v["workspace_status"], "PROVISIONING");
    assert_eq!(v["private_access_settings_id"], json!(pas));
    s.wait_status(id, "RUNNING").await;
    let replaced = s
        .ok(reqwest::Method::PUT, &format!("/private-access-settings/{pas}"), Some(json!({"private_access_settings_name": "pas2", "region": "us-east-1", "private_access_level": "ENDPOINT"})))
        .await;
    assert_eq!(replaced["private_access_level"], "ENDPOINT");
    assert_eq!(
        s.get(&format!("/private-access-settings/{pas}")).await["private_access_settings_name"],
        "pas2"
    );
}

/// VPC endpoints go from pending to available.
#[tokio::test]
async fn vpc_endpoints_become_available() {
    let s = start(fast_config()).await;
    let ep = s
        .post("/vpc-endpoints", json!({"vpc_endpoint_name": "rest", "aws_vpc_endpoint_id": "vpce-0123", "region": "us-east-1"}))
        .await;
    assert_eq!(ep["state"], "pending");
    assert!(
        ep["aws_endpoint_service_id"]
            .as_str()
            .unwrap()
            .starts_with("com.amazonaws.vpce.us-east-1.")
    );
    let id = ep["vpc_endpoint_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        s.get(&format!("/vpc-endpoints/{id}")).await["state"],
        "available"
    );
}

/// Access tokens expire after the configured lifetime, and the control API can expire them early.
#[tokio::test]
async fn expired_tokens_are_refused() {
    // Long enough that the first call, right after the token is issued, is inside it on any
    // machine; the second call comes after it whatever the load.
    let ttl = Duration::from_secs(2);
    let s = start(SimConfig {
        token_ttl: ttl,
        ..fast_config()
    })
    .await;
    assert_eq!(
        s.call(reqwest::Method::GET, "/credentials", None)
            .await
            .status,
        200
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let r = s.call(reqwest::Method::GET, "/credentials", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_code"], "UNAUTHENTICATED");

    let fresh = start(fast_config()).await;
    let base = fresh.handle.base_url();
    let r = fresh
        .client
        .post(format!("{base}/__sim/expire-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        fresh
            .call(reqwest::Method::GET, "/credentials", None)
            .await
            .status,
        401
    );
}

/// `POST /__sim/reset` clears faults and counts but keeps objects unless asked.
#[tokio::test]
async fn reset_clears_faults_and_counts_but_keeps_objects() {
    let s = start(fast_config()).await;
    s.credential("kept").await;
    s.handle.set_faults(Faults {
        rate_limit: Some(RateLimit {
            count: 5,
            retry_after_seconds: 1,
            path_contains: None,
        }),
        ..Faults::default()
    });
    let base = s.handle.base_url();
    let r = s
        .client
        .post(format!("{base}/__sim/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.handle.request_count().entries.is_empty());
    assert_eq!(s.get("/credentials").await.as_array().unwrap().len(), 1);
    let r = s
        .client
        .post(format!("{base}/__sim/reset?objects=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.get("/credentials").await.as_array().unwrap().is_empty());
    let counts: Value = s
        .client
        .get(format!("{base}/__sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["entries"][0]["route"], "GET /credentials");
    assert_eq!(counts["entries"][0]["status"], 200);
}
