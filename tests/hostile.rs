//! The trust boundary end to end: the real operator binary against Account API servers that
//! misbehave on purpose, next to a well-behaved simulator.
//!
//! Each hostile server is plain Rust on loopback (hand-written HTTP/1.1, so it can lie about
//! lengths and trickle bytes) and records every request it gets. One operator process runs for the
//! whole test, so its memory is one figure; every hostile behaviour has its own server and its own
//! `DatabricksAccount`. The test proves that for each behaviour the operator shows a named reason,
//! does not panic, keeps reconciling the good objects, stays within a memory bound, and never sends
//! a token file's content or a Secret that was not opted in; and that accounts naming a token file,
//! a host off the allow-list or an unlabelled Secret are refused before any request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::process::OperatorProcess;
use common::{apply, condition, eventually, resource, wait_condition};
use databricks_account_sim::{self as sim, SimConfig};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on the operator's peak resident memory (VmHWM) over the whole test, in KiB.
///
/// Measured with the debug build: 38–39 MiB once the good account is Ready, 46–49 MiB at the end.
/// 72 MiB leaves about 50 % for allocator and build variance, yet a 50 MB answer read whole (a
/// `Vec` of 47.7 MiB on top of the ~38 MiB the process needs anyway) would exceed it. So does a
/// list answer streamed up to its 16 MiB cap: that alone measured 73–93 MiB, which is why the
/// list's 50 MB answer here carries a Content-Length and the streamed ones go to creates (1 MiB).
const MAX_VMHWM_KIB: u64 = 72 * 1024;

/// Size of the oversized answers: far above both read caps (1 MiB, 16 MiB for lists).
const HUGE_BODY: usize = 50_000_000;

/// What Kubernetes allows in a condition message as the operator writes it (bytes).
const MAX_CONDITION_MESSAGE: usize = 1024;

/// Most entries of a network's error list in status: ten messages and one counting the rest.
const MAX_STATUS_MESSAGES: usize = 11;

const API_VERSION: &str = "account.databricks-operator.dev/v1alpha1";

// ------------------------------------------------------------------------------------------------
// The hostile Account API server

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    /// Request line and headers, as sent.
    head: String,
    body: String,
    /// When it arrived.
    at: Instant,
}

#[derive(Clone, Debug)]
enum Behaviour {
    /// A small, correct Account API (credentials and networks).
    Plain,
    /// Every answer, the token's first, is a 307 to this plain-http base URL.
    Redirect(String),
    /// The account's readiness list answers 429 with `Retry-After: 18446744073709551615`.
    RetryAfterMax,
    /// The token answer claims a lifetime of `18446744073709551615` seconds.
    ExpiresInMax,
    /// The readiness list answers 50 MB with Content-Length: the JSON `[]` padded with spaces,
    /// so only the size cap stops the account from becoming Ready. (Streamed, a list is read up
    /// to 16 MiB, which costs more memory than [`MAX_VMHWM_KIB`] allows; see there.)
    ListBodyWithLength,
    /// A create answers a 50 MB credential (valid JSON padded with spaces) in chunked encoding,
    /// without Content-Length: only the streaming cap stops it.
    CreateBodyChunked,
    /// The same without any framing: the body ends when the server closes the connection.
    CreateBodyUntilClose,
    /// A network create (and every later read) reports 10,000 validation errors.
    NetworkErrors,
    /// A create answers 400 with a JSON error whose message is 1,000,000 bytes.
    CreateError1Mb,
    /// A DELETE answers a proxy's HTML 404 page.
    Html404OnDelete,
    /// A create answers 200 with a credential that has no ID.
    CreateWithoutId,
    /// The readiness list sends its headers at once, then one body byte per second.
    TrickleList,
}

/// How an oversized answer is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length,
    Chunked,
    Close,
}

enum Reply {
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// `prefix`, then `pad` spaces, then `suffix`.
    Padded {
        prefix: Vec<u8>,
        pad: usize,
        suffix: Vec<u8>,
        framing: Framing,
    },
    /// Headers at once, then the body one byte per second.
    Trickle { body: Vec<u8> },
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply::Full {
        status,
        headers: vec![("Content-Type", "application/json".into())],
        body: serde_json::to_vec(body).unwrap(),
    }
}

