//! Scenarios: the operator's commands (`etcd-aws-cfn status`, `backups list`,
//! `backup`, `restore`) against a running cluster of the harness, run as a
//! process the way an operator runs them: through the backup function (as
//! Lambda invokes it), the bucket and the group, never a direct etcd
//! connection.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws_core::contract::events;
use etcd_aws_core::contract::restore_order::{Phase, RestoreOrder};
use etcd_aws_core::contract::signed::Signed;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::functions::{BackupOnDemand, JobOnSchedule};
use etcd_aws_tests::operator::OperatorCommand;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_aws_tests::watcher::Watcher;
use etcd_aws_tests::workload::{Writer, WriterOptions};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, GetOptions};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(120);
/// Bound on one command's run.
const COMMAND: Duration = Duration::from_secs(60);
/// Bound on a whole restore.
const RESTORE: Duration = Duration::from_secs(180);

async fn store(cluster: &SimCluster) -> BackupStore {
    BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        cluster.stand_in.bucket(),
        etcd_aws_core::contract::names::bucket::BACKUP_PREFIX,
    )
}

/// The restore order in the bucket, read as a check (its signature is the
/// nodes' business).
async fn order_in(store: &BackupStore) -> anyhow::Result<Option<RestoreOrder>> {
    Ok(store
        .restore_order()
        .await?
        .and_then(|stored| Signed::unverified::<RestoreOrder>(&stored)))
}

/// Every key and value of the cluster, at `revision` or now.
async fn keyspace(
    client: &mut Client,
    revision: Option<i64>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut options = GetOptions::new().with_all_keys();
    if let Some(revision) = revision {
        options = options.with_revision(revision);
    }
    let answer = client.get("", Some(options)).await?;
    Ok(answer
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect())
}

