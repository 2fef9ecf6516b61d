//! Least privilege, checked against what the programs really do. One scenario
//! runs every program through its jobs on the stand-in, with TLS on: a cluster
//! forms (each agent finding its group as on EC2), the backup function runs with
//! retention to enforce, the maintenance and the capture function (the same
//! code under roles of their own) each take a snapshot, the lifecycle function handles a termination and a
//! reconcile, the nodes renew the functions' certificate, and the whole group
//! is lost and restored from the backup. The stand-in records every AWS call
//! and the access key that signed it, one per program. Each role of the generated template must then allow every call its
//! program made, and allow nothing that no call needed, save the few grants
//! listed below with why the scenario cannot see them used.
//!
//! Needs `cargo build -p etcd-aws -p etcd-aws-lifecycle -p etcd-aws-backup`
//! first (the harness runs the built binaries).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use etcd_aws_core::backup::manifest::BackupManifest;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::tls::authority::ValidityPeriod;
use etcd_aws_template::names::logical::{
    BACKUP_BUCKET, BACKUP_FUNCTION_ROLE, CAPTURE_FUNCTION_ROLE, LIFECYCLE_FUNCTION_ROLE,
    LIFECYCLE_HOOK_ROLE, MAINTENANCE_FUNCTION_ROLE, NODE_ROLE,
};
use etcd_aws_template::Options;
use etcd_aws_tests::functions::{
    BackupOnDemand, BackupOnSchedule, JobOnSchedule, LifecycleOnQueue, LifecycleSettings,
};
use etcd_aws_tests::iam::{action_matches, iam_action, roles, Role, Statement, Table};
use etcd_aws_tests::operator::OperatorCommand;
use etcd_aws_tests::planted_backup::plant_backup;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::{ActionOutcome, Caller, RecordedCall, StandInOptions, NODE_ROLE_ID};
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(120);
const BACKUP_EVERY: Duration = Duration::from_secs(2);
const BACKUP_WITHIN: Duration = Duration::from_secs(90);
/// Under the stand-in hook's 60 s heartbeat timeout: the function, not the
/// timeout, completes the action.
const REMOVAL_WITHIN: Duration = Duration::from_secs(45);
const DAY: i64 = 86_400;
const HOUR: Duration = Duration::from_secs(3600);
/// Far shorter than any removal takes, so the function records heartbeats on
/// the way, as it does for a slow removal in production.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(20);

/// What the stand-in's bucket is called in the template, so that S3 calls can
/// be matched with the statements' resources.
const ARN_BUCKET: &str = "arn:aws:s3:::";

/// A grant the scenario cannot see used, and why it is still needed.
struct Unobservable {
    sid: &'static str,
    action: &'static str,
    why: &'static str,
}

/// The customer-managed-key branch of every secret statement: Secrets Manager
/// calls KMS with the caller's identity to decrypt the secret (only through
/// Secrets Manager, by its condition); the program itself never calls KMS, and
/// moto's secrets are not encrypted with a customer key.
const fn secret_key(sid: &'static str) -> Unobservable {
    Unobservable {
        sid,
        action: "kms:Decrypt",
        why: "Secrets Manager decrypts the secret with the caller's identity when a customer managed key encrypts it",
    }
}

/// The same for writing a secret's new value: Secrets Manager asks KMS for a
/// data key with the caller's identity.
const fn secret_write_key(sid: &'static str) -> Unobservable {
    Unobservable {
        sid,
        action: "kms:GenerateDataKey",
        why: "Secrets Manager encrypts a new value with a data key from KMS, with the caller's identity, when a customer managed key encrypts the secret",
    }
}

/// The backup bucket's key: S3 calls KMS with the caller's identity to read
/// or write an object the bucket's key encrypts; the program calls S3 only,
/// and the stand-in's S3 encrypts with no customer key.
const fn backup_key(sid: &'static str, action: &'static str) -> Unobservable {
    Unobservable {
        sid,
        action,
        why: "S3 uses the bucket's key with the caller's identity to read or write an encrypted object; moto's S3 encrypts with no customer key",
    }
}

