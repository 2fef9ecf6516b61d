//! Scenarios: TLS is on by default. Every client and every peer must present
//! a certificate from the cluster's CA; anything else is refused, and a
//! certificate that is wrong says how. On the peer port, only a node's
//! certificate will do.
//!
//! Formation, replacement, backup and restore over TLS are the other scenario
//! files: the harness runs every cluster with TLS unless a test asks otherwise.

use etcd_aws_core::contract::events;
use etcd_aws_core::contract::names::ports;
use std::time::{Duration, SystemTime};

use etcd_aws_backup::{run_backup, BackupConfig};
use etcd_aws_io::etcd::admin::EtcdTimeouts;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::check_certificate;
use etcd_aws_io::tls::{ClientTlsSource, ClusterCa, SecretStore, TlsCredentials};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::node::{Node, NodeSpec};
use etcd_aws_tests::paths::EtcdRelease;
use etcd_aws_tests::sim_cluster::{snapshot_via, wait_for, SimCluster, HARNESS_TIMEOUTS};
use etcd_aws_tests::stand_in::{create_secret, Caller, SimInstance, StandIn, StandInOptions};
use etcd_client::{Certificate, Client, ConnectOptions, TlsOptions};

const SETTLE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn short_timeouts() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2))
}

/// Reads a key through `options`; `Err` when the cluster refuses us.
async fn try_read(urls: Vec<String>, options: ConnectOptions) -> anyhow::Result<()> {
    let mut client = Client::connect(urls, Some(options)).await?;
    client.get("tls/probe", None).await?;
    Ok(())
}

fn a_foreign_client() -> anyhow::Result<TlsCredentials> {
    let other = ClusterCa::generate("another cluster", ValidityPeriod::starting_now(HOUR))?;
    let issued = other.issue_client("intruder", ValidityPeriod::starting_now(HOUR))?;
    Ok(TlsCredentials::issued_by(&other, issued))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_clients_and_peers_over_tls_with_certificates_they_issued_themselves(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;
    for member in &formed.members {
        let urls = member.peer_urls.iter().chain(&member.client_urls);
        assert!(
            urls.clone().all(|url| url.starts_with("https://")),
            "{member:?}"
        );
    }
    let pki = cluster.stand_in.pki().expect("TLS is the default");
    for instance in cluster.stand_in.instances().await? {
        let cert_file = cluster.instance_root(&instance.id).join("tls/cert.pem");
        let cert = std::fs::read_to_string(&cert_file)?;
        let info = check_certificate(
            "node certificate",
            &cert,
            pki.ca.cert_pem(),
            SystemTime::now(),
        )?;
        assert_eq!(info.common_name, instance.id);
        assert!(info.ips.contains(&instance.private_ip.into()), "{info:?}");
    }
    let mut client = cluster.client().await?;
    client.put("tls/hello", "world", None).await?;
    let read = client.get("tls/hello", None).await?;
    assert_eq!(read.kvs().first().map(|kv| kv.value()), Some(&b"world"[..]));
    Ok(())
}

/// The load balancer's health check: plain HTTP, no certificate, the agent's
/// GET /ready on the ready port.
async fn health_check(ip: std::net::Ipv4Addr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((ip, ports::READY)).await?;
    stream
        .write_all(b"GET /ready HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await??;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_health_check_needs_no_certificate() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let instance = cluster.stand_in.instances().await?.remove(0);
    let answer = health_check(instance.private_ip).await?;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.ends_with("ready\n"), "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let ca = cluster
        .stand_in
        .pki()
        .expect("TLS")
        .ca
        .cert_pem()
        .to_owned();

    // It trusts the cluster's CA, but has no certificate of its own to show.
    let anonymous =
        short_timeouts().with_tls(TlsOptions::new().ca_certificate(Certificate::from_pem(&ca)));
    let refused = try_read(cluster.client_urls(), anonymous).await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );

    // Nor does etcd answer plaintext on its client port.
    let plain_urls = cluster
        .client_urls()
        .iter()
        .map(|url| url.replacen("https://", "http://", 1))
        .collect();
    let refused = try_read(plain_urls, short_timeouts()).await;
    assert!(refused.is_err(), "etcd answered plaintext");

    // The harness's own certificate is served: the refusals were about the certificate.
    try_read(cluster.client_urls(), cluster.client_options()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let ca = cluster
        .stand_in
        .pki()
        .expect("TLS")
        .ca
        .cert_pem()
        .to_owned();
    let intruder = a_foreign_client()?;
    let options = short_timeouts().with_tls(
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&ca))
            .identity(etcd_client::Identity::from_pem(
                &intruder.cert_pem,
                &intruder.key_pem,
            )),
    );
    let refused = try_read(cluster.client_urls(), options).await;
    assert!(
        refused.is_err(),
        "a certificate from another CA was accepted"
    );
    Ok(())
}

