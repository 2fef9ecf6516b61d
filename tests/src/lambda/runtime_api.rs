//! The Lambda Runtime API, as the Lambda service serves it to a function's
//! runtime: the function long-polls `GET /2018-06-01/runtime/invocation/next`,
//! answers with `POST .../invocation/{id}/response` or `.../{id}/error`, and
//! reports a failed start with `POST /2018-06-01/runtime/init/error`.
//! Tests hand it payloads with [`RuntimeApi::invoke`] and get the answers back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lock;
use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime";
const ACCOUNT_ID: &str = "123456789012";

/// The error a function reported for an invocation (or for its start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function reported {}: {}", .0.error_type, .0.error_message)]
    Function(FunctionError),
    #[error("the function did not answer within {timeout:?}{}", init_error.as_ref().map(|e| format!(" (it failed to start: {}: {})", e.error_type, e.error_message)).unwrap_or_default())]
    Timeout {
        timeout: Duration,
        init_error: Option<FunctionError>,
    },
    #[error("the function answered with a body that is not JSON: {0}")]
    NotJson(String),
}

/// One invocation and how it ended, for tests to assert on.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    pub request_id: String,
    pub payload: Value,
    pub outcome: Option<Result<Value, FunctionError>>,
}

type Outcome = Result<Bytes, FunctionError>;

struct Pending {
    request_id: String,
    payload: Bytes,
    deadline: SystemTime,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    function_name: String,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<FunctionError>>,
    records: Mutex<Vec<InvocationRecord>>,
    /// When the runtime first asked for an invocation: the end of its init
    /// phase, which Lambda reports as Init Duration.
    first_poll: Mutex<Option<std::time::Instant>>,
}

/// A running Runtime API on 127.0.0.1. Dropping it stops serving.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    /// The function's configured timeout: sets each invocation's deadline.
    timeout: Duration,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start(function_name: &str, timeout: Duration) -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Lambda Runtime API")?;
        let address = listener.local_addr()?;
        let (queue, next) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_name: function_name.to_owned(),
            next: tokio::sync::Mutex::new(next),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            records: Mutex::new(Vec::new()),
            first_poll: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(RuntimeApi {
            address,
            shared,
            queue,
            timeout,
            server,
        })
    }

    /// `host:port`, what a runtime gets as AWS_LAMBDA_RUNTIME_API.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn function_arn(&self) -> String {
        function_arn(&self.shared.function_name)
    }

    /// What the function reported through /runtime/init/error, if it did.
    pub fn init_error(&self) -> Option<FunctionError> {
        lock(&self.shared.init_error).clone()
    }

    pub fn invocations(&self) -> Vec<InvocationRecord> {
        lock(&self.shared.records).clone()
    }

    /// When the runtime first polled `/invocation/next` (its init phase ended).
    pub fn first_poll_at(&self) -> Option<std::time::Instant> {
        *lock(&self.shared.first_poll)
    }

    /// Invokes the function synchronously (RequestResponse) and waits for its
    /// answer, at most the function's timeout plus `grace` for its start.
    pub async fn invoke(&self, payload: &Value, grace: Duration) -> Result<Value, InvokeError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (reply, answer) = oneshot::channel();
        lock(&self.shared.records).push(InvocationRecord {
            request_id: request_id.clone(),
            payload: payload.clone(),
            outcome: None,
        });
        let pending = Pending {
            request_id: request_id.clone(),
            payload: Bytes::from(payload.to_string()),
            deadline: SystemTime::now() + self.timeout,
            reply,
        };
        let waited = self.timeout + grace;
        let outcome = match self.queue.send(pending) {
            Ok(()) => tokio::time::timeout(waited, answer)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        lock(&self.shared.in_flight).remove(&request_id);
        let Some(outcome) = outcome else {
            return Err(InvokeError::Timeout {
                timeout: waited,
                init_error: self.init_error(),
            });
        };
        let result = match outcome {
            Ok(body) => serde_json::from_slice::<Value>(&body)
                .map_err(|_| InvokeError::NotJson(String::from_utf8_lossy(&body).into_owned())),
            Err(error) => Err(InvokeError::Function(error)),
        };
        if let Some(record) = lock(&self.shared.records)
            .iter_mut()
            .find(|r| r.request_id == request_id)
        {
            record.outcome = Some(match &result {
                Ok(value) => Ok(value.clone()),
                Err(InvokeError::Function(error)) => Err(error.clone()),
                Err(other) => Err(FunctionError {
                    error_type: "Harness".to_owned(),
                    error_message: other.to_string(),
                }),
            });
        }
        result
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn function_arn(function_name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function_name}")
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here so that aborting the accept loop also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Some(route) = path.strip_prefix(PREFIX) else {
        return status(StatusCode::NOT_FOUND, "not a Runtime API path");
    };
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            lock(&shared.first_poll).get_or_insert_with(std::time::Instant::now);
            next_invocation(shared).await
        }
        (Method::POST, ["invocation", id, "response"]) => answer(shared, id, Ok(body)),
        (Method::POST, ["invocation", id, "error"]) => {
            answer(shared, id, Err(function_error(&body)))
        }
        (Method::POST, ["init", "error"]) => {
            *lock(&shared.init_error) = Some(function_error(&body));
            status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => status(StatusCode::NOT_FOUND, "unknown Runtime API route"),
    }
}

/// Long-polls until a test invokes. If the runtime hangs up meanwhile, this
/// future is dropped and the receive is cancelled without losing an invocation.
async fn next_invocation(shared: &Shared) -> Response<Full<Bytes>> {
    let Some(pending) = shared.next.lock().await.recv().await else {
        return status(StatusCode::GONE, "the Runtime API is shutting down");
    };
    let deadline_ms = pending
        .deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    lock(&shared.in_flight).insert(pending.request_id.clone(), pending.reply);
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &pending.request_id)
        .header("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string())
        .header(
            "Lambda-Runtime-Invoked-Function-Arn",
            function_arn(&shared.function_name),
        )
        .header(
            "Lambda-Runtime-Trace-Id",
            format!("Root=1-00000000-{}", pending.request_id.replace('-', "")),
        )
        .body(Full::new(pending.payload))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}

fn answer(shared: &Shared, request_id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
    match lock(&shared.in_flight).remove(request_id) {
        Some(reply) => {
            // The invoker may have given up (timeout); the answer is then moot.
            let _ = reply.send(outcome);
            status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        None => status(
            StatusCode::BAD_REQUEST,
            r#"{"errorType":"InvalidRequestID","errorMessage":"unknown or already answered request id"}"#,
        ),
    }
}

fn function_error(body: &[u8]) -> FunctionError {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    FunctionError {
        error_type: field("errorType").unwrap_or_else(|| "Unknown".to_owned()),
        error_message: field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

fn status(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = code;
    response
}
