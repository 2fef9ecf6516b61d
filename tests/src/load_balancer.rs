//! The stack's network load balancer, as clients meet it: one address on
//! 127.0.0.1 that passes each new TCP connection through to a node its
//! target group counts healthy, that is, one whose agent answers `GET
//! /ready` with 200. Clients such as `etcdctl` keep one address across
//! replacements and total losses, as they keep the balancer's DNS name on
//! AWS.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::names::ports;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long one health check may take.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// The balancer; it stops when dropped.
pub struct LoadBalancer {
    address: SocketAddr,
    accept: JoinHandle<()>,
}

impl LoadBalancer {
    /// Listens on a free port of 127.0.0.1; `targets` names the nodes' IPs
    /// at the moment a connection arrives.
    pub async fn start(
        targets: impl Fn() -> Vec<IpAddr> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the load balancer's port")?;
        let address = listener.local_addr()?;
        let targets = Arc::new(targets);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let targets = Arc::clone(&targets);
                tokio::spawn(async move {
                    if let Some(ip) = first_ready(targets()).await {
                        let target = SocketAddr::new(ip, ports::CLIENT);
                        if let Ok(mut node) = TcpStream::connect(target).await {
                            let mut client = client;
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
                        }
                    }
                });
            }
        });
        Ok(Self { address, accept })
    }

    /// `http://127.0.0.1:<port>`, for a plaintext cluster's clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The first of `ips` whose agent says it is ready.
async fn first_ready(ips: Vec<IpAddr>) -> Option<IpAddr> {
    for ip in ips {
        if ready(ip).await {
            return Some(ip);
        }
    }
    None
}

/// The target group's health check: `GET /ready` answered with 200.
pub async fn ready(ip: IpAddr) -> bool {
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, ready_answer(ip)).await,
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.0 200")
    )
}

/// The whole answer to `GET /ready` on the node's ready port.
pub async fn ready_answer(ip: IpAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect((ip, ports::READY)).await?;
    stream
        .write_all(b"GET /ready HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}