/// What a member's peer port answers `GET /version` with, presenting
/// `credentials`; `Err` when the TLS connection is refused.
async fn peer_port_version(
    ip: std::net::IpAddr,
    credentials: &TlsCredentials,
) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::ServerName;
    let config = credentials
        .rustls_client_config()
        .map_err(anyhow::Error::msg)?;
    let tcp = tokio::net::TcpStream::connect((ip, ports::PEER)).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::IpAddress(ip.into()), tcp)
        .await?;
    // With TLS 1.3 the server judges the client's certificate after the
    // client's side of the handshake is done: the refusal comes on the read.
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Ok(Err(error)) if answer.is_empty() => return Err(error.into()),
            Ok(Err(_)) => break,
            Err(_) if answer.is_empty() => anyhow::bail!("no answer within 5 s"),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_port_refuses_a_client_certificate_of_the_clusters_own_ca() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let pki = cluster.stand_in.pki().expect("TLS");
    let client = pki.issue_client("alice")?;
    // A node's certificate, as a node issues itself one (the harness connects
    // from 127.0.0.1, which etcd checks against the certificate's addresses).
    let loopback: std::net::IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
    let node = TlsCredentials::issued_by(
        &pki.ca,
        pki.ca.issue_peer(
            "i-probe",
            &[loopback],
            &[],
            ValidityPeriod::starting_now(HOUR),
        )?,
    );
    for instance in cluster.stand_in.instances().await? {
        let ip = instance.private_ip.into();
        let as_client = peer_port_version(ip, &client).await;
        assert!(
            as_client
                .as_ref()
                .map_or(true, |answer| !answer.contains("etcdserver")),
            "{}'s peer port served a client certificate: {as_client:?}",
            instance.id
        );
        let as_node = peer_port_version(ip, &node).await?;
        assert!(as_node.contains("etcdserver"), "{}: {as_node}", instance.id);
    }
    // The same client certificate is good on the client port.
    try_read(
        cluster.client_urls(),
        short_timeouts().with_tls(client.etcd_options()),
    )
    .await?;
    Ok(())
}

/// The group's instances in the order the agents rank them for seeding.
async fn instances_in_launch_order(stand_in: &StandIn) -> anyhow::Result<Vec<SimInstance>> {
    let mut instances = stand_in.instances().await?;
    instances.sort_by(|a, b| (a.launch_time, &a.id).cmp(&(b.launch_time, &b.id)));
    Ok(instances)
}

