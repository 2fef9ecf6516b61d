//! Both Lambda functions on their triggers, as a deployed stack runs them:
//! the lifecycle function fed by the hook's queue through an SQS event
//! source, the backup function invoked by a schedule. Each runs its real
//! binary through the Lambda Runtime API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::jobs::{BackupAnswer, Job};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::event_source::{Delivery, EventSourceOptions, Invoke, Polling, SqsEventSource};
use crate::lambda::{FunctionSpec, LambdaFunction, LogShipper};
use crate::lock;
use crate::stand_in::{Caller, StandIn};

/// The lifecycle function's settings, scaled down for the stand-in.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    pub retry_for: Duration,
    pub etcd_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub function_timeout: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(10),
            etcd_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(5),
            function_timeout: Duration::from_secs(30),
        }
    }
}

/// The lifecycle function polling the hook's queue. Dropping it stops the
/// polling and the function.
pub struct LifecycleOnQueue {
    function: Arc<LambdaFunction>,
    source: Arc<SqsEventSource>,
    _polling: Polling,
    _logs: tempfile::TempDir,
}

impl LifecycleOnQueue {
    pub async fn start(stand_in: &StandIn) -> anyhow::Result<Self> {
        Self::start_with(stand_in, LifecycleSettings::default()).await
    }

    pub async fn start_with(
        stand_in: &StandIn,
        settings: LifecycleSettings,
    ) -> anyhow::Result<Self> {
        let logs = log_dir("lifecycle")?;
        let mut env = stand_in.env_as(Caller::LifecycleFunction);
        env.extend(stand_in.functions_tls_env());
        env.extend(owned([
            ("ETCD_AWS_GROUP_NAME", stand_in.group_name()),
            ("ETCD_AWS_RETRY_FOR", &humantime(settings.retry_for)),
            ("ETCD_AWS_ETCD_TIMEOUT", &humantime(settings.etcd_timeout)),
            (
                "ETCD_AWS_HEARTBEAT_INTERVAL",
                &humantime(settings.heartbeat_interval),
            ),
        ]));
        let function = Arc::new(
            LambdaFunction::start(FunctionSpec {
                binary: "etcd-aws-lifecycle".to_owned(),
                function_name: "etcd-lifecycle".to_owned(),
                timeout: settings.function_timeout,
                env,
                log_file: logs.path().join("lifecycle-function.log"),
            })
            .await?,
        );
        let source = Arc::new(SqsEventSource::new(stand_in, EventSourceOptions::default()).await?);
        let polling = source.run(Arc::clone(&function) as Arc<dyn Invoke>);
        Ok(Self {
            function,
            source,
            _polling: polling,
            _logs: logs,
        })
    }

    /// The stack's reconcile schedule: `{"reconcile": true}` every `every`,
    /// beside the queue's batches, until the returned handle is dropped.
    pub fn reconcile_every(&self, every: Duration) -> Reconciling {
        let function = Arc::clone(&self.function);
        Reconciling(tokio::spawn(on_schedule(every, move || {
            let function = Arc::clone(&function);
            async move {
                if let Err(error) = function.invoke(&json!({"reconcile": true})).await {
                    tracing::info!(%error, "a reconcile run failed");
                }
            }
        })))
    }

    /// Every batch delivered so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.source.deliveries()
    }

    pub fn function(&self) -> &LambdaFunction {
        &self.function
    }

    pub fn log(&self) -> String {
        self.function.log()
    }

    /// The function's JSON log records whose message is `message` and whose
    /// `member_name` is `member_name`.
    pub fn logged_for(&self, message: &str, member_name: &str) -> usize {
        self.function
            .log_records()
            .iter()
            .filter(|r| r.get("message").and_then(Value::as_str) == Some(message))
            .filter(|r| r.get("member_name").and_then(Value::as_str) == Some(member_name))
            .count()
    }
}

/// Bound on any schedule the harness runs, so a forgotten one stops by itself.
const SCHEDULE_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// A running reconcile schedule; dropping it stops the schedule.
pub struct Reconciling(JoinHandle<()>);