const NODE_UNOBSERVABLE: &[Unobservable] = &[
    Unobservable {
        sid: "FetchArtifacts",
        action: "s3:GetObject",
        why: "the user data downloads etcd and the agent with the AWS CLI before the agent runs",
    },
    Unobservable {
        sid: "SignalReadiness",
        action: "cloudformation:SignalResource",
        why: "the user data's ready unit signals CloudFormation; the agent only writes the ready file",
    },
    Unobservable {
        sid: "ShipNodeLogs",
        action: "logs:CreateLogStream",
        why: "the CloudWatch agent the user data installs creates the instance's stream; the harness runs no CloudWatch agent",
    },
    Unobservable {
        sid: "ShipNodeLogs",
        action: "logs:PutLogEvents",
        why: "the CloudWatch agent ships the node's log file; the harness runs no CloudWatch agent",
    },
    Unobservable {
        sid: "ShipNodeLogs",
        action: "logs:DescribeLogStreams",
        why: "the CloudWatch agent looks for the instance's stream before creating it; the harness runs no CloudWatch agent",
    },
    secret_key("ReadClusterCaKey"),
    secret_key("RenewFunctionsCertificateKey"),
    secret_write_key("RenewFunctionsCertificateKey"),
    backup_key("UseBackupKey", "kms:Decrypt"),
    backup_key("UseBackupKey", "kms:GenerateDataKey"),
];

/// Lambda sends an asynchronous invocation that failed every retry (a
/// scheduled run's) to the function's dead-letter queue with its execution role.
const FAILED_INVOCATIONS: Unobservable = Unobservable {
    sid: "ReportFailedInvocations",
    action: "sqs:SendMessage",
    why: "Lambda itself sends a failed scheduled invocation to the dead-letter queue, as the function's role",
};

const LIFECYCLE_UNOBSERVABLE: &[Unobservable] =
    &[FAILED_INVOCATIONS, secret_key("ReadClientCertificateKey")];

/// Every run of the backup code may abort the snapshot upload it started.
const ABORTED_UPLOAD: Unobservable = Unobservable {
    sid: "WriteSnapshots",
    action: "s3:AbortMultipartUpload",
    why: "only an upload that fails midway is aborted (backup_function.rs covers that path)",
};

const BACKUP_UNOBSERVABLE: &[Unobservable] = &[
    ABORTED_UPLOAD,
    FAILED_INVOCATIONS,
    secret_key("ReadClientCertificateKey"),
    backup_key("UseBackupKey", "kms:Decrypt"),
    backup_key("UseBackupKey", "kms:GenerateDataKey"),
];

const MAINTENANCE_UNOBSERVABLE: &[Unobservable] = &[
    ABORTED_UPLOAD,
    Unobservable {
        sid: "ListBackups",
        action: "s3:ListBucket",
        why: "the run lists nothing, but without it S3 answers a read of a missing latest.json (no backup yet) with access denied instead of no such key",
    },
    FAILED_INVOCATIONS,
    secret_key("ReadClientCertificateKey"),
    backup_key("UseBackupKey", "kms:Decrypt"),
    backup_key("UseBackupKey", "kms:GenerateDataKey"),
];

const CAPTURE_UNOBSERVABLE: &[Unobservable] = &[
    ABORTED_UPLOAD,
    FAILED_INVOCATIONS,
    secret_key("ReadClientCertificateKey"),
    backup_key("UseBackupKey", "kms:Decrypt"),
    backup_key("UseBackupKey", "kms:GenerateDataKey"),
];

/// A role and the programs that act with it.
struct Subject {
    role: &'static str,
    callers: &'static [Caller],
    unobservable: &'static [Unobservable],
}

const NODE: Subject = Subject {
    role: NODE_ROLE,
    callers: &[Caller::Node],
    unobservable: NODE_UNOBSERVABLE,
};

const LIFECYCLE: Subject = Subject {
    role: LIFECYCLE_FUNCTION_ROLE,
    // Lambda polls the queue for the function with the function's own role.
    callers: &[Caller::LifecycleFunction, Caller::LifecycleEventSource],
    unobservable: LIFECYCLE_UNOBSERVABLE,
};

