//! The instance metadata service as EC2 serves it with IMDSv2 required
//! (`HttpTokens: required`, as the launch template sets it): a session token
//! from `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`,
//! then `GET /latest/meta-data/instance-id` and `.../local-ipv4` with that
//! token in `X-aws-ec2-metadata-token`; without one, or with an expired one,
//! 401. An instance with a role gets its credentials at
//! `/latest/meta-data/iam/security-credentials/<role>`, as the AWS CLI and
//! SDKs fetch an instance profile's. Which instance is asking is known from the connection's source
//! address, as EC2 knows it from the network interface.
//!
//! It can start slowly, as a metadata service may seem to at an instance's
//! first boot: for a set time it refuses, ignores, or answers 503 (see
//! [`SlowStart`]). Every request is recorded for tests to assert on.
//!
//! On the host it listens on a given address and port; a boot node reaches it
//! at 169.254.169.254:80 through a route and a DNAT rule in the node's own
//! network namespace (`boot_node.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::lock;

pub const TOKEN_PATH: &str = "/latest/api/token";
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// EC2 accepts a token TTL of one second up to six hours.
const MAX_TOKEN_TTL_SECONDS: u64 = 21_600;

/// What the service does while it is starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowStart {
    /// Resets every connection at once: the client sees no answer at all.
    Refuses,
    /// Accepts connections and answers nothing until the slow start is over,
    /// then closes them: the client waits out its own timeout.
    Silent,
    /// Answers every request with 503 Service Unavailable.
    Unavailable,
}

#[derive(Debug, Clone, Copy)]
pub struct ImdsOptions {
    /// How the first `slow_start_for` after `start` go.
    pub slow_start: SlowStart,
    /// Zero: the service answers from the start.
    pub slow_start_for: Duration,
}

impl Default for ImdsOptions {
    fn default() -> Self {
        Self {
            slow_start: SlowStart::Refuses,
            slow_start_for: Duration::ZERO,
        }
    }
}

/// The instance a source address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsInstance {
    pub instance_id: String,
    pub local_ipv4: IpAddr,
    /// The instance profile's role; `None` for an instance without one.
    pub role: Option<ImdsRole>,
}

/// An instance profile's role and the keys its credentials carry (the
/// stand-in tells its callers apart by access key id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRole {
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Where the credentials of an instance profile are listed and served.
pub const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// How long served credentials say they last; clients refresh before then.
const CREDENTIALS_LIFE: Duration = Duration::from_secs(6 * 3600);

/// One request the service received and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRequest {
    pub source: IpAddr,
    pub method: Method,
    pub path: String,
    /// The TTL header of a token request, as sent.
    pub ttl_header: Option<String>,
    /// Whether a metadata request carried a token header (valid or not).
    pub with_token: bool,
    pub status: StatusCode,
}

struct Shared {
    options: ImdsOptions,
    started: Instant,
    instances: Mutex<HashMap<IpAddr, ImdsInstance>>,
    /// Token -> when it expires.
    tokens: Mutex<HashMap<String, Instant>>,
    requests: Mutex<Vec<ImdsRequest>>,
}

impl Shared {
    fn starting(&self) -> bool {
        self.started.elapsed() < self.options.slow_start_for
    }
}