impl Drop for Reconciling {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One scheduled invocation and what came of it.
#[derive(Debug, Clone)]
pub struct Scheduled<T> {
    pub started: Instant,
    pub finished: Instant,
    pub outcome: Result<T, String>,
}

pub type ScheduledRun = Scheduled<BackupAnswer>;

/// The backup function invoked on a fixed schedule (EventBridge's rate
/// expression, shortened). Dropping it stops the schedule and the function.
pub struct BackupOnSchedule {
    function: Arc<LambdaFunction>,
    runs: Arc<Mutex<Vec<ScheduledRun>>>,
    schedule: JoinHandle<()>,
    _logs: tempfile::TempDir,
}

impl BackupOnSchedule {
    pub async fn start(stand_in: &StandIn, every: Duration) -> anyhow::Result<Self> {
        let logs = log_dir("backup")?;
        let function = Arc::new(
            start_backup_binary(
                stand_in,
                Caller::BackupFunction,
                &logs,
                "backup-function.log",
                Vec::new(),
                SCALED_TIMEOUT,
            )
            .await?,
        );
        let runs = Arc::new(Mutex::new(Vec::new()));
        let region = stand_in.region().to_owned();
        let schedule = tokio::spawn(run_schedule(
            Arc::clone(&function),
            Arc::clone(&runs),
            every,
            move || scheduled_event(&region),
            backup_run,
        ));
        Ok(Self {
            function,
            runs,
            schedule,
            _logs: logs,
        })
    }

    pub fn runs(&self) -> Vec<ScheduledRun> {
        lock(&self.runs).clone()
    }

    pub fn log(&self) -> String {
        self.function.log()
    }

    /// Waits for a scheduled run that started at or after `after` and
    /// uploaded a backup holding at least `min_revision`.
    pub async fn wait_for_upload(
        &self,
        after: Instant,
        min_revision: i64,
        timeout: Duration,
    ) -> anyhow::Result<BackupAnswer> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .runs()
                .into_iter()
                .filter(|run| run.started >= after)
                .find_map(|run| run.outcome.ok())
                .filter(|run| run.uploaded && run.revision >= min_revision);
            if let Some(run) = found {
                return Ok(run);
            }
            if Instant::now() >= deadline {
                let outcomes: Vec<String> = self
                    .runs()
                    .iter()
                    .filter(|run| run.started >= after)
                    .map(|run| format!("{:?}", run.outcome))
                    .collect();
                anyhow::bail!(
                    "no scheduled backup at revision {min_revision} or later within {timeout:?}; runs since: {outcomes:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for BackupOnSchedule {
    fn drop(&mut self) {
        self.schedule.abort();
    }
}

/// Invokes `function` every `every` with `payload()`, recording each answer
/// as `parse` reads it.
async fn run_schedule<T>(
    function: Arc<LambdaFunction>,
    runs: Arc<Mutex<Vec<Scheduled<T>>>>,
    every: Duration,
    payload: impl Fn() -> Value,
    parse: impl Fn(&Value) -> Result<T, String>,
) {
    let (payload, parse) = (&payload, &parse);
    on_schedule(every, || {
        let (function, runs) = (Arc::clone(&function), Arc::clone(&runs));
        async move {
            let started = Instant::now();
            let outcome = match function.invoke(&payload()).await {
                Ok(answer) => parse(&answer),
                Err(error) => Err(error.to_string()),
            };
            lock(&runs).push(Scheduled {
                started,
                finished: Instant::now(),
                outcome,
            });
        }
    })
    .await;
}

/// Runs `run` every `every`, the first one period from now, for at most
/// `SCHEDULE_LIMIT` (so a forgotten schedule stops by itself).
async fn on_schedule<F, Run>(every: Duration, mut run: F)
where
    F: FnMut() -> Run,
    Run: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(every);
    // A run longer than the period delays the next one instead of bunching them.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = Instant::now() + SCHEDULE_LIMIT;
    ticks.tick().await;
    while Instant::now() < deadline {
        ticks.tick().await;
        run().await;
    }
}

/// The harness's timeout of the backup function's invocations, scaled down
/// from the stack's minutes.
const SCALED_TIMEOUT: Duration = Duration::from_secs(60);

/// Who runs `job` in the stack: the backup code runs as three functions,
/// each under a role of its own; the operator's status job is the backup
/// function's.
pub fn caller_of(job: Job) -> Caller {
    match job {
        Job::Backup | Job::Status => Caller::BackupFunction,
        Job::Maintenance => Caller::MaintenanceFunction,
        Job::Capture => Caller::CaptureFunction,
    }
}

/// The backup function's binary, as the stack configures it, scaled down,
/// signing as `caller`.
async fn start_backup_binary(
    stand_in: &StandIn,
    caller: Caller,
    logs: &tempfile::TempDir,
    log_name: &str,
    extra_env: Vec<(String, String)>,
    timeout: Duration,
) -> anyhow::Result<LambdaFunction> {
    let mut env = stand_in.env_as(caller);
    env.extend(stand_in.functions_tls_env());
    env.extend(owned([
        ("ETCD_AWS_GROUP_NAME", stand_in.group_name()),
        ("ETCD_BACKUP_BUCKET", stand_in.bucket()),
        ("ETCD_BACKUP_PART_MIB", "5"),
        ("ETCD_BACKUP_SNAPSHOT_TIMEOUT", "50s"),
    ]));
    env.extend(extra_env);
    LambdaFunction::start(FunctionSpec {
        binary: "etcd-aws-backup".to_owned(),
        function_name: "etcd-backup".to_owned(),
        timeout,
        env,
        log_file: logs.path().join(log_name),
    })
    .await
}

/// The backup function as the operator's commands reach it: Lambda's Invoke
/// of [`BackupOnDemand::NAME`] through the stand-in. Dropping it stops the
/// function (and Invoke then answers that it does not exist).
pub struct BackupOnDemand {
    function: Arc<LambdaFunction>,
    _shipper: LogShipper,
    _logs: tempfile::TempDir,
}

impl BackupOnDemand {
    pub const NAME: &'static str = "etcd-backup";
    /// Where its output goes in the stand-in's CloudWatch Logs, as Lambda's
    /// default group for the function.
    pub const LOG_GROUP: &'static str = "/aws/lambda/etcd-backup";

