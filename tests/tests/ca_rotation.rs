//! Scenario: the cluster CA is replaced under a writer, with `etcd-aws-cfn
//! rotate-ca` run as an operator runs it, and no write waits long.
//!
//! The nodes read the CA secret every second here. The writer opens a new
//! TLS connection for every write, so each write is a handshake between the
//! client's credentials and whatever a member trusts and presents at that
//! moment. The first run of the command is killed after the first member
//! restarted, and run again: it carries on. It stops once the new CA issues
//! and both are trusted; the writer then moves to a certificate of the new
//! CA (as `issue-client-cert` issues it), and `rotate-ca --drop-old` ends
//! the rotation. Every member restarts once per change of trust, the leader
//! last; afterwards a certificate of the old CA is refused and one of the
//! new accepted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::certificates::ca_rotation::Stage;
use etcd_aws_core::contract::events;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::check_certificate;
use etcd_aws_io::tls::secret_store::bundle;
use etcd_aws_io::tls::{SecretStore, TlsCredentials};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::operator::OperatorCommand;
use etcd_aws_tests::sim_cluster::{client_options, wait_for, Endpoints, NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::StandInOptions;
use etcd_aws_tests::workload::{window, Writer, WriterOptions};
use etcd_client::Client;
use serde_json::Value;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(60);
/// Bound on one run of the command.
const COMMAND: Duration = Duration::from_secs(240);
/// The longest a write may wait, connection included (the issue's target).
const LONGEST_STALL: Duration = Duration::from_secs(2);
const TIMEOUTS: EtcdTimeouts = EtcdTimeouts {
    connect: Duration::from_millis(500),
    request: Duration::from_secs(2),
};

/// Every node's `ca_trust_restart` lines of `stage`, in time order, as
/// (instance, leader).
fn restarts(cluster: &SimCluster, stage: Stage) -> anyhow::Result<Vec<(String, String, bool)>> {
    let mut all = Vec::new();
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |node| node.log())?;
        for line in agent_log::events(&log, events::CA_TRUST_RESTART) {
            if line["stage"] == stage.as_str() {
                all.push((
                    line["timestamp"].as_str().unwrap_or_default().to_owned(),
                    id.clone(),
                    line["leader"] == Value::Bool(true),
                ));
            }
        }
    }
    all.sort();
    Ok(all)
}

/// Who led the cluster, as the harness saw it every 100 ms.
type Leaders = Arc<Mutex<Vec<(SystemTime, String)>>>;