struct State {
    account_id: String,
    behaviour: Behaviour,
    /// Remote objects by collection (`credentials`, `networks`).
    objects: Mutex<Vec<(String, Value)>>,
    next_id: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    /// Connections accepted, whether or not a whole request arrived.
    connections: AtomicUsize,
    /// How long each trickled answer ran before the client hung up.
    trickled: Mutex<Vec<Duration>>,
}

impl State {
    fn list(&self, collection: &str) -> Vec<Value> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == collection)
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn find(&self, collection: &str, id: &str) -> Option<Value> {
        self.list(collection)
            .into_iter()
            .find(|o| o[id_field(collection)] == id)
    }

    /// The object a create makes: the request echoed, with an ID and the account.
    fn made(&self, collection: &str, request: &Value) -> Value {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let mut obj = request.clone();
        obj[id_field(collection)] = json!(format!("{collection}-{n}"));
        obj["account_id"] = json!(self.account_id);
        obj["creation_time"] = json!(1);
        match collection {
            "credentials" => {
                obj["aws_credentials"]["sts_role"]["external_id"] = json!(self.account_id);
            }
            "networks" => {
                obj["vpc_status"] = json!("VALID");
                if matches!(self.behaviour, Behaviour::NetworkErrors) {
                    obj["vpc_status"] = json!("BROKEN");
                    obj["error_messages"] = (0..10_000)
                        .map(|i| {
                            json!({"error_type": "subnet", "error_message": format!("subnet-{i} has no route to the internet")})
                        })
                        .collect();
                }
            }
            _ => {}
        }
        obj
    }
}

fn id_field(collection: &str) -> &'static str {
    match collection {
        "networks" => "network_id",
        _ => "credentials_id",
    }
}

/// A hostile Account API server on loopback.
struct Hostile {
    base_url: String,
    account_id: String,
    state: Arc<State>,
}