/// A running metadata service. Dropping it stops serving.
pub struct Imds {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Imds {
    /// Serves on a free port of `ip` (127.0.0.1, or this machine's address on
    /// a node's Docker network). The slow start counts from here.
    pub async fn start(ip: IpAddr, options: ImdsOptions) -> anyhow::Result<Imds> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("binding the metadata service stand-in to {ip}"))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            started: Instant::now(),
            instances: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Imds {
            address,
            shared,
            server,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ip:port`, what AWS_EC2_METADATA_SERVICE_ENDPOINT takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests from `source` are from `instance`.
    pub fn add_instance(&self, source: IpAddr, instance: ImdsInstance) {
        lock(&self.shared.instances).insert(source, instance);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here so that aborting the accept loop also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        if shared.starting() {
            match shared.options.slow_start {
                SlowStart::Refuses => {
                    reset(stream);
                    continue;
                }
                SlowStart::Silent => {
                    let until = shared.started + shared.options.slow_start_for;
                    connections.spawn(async move {
                        tokio::time::sleep_until(until.into()).await;
                        drop(stream);
                    });
                    continue;
                }
                SlowStart::Unavailable => {}
            }
        }
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let source = peer.ip();
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, source, &request)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Closes a connection with a reset, so the client reads no answer at all.
fn reset(stream: TcpStream) {
    // A zero linger makes close send RST at once; the deprecation is about a
    // non-zero linger blocking the thread on drop, which zero does not.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn handle(shared: &Shared, source: IpAddr, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let ttl_header = header(TOKEN_TTL_HEADER);
    let token = header(TOKEN_HEADER);
    let path = request.uri().path().to_owned();
    let response = if shared.starting() {
        text(StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if request.method() == Method::PUT && path == TOKEN_PATH {
        issue_token(shared, ttl_header.as_deref())
    } else if request.method() == Method::GET && path.starts_with("/latest/") {
        metadata(shared, source, &path, token.as_deref())
    } else {
        text(StatusCode::NOT_FOUND, "not found")
    };
    lock(&shared.requests).push(ImdsRequest {
        source,
        method: request.method().clone(),
        path,
        ttl_header,
        with_token: token.is_some(),
        status: response.status(),
    });
    response
}

/// A token valid for the TTL asked for; 400 when none or one out of range is
/// asked for, as EC2 answers.
fn issue_token(shared: &Shared, ttl_header: Option<&str>) -> Response<Full<Bytes>> {
    let Some(ttl) = ttl_header
        .and_then(|ttl| ttl.trim().parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TOKEN_TTL_SECONDS).contains(ttl))
    else {
        return text(StatusCode::BAD_REQUEST, "bad or missing token TTL");
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    lock(&shared.tokens).insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    let mut response = text(StatusCode::OK, &token);
    response
        .headers_mut()
        .insert(TOKEN_TTL_HEADER, http::HeaderValue::from(ttl));
    response
}

fn metadata(
    shared: &Shared,
    source: IpAddr,
    path: &str,
    token: Option<&str>,
) -> Response<Full<Bytes>> {
    let valid = token.is_some_and(|token| {
        lock(&shared.tokens)
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    });
    if !valid {
        return text(StatusCode::UNAUTHORIZED, "");
    }
    let Some(instance) = lock(&shared.instances).get(&source).cloned() else {
        return text(StatusCode::NOT_FOUND, "no instance has this source address");
    };
    match path {
        "/latest/meta-data/instance-id" => text(StatusCode::OK, &instance.instance_id),
        "/latest/meta-data/local-ipv4" => text(StatusCode::OK, &instance.local_ipv4.to_string()),
        CREDENTIALS_PATH => match &instance.role {
            Some(role) => text(StatusCode::OK, &role.name),
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
        _ => match (path.strip_prefix(CREDENTIALS_PATH), &instance.role) {
            (Some(name), Some(role)) if name == role.name => {
                text(StatusCode::OK, &credentials(role).to_string())
            }
            _ => text(StatusCode::NOT_FOUND, "not found"),
        },
    }
}

/// The document EC2 serves for an instance profile's role.
fn credentials(role: &ImdsRole) -> serde_json::Value {
    let now = std::time::SystemTime::now();
    serde_json::json!({
        "Code": "Success",
        "LastUpdated": humantime::format_rfc3339_seconds(now).to_string(),
        "Type": "AWS-HMAC",
        "AccessKeyId": role.access_key_id,
        "SecretAccessKey": role.secret_access_key,
        "Token": format!("stand-in-session-of-{}", role.name),
        "Expiration": humantime::format_rfc3339_seconds(now + CREDENTIALS_LIFE).to_string(),
    })
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}