fn watch_leaders(urls: Vec<String>, access: EtcdAccess) -> (Leaders, tokio::task::JoinHandle<()>) {
    let leaders: Leaders = Arc::default();
    let seen = Arc::clone(&leaders);
    let task = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(900);
        while Instant::now() < deadline {
            if let Ok(mut admin) = EtcdAdmin::connect(&urls, &access).await {
                if let (Ok(status), Ok((_, members))) =
                    (admin.status().await, admin.members().await)
                {
                    if let Some(leader) = members.iter().find(|m| Some(m.id) == status.leader_id) {
                        lock(&seen).push((SystemTime::now(), leader.name.clone()));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (leaders, task)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One restart per member in the pass, followers first, the leader (as the
/// harness saw it just before each restart) last.
fn assert_one_restart_each_leader_last(
    cluster: &SimCluster,
    stage: Stage,
    leaders: &Leaders,
    logs: &str,
) -> anyhow::Result<()> {
    let pass = restarts(cluster, stage)?;
    let members: Vec<&str> = pass.iter().map(|(_, id, _)| id.as_str()).collect();
    let mut distinct = members.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{stage}: {pass:?}\n{logs}");
    assert_eq!(
        members.len(),
        3,
        "{stage}: a member restarted twice: {pass:?}\n{logs}"
    );
    let leaders = lock(leaders).clone();
    let mut led = Vec::new();
    for (at, id, _) in &pass {
        let at = humantime::parse_rfc3339(at).with_context(|| format!("the timestamp {at}"))?;
        let leader = leaders
            .iter()
            .rev()
            .find(|(seen, _)| *seen <= at)
            .map(|(_, leader)| leader.as_str());
        led.push(leader == Some(id.as_str()));
    }
    assert_eq!(
        led,
        [false, false, true],
        "{stage}: the leader goes last: {pass:?}\n{logs}"
    );
    // The agent says so too.
    let said: Vec<bool> = pass.iter().map(|(_, _, leader)| *leader).collect();
    assert_eq!(said, led, "{stage}: {pass:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_ca_replaces_the_ca_under_a_writer_one_member_at_a_time_leader_last(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start_with_nodes(
        StandInOptions::default(),
        NodeOptions {
            agent_args: vec!["--ca-poll-interval".to_owned(), "1s".to_owned()],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let pki = cluster
        .stand_in
        .pki()
        .context("TLS is the default")?
        .clone();
    let store = SecretStore::new(&cluster.stand_in.sdk_config().await);
    let operator = OperatorCommand::new(&cluster.stand_in);
    let stack = ["--stack-name", cluster.stand_in.group_name()];
    let old_client = pki.harness.clone();

    // The writer's client reconnects after a failed call, and presents the
    // credentials of `access` as they are then.
    let access = cluster.etcd_access();
    let presented = Arc::clone(access.tls.as_ref().context("TLS is on")?);
    let (leaders, leader_watch) = watch_leaders(cluster.client_urls(), access.clone());
    let urls = cluster.client_urls();
    let writer = Writer::start(
        Endpoints::new(Arc::new(move || urls.clone()), access),
        WriterOptions {
            prefix: "rotation".to_owned(),
            ..WriterOptions::default()
        },
    );
    writer.wait_for_more(20, SETTLE).await?;

    // A run killed after the first member restarted...
    let mut killed = operator.spawn(&[&["rotate-ca"][..], &stack[..]].concat())?;
    wait_for(
        "the first member's restart for the new trust",
        COMMAND,
        || async { Ok((!restarts(&cluster, Stage::TrustBoth)?.is_empty()).then_some(())) },
    )
    .await?;
    killed.kill().await?;
    // ...carries on when run again, and stops with both CAs trusted.
    let run = operator
        .run(
            &[&["rotate-ca", "--output", "json"][..], &stack[..]].concat(),
            COMMAND,
        )
        .await?;
    assert!(run.succeeded(), "{run}\n{}", cluster.logs());
    let paused = run.json()?;
    assert_eq!(paused["done"], false, "{run}");
    let rotation = paused["rotation"].as_str().unwrap_or_default().to_owned();
    let new_ca_pem = paused["ca_cert_pem"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let state = store.load_ca_state(&pki.ca_secret).await?;
    assert_eq!(state.issuer.cert_pem(), new_ca_pem);
    assert_eq!(
        state.rotation.as_ref().map(|r| r.stage),
        Some(Stage::IssueFromNew)
    );
    for id in cluster.instance_ids() {
        let served = std::fs::read_to_string(cluster.instance_root(&id).join("tls/cert.pem"))?;
        check_certificate("served", &served, &new_ca_pem, SystemTime::now())
            .with_context(|| format!("{id} serves a certificate of the new CA"))?;
    }

    // The client moves, as issue-client-cert would move it: a certificate of
    // the new CA, trusting both.
    let new_client = {
        let ca = &state.issuer;
        let issued = ca.issue_client(
            "harness-new",
            ValidityPeriod::starting_now(Duration::from_secs(3600)),
        )?;
        TlsCredentials {
            ca_pem: bundle(&[ca.cert_pem(), pki.ca.cert_pem()]),
            ..TlsCredentials::issued_by(ca, issued)
        }
    };
    presented.replace(new_client.clone());
    let trust_both_done = Instant::now();

    let run = operator
        .run(
            &[
                &["rotate-ca", "--drop-old", "--output", "json"][..],
                &stack[..],
            ]
            .concat(),
            COMMAND,
        )
        .await?;
    assert!(run.succeeded(), "{run}\n{}", cluster.logs());
    assert_eq!(run.json()?["done"], true, "{run}");
    writer.wait_for_more(20, SETTLE).await?;
    let ended = Instant::now();

    let logs = cluster.logs();
    let acks = writer.acks();
    let first_run = window(&acks, writer.started(), trust_both_done);
    let second_run = window(&acks, trust_both_done, ended);
    println!(
        "writer: trust-both and issue-from-new {first_run:?}, drop-old {second_run:?}, {} failed attempts",
        writer.failed_attempts()
    );
    for (what, stats) in [
        ("trust-both and issue-from-new", first_run),
        ("drop-old", second_run),
    ] {
        assert!(
            stats.max_stall <= LONGEST_STALL,
            "{what}: the writer waited {:?} ({} failed attempts, last error {:?})\n{logs}",
            stats.max_stall,
            writer.failed_attempts(),
            writer.last_error()
        );
    }
    leader_watch.abort();
    assert_one_restart_each_leader_last(&cluster, Stage::TrustBoth, &leaders, &logs)?;
    assert_one_restart_each_leader_last(&cluster, Stage::DropOld, &leaders, &logs)?;
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |node| node.log())?;
        for event in [events::QUORUM_LOST, events::FORCE_NEW_CLUSTER] {
            assert!(
                agent_log::events(&log, event).is_empty(),
                "{id}: {event}\n{logs}"
            );
        }
        let reached: BTreeMap<String, usize> =
            agent_log::events(&log, events::CA_ROTATION_STAGE_REACHED)
                .iter()
                .filter(|line| line["rotation"] == rotation.as_str())
                .fold(BTreeMap::new(), |mut counts, line| {
                    *counts
                        .entry(line["stage"].as_str().unwrap_or_default().to_owned())
                        .or_default() += 1;
                    counts
                });
        for stage in Stage::ALL {
            assert!(
                reached.contains_key(stage.as_str()),
                "{id} never reached {stage}: {reached:?}\n{logs}"
            );
        }
    }

    // The secrets end on the new CA alone.
    let state = store.load_ca_state(&pki.ca_secret).await?;
    assert!(state.rotation.is_none());
    assert_eq!(state.issuer.cert_pem(), new_ca_pem);
    let functions = store.load_client(&pki.functions_secret).await?;
    check_certificate(
        "the functions' certificate",
        &functions.cert_pem,
        &new_ca_pem,
        SystemTime::now(),
    )?;
    assert_eq!(functions.ca_pem.trim(), new_ca_pem.trim());

    // A certificate of the old CA is refused; one of the new accepted.
    let put_with = |credentials: TlsCredentials| {
        let urls = cluster.client_urls();
        async move {
            let access = EtcdAccess::tls(TIMEOUTS, credentials);
            let mut client = Client::connect(
                urls,
                Some(client_options(&access, TIMEOUTS.connect, TIMEOUTS.request)),
            )
            .await?;
            client.put("rotation/check", "x", None).await?;
            anyhow::Ok(())
        }
    };
    let old_trusting_both = TlsCredentials {
        ca_pem: bundle(&[&new_ca_pem, old_client.ca_pem.as_str()]),
        ..old_client
    };
    assert!(
        put_with(old_trusting_both).await.is_err(),
        "a certificate of the old CA was accepted"
    );
    let new_only = TlsCredentials {
        ca_pem: new_ca_pem.clone(),
        ..new_client
    };
    put_with(new_only)
        .await
        .context("a certificate of the new CA is accepted")?;
    Ok(())
}
