//! Scenario: certificates outlive their first lifetime. A node renews its own
//! certificate in place before it expires, and etcd, which reads its
//! certificate files at every handshake, serves with the new one without a
//! restart.
//!
//! The nodes get certificates valid for a minute and run under a writer for
//! several minutes. The writer opens a new TLS connection for every write, so
//! each write is a handshake with whatever certificate the node has on disk at
//! that moment: had a node kept its first certificate, every write through it
//! would fail from the end of the first minute on. The agents' own clients
//! (their quorum watch, their readiness) connect every few seconds with the
//! node's certificate as their client identity, so a node whose agent kept
//! presenting an expired one would log a quorum loss and be unready.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use etcd_aws_core::contract::events;
use etcd_aws_io::tls::certificate::check_certificate;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::{NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::StandInOptions;
use etcd_client::Client;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(60);
/// The life of every certificate the nodes issue: each renews at 35 to 45 s.
const LIFETIME: Duration = Duration::from_secs(60);
/// How long the writer runs: past three lifetimes of the first certificates.
const UNDER_WRITES: Duration = Duration::from_secs(200);
/// The longest a write may wait, connection included.
const LONGEST_STALL: Duration = Duration::from_secs(2);

/// What the writer saw.
struct Writes {
    acknowledged: u64,
    failed: u64,
    /// The longest time between two acknowledged writes.
    longest_stall: Duration,
}

/// Writes one key after another for `length`, each through a new client
/// (a new TLS handshake with each node it reaches).
async fn write_with_new_connections(cluster: &SimCluster, length: Duration) -> Writes {
    let started = Instant::now();
    let mut last_ack = started;
    let mut writes = Writes {
        acknowledged: 0,
        failed: 0,
        longest_stall: Duration::ZERO,
    };
    let mut n = 0u64;
    while started.elapsed() < length {
        n += 1;
        let written = async {
            let mut client =
                Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
            client
                .put(format!("renewal/{}", n % 100), n.to_string(), None)
                .await?;
            anyhow::Ok(())
        }
        .await;
        match written {
            Ok(()) => {
                writes.longest_stall = writes.longest_stall.max(last_ack.elapsed());
                last_ack = Instant::now();
                writes.acknowledged += 1;
            }
            Err(_) => writes.failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writes.longest_stall = writes.longest_stall.max(last_ack.elapsed());
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_renew_their_certificates_in_place_under_a_writer_without_restarting_etcd(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start_with_nodes(
        StandInOptions::default(),
        NodeOptions {
            agent_args: vec![
                "--tls-cert-validity".to_owned(),
                format!("{}s", LIFETIME.as_secs()),
            ],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let ids = cluster.instance_ids();
    let etcd_pids: HashMap<String, Option<i32>> = ids
        .iter()
        .map(|id| Ok((id.clone(), cluster.with_node(id, |node| node.etcd_pid())?)))
        .collect::<anyhow::Result<_>>()?;
    assert!(etcd_pids.values().all(Option::is_some), "{etcd_pids:?}");
    let first_keys: HashMap<String, String> = ids
        .iter()
        .map(|id| {
            let key = cluster.instance_root(id).join("tls/key.pem");
            Ok((id.clone(), std::fs::read_to_string(key)?))
        })
        .collect::<anyhow::Result<_>>()?;

    let writes = write_with_new_connections(&cluster, UNDER_WRITES).await;

    assert!(
        writes.longest_stall <= LONGEST_STALL,
        "the writer waited {:?} ({} acknowledged, {} failed)",
        writes.longest_stall,
        writes.acknowledged,
        writes.failed
    );
    let pki = cluster.stand_in.pki().expect("TLS is the default");
    let logs = cluster.logs();
    for id in &ids {
        let log = cluster.with_node(id, |node| node.log())?;
        let renewals = agent_log::events(&log, events::CERTIFICATE_RENEWED);
        assert!(
            renewals.len() >= 2,
            "{id} renewed {} times\n{logs}",
            renewals.len()
        );
        assert!(
            agent_log::events(&log, events::CERTIFICATE_RENEWAL_FAILED).is_empty(),
            "{id}\n{logs}"
        );
        assert!(
            agent_log::events(&log, events::QUORUM_LOST).is_empty(),
            "{id}\n{logs}"
        );
        assert_eq!(
            cluster.with_node(id, |node| node.etcd_pid())?,
            etcd_pids[id],
            "etcd on {id} was restarted"
        );
        assert_eq!(cluster.with_node(id, |node| node.starts())?, 1, "{id}");
        let root = cluster.instance_root(id);
        assert_eq!(
            std::fs::read_to_string(root.join("tls/key.pem"))?,
            first_keys[id],
            "{id}'s key changed"
        );
        let on_disk = std::fs::read_to_string(root.join("tls/cert.pem"))?;
        let info = check_certificate("renewed", &on_disk, pki.ca.cert_pem(), SystemTime::now())?;
        assert_eq!(&info.common_name, id);
        assert!(cluster.with_node(id, |node| node.is_ready())?, "{id}");
    }
    Ok(())
}