const BACKUP: Subject = Subject {
    role: BACKUP_FUNCTION_ROLE,
    // The backup schedule's runs and the operator's commands.
    callers: &[Caller::BackupFunction],
    unobservable: BACKUP_UNOBSERVABLE,
};

const MAINTENANCE: Subject = Subject {
    role: MAINTENANCE_FUNCTION_ROLE,
    callers: &[Caller::MaintenanceFunction],
    unobservable: MAINTENANCE_UNOBSERVABLE,
};

const CAPTURE: Subject = Subject {
    role: CAPTURE_FUNCTION_ROLE,
    callers: &[Caller::CaptureFunction],
    unobservable: CAPTURE_UNOBSERVABLE,
};

/// The calls the scenario observed, and the bucket name they used.
#[derive(Debug, Clone)]
struct Observed {
    calls: Vec<RecordedCall>,
    bucket: String,
}

/// The scenario runs once for all the tests of this file that need it; each
/// test, run alone, runs it itself.
static OBSERVED: OnceCell<Result<Observed, String>> = OnceCell::const_new();

async fn observed() -> anyhow::Result<Observed> {
    OBSERVED
        .get_or_init(|| async { scenario().await.map_err(|e| format!("{e:#}")) })
        .await
        .clone()
        .map_err(anyhow::Error::msg)
}

