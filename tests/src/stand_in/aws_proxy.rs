//! The HTTP endpoint programs under test use as AWS: records who called what,
//! applies injected faults, lets the lifecycle layer answer what moto cannot, and
//! forwards the rest to moto.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::autoscaling_xml::{
    describe_lifecycle_hooks, empty_result, overlay_lifecycle_states, terminate_activity,
};
use super::aws_errors::{error_response, CannedResponse};
use super::aws_request::{classify, AwsCall, Protocol};
use super::call_log::{CallLog, RecordedCall};
use super::fault_injection::{FaultEffect, FaultInjector};
use super::function_routes::FunctionRoutes;
use super::lifecycle_actions::{ActionKey, ActionTarget, HookResult};
use super::lifecycle_hooks::PutLifecycleHook;
use super::lifecycle_layer::LifecycleLayer;
use super::stack_signals::{signal_resource_response, ResourceSignal, StackSignals};

/// Stops serving when dropped: the accept loop and every open connection end.
#[derive(Debug)]
pub struct AwsProxy {
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl AwsProxy {
    /// Serves on a free port of `bind`: 127.0.0.1 for instances that are local
    /// processes, a Docker network's gateway for instances that are containers.
    pub async fn start(
        layer: Arc<LifecycleLayer>,
        faults: FaultInjector,
        calls: CallLog,
        functions: FunctionRoutes,
        signals: StackSignals,
        moto_url: String,
        bind: IpAddr,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((bind, 0))
            .await
            .with_context(|| format!("binding the AWS proxy on {bind}"))?;
        let address = listener.local_addr()?;
        let proxy = Arc::new(Proxy {
            layer,
            faults,
            calls,
            functions,
            signals,
            moto_url,
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let server = tokio::spawn(serve(listener, proxy));
        Ok(Self { address, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    // Owned here so that aborting the accept loop also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: wait instead of spinning on the error.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let proxy = Arc::clone(&proxy);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let proxy = Arc::clone(&proxy);
                async move { proxy.handle(request).await }
            });
            // A connection error only concerns that caller, who sees it as one.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned to hyper to make it close the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("response dropped by an injected fault")]
struct DroppedResponse;

type Body = Full<Bytes>;

/// A request as received, with its body read.
struct Received {
    parts: http::request::Parts,
    body: Bytes,
}

struct Proxy {
    layer: Arc<LifecycleLayer>,
    faults: FaultInjector,
    calls: CallLog,
    functions: FunctionRoutes,
    signals: StackSignals,
    moto_url: String,
    client: Client<HttpConnector, Body>,
}

impl Proxy {
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, DroppedResponse> {
        let (parts, incoming) = request.into_parts();
        let body = match incoming.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(DroppedResponse),
        };
        let received = Received { parts, body };
        let call = classify(
            &received.parts.method,
            &received.parts.uri,
            &received.parts.headers,
            &received.body,
        );
        // Before any fault: a call that fails was still made, and needs its permission.
        self.calls.record(RecordedCall {
            access_key_id: call.access_key_id.clone(),
            service: call.service.clone(),
            operation: call.operation.clone(),
            s3_path: (call.service == "s3").then(|| s3_path(received.parts.uri.path())),
        });
        match self.faults.take(&call.service, &call.operation) {
            Some(FaultEffect::Error {
                status,
                code,
                message,
            }) => {
                return Ok(canned(error_response(
                    call.protocol,
                    &call.service,
                    status,
                    &code,
                    &message,
                )))
            }
            Some(FaultEffect::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(FaultEffect::DropResponse) => {
                let _ = self.respond(&call, &received).await;
                return Err(DroppedResponse);
            }
            None => {}
        }
        Ok(self.respond(&call, &received).await)
    }

    async fn respond(&self, call: &AwsCall, received: &Received) -> Response<Body> {
        let answer = match (call.service.as_str(), call.operation.as_str()) {
            ("autoscaling", _) => self.autoscaling(call, received).await,
            ("lambda", "Invoke") => Ok(canned(
                self.functions
                    .invoke(received.parts.uri.path(), &received.body)
                    .await,
            )),
            ("cloudformation", "SignalResource") => {
                let param = |name: &str| call.param(name).unwrap_or_default().to_owned();
                self.signals.record(ResourceSignal {
                    stack_name: param("StackName"),
                    logical_resource_id: param("LogicalResourceId"),
                    unique_id: param("UniqueId"),
                    status: param("Status"),
                });
                Ok(canned(CannedResponse::xml(200, signal_resource_response())))
            }
            ("ec2", "TerminateInstances" | "RunInstances") => {
                self.forward_then_reconcile(received).await
            }
            _ => self.forward(received).await,
        };
        answer.unwrap_or_else(|error| {
            canned(error_response(
                call.protocol,
                &call.service,
                500,
                "InternalFailure",
                &format!("stand-in failure: {error:#}"),
            ))
        })
    }

    async fn autoscaling(
        &self,
        call: &AwsCall,
        received: &Received,
    ) -> anyhow::Result<Response<Body>> {
        let param = |name: &str| call.param(name).unwrap_or_default().to_owned();
        match call.operation.as_str() {
            "TerminateInstanceInAutoScalingGroup" => {
                let instance_id = param("InstanceId");
                let decrement = param("ShouldDecrementDesiredCapacity") == "true";
                if let Some(state) = self.layer.lifecycle_states().get(&instance_id) {
                    return Ok(validation_error(&format!(
                        "The instance {instance_id} is already {state}"
                    )));
                }
                match self
                    .layer
                    .hold_for_termination(&instance_id, decrement)
                    .await?
                {
                    Some(group) => Ok(xml_ok(terminate_activity(
                        &group,
                        &instance_id,
                        decrement,
                        std::time::SystemTime::now(),
                    ))),
                    None => self.forward_then_reconcile(received).await,
                }
            }
            "CompleteLifecycleAction" => {
                let Some(result) = HookResult::parse(&param("LifecycleActionResult")) else {
                    return Ok(validation_error(
                        "LifecycleActionResult must be CONTINUE or ABANDON",
                    ));
                };
                let Some(key) = action_key(call) else {
                    return Ok(validation_error(
                        "Either LifecycleActionToken or InstanceId must be specified",
                    ));
                };
                Ok(match self.layer.complete(&key, result).await? {
                    Ok(()) => xml_ok(empty_result("CompleteLifecycleAction")),
                    Err(error) => validation_error(&error.to_string()),
                })
            }
            "RecordLifecycleActionHeartbeat" => {
                let Some(key) = action_key(call) else {
                    return Ok(validation_error(
                        "Either LifecycleActionToken or InstanceId must be specified",
                    ));
                };
                Ok(match self.layer.heartbeat(&key) {
                    Ok(()) => xml_ok(empty_result("RecordLifecycleActionHeartbeat")),
                    Err(error) => validation_error(&error.to_string()),
                })
            }
            "PutLifecycleHook" => {
                let response = self.forward(received).await?;
                if response.status().is_success() {
                    self.layer.hook_put(put_hook(call)).await?;
                }
                Ok(response)
            }
            "DeleteLifecycleHook" => {
                let response = self.forward(received).await?;
                if response.status().is_success() {
                    self.layer
                        .hook_deleted(&param("AutoScalingGroupName"), &param("LifecycleHookName"));
                }
                Ok(response)
            }
            "DescribeLifecycleHooks" => {
                let wanted = members(call, "LifecycleHookNames");
                let hooks: Vec<_> = self
                    .layer
                    .hooks_of(&param("AutoScalingGroupName"))
                    .into_iter()
                    .filter(|hook| wanted.is_empty() || wanted.contains(&hook.hook_name))
                    .collect();
                Ok(xml_ok(describe_lifecycle_hooks(&hooks)))
            }
            "SetDesiredCapacity" => {
                let Ok(desired) = param("DesiredCapacity").parse::<usize>() else {
                    return Ok(validation_error(
                        "DesiredCapacity must be a non-negative integer",
                    ));
                };
                let group = param("AutoScalingGroupName");
                match self.layer.set_desired_capacity(&group, desired).await {
                    Ok(()) => Ok(xml_ok(empty_result("SetDesiredCapacity"))),
                    Err(error) => Ok(validation_error(&format!("{error:#}"))),
                }
            }
            "DescribeAutoScalingGroups" | "DescribeAutoScalingInstances" => {
                let response = self.forward(received).await?;
                let states = self.layer.lifecycle_states();
                if states.is_empty() || !response.status().is_success() {
                    return Ok(response);
                }
                let (mut parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let rewritten = overlay_lifecycle_states(&String::from_utf8_lossy(&body), &states);
                // The body changed length, and moto's checksum covers the old body.
                parts.headers.remove(http::header::CONTENT_LENGTH);
                parts.headers.remove("x-amz-crc32");
                Ok(Response::from_parts(
                    parts,
                    Full::new(Bytes::from(rewritten)),
                ))
            }
            operation if operation.starts_with("Describe") => self.forward(received).await,
            _ => self.forward_then_reconcile(received).await,
        }
    }

    async fn forward_then_reconcile(&self, received: &Received) -> anyhow::Result<Response<Body>> {
        let response = self.forward(received).await?;
        self.layer.reconcile().await?;
        Ok(response)
    }

    async fn forward(&self, received: &Received) -> anyhow::Result<Response<Body>> {
        let path = received
            .parts
            .uri
            .path_and_query()
            .map_or("/", |path| path.as_str());
        let mut request = Request::builder()
            .method(received.parts.method.clone())
            .uri(format!("{}{path}", self.moto_url))
            .body(Full::new(received.body.clone()))?;
        *request.headers_mut() = without_hop_headers(&received.parts.headers);
        // hyper sets Host for moto's address; S3 would read a stale one as a bucket.
        request.headers_mut().remove(http::header::HOST);
        let response = self
            .client
            .request(request)
            .await
            .context("forwarding to moto")?;
        let (mut parts, incoming) = response.into_parts();
        let body = incoming
            .collect()
            .await
            .context("reading moto's answer")?
            .to_bytes();
        parts.headers = without_hop_headers(&parts.headers);
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// "bucket/key" from a path-style S3 path, or "bucket" for a bucket-level call
/// (which the SDK sends as "/bucket/"); the key as S3 reads it, percent-decoded
/// (an acknowledgement's `:` travels as `%3A`), as IAM matches it.
fn s3_path(path: &str) -> String {
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((bucket, "")) => bucket.to_owned(),
        _ => path.to_owned(),
    }
}

fn without_hop_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(http::header::CONNECTION);
    headers.remove(http::header::TRANSFER_ENCODING);
    headers
}

fn action_key(call: &AwsCall) -> Option<ActionKey> {
    let non_empty = |name: &str| {
        call.param(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let target = non_empty("LifecycleActionToken")
        .map(ActionTarget::Token)
        .or_else(|| non_empty("InstanceId").map(ActionTarget::Instance))?;
    Some(ActionKey {
        group_name: non_empty("AutoScalingGroupName").unwrap_or_default(),
        hook_name: non_empty("LifecycleHookName").unwrap_or_default(),
        target,
    })
}

fn put_hook(call: &AwsCall) -> PutLifecycleHook {
    let given = |name: &str| call.param(name).map(str::to_owned);
    PutLifecycleHook {
        group_name: given("AutoScalingGroupName").unwrap_or_default(),
        hook_name: given("LifecycleHookName").unwrap_or_default(),
        transition: given("LifecycleTransition"),
        notification_target_arn: given("NotificationTargetARN"),
        role_arn: given("RoleARN"),
        notification_metadata: given("NotificationMetadata"),
        heartbeat_timeout: call
            .param("HeartbeatTimeout")
            .and_then(|secs| secs.parse().ok())
            .map(std::time::Duration::from_secs),
        default_result: call.param("DefaultResult").and_then(HookResult::parse),
    }
}

/// Values of a query-protocol list: `Name.member.1`, `Name.member.2`, ...
fn members(call: &AwsCall, name: &str) -> Vec<String> {
    let prefix = format!("{name}.member.");
    call.params
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|(_, value)| value.clone())
        .collect()
}

fn validation_error(message: &str) -> Response<Body> {
    canned(error_response(
        Protocol::Query,
        "autoscaling",
        400,
        "ValidationError",
        message,
    ))
}

fn xml_ok(body: String) -> Response<Body> {
    canned(CannedResponse::xml(200, body))
}

fn canned(canned: CannedResponse) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(canned.body)));
    *response.status_mut() =
        StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in canned.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
