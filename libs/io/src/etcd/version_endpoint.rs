//! etcd's `/version` on a member's client URL: the one place etcd states the
//! cluster version (the `major.minor` every member speaks, raised by the
//! leader once all members run a newer release), which no gRPC call returns.
//! Read over HTTP/1.1 with the client certificate the gRPC calls use, since
//! etcd serves both on one port and asks every client for its certificate.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::etcd::admin::EtcdAccess;
use crate::etcd::error::{EtcdError, EtcdErrorKind};

const OPERATION: &str = "GET /version";
/// etcd's answer is a few dozen bytes; anything longer is not etcd.
const MAX_ANSWER: usize = 4096;

/// What a member says of its own release and of the cluster's version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Versions {
    /// The member's release, `3.5.16`.
    #[serde(rename = "etcdserver")]
    pub server: String,
    /// The cluster version, `3.5.0`; `not_decided` while a new cluster has
    /// not settled it yet.
    #[serde(rename = "etcdcluster")]
    pub cluster: String,
}

/// Asks the member at `endpoint` (`https://ip:port` or `http://ip:port`).
/// The whole exchange is bounded by the access's connect and request timeouts.
pub async fn versions(endpoint: &str, access: &EtcdAccess) -> Result<Versions, EtcdError> {
    let deadline = access.timeouts.connect + access.timeouts.request;
    match tokio::time::timeout(deadline, ask(endpoint, access)).await {
        Ok(answer) => answer.map_err(|(kind, message)| EtcdError {
            operation: OPERATION,
            endpoints: endpoint.to_owned(),
            kind,
            message,
        }),
        Err(_) => Err(EtcdError {
            operation: OPERATION,
            endpoints: endpoint.to_owned(),
            kind: EtcdErrorKind::Unreachable,
            message: format!("no answer within {deadline:?}"),
        }),
    }
}

type Failure = (EtcdErrorKind, String);

async fn ask(endpoint: &str, access: &EtcdAccess) -> Result<Versions, Failure> {
    let address = socket_address(endpoint)?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| (EtcdErrorKind::Unreachable, format!("cannot connect: {e}")))?;
    let body = match &access.tls {
        Some(credentials) => {
            let connector = tokio_rustls::TlsConnector::from(
                credentials
                    .current()
                    .rustls_client_config()
                    .map_err(|message| (EtcdErrorKind::Other, message))?,
            );
            let tls = connector
                .connect(ServerName::IpAddress(address.ip().into()), tcp)
                .await
                .map_err(|e| {
                    (
                        EtcdErrorKind::TlsRefused,
                        format!("TLS handshake failed: {e}"),
                    )
                })?;
            get(tls, address).await?
        }
        None => get(tcp, address).await?,
    };
    serde_json::from_slice(&body).map_err(|e| {
        (
            EtcdErrorKind::Other,
            format!(
                "the answer is not etcd's version document ({e}): {:?}",
                String::from_utf8_lossy(&body)
            ),
        )
    })
}

/// `scheme://ip:port` -> the address; etcd-aws always names members by IP.
fn socket_address(endpoint: &str) -> Result<SocketAddr, Failure> {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
        .parse()
        .map_err(|_| (EtcdErrorKind::Other, "not an ip:port client URL".to_owned()))
}

async fn get<S>(stream: S, address: SocketAddr) -> Result<Bytes, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let unreachable = |e: hyper::Error| (EtcdErrorKind::Unreachable, e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(unreachable)?;
    // The connection is driven beside the request and ends with it.
    let driver = tokio::spawn(connection);
    let request = http::Request::get("/version")
        .header(http::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| (EtcdErrorKind::Other, e.to_string()))?;
    let answer = sender.send_request(request).await.map_err(unreachable);
    let body = match answer {
        Ok(response) if response.status().is_success() => Limited::new(response, MAX_ANSWER)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|e| {
                (
                    EtcdErrorKind::Unreachable,
                    format!("reading the answer: {e}"),
                )
            }),
        Ok(response) => Err((
            EtcdErrorKind::Other,
            format!("etcd answered {}", response.status()),
        )),
        Err(e) => Err(e),
    };
    driver.abort();
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_version_document_names_the_server_and_the_cluster_version() {
        let versions: Versions =
            serde_json::from_str(r#"{"etcdserver":"3.5.16","etcdcluster":"3.5.0"}"#)
                .expect("etcd's document parses");
        assert_eq!(
            versions,
            Versions {
                server: "3.5.16".into(),
                cluster: "3.5.0".into()
            }
        );
    }

    #[test]
    fn a_client_url_gives_the_members_address() {
        assert_eq!(
            socket_address("https://127.0.3.4:2379"),
            Ok("127.0.3.4:2379".parse().expect("an address"))
        );
        assert_eq!(
            socket_address("http://127.0.3.4:2379/"),
            Ok("127.0.3.4:2379".parse().expect("an address"))
        );
        assert!(socket_address("https://etcd.internal:2379").is_err());
    }
}