async fn scenario() -> anyhow::Result<Observed> {
    // A cluster forms, each agent asking Auto Scaling for its own group as it
    // does when the user data starts it. The functions' certificate is near
    // its end (ten hours of its eleven gone), so the nodes renew it at once.
    let now = SystemTime::now();
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            functions_certificate: Some(ValidityPeriod {
                from: now - 10 * HOUR,
                until: now + HOUR,
            }),
            ..StandInOptions::default()
        },
        NodeOptions {
            discover_group: true,
            // The CA rotation at the end follows its stages within seconds.
            agent_args: vec!["--ca-poll-interval".to_owned(), "1s".to_owned()],
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let stand_in = &cluster.stand_in;
    cluster
        .client()
        .await?
        .put("kept", "by the backup", None)
        .await?;

    // The backup function uploads on its schedule, with an old backup beyond
    // the default retention (four newest, a week of dailies) to delete.
    let harness = BackupStore::new(&stand_in.sdk_config().await, stand_in.bucket(), "backups/");
    let mut planted = Vec::new();
    for age in 10..15 {
        planted.push(plant(&harness, age * DAY, age).await?);
    }
    let oldest = planted.last().cloned().context("nothing planted")?;
    let backups = BackupOnSchedule::start(stand_in, BACKUP_EVERY).await?;
    let run = backups
        .wait_for_upload(Instant::now(), 1, BACKUP_WITHIN)
        .await
        .with_context(|| backups.log())?;
    drop(backups);

    // The same code on the maintenance schedule, under the maintenance
    // function's role: health, defragmentation (of every member: no free
    // space is too little here), and the backup it takes first when the
    // newest is older than a second, which uploads: the revision moved on.
    cluster
        .client()
        .await?
        .put("changed", "since the backup", None)
        .await?;
    let maintenance = JobOnSchedule::maintenance(
        stand_in,
        BACKUP_EVERY,
        &[
            ("ETCD_MAINTENANCE_DEFRAG_FREE_MIB", "0"),
            ("ETCD_MAINTENANCE_BACKUP_MAX_AGE", "1s"),
        ],
    )
    .await?;
    wait_for("a maintenance run that backed up first", SETTLE, || async {
        let runs = maintenance.runs();
        if let Some(error) = runs.iter().find_map(|run| run.outcome.as_ref().err()) {
            bail!("a maintenance run failed: {error}");
        }
        let backed_up = runs.iter().any(|run| {
            run.outcome
                .as_ref()
                .is_ok_and(|answer| answer["backed_up"] == json!(true))
        });
        anyhow::ensure!(backed_up, "no maintenance run backed up yet");
        Ok(())
    })
    .await
    .with_context(|| maintenance.log())?;
    drop(maintenance);

    // And on the capture schedule, under the capture function's role: the
    // continuous backup stores changes as segments (which the restore below
    // replays with the node role), merges a run's segments into one and
    // deletes the small ones, and takes a snapshot once a revision follows
    // the newest.
    let capture = JobOnSchedule::capture(
        stand_in,
        BACKUP_EVERY,
        &[
            ("ETCD_CAPTURE_DURATION", "5s"),
            ("ETCD_CAPTURE_SNAPSHOT_AFTER_REVISIONS", "1"),
        ],
    )
    .await?;
    let client = cluster.client().await?;
    wait_for(
        "a capture run that stored segments and took a snapshot",
        SETTLE,
        || {
            let (capture, client) = (&capture, client.clone());
            async move {
                let mut client = client;
                client.put("captured", "by a segment", None).await?;
                let stored = capture.runs().into_iter().any(|run| {
                    run.outcome.as_ref().is_ok_and(|answer| {
                        answer["segments"].as_u64().unwrap_or(0) > 1
                            && answer["snapshots"]
                                .as_array()
                                .is_some_and(|s| !s.is_empty())
                    })
                });
                anyhow::ensure!(
                    stored,
                    "no capture run stored segments and took a snapshot yet"
                );
                Ok(())
            }
        },
    )
    .await
    .with_context(|| capture.log())?;
    drop((capture, client));
    let left: Vec<String> = harness
        .manifests()
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    if left.contains(&oldest.key) || !left.contains(&run.key) {
        bail!(
            "retention did not delete {}; backups left: {left:?}",
            oldest.key
        );
    }

    // The lifecycle function removes a terminating instance's member and
    // completes its action, then reconciles on its schedule.
    let lifecycle = LifecycleOnQueue::start_with(
        stand_in,
        LifecycleSettings {
            heartbeat_interval: HEARTBEAT_INTERVAL,
            ..LifecycleSettings::default()
        },
    )
    .await?;
    let victim = cluster
        .instance_ids()
        .first()
        .cloned()
        .context("no instance")?;
    stand_in.terminate(&victim).await?;
    wait_for(
        "the function to complete the action",
        REMOVAL_WITHIN,
        || async {
            let outcome = stand_in
                .lifecycle_actions()
                .into_iter()
                .find(|a| a.instance_id == victim)
                .and_then(|a| a.outcome);
            match outcome {
                Some(ActionOutcome::Continue) => Ok(()),
                other => bail!("the action is {other:?}"),
            }
        },
    )
    .await
    .with_context(|| lifecycle.log())?;
    cluster.wait_healthy(3, SETTLE).await?;
    let report = lifecycle
        .function()
        .invoke(&json!({"reconcile": true}))
        .await
        .with_context(|| lifecycle.log())?;
    if report.get("refused") != Some(&json!([])) {
        bail!("the reconcile refused something: {report}");
    }
    drop(lifecycle);

    // Every instance is lost; the replacements restore the backup.
    cluster.lose_every_instance().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let restored = cluster.client().await?.get("kept", None).await?;
    if restored.kvs().is_empty() {
        bail!(
            "the restored cluster lacks the backed-up key:\n{}",
            cluster.logs()
        );
    }

    // The operator restores it in place to the first backup: every node stops
    // and says so in the bucket; the backup function reports the cluster and
    // backs up the restored one.
    let on_demand = BackupOnDemand::start(stand_in, &[]).await?;
    let restore = OperatorCommand::new(stand_in)
        .run(&["restore", "--backup", &run.key, "--yes"], SETTLE)
        .await?;
    if !restore.succeeded() {
        bail!(
            "the operator's restore failed: {restore}\n{}",
            on_demand.log()
        );
    }
    drop(on_demand);

    // The operator replaces the CA: every node follows the stages from the
    // CA secret and acknowledges each in the bucket, under its own name.
    let rotation = OperatorCommand::new(stand_in)
        .run(
            &[
                "rotate-ca",
                "--drop-old",
                "--stack-name",
                stand_in.group_name(),
            ],
            SETTLE,
        )
        .await?;
    if !rotation.succeeded() {
        bail!(
            "the operator's CA rotation failed: {rotation}\n{}",
            cluster.logs()
        );
    }

    let calls = stand_in.calls();
    let strangers: BTreeSet<&str> = calls
        .iter()
        .filter(|c| c.caller().is_none())
        .map(|c| c.access_key_id.as_str())
        .collect();
    if !strangers.is_empty() {
        bail!("calls signed by no known program: {strangers:?}");
    }
    Ok(Observed {
        calls,
        bucket: stand_in.bucket().to_owned(),
    })
}