fn node_on(
    stand_in: &StandIn,
    instance: &SimInstance,
    root: &std::path::Path,
    ca_secret: &str,
) -> anyhow::Result<Node> {
    Node::start(NodeSpec {
        instance_id: instance.id.clone(),
        private_ip: instance.private_ip,
        group_name: stand_in.group_name().to_owned(),
        aws_env: stand_in.env_as(Caller::Node),
        root: root.join(&instance.id),
        agent_args: Vec::new(),
        extra_args: Vec::new(),
        backup_bucket: None,
        tls_ca_secret: Some(ca_secret.to_owned()),
        tls_functions_secret: None,
        etcd: EtcdRelease::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions {
        group_size: 4,
        ..StandInOptions::default()
    })
    .await?;
    let pki = stand_in.pki().expect("TLS").clone();
    let root = tempfile::tempdir()?;
    let instances = instances_in_launch_order(&stand_in).await?;
    let (members, impostor) = instances.split_at(3);

    // Three nodes with the cluster's CA form the cluster.
    let mut nodes = Vec::new();
    for instance in members {
        nodes.push(node_on(&stand_in, instance, root.path(), &pki.ca_secret)?);
    }
    let url = nodes[0].spec().client_url();
    let access = stand_in.etcd_access(HARNESS_TIMEOUTS);
    wait_for("three voting members", SETTLE, || async {
        let voters = snapshot_via(&url, &access).await?.members.len();
        anyhow::ensure!(voters == 3, "{voters} members");
        Ok(())
    })
    .await?;

    // The fourth instance's agent was given another cluster's CA.
    let foreign_secret = format!("etcd-aws/{}/impostor-ca", stand_in.group_name());
    let foreign = ClusterCa::generate("impostor", ValidityPeriod::starting_now(HOUR))?;
    let store = SecretStore::new(&stand_in.sdk_config().await);
    create_secret(&store, &foreign_secret).await?;
    store.store_ca(&foreign_secret, &foreign).await?;
    let intruder = node_on(&stand_in, &impostor[0], root.path(), &foreign_secret)?;

    // It cannot talk to the members, so it neither joins nor forms a cluster of its own.
    wait_for(
        "the impostor to notice the refused handshakes",
        SETTLE,
        || async {
            anyhow::ensure!(
                agent_log::has_event(&intruder.log(), events::PEER_TLS_REFUSED),
                "not yet"
            );
            Ok(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let members_now = snapshot_via(&url, &access).await?.members;
    assert_eq!(members_now.len(), 3, "{members_now:?}");
    assert!(members_now.iter().all(|m| m.name != impostor[0].id));
    assert!(!intruder.is_ready(), "{}", intruder.log());
    assert!(
        !intruder.spec().data_dir().exists(),
        "the impostor started etcd:\n{}",
        intruder.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_refused_with_when_and_what_to_do() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let pki = cluster.stand_in.pki().expect("TLS").clone();
    let now = SystemTime::now();
    let expired = pki.ca.issue_client(
        "functions",
        ValidityPeriod {
            from: now - HOUR * 30,
            until: now - HOUR * 2,
        },
    )?;
    let sdk = cluster.stand_in.sdk_config().await;
    SecretStore::new(&sdk)
        .store_client(
            &pki.functions_secret,
            &TlsCredentials::issued_by(&pki.ca, expired),
        )
        .await?;

    let config = BackupConfig::new(
        cluster.stand_in.group_name(),
        cluster.stand_in.bucket(),
        cluster.stand_in.functions_tls(),
    );
    let error = run_backup(&config, &sdk)
        .await
        .expect_err("expired")
        .to_string();
    assert!(error.contains(&pki.functions_secret), "{error}");
    assert!(error.contains("expired 2h 0m ago"), "{error}");
    assert!(error.contains("issue-client-cert"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_named_as_such() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions {
        group_size: 1,
        lifecycle_hook: None,
        ..StandInOptions::default()
    })
    .await?;
    let secret = format!("etcd-aws/{}/foreign-client", stand_in.group_name());
    let sdk = stand_in.sdk_config().await;
    // The secret names the cluster's CA, but the certificate beside it is another CA's.
    let mismatched = TlsCredentials {
        ca_pem: stand_in.pki().expect("TLS").ca.cert_pem().to_owned(),
        ..a_foreign_client()?
    };
    let store = SecretStore::new(&sdk);
    create_secret(&store, &secret).await?;
    store.store_client(&secret, &mismatched).await?;
    let error = ClientTlsSource::Secret(secret.clone())
        .access(&sdk, EtcdTimeouts::default())
        .await
        .expect_err("foreign")
        .to_string();
    assert!(
        error.contains("was not issued by this cluster's CA"),
        "{error}"
    );
    assert!(error.contains(&secret), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waits_for_the_cluster_ca_until_deploy_writes_it() -> anyhow::Result<()> {
    let stand_in = StandIn::start(StandInOptions {
        group_size: 1,
        lifecycle_hook: None,
        ..StandInOptions::default()
    })
    .await?;
    let pki = stand_in.pki().expect("TLS").clone();
    let sdk = stand_in.sdk_config().await;
    // What the stack's secret holds before the first deploy writes the CA.
    let pending = format!("etcd-aws/{}/pending-ca", stand_in.group_name());
    create_secret(&SecretStore::new(&sdk), &pending).await?;
    let root = tempfile::tempdir()?;
    let instance = stand_in.instances().await?.remove(0);
    let node = node_on(&stand_in, &instance, root.path(), &pending)?;

    wait_for("the node to say it waits for the CA", SETTLE, || async {
        anyhow::ensure!(
            agent_log::waited_for(&node.log(), events::WAITING, "cluster_ca_not_initialised"),
            "not yet"
        );
        Ok(())
    })
    .await?;
    assert!(!node.is_ready());

    SecretStore::new(&sdk).store_ca(&pending, &pki.ca).await?;
    wait_for("the node to become ready", SETTLE, || async {
        anyhow::ensure!(node.is_ready(), "not ready");
        Ok(())
    })
    .await
    .map_err(|e| e.context(node.log()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_cluster_runs_plaintext_when_asked_and_says_so_loudly() -> anyhow::Result<()> {
    let cluster = SimCluster::start_with(StandInOptions {
        tls: false,
        ..StandInOptions::default()
    })
    .await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;
    assert!(formed
        .members
        .iter()
        .all(|m| m.client_urls.iter().all(|url| url.starts_with("http://"))));
    try_read(cluster.client_urls(), short_timeouts()).await?;
    let first = cluster.instance_ids().remove(0);
    let log = cluster.with_node(&first, |node| node.log())?;
    assert!(
        agent_log::has_event(&log, events::INSECURE_PLAINTEXT),
        "{log}"
    );
    Ok(())
}