fn problems(status: &Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_healthy_shows_a_functions_error_then_names_a_member_down_an_alarm_and_a_stale_backup(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let function = BackupOnDemand::start(&cluster.stand_in, &[]).await?;
    let command = OperatorCommand::new(&cluster.stand_in);

    // A whole cluster with a fresh backup: healthy, exit 0, every member listed.
    let backup = command.run(&["backup"], COMMAND).await?;
    assert!(backup.succeeded(), "{backup}");
    let healthy = command
        .run(&["status", "--output", "json"], COMMAND)
        .await?;
    assert!(healthy.succeeded(), "{healthy}");
    let view = healthy.json()?;
    assert_eq!(problems(&view), Vec::<String>::new());
    assert_eq!(view["capture"]["loss_window_seconds"], 0, "{view}");
    assert_eq!(view["cluster"]["members"].as_array().map(Vec::len), Some(3));
    assert!(view["cluster"]["leader_id"].is_string(), "{view}");
    // Read, whatever it holds (no lifecycle function consumes the hook's
    // test notification in this scenario).
    assert!(view["lifecycle_queue_depth"].is_u64(), "{view}");
    assert_eq!(view["dead_letters"], 0, "{view}");
    // etcd 3.5.x speaks cluster version 3.5.0; each instance has its zone.
    assert_eq!(view["cluster"]["cluster_version"], "3.5.0", "{view}");
    for instance in view["cluster"]["instances"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let zone = instance["availability_zone"].as_str().unwrap_or_default();
        assert!(
            zone.starts_with(cluster.stand_in.region()),
            "{instance} has a zone of the stand-in's region"
        );
    }
    // The days left on every certificate: each node's as clients meet it
    // (a year), the functions' (two years) and the CA's (ten).
    let days: std::collections::BTreeMap<String, f64> = view["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["certificate"].as_str()?.to_owned(),
                c["days_left"].as_f64()?,
            ))
        })
        .collect();
    let mut expected: Vec<(String, f64)> = cluster
        .instance_ids()
        .into_iter()
        .map(|id| (format!("node {id}"), 365.0))
        .collect();
    expected.extend([("functions".to_owned(), 730.0), ("CA".to_owned(), 3650.0)]);
    for (certificate, about) in &expected {
        let left = days.get(certificate).copied().unwrap_or(f64::NAN);
        assert!((left - about).abs() <= 0.1, "{certificate}: {view}");
    }
    assert_eq!(days.len(), expected.len(), "{view}");
    assert_eq!(
        view["function_errors"][0]["count"], 0,
        "no function error yet: {view}"
    );
    let table = command.run(&["status"], COMMAND).await?;
    assert!(table.stdout.contains("healthy"), "{table}");
    assert!(
        table.stdout.contains("certificates, days left: node "),
        "{table}"
    );
    println!("status of the healthy cluster:\n{}", table.stdout);

    // A function fails: its error is shown from its log group, the cluster
    // is still healthy.
    let refused = function
        .invoke(&serde_json::json!({"job": "nonsense"}))
        .await;
    assert!(refused.is_err(), "an unknown job fails: {refused:?}");
    let with_error = wait_for("status to show the function's error", SETTLE, || async {
        let run = command
            .run(&["status", "--output", "json"], COMMAND)
            .await?;
        let view = run.json()?;
        let errors = &view["function_errors"][0];
        let ours = errors["recent"].as_array().into_iter().flatten().any(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("unrecognised event: unknown job"))
        });
        anyhow::ensure!(ours, "not yet: {errors}");
        Ok(run)
    })
    .await?;
    assert!(with_error.succeeded(), "{with_error}");
    assert_eq!(
        with_error.json()?["function_errors"][0]["log_group"],
        BackupOnDemand::LOG_GROUP
    );

    // One member's node stops: named, exit non-zero.
    let down = cluster.instance_ids()[0].clone();
    cluster.remove_node(&down);
    let degraded = wait_for("status to see the member down", SETTLE, || async {
        let run = command
            .run(&["status", "--output", "json"], COMMAND)
            .await?;
        let found = problems(&run.json()?);
        if found
            .iter()
            .any(|p| p.contains(&down) && p.contains("does not answer"))
        {
            Ok(run)
        } else {
            anyhow::bail!("not yet: {found:?}")
        }
    })
    .await?;
    assert!(!degraded.succeeded(), "{degraded}");
    cluster.restart_node(&down).await?;
    cluster.wait_healthy(3, SETTLE).await?;

    // An alarm raised on a member: named, exit non-zero.
    let (mut client, member, on_member) = wait_for("an alarm raised", SETTLE, || async {
        let mut client = cluster.client().await?;
        let member = client.status().await?.header().map_or(0, |h| h.member_id());
        let mut on_member = AlarmOptions::new();
        on_member.with_member(member);
        client
            .alarm(
                AlarmAction::Activate,
                AlarmType::Nospace,
                Some(on_member.clone()),
            )
            .await?;
        Ok((client, member, on_member))
    })
    .await?;
    let alarmed = command
        .run(&["status", "--output", "json"], COMMAND)
        .await?;
    assert!(!alarmed.succeeded(), "{alarmed}");
    assert!(
        problems(&alarmed.json()?)
            .iter()
            .any(|p| p == &format!("alarm NOSPACE raised by member {member:x}")),
        "{alarmed}"
    );
    client
        .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(on_member))
        .await?;

    // The newest backup older than the limit: named, exit non-zero.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stale = command
        .run(
            &["status", "--output", "json", "--backup-max-age", "1s"],
            COMMAND,
        )
        .await?;
    assert!(!stale.succeeded(), "{stale}");
    assert!(
        problems(&stale.json()?)
            .iter()
            .any(|p| p.starts_with("the newest snapshot is")),
        "{stale}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_list_shows_a_backup_taken_now_and_verify_finds_a_damaged_one() -> anyhow::Result<()>
{
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let _function = BackupOnDemand::start(&cluster.stand_in, &[]).await?;
    let command = OperatorCommand::new(&cluster.stand_in);
    let mut client = cluster.client().await?;
    client.put("before", "the backup", None).await?;

    let backup = command
        .run(&["backup", "--output", "json"], COMMAND)
        .await?;
    assert!(backup.succeeded(), "{backup}");
    let taken = backup.json()?;
    let key = taken["key"].as_str().unwrap_or_default().to_owned();
    let revision = client
        .get("before", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    assert_eq!(taken["revision"], revision, "{backup}");

    let listed = command
        .run(
            &["backups", "list", "--verify", "--output", "json"],
            COMMAND,
        )
        .await?;
    assert!(listed.succeeded(), "{listed}");
    let rows = listed.json()?["backups"].clone();
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == key.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["revision"], revision, "{listed}");
    assert_eq!(row["verified"], "intact", "{listed}");
    assert_eq!(row["kind"], "snapshot");
    assert_eq!(
        listed.json()?["point_in_time"][0]["until_revision"],
        revision,
        "{listed}"
    );

    // The stored bytes changed behind the manifest's back.
    let store = store(&cluster).await;
    store
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key(&key)
        .body(ByteStream::from_static(b"not the snapshot"))
        .send()
        .await?;
    let damaged = command
        .run(
            &["backups", "list", "--verify", "--output", "json"],
            COMMAND,
        )
        .await?;
    let row = damaged.json()?["backups"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == key.as_str()).cloned())
        .unwrap_or_default();
    assert!(
        row["verified"]["damaged"].is_string(),
        "the damaged backup is flagged: {damaged}"
    );
    Ok(())
}