/// A backup as an earlier run would have left it, `age` seconds old.
async fn plant(store: &BackupStore, age: i64, revision: i64) -> anyhow::Result<BackupManifest> {
    plant_backup(
        store,
        age,
        revision,
        format!("planted {revision}").into_bytes(),
    )
    .await
}

fn template() -> anyhow::Result<Value> {
    Ok(etcd_aws_template::template(&Options::default())?)
}

fn role(template: &Value, logical_id: &str) -> anyhow::Result<Role> {
    roles(template)?
        .into_iter()
        .find(|r| r.logical_id == logical_id)
        .with_context(|| format!("the template has no role {logical_id}"))
}

/// One distinct call a role's programs made: its action, and for S3 the ARN
/// of what it named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    action: String,
    s3_arn: Option<String>,
    /// "DescribeInstances by node-agent", for the table.
    seen_as: String,
}

fn needs(observed: &Observed, subject: &Subject) -> Vec<Need> {
    let needs: BTreeSet<Need> = observed
        .calls
        .iter()
        .filter(|c| c.caller().is_some_and(|c| subject.callers.contains(&c)))
        .map(|c| Need {
            action: iam_action(&c.service, &c.operation),
            s3_arn: c.s3_path.as_ref().map(|path| format!("{ARN_BUCKET}{path}")),
            seen_as: format!("{} by {}", c.operation, c.access_key_id),
        })
        .collect();
    needs.into_iter().collect()
}

/// The ARN patterns a statement's resources stand for in the stand-in, where
/// the stack's bucket is the stand-in's. Only S3 resources are resolved: other
/// services' calls do not name their resources in a way the proxy records.
fn s3_resource_patterns(statement: &Statement, bucket: &str) -> Vec<String> {
    let bucket_arn = format!("{ARN_BUCKET}{bucket}");
    let known = BTreeMap::from([
        (format!("{BACKUP_BUCKET}.Arn"), bucket_arn.clone()),
        (BACKUP_BUCKET.to_owned(), bucket.to_owned()),
        ("AWS::Partition".to_owned(), "aws".to_owned()),
        // IAM's own variable, escaped for CloudFormation: the caller's user id,
        // `<role id>:<instance id>` for a node. The stand-in's nodes all sign
        // with one key, so any instance of the node role's; that each may
        // write only its own is the template's test (order_signing.rs).
        ("!aws:userid".to_owned(), format!("{NODE_ROLE_ID}:i-*")),
    ]);
    statement
        .resources
        .iter()
        .map(|resource| {
            if let Some(text) = resource.as_str() {
                return text.to_owned();
            }
            let template = match (resource.get("Fn::Sub"), resource.get("Fn::GetAtt")) {
                (Some(Value::String(text)), _) => text.clone(),
                (_, Some(Value::Array(parts))) => {
                    let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                    format!("${{{}}}", parts.join("."))
                }
                _ => format!("${{{resource}}}"),
            };
            substitute(&template, &known)
        })
        .collect()
}

