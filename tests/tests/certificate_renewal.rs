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
//!
//! The functions' certificate is renewed too, by the nodes (the functions
//! never read the CA), and a function that stays warm presents each new one.
//!
//! And when renewal cannot work, the node says what happened rather than
//! something else.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::contract::{events, metrics};
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::check_certificate;
use etcd_aws_io::tls::{ClusterCa, SecretStore};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::functions::{JobOnSchedule, LifecycleOnQueue};
use etcd_aws_tests::load_balancer::ready_answer;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::StandInOptions;
use etcd_client::Client;
use serde_json::json;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
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

/// A cluster whose nodes issue themselves certificates valid for `life`.
async fn with_certificates_valid_for(
    life: Duration,
    options: StandInOptions,
) -> anyhow::Result<SimCluster> {
    SimCluster::start_with_nodes(
        options,
        NodeOptions {
            agent_args: vec![
                "--tls-cert-validity".to_owned(),
                format!("{}s", life.as_secs()),
            ],
            ..NodeOptions::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_renew_their_certificates_in_place_under_a_writer_without_restarting_etcd(
) -> anyhow::Result<()> {
    let cluster = with_certificates_valid_for(LIFETIME, StandInOptions::default()).await?;
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

/// The functions' certificate, valid for 45 s here, is renewed by the nodes
/// in its secret, and a lifecycle function started once and kept warm
/// through three of its lifetimes reconciles without a failure: it reads the
/// secret before each invocation and presents each new certificate. Had the
/// nodes not renewed it, or the function kept its first one, the reconciles
/// would fail from the first expiry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_renew_the_functions_certificate_and_a_warm_function_presents_each_new_one(
) -> anyhow::Result<()> {
    const FUNCTIONS_LIFE: Duration = Duration::from_secs(45);
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            functions_certificate: Some(ValidityPeriod::starting_now(FUNCTIONS_LIFE)),
            ..StandInOptions::default()
        },
        NodeOptions {
            agent_args: vec![
                "--tls-functions-cert-validity".to_owned(),
                format!("{}s", FUNCTIONS_LIFE.as_secs()),
            ],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let pki = cluster.stand_in.pki().context("TLS is the default")?;
    let store = SecretStore::new(&cluster.stand_in.sdk_config().await);
    let lifecycle = LifecycleOnQueue::start(&cluster.stand_in).await?;
    let function_pid = lifecycle.function().pid();

    let mut certificates = BTreeSet::new();
    let started = Instant::now();
    while started.elapsed() < 3 * FUNCTIONS_LIFE {
        let report = lifecycle
            .function()
            .invoke(&json!({"reconcile": true}))
            .await
            .with_context(|| format!("{}\n{}", lifecycle.log(), cluster.logs()))?;
        assert_eq!(report.get("refused"), Some(&json!([])), "{report}");
        let stored = store.load_client(&pki.functions_secret).await?;
        stored.check(
            "the functions' certificate in its secret",
            SystemTime::now(),
        )?;
        certificates.insert(stored.cert_pem);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let logs = cluster.logs();
    assert!(
        certificates.len() >= 3,
        "the secret held {} certificates: the first and at least two renewals expected\n{logs}",
        certificates.len()
    );
    let mut renewals = 0;
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |node| node.log())?;
        renewals += agent_log::events(&log, events::FUNCTIONS_CERTIFICATE_RENEWED).len();
        assert!(
            agent_log::events(&log, events::FUNCTIONS_CERTIFICATE_RENEWAL_FAILED).is_empty(),
            "{id}\n{logs}"
        );
    }
    assert!(renewals >= 2, "{renewals} renewals\n{logs}");
    assert_eq!(lifecycle.function().pid(), function_pid, "a cold start");
    let refreshed = agent_log::events(&lifecycle.log(), events::CLIENT_CERTIFICATE_REFRESHED);
    assert!(refreshed.len() >= 2, "{}", lifecycle.log());
    Ok(())
}

/// A renewal that keeps failing: the CA in the secret is replaced by one the
/// node's etcd does not trust (as a careless CA change would), so every
/// attempt is refused. The certificate then expires, and the node says so:
/// not ready, `certificate_expired` rather than a quorum loss, and the
/// maintenance run's metric below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_renewals_fail_says_its_certificate_expired_not_that_quorum_is_lost(
) -> anyhow::Result<()> {
    const SHORT_LIFE: Duration = Duration::from_secs(40);
    let cluster = with_certificates_valid_for(
        SHORT_LIFE,
        StandInOptions {
            group_size: 1,
            ..StandInOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let pki = cluster.stand_in.pki().context("TLS is the default")?;
    let another = ClusterCa::generate("another", ValidityPeriod::starting_now(HOUR))?;
    SecretStore::new(&cluster.stand_in.sdk_config().await)
        .store_ca(&pki.ca_secret, &another)
        .await?;
    let id = cluster.instance_ids().remove(0);
    let log = || cluster.with_node(&id, |node| node.log());

    wait_for("the certificate to expire", SHORT_LIFE + SETTLE, || async {
        let log = log()?;
        anyhow::ensure!(
            agent_log::has_event(&log, events::CERTIFICATE_EXPIRED),
            "not yet"
        );
        Ok(())
    })
    .await?;

    let log = log()?;
    assert!(
        agent_log::events(&log, events::CERTIFICATE_RENEWED).is_empty(),
        "renewed before the CA was replaced: start the replacement sooner\n{log}"
    );
    assert!(
        agent_log::has_event(&log, events::CERTIFICATE_RENEWAL_FAILED),
        "{log}"
    );
    assert!(
        agent_log::events(&log, events::QUORUM_LOST).is_empty(),
        "{log}"
    );
    let instance = cluster.stand_in.instances().await?.remove(0);
    let answer = ready_answer(instance.private_ip.into()).await?;
    assert!(answer.starts_with("HTTP/1.0 503"), "{answer}");
    assert!(answer.contains("certificate has expired"), "{answer}");
    let maintenance =
        JobOnSchedule::maintenance(&cluster.stand_in, Duration::from_secs(1), &[]).await?;
    let line = maintenance
        .metric_line_with(metrics::NODE_CERTIFICATE_DAYS_LEFT, SETTLE)
        .await?;
    let days = line[metrics::NODE_CERTIFICATE_DAYS_LEFT]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(days < 0.0, "{line}");
    Ok(())
}

/// Two members' renewals fail (the CA secret replaced, as in the test above)
/// and their certificates expire, while the third, restarted earlier with a
/// certificate for a year, keeps a valid one. Its etcd is then killed, as a
/// crash would: the agent starts it again, and it can no longer reach its
/// peers, whose certificates every new connection refuses. It names what
/// it meets: each peer's expired certificate with when it expired, once,
/// beside the quorum it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_names_its_peers_expired_certificates_when_it_cannot_reach_them(
) -> anyhow::Result<()> {
    const SHORT_LIFE: Duration = Duration::from_secs(40);
    let cluster = with_certificates_valid_for(SHORT_LIFE, StandInOptions::default()).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let ids = cluster.instance_ids();
    let keeper = ids[0].clone();
    cluster.launch_with_agent_args(Vec::new());
    cluster.remove_node(&keeper);
    cluster.restart_node(&keeper).await?;
    cluster.wait_healthy(3, SETTLE).await?;

    let pki = cluster.stand_in.pki().context("TLS is the default")?;
    let another = ClusterCa::generate("another", ValidityPeriod::starting_now(HOUR))?;
    SecretStore::new(&cluster.stand_in.sdk_config().await)
        .store_ca(&pki.ca_secret, &another)
        .await?;
    wait_for(
        "both peers' certificates to expire",
        SHORT_LIFE + SETTLE,
        || async {
            for peer in &ids[1..] {
                let log = cluster.with_node(peer, |node| node.log())?;
                anyhow::ensure!(
                    agent_log::has_event(&log, events::CERTIFICATE_EXPIRED),
                    "{peer} not yet"
                );
            }
            Ok(())
        },
    )
    .await?;
    let pid = cluster
        .with_node(&keeper, |node| node.etcd_pid())?
        .context("the keeper runs etcd")?;
    // SAFETY: kill(2) on a pid of our own child's etcd; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let keeper_log = || cluster.with_node(&keeper, |node| node.log());
    wait_for(
        "the keeper to name both peers' certificates",
        SETTLE,
        || async {
            let named = agent_log::events(&keeper_log()?, events::PEER_CERTIFICATE_INVALID);
            anyhow::ensure!(named.len() >= 2, "{} named so far", named.len());
            Ok(())
        },
    )
    .await
    .with_context(|| keeper_log().unwrap_or_default())?;

    let log = keeper_log()?;
    let named = agent_log::events(&log, events::PEER_CERTIFICATE_INVALID);
    let peers: BTreeSet<&str> = named.iter().filter_map(|l| l["peer"].as_str()).collect();
    assert_eq!(peers.len(), 2, "each peer once: {named:?}");
    for line in &named {
        let problem = line["problem"].as_str().unwrap_or_default();
        assert!(problem.contains("expired at"), "{line}");
    }
    // The naming comes beside the quorum loss, not in place of it: the
    // quorum watch judged on (its look at the certificates runs apart).
    assert!(
        agent_log::has_event(&log, events::QUORUM_LOST),
        "the keeper says it lost quorum\n{log}"
    );
    assert!(
        agent_log::events(&log, events::CERTIFICATE_EXPIRED).is_empty(),
        "the keeper's own certificate is good\n{log}"
    );
    Ok(())
}