impl Hostile {
    async fn start(ip: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let account_id = uuid::Uuid::new_v4().to_string();
        let state = Arc::new(State {
            account_id: account_id.clone(),
            behaviour,
            objects: Mutex::default(),
            next_id: AtomicUsize::new(0),
            requests: Mutex::default(),
            connections: AtomicUsize::new(0),
            trickled: Mutex::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, serving.clone()));
            }
        });
        Self {
            base_url: format!("http://{addr}"),
            account_id,
            state,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests with this method whose path ends with `suffix`.
    fn count(&self, method: &str, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn trickled(&self) -> Vec<Duration> {
        self.state.trickled.lock().unwrap().clone()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request (headers, then a body of Content-Length bytes). Whatever arrived is returned,
/// even a partial request, so that nothing sent goes unrecorded.
async fn read_request(sock: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 || buf.len() > 1 << 20 {
            return (!buf.is_empty()).then(|| Recorded {
                method: "?".into(),
                path: String::new(),
                head: String::from_utf8_lossy(&buf).into_owned(),
                body: String::new(),
                at: Instant::now(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut first = head.split_whitespace();
    Some(Recorded {
        method: first.next().unwrap_or("?").to_string(),
        path: first.next().unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
        head,
        at: Instant::now(),
    })
}

async fn serve(mut sock: TcpStream, state: Arc<State>) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    state.requests.lock().unwrap().push(req.clone());
    let reply = respond(&state, &req);
    let trickle = matches!(reply, Reply::Trickle { .. });
    let begun = Instant::now();
    // A write fails when the client hangs up first, as it should on an oversized or slow answer.
    let _ = write_reply(&mut sock, reply).await;
    if trickle {
        state.trickled.lock().unwrap().push(begun.elapsed());
    }
    let _ = sock.shutdown().await;
}

fn respond(state: &State, req: &Recorded) -> Reply {
    use Behaviour as B;
    let path = req.path.split('?').next().unwrap_or_default();
    if let B::Redirect(to) = &state.behaviour {
        return Reply::Full {
            status: 307,
            headers: vec![("Location", format!("{to}{path}"))],
            body: Vec::new(),
        };
    }
    if req.method == "POST" && path == format!("/oidc/accounts/{}/v1/token", state.account_id) {
        let expires_in = match state.behaviour {
            B::ExpiresInMax => u64::MAX,
            _ => 3600,
        };
        return json_reply(
            200,
            &json!({"access_token": "t", "token_type": "Bearer", "expires_in": expires_in}),
        );
    }
    let not_found = |what: &str| {
        json_reply(
            404,
            &json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": format!("{what} does not exist")}),
        )
    };
    let Some(rest) = path.strip_prefix(&format!("/api/2.0/accounts/{}/", state.account_id)) else {
        return not_found(path);
    };
    let (collection, id) = match rest.split_once('/') {
        Some((c, id)) => (c, Some(id)),
        None => (rest, None),
    };
    match (req.method.as_str(), id) {
        ("GET", None) => match state.behaviour {
            B::RetryAfterMax => Reply::Full {
                status: 429,
                headers: vec![
                    ("Retry-After", u64::MAX.to_string()),
                    ("Content-Type", "application/json".into()),
                ],
                body: br#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#.to_vec(),
            },
            B::ListBodyWithLength => Reply::Padded {
                prefix: b"[".to_vec(),
                pad: HUGE_BODY,
                suffix: b"]".to_vec(),
                framing: Framing::Length,
            },
            B::TrickleList => {
                let mut body = vec![b'['];
                body.resize(999, b' ');
                body.push(b']');
                Reply::Trickle { body }
            }
            _ => json_reply(200, &Value::Array(state.list(collection))),
        },
        ("GET", Some(id)) => match state.find(collection, id) {
            Some(o) => json_reply(200, &o),
            None => not_found(id),
        },
        ("POST", None) => {
            let request: Value = serde_json::from_str(&req.body).unwrap_or_default();
            let made = state.made(collection, &request);
            match state.behaviour {
                B::CreateBodyChunked | B::CreateBodyUntilClose => Reply::Padded {
                    prefix: serde_json::to_vec(&made).unwrap(),
                    pad: HUGE_BODY,
                    suffix: Vec::new(),
                    framing: if matches!(state.behaviour, B::CreateBodyChunked) {
                        Framing::Chunked
                    } else {
                        Framing::Close
                    },
                },
                B::CreateError1Mb => json_reply(
                    400,
                    &json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "x".repeat(1_000_000)}),
                ),
                B::CreateWithoutId => {
                    let mut made = made;
                    made.as_object_mut().unwrap().remove(id_field(collection));
                    json_reply(200, &made)
                }
                _ => {
                    state
                        .objects
                        .lock()
                        .unwrap()
                        .push((collection.to_string(), made.clone()));
                    json_reply(200, &made)
                }
            }
        }
        ("DELETE", Some(id)) => match state.behaviour {
            B::Html404OnDelete => Reply::Full {
                status: 404,
                headers: vec![("Content-Type", "text/html".into())],
                body: b"<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>".to_vec(),
            },
            _ => {
                let field = id_field(collection);
                state
                    .objects
                    .lock()
                    .unwrap()
                    .retain(|(c, o)| !(c == collection && o[field] == id));
                json_reply(200, &json!({}))
            }
        },
        _ => json_reply(
            400,
            &json!({"error_code": "MALFORMED_REQUEST", "message": "unsupported"}),
        ),
    }
}

async fn write_reply(sock: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown");
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(&body).await
        }
        Reply::Padded {
            prefix,
            pad,
            suffix,
            framing,
        } => {
            let framing_header = match framing {
                Framing::Length => {
                    format!("Content-Length: {}\r\n", prefix.len() + pad + suffix.len())
                }
                Framing::Chunked => "Transfer-Encoding: chunked\r\n".into(),
                Framing::Close => String::new(),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing_header}Connection: close\r\n\r\n"
            );
            sock.write_all(head.as_bytes()).await?;
            let spaces = vec![b' '; 64 << 10];
            let mut pieces: Vec<&[u8]> = vec![&prefix];
            let mut left = pad;
            while left > 0 {
                let n = left.min(spaces.len());
                pieces.push(&spaces[..n]);
                left -= n;
            }
            pieces.push(&suffix);
            for piece in pieces.into_iter().filter(|p| !p.is_empty()) {
                if matches!(framing, Framing::Chunked) {
                    sock.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await?;
                    sock.write_all(piece).await?;
                    sock.write_all(b"\r\n").await?;
                } else {
                    sock.write_all(piece).await?;
                }
            }
            if matches!(framing, Framing::Chunked) {
                sock.write_all(b"0\r\n\r\n").await?;
            }
            Ok(())
        }
        Reply::Trickle { body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            sock.write_all(head.as_bytes()).await?;
            for b in body {
                sock.write_all(&[b]).await?;
                sock.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Kubernetes helpers

fn dynamic(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(kind))
}

/// Asserts a condition's status, reason and a part of its message.
async fn expect(
    client: &Client,
    ns: &str,
    (kind, name): (&str, &str),
    (type_, status, reason): (&str, &str, &str),
    message_part: &str,
) -> DynamicObject {
    let obj = wait_condition(client, ns, kind, name, type_, reason, 90).await;
    let c = condition(&obj, type_).unwrap();
    assert_eq!(c.status, status, "{kind}/{name} {type_}: {c:?}");
    assert!(
        c.message.contains(message_part),
        "{kind}/{name} {type_} message lacks {message_part:?}: {}",
        c.message
    );
    obj
}

fn secret_doc(name: &str, labelled: bool, id: &str, secret: &str) -> String {
    let labels = if labelled {
        json!({"account.databricks-operator.dev/account-secret": "true"})
    } else {
        json!({})
    };
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels},
           "type": "Opaque", "stringData": {"client-id": id, "client-secret": secret}})
    .to_string()
}

fn account_doc(name: &str, host: &str, account_id: &str, auth: Value) -> String {
    json!({"apiVersion": API_VERSION, "kind": "DatabricksAccount", "metadata": {"name": name},
           "spec": {"host": host, "accountId": account_id, "auth": auth}})
    .to_string()
}

fn m2m(secret: &str) -> Value {
    json!({"oauthM2M": {"secretRef": {"name": secret}}})
}

fn credential_doc(name: &str, account: &str) -> String {
    json!({"apiVersion": API_VERSION, "kind": "DatabricksCredential", "metadata": {"name": name},
           "spec": {"accountRef": {"name": account},
                    "roleArn": format!("arn:aws:iam::123456789012:role/{name}")}})
    .to_string()
}

fn network_doc(name: &str, account: &str) -> String {
    json!({"apiVersion": API_VERSION, "kind": "DatabricksNetwork", "metadata": {"name": name},
           "spec": {"accountRef": {"name": account}, "vpcId": "vpc-0a1b2c3d4e5f",
                    "subnetIds": ["subnet-0a1b2c3d4e5f", "subnet-1a2b3c4d5e6f"],
                    "securityGroupIds": ["sg-0a1b2c3d4e5f"]}})
    .to_string()
}

/// Everything a request carried, with `Authorization: Basic` values decoded (that is how a
/// client secret travels to the token endpoint).
fn readable(r: &Recorded) -> String {
    let mut text = format!("{}\n{}", r.head, r.body);
    for line in r.head.lines() {
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
            && let Some(b64) = v.trim().strip_prefix("Basic ")
            && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim())
        {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&raw));
        }
    }
    text
}