    /// `env` adds to the stack's settings (the quota the status reports).
    pub async fn start(stand_in: &StandIn, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let logs = log_dir("backup-on-demand")?;
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let log_file = logs.path().join("backup-function.log");
        let function = Arc::new(
            start_backup_binary(
                stand_in,
                Caller::BackupFunction,
                &logs,
                "backup-function.log",
                env,
                SCALED_TIMEOUT,
            )
            .await?,
        );
        stand_in.serve_function(Self::NAME, &function);
        let shipper = LogShipper::start(
            aws_sdk_cloudwatchlogs::Client::new(&stand_in.sdk_config().await),
            Self::LOG_GROUP,
            log_file,
        )
        .await?;
        Ok(Self {
            function,
            _shipper: shipper,
            _logs: logs,
        })
    }

    pub fn log(&self) -> String {
        self.function.log()
    }

    /// An invocation with any payload, as another trigger would send it.
    pub async fn invoke(&self, payload: &Value) -> Result<Value, crate::lambda::InvokeError> {
        self.function.invoke(payload).await
    }
}

/// The backup function's code on another schedule of the stack: the
/// maintenance rule (constant input `{"job": "maintenance"}`) or the capture
/// rule (`{"job": "capture"}`). Dropping it stops the schedule and the function.
pub struct JobOnSchedule {
    function: Arc<LambdaFunction>,
    runs: Arc<Mutex<Vec<Scheduled<Value>>>>,
    schedule: JoinHandle<()>,
    _logs: tempfile::TempDir,
}

impl JobOnSchedule {
    /// Maintenance runs. `env` adds to (and overrides) the stack's settings:
    /// the quota, the defragmentation threshold.
    pub async fn maintenance(
        stand_in: &StandIn,
        every: Duration,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start(stand_in, every, env, Job::Maintenance, SCALED_TIMEOUT).await
    }