/// `${Name}` replaced from `known`; an unknown one stays, matching no ARN.
fn substitute(template: &str, known: &BTreeMap<String, String>) -> String {
    let mut text = template.to_owned();
    for (name, value) in known {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    text
}

fn statement_covers(statement: &Statement, need: &Need, bucket: &str) -> bool {
    statement.allows(&need.action)
        && need.s3_arn.as_ref().is_none_or(|arn| {
            s3_resource_patterns(statement, bucket)
                .iter()
                .any(|pattern| action_matches(pattern, arn))
        })
}

/// Both directions side by side, so a reader sees the gap at once.
fn table(subject: &Subject, role: &Role, needs: &[Need], bucket: &str) -> Table {
    let mut rows: Vec<(String, String)> = needs
        .iter()
        .map(|need| {
            let by: Vec<&str> = role
                .statements
                .iter()
                .filter(|s| statement_covers(s, need, bucket))
                .map(|s| s.sid.as_str())
                .collect();
            let allowed = if by.is_empty() {
                "NOT ALLOWED".to_owned()
            } else {
                format!("allowed by {}", by.join(", "))
            };
            (
                format!("called {} ({})", need.action, need.seen_as),
                allowed,
            )
        })
        // One row per operation and caller, whatever objects it named.
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for statement in &role.statements {
        for action in &statement.actions {
            let used = needs.iter().any(|n| {
                action_matches(action, &n.action) && statement_covers(statement, n, bucket)
            });
            let excused = subject
                .unobservable
                .iter()
                .find(|u| u.sid == statement.sid && u.action == action);
            let status = match (used, excused) {
                (true, _) => "used".to_owned(),
                (false, Some(u)) => format!("not seen: {}", u.why),
                (false, None) => "NEVER CALLED".to_owned(),
            };
            rows.push((format!("grants {action} in {}", statement.sid), status));
        }
    }
    Table {
        title: format!("{} ({:?})", subject.role, subject.callers),
        rows,
    }
}

async fn assert_allows_every_call(subject: &Subject) -> anyhow::Result<()> {
    let observed = observed().await?;
    let role = role(&template()?, subject.role)?;
    let needs = needs(&observed, subject);
    assert!(
        !needs.is_empty(),
        "the scenario saw no call as {:?}",
        subject.callers
    );
    let refused: Vec<&Need> = needs
        .iter()
        .filter(|need| {
            !role
                .statements
                .iter()
                .any(|s| statement_covers(s, need, &observed.bucket))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "{} refuses {refused:?}\n{}",
        subject.role,
        table(subject, &role, &needs, &observed.bucket)
    );
    Ok(())
}

async fn assert_allows_nothing_uncalled(subject: &Subject) -> anyhow::Result<()> {
    let observed = observed().await?;
    let role = role(&template()?, subject.role)?;
    // An excuse must name a grant the role has, or the list rots unnoticed.
    for excuse in subject.unobservable {
        assert!(
            role.grants()
                .contains(&(excuse.sid.to_owned(), excuse.action.to_owned())),
            "{} grants no {} in {}; drop it from the unobservable list",
            subject.role,
            excuse.action,
            excuse.sid
        );
    }
    let needs = needs(&observed, subject);
    let unused: Vec<(String, String)> = role
        .statements
        .iter()
        .flat_map(|statement| {
            statement
                .actions
                .iter()
                .filter(|action| {
                    !needs.iter().any(|n| {
                        action_matches(action, &n.action)
                            && statement_covers(statement, n, &observed.bucket)
                    })
                })
                .filter(|action| {
                    !subject
                        .unobservable
                        .iter()
                        .any(|u| u.sid == statement.sid && u.action == action.as_str())
                })
                .map(|action| (statement.sid.clone(), action.clone()))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "{} grants what no call needed: {unused:?}\n{}",
        subject.role,
        table(subject, &role, &needs, &observed.bucket)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_role_allows_every_call_the_agent_makes() -> anyhow::Result<()> {
    assert_allows_every_call(&NODE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_role_allows_nothing_the_agent_does_not_call() -> anyhow::Result<()> {
    assert_allows_nothing_uncalled(&NODE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_function_role_allows_every_call_the_function_and_its_queue_polling_make(
) -> anyhow::Result<()> {
    assert_allows_every_call(&LIFECYCLE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_function_role_allows_nothing_they_do_not_call() -> anyhow::Result<()> {
    assert_allows_nothing_uncalled(&LIFECYCLE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_function_role_allows_every_call_the_function_makes() -> anyhow::Result<()> {
    assert_allows_every_call(&BACKUP).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_function_role_allows_nothing_the_function_does_not_call() -> anyhow::Result<()>
{
    assert_allows_nothing_uncalled(&BACKUP).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_function_role_allows_every_call_the_function_makes() -> anyhow::Result<()>
{
    assert_allows_every_call(&MAINTENANCE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_function_role_allows_nothing_the_function_does_not_call(
) -> anyhow::Result<()> {
    assert_allows_nothing_uncalled(&MAINTENANCE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_function_role_allows_every_call_the_function_makes() -> anyhow::Result<()> {
    assert_allows_every_call(&CAPTURE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_function_role_allows_nothing_the_function_does_not_call() -> anyhow::Result<()>
{
    assert_allows_nothing_uncalled(&CAPTURE).await
}

/// The Service Authorization Reference lists no resource types for these
/// actions: IAM accepts them only on "*", and answers for every instance and
/// group of the account. They read, and change nothing.
const UNSCOPABLE: &[&str] = &[
    "ec2:DescribeInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
];

#[test]
fn no_statement_is_unscoped_except_describe_calls() -> anyhow::Result<()> {
    let template = template()?;
    let own: BTreeSet<String> = ["Resources", "Parameters"]
        .iter()
        .filter_map(|section| template.get(*section).and_then(Value::as_object))
        .flat_map(|entries| entries.keys().cloned())
        .chain(["AWS::StackId".to_owned()])
        .collect();
    let mut problems = Vec::new();
    for role in roles(&template)? {
        for statement in &role.statements {
            let where_ = format!("{} {}", role.logical_id, statement.sid);
            if statement.is_unscoped() {
                let scopable: Vec<&String> = statement
                    .actions
                    .iter()
                    .filter(|a| !UNSCOPABLE.contains(&a.as_str()))
                    .collect();
                if !scopable.is_empty() {
                    problems.push(format!("{where_} grants {scopable:?} on \"*\""));
                }
                continue;
            }
            for resource in &statement.resources {
                if !names_own_resource(resource, &own) {
                    problems.push(format!("{where_} names {resource}, not the stack's own"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

/// A `Ref`, `Fn::GetAtt` or `Fn::Sub` that names one of the stack's resources
/// or parameters (a parameter holding a secret's ARN made for this stack).
fn names_own_resource(resource: &Value, own: &BTreeSet<String>) -> bool {
    if let Some(name) = resource.get("Ref").and_then(Value::as_str) {
        return own.contains(name);
    }
    if let Some(name) = resource
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .and_then(|parts| parts.first())
        .and_then(Value::as_str)
    {
        return own.contains(name);
    }
    if let Some(text) = resource.get("Fn::Sub").and_then(Value::as_str) {
        return text
            .split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}'))
            .map(|(name, _)| name.split('.').next().unwrap_or(name))
            .any(|name| own.contains(name));
    }
    false
}

#[test]
fn each_role_attaches_only_the_managed_policies_aws_runs_it_with() -> anyhow::Result<()> {
    let lambda = vec![
        // Lambda creates the function's network interfaces in the VPC and
        // writes its logs with these.
        "service-role/AWSLambdaVPCAccessExecutionRole".to_owned(),
        // Lambda sends the function's active tracing segments with this.
        "AWSXRayDaemonWriteAccess".to_owned(),
    ];
    let expected = |node: Vec<String>| -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            (NODE_ROLE.to_owned(), node),
            (LIFECYCLE_FUNCTION_ROLE.to_owned(), lambda.clone()),
            (BACKUP_FUNCTION_ROLE.to_owned(), lambda.clone()),
            (MAINTENANCE_FUNCTION_ROLE.to_owned(), lambda.clone()),
            (CAPTURE_FUNCTION_ROLE.to_owned(), lambda.clone()),
            (LIFECYCLE_HOOK_ROLE.to_owned(), Vec::new()),
        ])
    };
    let managed = |template: &Value| -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        Ok(roles(template)?
            .into_iter()
            .map(|r| (r.logical_id, r.managed_policies))
            .collect())
    };
    assert_eq!(managed(&template()?)?, expected(Vec::new()));
    // The SSM agent, not etcd-aws, uses it for Session Manager, which only
    // a stack deployed with --session-manager has.
    let with_session_manager = etcd_aws_template::template(&Options {
        session_manager: true,
        ..Options::default()
    })?;
    assert_eq!(
        managed(&with_session_manager)?,
        expected(vec!["AmazonSSMManagedInstanceCore".to_owned()])
    );
    Ok(())
}