/// A three-member cluster, its backup function, capture runs back to back,
/// and a writer of unique keys.
struct Restorable {
    cluster: SimCluster,
    _function: BackupOnDemand,
    _capture: JobOnSchedule,
    command: OperatorCommand,
    writer: Writer,
}

async fn restorable() -> anyhow::Result<Restorable> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let function = BackupOnDemand::start(&cluster.stand_in, &[]).await?;
    let capture = JobOnSchedule::capture(
        &cluster.stand_in,
        Duration::from_secs(3),
        &[("ETCD_CAPTURE_DURATION", "4s")],
    )
    .await?;
    let command = OperatorCommand::new(&cluster.stand_in);
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: "written".into(),
            interval: Duration::from_millis(100),
            ..WriterOptions::default()
        },
    );
    Ok(Restorable {
        cluster,
        _function: function,
        _capture: capture,
        command,
        writer,
    })
}

impl Restorable {
    /// The revision of the writer's newest acknowledged write, once the
    /// capture holds it.
    async fn captured_revision(&self, store: &BackupStore) -> anyhow::Result<i64> {
        self.writer.wait_for_more(20, SETTLE).await?;
        let revision = self.writer.last_ack().map_or(0, |a| a.revision);
        wait_for(
            "the capture to hold the chosen revision",
            SETTLE,
            || async {
                let held = store.segments().await?.iter().map(|s| s.last).max();
                match held {
                    Some(last) if last >= revision => Ok(()),
                    _ => anyhow::bail!("captured up to {held:?}, waiting for {revision}"),
                }
            },
        )
        .await?;
        Ok(revision)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_a_middle_revision_under_a_writer_brings_that_revision_back_and_its_safety_backup_undoes_it(
) -> anyhow::Result<()> {
    let setup = restorable().await?;
    let store = store(&setup.cluster).await;
    let first = setup.command.run(&["backup"], COMMAND).await?;
    assert!(first.succeeded(), "{first}");
    println!("choosing a revision after the backup, once the capture holds it");
    let revision = setup.captured_revision(&store).await?;
    let mut client = setup.cluster.client().await?;
    let at_revision = keyspace(&mut client, Some(revision)).await?;
    setup
        .writer
        .wait_for_more(at_revision.len() + 20, SETTLE)
        .await?;
    let old_cluster = client
        .status()
        .await?
        .header()
        .map_or(0, |h| h.cluster_id());

    println!("restoring to revision {revision} while the writer keeps writing");
    let restore_started = tokio::time::Instant::now();
    let restore = setup
        .command
        .run(
            &[
                "restore",
                "--to-revision",
                &revision.to_string(),
                "--yes",
                "--output",
                "json",
            ],
            RESTORE,
        )
        .await?;
    assert!(restore.succeeded(), "{restore}");
    let restore_took = restore_started.elapsed();
    let outcome = restore.json()?;
    assert_eq!(outcome["revision"], revision, "{restore}");
    let safety = outcome["safety_backup"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        outcome["time"].is_string(),
        "the time it went back to: {restore}"
    );

    setup.cluster.wait_healthy(3, SETTLE).await?;
    setup
        .writer
        .wait_for_more(setup.writer.acknowledged() + 10, SETTLE)
        .await?;
    let acks = setup.writer.acks();
    drop(setup.writer);
    let mut client = setup.cluster.client().await?;
    let restored = keyspace(&mut client, None).await?;
    let new_cluster = client
        .status()
        .await?
        .header()
        .map_or(0, |h| h.cluster_id());
    assert_ne!(
        new_cluster, old_cluster,
        "a restored cluster is a new cluster"
    );
    // What the writer saw: no write acknowledged from the last one the old
    // cluster took to the first the restored one took.
    let last_old = acks.iter().rfind(|a| a.cluster_id == old_cluster);
    let first_new = acks.iter().find(|a| a.cluster_id == new_cluster);
    if let (Some(last_old), Some(first_new)) = (last_old, first_new) {
        println!(
            "clients: no write acknowledged for {:.1} s; the command counted {} s from the first node out to the restored cluster whole, {:.1} s in all",
            (first_new.at - last_old.at).as_secs_f64(),
            outcome["clients_out_seconds"],
            restore_took.as_secs_f64()
        );
    }

    // Every key of revision R holds its value of then.
    for (key, value) in &at_revision {
        assert_eq!(
            restored.get(key),
            Some(value),
            "{key} as at revision {revision}"
        );
    }
    // The old cluster's writes after R are gone; every write the restored
    // cluster acknowledged is kept.
    for ack in &acks {
        let present = restored.contains_key(&ack.key);
        if ack.cluster_id == new_cluster {
            assert!(
                present,
                "{} was acknowledged after the restore and is kept",
                ack.key
            );
        } else if ack.revision > revision {
            assert!(
                !present,
                "{} (revision {}) is past the target",
                ack.key, ack.revision
            );
        }
    }
    assert!(
        acks.iter().any(|a| a.cluster_id == new_cluster),
        "the writer wrote to the restored cluster"
    );
    for key in restored.keys() {
        assert!(
            at_revision.contains_key(key)
                || acks
                    .iter()
                    .any(|a| &a.key == key && a.cluster_id == new_cluster),
            "{key} is neither of revision {revision} nor written after the restore"
        );
    }
    let order = order_in(&store).await?.expect("the order stays, done");
    assert_eq!(order.phase, Phase::Done);

    println!("undoing the restore with its safety backup {safety}");
    let undo = setup
        .command
        .run(&["restore", "--backup", &safety, "--yes"], RESTORE)
        .await?;
    assert!(undo.succeeded(), "{undo}");
    setup.cluster.wait_healthy(3, SETTLE).await?;
    let mut client = setup.cluster.client().await?;
    let undone = keyspace(&mut client, None).await?;
    let safety_revision = store.manifest_of(&safety).await?.map_or(0, |m| m.revision);
    for ack in acks.iter().filter(|a| a.cluster_id == old_cluster) {
        if ack.revision <= safety_revision {
            assert!(
                undone.contains_key(&ack.key),
                "{} from before the restore is back",
                ack.key
            );
        }
    }
    assert!(
        safety_revision > revision,
        "the safety backup (revision {safety_revision}) holds the writes after {revision}: {restore}"
    );
    Ok(())
}

/// Waits until the bucket's segments hold `revision`.
async fn captured(store: &BackupStore, revision: i64) -> anyhow::Result<()> {
    wait_for("the capture to hold the revision", SETTLE, || async {
        let held = store.segments().await?.iter().map(|s| s.last).max();
        match held {
            Some(last) if last >= revision => Ok(()),
            _ => anyhow::bail!("captured up to {held:?}, waiting for {revision}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undoing_a_restore_after_the_restored_cluster_took_writes_shows_a_watcher_only_new_revisions(
) -> anyhow::Result<()> {
    let setup = restorable().await?;
    let store = store(&setup.cluster).await;
    let watcher = Watcher::start(setup.cluster.endpoints(), "written");
    let first = setup.command.run(&["backup"], COMMAND).await?;
    assert!(first.succeeded(), "{first}");
    let target = setup.captured_revision(&store).await?;
    setup
        .writer
        .wait_for_more(setup.writer.acknowledged() + 20, SETTLE)
        .await?;

    println!("restoring to revision {target}");
    let restore = setup
        .command
        .run(
            &[
                "restore",
                "--to-revision",
                &target.to_string(),
                "--yes",
                "--output",
                "json",
            ],
            RESTORE,
        )
        .await?;
    assert!(restore.succeeded(), "{restore}");
    let safety = restore.json()?["safety_backup"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    setup.cluster.wait_healthy(3, SETTLE).await?;

    // The restored cluster takes more writes than lie between the target and
    // the safety backup: a bump counted from the safety backup's revision
    // would hand them out again. The capture records them.
    let safety_revision = store.manifest_of(&safety).await?.map_or(0, |m| m.revision);
    let mut client = setup.cluster.client().await?;
    let burst = usize::try_from(safety_revision - target).unwrap_or(0) + 50;
    let mut restored_reached = 0;
    for i in 0..burst {
        let put = client
            .put(format!("written/burst/{i}"), "after the restore", None)
            .await?;
        restored_reached = put.header().map_or(0, |h| h.revision());
    }
    captured(&store, restored_reached).await?;

    println!("undoing the restore with its safety backup {safety} (revision {safety_revision}); the restored cluster reached {restored_reached}");
    let undo = setup
        .command
        .run(&["restore", "--backup", &safety, "--yes"], RESTORE)
        .await?;
    assert!(undo.succeeded(), "{undo}");
    setup.cluster.wait_healthy(3, SETTLE).await?;
    let mut client = setup.cluster.client().await?;
    let marker = client.put("written/after-undo", "undone", None).await?;
    let (marker_revision, undone_cluster) = marker
        .header()
        .map_or((0, 0), |h| (h.revision(), h.cluster_id()));

    // The watcher, resuming from the last revision it saw, is shown the
    // write after the undo: told of a compaction and listing afresh, not
    // waiting for a revision the undone cluster reaches only much later.
    watcher
        .wait_for(
            "written/after-undo",
            marker_revision,
            Duration::from_secs(30),
        )
        .await?;
    let acks = setup.writer.acks();
    drop(setup.writer);
    let seen = watcher.seen();
    drop(watcher);
    for pair in seen.windows(2) {
        assert!(
            pair[1].revision >= pair[0].revision,
            "the watcher was shown revision {} after {}: {:?}",
            pair[1].revision,
            pair[0].revision,
            pair
        );
    }
    let before_undo = acks
        .iter()
        .filter(|a| a.cluster_id != undone_cluster)
        .map(|a| a.revision)
        .chain([restored_reached])
        .max()
        .unwrap_or(0);
    assert!(
        marker_revision > before_undo,
        "after the undo, revision {marker_revision} is not above {before_undo}, seen before it"
    );
    for ack in acks.iter().filter(|a| a.cluster_id == undone_cluster) {
        assert!(
            ack.revision > before_undo,
            "{ack:?} reuses a revision seen before the undo ({before_undo})"
        );
    }

    // The agent that restored says what it bumped past.
    let logs: Vec<String> = setup
        .cluster
        .instance_ids()
        .iter()
        .filter_map(|id| setup.cluster.with_node(id, |node| node.log()).ok())
        .collect();
    let restores = agent_log::events(&logs.join("\n"), events::RESTORED_BACKUP);
    let undo_line = restores
        .iter()
        .find(|line| line["key"] == safety.as_str())
        .ok_or_else(|| anyhow::anyhow!("no restored_backup line for {safety}: {restores:?}"))?;
    let highest = undo_line["highest_recorded"].as_i64().unwrap_or(0);
    let start = undo_line["snapshot_revision"].as_i64().unwrap_or(0)
        + undo_line["revision_bump"].as_i64().unwrap_or(0);
    assert!(highest >= restored_reached, "{undo_line}");
    assert!(start > highest, "{undo_line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_midway_and_run_again_ends_healthy_at_its_target() -> anyhow::Result<()> {
    let setup = restorable().await?;
    let store = store(&setup.cluster).await;
    let first = setup.command.run(&["backup"], COMMAND).await?;
    assert!(first.succeeded(), "{first}");
    let revision = setup.captured_revision(&store).await?;
    let mut client = setup.cluster.client().await?;
    let at_revision = keyspace(&mut client, Some(revision)).await?;
    let target = revision.to_string();
    let args = [
        "restore",
        "--to-revision",
        target.as_str(),
        "--yes",
        "--output",
        "json",
    ];

    println!("starting a restore to {revision} and killing it once the quarantine is ordered");
    let mut killed = setup.command.spawn(&args)?;
    wait_for("the restore order in the bucket", SETTLE, || async {
        match order_in(&store).await? {
            Some(order) if order.phase == Phase::Quarantine => Ok(()),
            other => anyhow::bail!("not yet: {other:?}"),
        }
    })
    .await?;
    killed.kill().await?;

    println!("running the same restore again");
    let again = setup.command.run(&args, RESTORE).await?;
    assert!(again.succeeded(), "{again}");
    assert!(
        again.stderr.contains("carrying on"),
        "it resumed the order: {again}"
    );
    setup.cluster.wait_healthy(3, SETTLE).await?;
    drop(setup.writer);
    let mut client = setup.cluster.client().await?;
    let restored = keyspace(&mut client, None).await?;
    for (key, value) in &at_revision {
        assert_eq!(
            restored.get(key),
            Some(value),
            "{key} as at revision {revision}"
        );
    }
    assert_eq!(order_in(&store).await?.map(|o| o.phase), Some(Phase::Done));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_a_revision_no_backup_reaches_is_refused_before_anything_changes(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let _function = BackupOnDemand::start(&cluster.stand_in, &[]).await?;
    let command = OperatorCommand::new(&cluster.stand_in);
    let backup = command
        .run(&["backup", "--output", "json"], COMMAND)
        .await?;
    assert!(backup.succeeded(), "{backup}");
    let reachable = backup.json()?["revision"].to_string();

    let refused = command
        .run(&["restore", "--to-revision", "999999", "--yes"], COMMAND)
        .await?;
    assert!(!refused.succeeded(), "{refused}");
    assert!(
        refused.stderr.contains("revision 999999 cannot be reached"),
        "{refused}"
    );
    assert_eq!(
        store(&cluster).await.restore_order().await?,
        None::<Vec<u8>>
    );

    // Reachable, but not confirmed (no terminal, no --yes): nothing happens.
    let unconfirmed = command
        .run(&["restore", "--to-revision", &reachable], COMMAND)
        .await?;
    assert!(!unconfirmed.succeeded(), "{unconfirmed}");
    assert!(unconfirmed.stderr.contains("--yes"), "{unconfirmed}");
    assert_eq!(
        store(&cluster).await.restore_order().await?,
        None::<Vec<u8>>
    );
    Ok(())
}
