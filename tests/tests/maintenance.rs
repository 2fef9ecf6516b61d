//! Scenarios: the maintenance run keeps a cluster's space in check by itself.
//!
//! The backup function runs on the stack's maintenance schedule (shortened to
//! seconds here) through the Lambda runtime contract: it publishes etcd's
//! health, recovers NOSPACE without anyone's help, and defragments fragmented
//! members one at a time, the leader last, without stalling writers.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use etcd_aws_core::contract::metrics;
use etcd_aws_io::etcd::admin::EtcdAdmin;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_io::tls::certificate::check_ca;
use etcd_aws_tests::functions::JobOnSchedule;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::space::{self, MIB};
use etcd_aws_tests::stand_in::StandInOptions;
use etcd_aws_tests::workload::{self, Writer, WriterOptions};
use serde_json::Value;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(60);
/// The quota of the NOSPACE scenario: small enough to fill in seconds.
const SMALL_QUOTA: usize = 16 * MIB;
/// The promise: writes are accepted again within this long after NOSPACE.
const NOSPACE_RECOVERED_WITHIN: Duration = Duration::from_secs(60);
/// The promise: a defragmentation never stalls a writer longer than this.
const DEFRAG_STALL_BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_runs_out_of_space_accepts_writes_again_by_itself() -> anyhow::Result<()> {
    // Given three members with a 16 MiB quota, the maintenance run every two
    // seconds, and a steady writer of small keys checking every acknowledgement,
    let cluster = SimCluster::start_with_nodes(
        StandInOptions::default(),
        NodeOptions {
            etcd_args: vec![format!("--quota-backend-bytes={SMALL_QUOTA}")],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let quota = SMALL_QUOTA.to_string();
    let maintenance = JobOnSchedule::maintenance(
        &cluster.stand_in,
        Duration::from_secs(2),
        &[
            ("ETCD_AWS_QUOTA_BACKEND_BYTES", quota.as_str()),
            ("ETCD_MAINTENANCE_DEFRAG_TIMEOUT", "10s"),
        ],
    )
    .await?;
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: "steady".to_owned(),
            ..WriterOptions::default()
        },
    );
    writer.wait_for_more(5, SETTLE).await?;

    // when a second writer overwrites the same eight keys with 256 KiB values
    // until etcd refuses it for want of space (every revision is kept until a
    // compaction),
    let squeezed = space::squeeze_until_nospace(&cluster, SMALL_QUOTA).await?;

    // the maintenance run reclaims the space and clears the alarm without any
    // action from the test: writes are accepted again,
    let accepted_at = space::writable_again(&cluster, NOSPACE_RECOVERED_WITHIN)
        .await
        .with_context(|| format!("maintenance log:\n{}", maintenance.log()))?;
    let recovery = accepted_at - squeezed.full_at;
    println!("NOSPACE to writes accepted again: {recovery:?}");

    // every member's file is below the quota, the alarm is gone, and the run
    // that recovered counted it;
    let mut admin = EtcdAdmin::connect(&cluster.client_urls(), &cluster.etcd_access()).await?;
    assert_eq!(admin.alarms().await?, vec![]);
    for (id, status) in space::statuses(&cluster).await? {
        assert!(
            status.db_size < i64::try_from(SMALL_QUOTA)?,
            "member {id} is still {} bytes",
            status.db_size
        );
    }
    let recoveries: f64 = maintenance
        .metric_lines()
        .iter()
        .filter_map(|line| line.get("NospaceRecoveries").and_then(Value::as_f64))
        .sum();
    assert!(recoveries >= 1.0, "{}", maintenance.log());

    // and no acknowledged write was lost: the steady writer's keys are all
    // there, and each squeezed key holds its last acknowledged revision.
    writer.wait_for_more(5, SETTLE).await?;
    let acks = writer.acks();
    let present = workload::present_keys(&cluster.endpoints(), writer.prefix()).await?;
    assert_eq!(workload::missing(&acks, &present), vec![]);
    let stall = workload::window(&acks, writer.started(), Instant::now()).max_stall;
    println!("the steady writer's longest stall: {stall:?}");
    let mut reader = space::client(&cluster).await?;
    for (key, revision) in &squeezed.last_written {
        let got = reader.get(key.as_str(), None).await?;
        let kv = got
            .kvs()
            .first()
            .with_context(|| format!("{key} is gone"))?;
        if &squeezed.crossed == key {
            assert!(kv.mod_revision() >= *revision, "{key}");
        } else {
            assert_eq!(kv.mod_revision(), *revision, "{key}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_members_are_defragmented_one_at_a_time_without_stalling_a_writer(
) -> anyhow::Result<()> {
    // Given three members whose files are mostly free pages: 24 MiB written,
    // overwritten, and the history compacted away,
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let before = space::fragment(&cluster, 16, SETTLE).await?;

    // and a steady writer,
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: "steady".to_owned(),
            interval: Duration::from_millis(20),
            ..WriterOptions::default()
        },
    );
    writer.wait_for_more(5, SETTLE).await?;

    // when the maintenance run finds them past its threshold (8 MiB free),
    let started = Instant::now();
    let maintenance = JobOnSchedule::maintenance(
        &cluster.stand_in,
        Duration::from_secs(2),
        &[
            ("ETCD_MAINTENANCE_DEFRAG_FREE_MIB", "8"),
            ("ETCD_MAINTENANCE_DEFRAG_TIMEOUT", "10s"),
        ],
    )
    .await?;
    let outcome = wait_for("a run that defragmented", SETTLE, || async {
        maintenance
            .runs()
            .into_iter()
            .find_map(|run| {
                run.outcome.ok().filter(|outcome| {
                    outcome["defragmented"]
                        .as_array()
                        .is_some_and(|d| !d.is_empty())
                })
            })
            .context("not yet")
    })
    .await
    .with_context(|| format!("maintenance log:\n{}", maintenance.log()))?;
    let finished = Instant::now();

    // it backed up first (there was no backup), defragmented every member,
    // the leader last,
    assert_eq!(outcome["backed_up"], Value::Bool(true), "{outcome}");
    let order: Vec<String> = outcome["defragmented"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(order.len(), 3, "{outcome}");
    let leader_before = before.values().find_map(|s| s.leader_id);
    assert_eq!(
        order.last(),
        leader_before.map(|id| id.to_string()).as_ref(),
        "{outcome}"
    );
    // and each file shrank by what was free;
    let after = space::statuses(&cluster).await?;
    for (id, status) in &after {
        let was = before.get(id).context("a member appeared")?;
        assert!(
            status.db_size < was.db_size - 16 * i64::try_from(MIB)?,
            "member {id}: {} bytes before, {} after",
            was.db_size,
            status.db_size
        );
    }
    // the writer never waited longer than the bound, and lost nothing.
    let stall = workload::window(&writer.acks(), started, finished).max_stall;
    println!("the writer's longest stall while defragmenting: {stall:?}");
    assert!(
        stall < DEFRAG_STALL_BOUND,
        "the writer stalled for {stall:?}\n{}",
        maintenance.log()
    );
    // Acknowledgements first: one that arrives after the read would look lost.
    let acks = writer.acks();
    let present = workload::present_keys(&cluster.endpoints(), writer.prefix()).await?;
    assert_eq!(workload::missing(&acks, &present), vec![]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_run_publishes_etcds_health_as_metrics() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let maintenance =
        JobOnSchedule::maintenance(&cluster.stand_in, Duration::from_secs(1), &[]).await?;
    let line = maintenance
        .metric_line_with("VotingMembers", SETTLE)
        .await?;
    assert_eq!(line["GroupName"], cluster.stand_in.group_name());
    assert_eq!(line["VotingMembers"], 3);
    assert_eq!(line["Learners"], 0);
    assert_eq!(line["MembersAnswering"], 3);
    assert_eq!(line["HasLeader"], 1);
    assert_eq!(line["NospaceAlarms"], 0);
    assert_eq!(line["CorruptAlarms"], 0);
    assert_eq!(line["DbQuotaBytes"], 2_147_483_648_i64);
    let size = line["DbSizeBytes"].as_f64().unwrap_or(0.0);
    let percent = line["DbQuotaUsedPercent"].as_f64().unwrap_or(-1.0);
    assert!(size > 0.0, "{line}");
    assert!(
        (percent - size * 100.0 / 2_147_483_648.0).abs() < 1e-9,
        "{line}"
    );
    assert!(line["RaftTerm"].as_f64().unwrap_or(0.0) >= 2.0, "{line}");
    // The leader's member id rides along as a field, as etcdctl prints it.
    let mut admin = EtcdAdmin::connect(&cluster.client_urls(), &cluster.etcd_access()).await?;
    let leader = admin.status().await?.leader_id.context("no leader")?;
    assert_eq!(line["LeaderId"], leader.to_string(), "{line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_run_publishes_the_days_left_on_every_certificate() -> anyhow::Result<()> {
    // Nodes' certificates for half a day, the functions' for a day.
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            functions_certificate: Some(ValidityPeriod::starting_now(Duration::from_secs(86_400))),
            ..StandInOptions::default()
        },
        NodeOptions {
            agent_args: vec!["--tls-cert-validity".to_owned(), "12h".to_owned()],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let maintenance =
        JobOnSchedule::maintenance(&cluster.stand_in, Duration::from_secs(1), &[]).await?;
    let line = maintenance
        .metric_line_with(metrics::NODE_CERTIFICATE_DAYS_LEFT, SETTLE)
        .await?;
    let days = |name: &str| line[name].as_f64().unwrap_or(f64::NAN);
    let ca = check_ca(
        "the CA",
        cluster.stand_in.pki().context("TLS")?.ca.cert_pem(),
        SystemTime::now(),
    )?;
    let ca_days = ca
        .not_after
        .duration_since(SystemTime::now())?
        .as_secs_f64()
        / 86_400.0;
    assert!(
        (days(metrics::NODE_CERTIFICATE_DAYS_LEFT) - 0.5).abs() <= 0.02,
        "{line}"
    );
    assert!(
        (days(metrics::FUNCTIONS_CERTIFICATE_DAYS_LEFT) - 1.0).abs() <= 0.02,
        "{line}"
    );
    assert!(
        (days(metrics::CA_DAYS_LEFT) - ca_days).abs() <= 0.02,
        "{line}"
    );
    Ok(())
}