    /// Capture runs (the continuous backup). `env` adds to the stack's settings:
    /// the run's duration, the flush delay.
    pub async fn capture(
        stand_in: &StandIn,
        every: Duration,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start(stand_in, every, env, Job::Capture, SCALED_TIMEOUT).await
    }

    /// `job` as the stack runs it rather than scaled down: the function's
    /// `timeout` (a capture run then watches for its whole duration) and
    /// `env` for the settings the harness scales (the part size, say).
    pub async fn as_deployed(
        stand_in: &StandIn,
        every: Duration,
        env: &[(&str, &str)],
        job: Job,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::start(stand_in, every, env, job, timeout).await
    }

    async fn start(
        stand_in: &StandIn,
        every: Duration,
        env: &[(&str, &str)],
        job: Job,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let logs = log_dir(job.as_str())?;
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let function = Arc::new(
            start_backup_binary(
                stand_in,
                caller_of(job),
                &logs,
                &format!("{job}-function.log"),
                env,
                timeout,
            )
            .await?,
        );
        let runs = Arc::new(Mutex::new(Vec::new()));
        let schedule = tokio::spawn(run_schedule(
            Arc::clone(&function),
            Arc::clone(&runs),
            every,
            move || job.payload(),
            |answer: &Value| Ok(answer.clone()),
        ));
        Ok(Self {
            function,
            runs,
            schedule,
            _logs: logs,
        })
    }

    /// Every run so far: the function's answer, or its error.
    pub fn runs(&self) -> Vec<Scheduled<Value>> {
        lock(&self.runs).clone()
    }

    pub fn log(&self) -> String {
        self.function.log()
    }

    /// The function's process (its pid, for its peak memory).
    pub fn function(&self) -> &LambdaFunction {
        &self.function
    }

    /// The metric lines the runs printed (one JSON object per line with `_aws`).
    pub fn metric_lines(&self) -> Vec<Value> {
        self.function
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("_aws").is_some())
            .collect()
    }

    /// The first metric line that carries `metric`, waiting up to `timeout`
    /// for a run to print one.
    pub async fn metric_line_with(&self, metric: &str, timeout: Duration) -> anyhow::Result<Value> {
        crate::sim_cluster::wait_for(&format!("a metric line with {metric}"), timeout, || async {
            self.metric_lines()
                .into_iter()
                .find(|line| line.get(metric).is_some())
                .with_context(|| format!("no run has printed {metric} yet"))
        })
        .await
    }
}

impl Drop for JobOnSchedule {
    fn drop(&mut self) {
        self.schedule.abort();
    }
}

/// The event an EventBridge schedule sends.
pub fn scheduled_event(region: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": region,
        "resources": [format!("arn:aws:events:{region}:123456789012:rule/etcd-backup")],
        "detail": {}
    })
}

fn backup_run(answer: &Value) -> Result<BackupAnswer, String> {
    serde_json::from_value(answer.clone())
        .map_err(|e| format!("the backup function answered something unexpected ({e}): {answer}"))
}

fn log_dir(function: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("etcd-aws-{function}-"))
        .tempdir()
        .with_context(|| format!("cannot create a log dir for the {function} function"))
}

/// "1500ms": what the functions' duration settings parse.
fn humantime(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

fn owned<const N: usize>(pairs: [(&str, &str); N]) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_answer_becomes_a_run() {
        let answer = json!({"uploaded": true, "key": "backups/x.db.zst", "revision": 42,
            "stored_bytes": 100, "member": "http://127.0.0.1:2379", "deleted": []});
        assert_eq!(
            backup_run(&answer),
            Ok(BackupAnswer {
                uploaded: true,
                key: "backups/x.db.zst".to_owned(),
                revision: 42,
                stored_bytes: 100,
                member: "http://127.0.0.1:2379".to_owned(),
                deleted: vec![],
            })
        );
    }

    #[test]
    fn a_backup_answer_without_a_revision_is_an_error_naming_the_answer() {
        let answer = json!({"uploaded": true, "key": "k"});
        let error = backup_run(&answer).err().unwrap_or_default();
        assert!(error.contains("\"key\":\"k\""), "{error}");
        assert!(error.contains("revision"), "{error}");
    }
}