/// Removes every finalizer of our kinds in `ns`, so the namespace can go without the operator.
async fn strip_finalizers(client: &Client, ns: &str) {
    for kind in [
        "DatabricksCredential",
        "DatabricksNetwork",
        "DatabricksAccount",
    ] {
        let api = dynamic(client, ns, kind);
        for obj in api.list(&ListParams::default()).await.unwrap() {
            let name = obj.metadata.name.clone().unwrap();
            let _ = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_account_api_servers_get_named_reasons_and_no_secrets() {
    let started = Instant::now();
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "hostile").await;
    let sim = sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();

    // One server per behaviour. The redirect target is a correct server: it must see nothing.
    let target = Hostile::start("127.0.0.1", Behaviour::Plain).await;
    let redirect = Hostile::start("127.0.0.1", Behaviour::Redirect(target.base_url.clone())).await;
    let retry_after = Hostile::start("127.0.0.1", Behaviour::RetryAfterMax).await;
    let long_token = Hostile::start("127.0.0.1", Behaviour::ExpiresInMax).await;
    let list_50mb = Hostile::start("127.0.0.1", Behaviour::ListBodyWithLength).await;
    let create_50mb_chunked = Hostile::start("127.0.0.1", Behaviour::CreateBodyChunked).await;
    let create_50mb_close = Hostile::start("127.0.0.1", Behaviour::CreateBodyUntilClose).await;
    let net_errors = Hostile::start("127.0.0.1", Behaviour::NetworkErrors).await;
    let error_1mb = Hostile::start("127.0.0.1", Behaviour::CreateError1Mb).await;
    let html_404 = Hostile::start("127.0.0.1", Behaviour::Html404OnDelete).await;
    let no_id = Hostile::start("127.0.0.1", Behaviour::CreateWithoutId).await;
    let trickle = Hostile::start("127.0.0.1", Behaviour::TrickleList).await;
    // Refused accounts point at correct servers: only the refusal keeps them silent.
    let sa_token_path = Hostile::start("127.0.0.1", Behaviour::Plain).await;
    let token_file = Hostile::start("127.0.0.1", Behaviour::Plain).await;
    let unlabelled = Hostile::start("127.0.0.1", Behaviour::Plain).await;
    // Loopback, but not the 127.0.0.1 the operator is allowed to call.
    let off_list = Hostile::start("127.0.0.2", Behaviour::Plain).await;

    let tag = uuid::Uuid::new_v4().simple().to_string();
    let opted_in_secret = format!("opted-in-secret-{tag}");
    let unlabelled_secret = format!("unlabelled-secret-{tag}");
    let token_content = format!("token-file-content-{tag}");
    let token_path = std::env::temp_dir().join(format!("dao-hostile-token-{tag}"));
    std::fs::write(&token_path, &token_content).unwrap();

    let mut op = OperatorProcess::start("hostile", &ns, &["--api-timeout", "5s"]);

    // The good account and credential, through the simulator.
    apply(
        &client,
        &ns,
        &common::samples_of(
            &sim,
            &["Secret", "DatabricksAccount", "DatabricksCredential"],
        ),
    )
    .await;
    expect(
        &client,
        &ns,
        ("DatabricksCredential", "cross-account"),
        ("Ready", "True", "Available"),
        "is registered",
    )
    .await;
    let idle_kib = op.memory_kib("VmHWM");

    // Every hostile object.
    let mut docs = vec![
        secret_doc("hostile-sp", true, "hostile-client", &opted_in_secret),
        secret_doc("not-opted-in", false, "other-client", &unlabelled_secret),
    ];
    let hostile_accounts: [(&str, &Hostile); 11] = [
        ("redirect", &redirect),
        ("retry-after", &retry_after),
        ("long-token", &long_token),
        ("list-50mb", &list_50mb),
        ("create-50mb-chunked", &create_50mb_chunked),
        ("create-50mb-close", &create_50mb_close),
        ("net-errors", &net_errors),
        ("error-1mb", &error_1mb),
        ("html-404", &html_404),
        ("no-id", &no_id),
        ("trickle", &trickle),
    ];
    for (name, server) in hostile_accounts {
        docs.push(account_doc(
            name,
            &server.base_url,
            &server.account_id,
            m2m("hostile-sp"),
        ));
    }
    docs.extend([
        account_doc(
            "sa-token-path",
            &sa_token_path.base_url,
            &sa_token_path.account_id,
            json!({"federation": {"tokenPath": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}),
        ),
        account_doc(
            "token-file",
            &token_file.base_url,
            &token_file.account_id,
            json!({"federation": {"clientId": "sp", "tokenPath": token_path.display().to_string()}}),
        ),
        account_doc(
            "off-list",
            &off_list.base_url,
            &off_list.account_id,
            m2m("hostile-sp"),
        ),
        account_doc(
            "unlabelled",
            &unlabelled.base_url,
            &unlabelled.account_id,
            m2m("not-opted-in"),
        ),
        credential_doc("long-token-cred", "long-token"),
        credential_doc("body-50mb-chunked", "create-50mb-chunked"),
        credential_doc("body-50mb-close", "create-50mb-close"),
        network_doc("flood-net", "net-errors"),
        credential_doc("big-error", "error-1mb"),
        credential_doc("html-404-cred", "html-404"),
        credential_doc("no-id-cred", "no-id"),
    ]);
    apply(&client, &ns, &docs).await;

    // 1. Each behaviour ends in a named reason.
    let acct = "DatabricksAccount";
    let cred = "DatabricksCredential";
    let ready_false = |reason| ("Ready", "False", reason);
    let synced_false = |reason| ("Synced", "False", reason);
    expect(
        &client,
        &ns,
        (acct, "redirect"),
        ready_false("ApiUnavailable"),
        "307",
    )
    .await;
    expect(
        &client,
        &ns,
        (acct, "retry-after"),
        ready_false("ApiUnavailable"),
        "429",
    )
    .await;
    expect(
        &client,
        &ns,
        (acct, "long-token"),
        ("Ready", "True", "Available"),
        "",
    )
    .await;
    expect(
        &client,
        &ns,
        (cred, "long-token-cred"),
        ("Ready", "True", "Available"),
        "",
    )
    .await;
    expect(
        &client,
        &ns,
        (acct, "list-50mb"),
        ready_false("ApiUnavailable"),
        "larger than 16777216 bytes",
    )
    .await;
    for name in ["body-50mb-chunked", "body-50mb-close"] {
        expect(
            &client,
            &ns,
            (cred, name),
            synced_false("ApiUnavailable"),
            "larger than 1048576 bytes",
        )
        .await;
    }
    let flood = expect(
        &client,
        &ns,
        ("DatabricksNetwork", "flood-net"),
        ("Ready", "True", "Available"),
        "… and 9990 more",
    )
    .await;
    let errors = flood.data["status"]["errorMessages"].as_array().unwrap();
    assert_eq!(errors.len(), MAX_STATUS_MESSAGES, "{errors:?}");
    assert_eq!(errors[10]["message"], "… and 9990 more");
    expect(
        &client,
        &ns,
        (cred, "big-error"),
        ready_false("ApiRejected"),
        "INVALID_PARAMETER_VALUE",
    )
    .await;
    let big = condition(
        &dynamic(&client, &ns, cred).get("big-error").await.unwrap(),
        "Ready",
    )
    .unwrap();
    assert!(big.message.contains("[truncated from"), "{}", big.message);
    expect(
        &client,
        &ns,
        (cred, "no-id-cred"),
        synced_false("ApiUnavailable"),
        "names no ID",
    )
    .await;
    expect(
        &client,
        &ns,
        (cred, "html-404-cred"),
        ("Ready", "True", "Available"),
        "",
    )
    .await;
    dynamic(&client, &ns, cred)
        .delete("html-404-cred", &DeleteParams::default())
        .await
        .unwrap();
    let held = expect(
        &client,
        &ns,
        (cred, "html-404-cred"),
        // Not the API's verdict: something in the way, retried with backoff.
        synced_false("ApiUnavailable"),
        "404",
    )
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.metadata.finalizers.as_deref().unwrap_or_default(),
        ["account.databricks-operator.dev/cleanup"],
        "a proxy's 404 page must not release the finalizer"
    );
    assert!(html_404.count("DELETE", "/credentials/credentials-1") >= 1);
    expect(
        &client,
        &ns,
        (acct, "trickle"),
        ready_false("ApiUnavailable"),
        "cannot reach the Account API",
    )
    .await;
    // The 5 s --api-timeout cut the trickle, not the end of its 1000-byte body. The client's clock
    // starts a little before the server's (4 s floor), and the server sees the hang-up only on a
    // write, once a second, the first after the close possibly succeeding (up to 3 s more).
    let cut = trickle.trickled();
    assert!(
        !cut.is_empty()
            && cut
                .iter()
                .all(|d| *d >= Duration::from_secs(4) && *d <= Duration::from_secs(8)),
        "trickles lasted {cut:?}"
    );

    // 2. Refusals: a named reason and not one byte sent.
    for name in ["sa-token-path", "token-file"] {
        expect(
            &client,
            &ns,
            (acct, name),
            ready_false("InvalidSpec"),
            "tokenPath is not accepted",
        )
        .await;
    }
    expect(
        &client,
        &ns,
        (acct, "off-list"),
        ready_false("HostNotAllowed"),
        "not on the operator's allow-list",
    )
    .await;
    expect(
        &client,
        &ns,
        (acct, "unlabelled"),
        ready_false("InvalidSpec"),
        "Secret \"not-opted-in\"",
    )
    .await;

    // The operator keeps reconciling: a credential made after all of the above converges.
    apply(
        &client,
        &ns,
        &[credential_doc("cross-account-2", "default")],
    )
    .await;
    expect(
        &client,
        &ns,
        (cred, "cross-account-2"),
        ("Ready", "True", "Available"),
        "is registered",
    )
    .await;
    assert_eq!(sim.snapshot()["credentials"].as_array().unwrap().len(), 2);

    // A create whose answer names no ID is retried with backoff, not in a loop: the per-object
    // backoff starts at 0.8 s and doubles (jitter only lengthens it), so k retries take at least
    // 0.8·(2^k − 1) s after the first create (both times as the server saw them).
    let creates: Vec<Instant> = no_id
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/credentials"))
        .map(|r| r.at)
        .collect();
    let window = creates[0].elapsed().as_secs_f64();
    let retries = creates.len() - 1;
    let allowed = (window / 0.8 + 1.0).log2().floor() as usize;
    assert!(
        retries <= allowed,
        "{retries} creates in {window:.0} s after the first unusable answer (at most {allowed})"
    );
    // A token "valid for 2^64 s" is cached (for at most a day), not fetched again per call.
    assert_eq!(long_token.count("POST", "/v1/token"), 1);
    assert_eq!(long_token.count("POST", "/credentials"), 1);
    // Retry-After of 2^64 s is honoured (capped at ten minutes): neither the client nor the
    // account retries within the test. Up to three checks are not retries: the first, the one
    // the account's own status write triggers, and one the Secret's arrival may trigger. Ignoring
    // the header would give several client retries per check (backoff from 0.5 s, 30 s budget).
    assert!(retry_after.count("GET", "/credentials") <= 3);

    for (what, server) in [
        ("the redirect target", &target),
        ("the sa-token-path account's host", &sa_token_path),
        ("the token-file account's host", &token_file),
        ("the off-list host", &off_list),
        ("the unlabelled account's host", &unlabelled),
    ] {
        assert_eq!(
            server.connections(),
            0,
            "{what} was contacted: {:?}",
            server.requests()
        );
    }

    // Never a token file's content nor a Secret that was not opted in, anywhere. The opted-in
    // Secret does travel (to the token endpoints): proof that the search would see a leak.
    let all: Vec<String> = hostile_accounts
        .iter()
        .map(|(_, s)| *s)
        .chain([&target, &sa_token_path, &token_file, &off_list, &unlabelled])
        .flat_map(|s| s.requests())
        .map(|r| readable(&r))
        .collect();
    assert!(all.iter().any(|r| r.contains(&opted_in_secret)));
    for text in &all {
        assert!(!text.contains(&unlabelled_secret), "leaked: {text}");
        assert!(!text.contains(&token_content), "leaked: {text}");
    }

    // Every message is bounded; the process is alive, never panicked, and stayed small.
    for kind in [acct, cred, "DatabricksNetwork"] {
        for obj in dynamic(&client, &ns, kind)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            for c in obj.data["status"]["conditions"].as_array().unwrap() {
                let m = c["message"].as_str().unwrap();
                assert!(
                    m.len() <= MAX_CONDITION_MESSAGE,
                    "{kind}: {} bytes",
                    m.len()
                );
            }
        }
    }
    assert!(op.running(), "the operator exited:\n{}", op.log_text());
    assert!(!op.log_text().contains("panicked"), "{}", op.log_text());
    assert!(op.metrics().await.contains("databricks_operator"));
    let peak_kib = op.memory_kib("VmHWM");
    println!(
        "VmHWM: {} MiB after the good account, {} MiB at the end (bound {} MiB); {:.0} s",
        idle_kib / 1024,
        peak_kib / 1024,
        MAX_VMHWM_KIB / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak_kib <= MAX_VMHWM_KIB,
        "peak memory {peak_kib} KiB above {MAX_VMHWM_KIB} KiB"
    );

    drop(op);
    strip_finalizers(&client, &ns).await;
    common::delete_namespace(&client, &ns).await;
    let _ = std::fs::remove_file(&token_path);
    sim.shutdown().await;
    // `eventually` is used for its timeout message: the namespace's objects are released.
    eventually("the namespace's objects to go", 60, || async {
        dynamic(&client, &ns, acct)
            .list(&ListParams::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
    })
    .await;
}
