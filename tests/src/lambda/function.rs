//! A Lambda function binary run the way Lambda runs a `provided.al2023`
//! function: its own process, the Runtime API address and the function's
//! settings in its environment, nothing else inherited.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::runtime_api::{InvokeError, RuntimeApi};

/// How long a freshly started function may take to reach its first poll.
const START_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The cargo binary name (`etcd-aws-lifecycle`), found beside the tests.
    pub binary: String,
    pub function_name: String,
    pub timeout: Duration,
    /// The function's configured environment (plus the AWS SDK's).
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go (Lambda would ship them to CloudWatch Logs).
    pub log_file: PathBuf,
}

/// A running function and the Runtime API it polls. Dropping it kills the
/// process and stops the API.
pub struct LambdaFunction {
    api: RuntimeApi,
    process: Child,
    log_file: PathBuf,
    /// Just before the process was spawned: where Lambda's Init Duration starts.
    spawned_at: std::time::Instant,
}

impl LambdaFunction {
    pub async fn start(spec: FunctionSpec) -> anyhow::Result<LambdaFunction> {
        let binary = function_binary(&spec.binary)?;
        let api = RuntimeApi::start(&spec.function_name, spec.timeout).await?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_file)
            .with_context(|| format!("cannot open {}", spec.log_file.display()))?;
        let err = log
            .try_clone()
            .context("cannot clone the log file handle")?;
        let spawned_at = std::time::Instant::now();
        let process = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.function_name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]local")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", "bootstrap")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(LambdaFunction {
            api,
            process,
            log_file: spec.log_file,
            spawned_at,
        })
    }

    /// A synchronous invocation through the Runtime API.
    pub async fn invoke(&self, payload: &Value) -> Result<Value, InvokeError> {
        self.api.invoke(payload, START_GRACE).await
    }

    pub fn runtime_api(&self) -> &RuntimeApi {
        &self.api
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The log's JSON lines (the function logs JSON for CloudWatch), skipping
    /// anything else a runtime may print.
    pub fn log_records(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }

    /// The function's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// From spawning the process to its first poll of the Runtime API (what
    /// Lambda reports as Init Duration); `None` until it has polled.
    pub fn init_duration(&self) -> Option<Duration> {
        self.api
            .first_poll_at()
            .map(|polled| polled.saturating_duration_since(self.spawned_at))
    }

    /// Whether the process has exited (a crash, or a failed start).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(Some(_)))
    }
}

/// `$<NAME>_BIN` (upper case, `-` as `_`), or the binary built beside the
/// running test (target/<profile>/<name>).
pub fn function_binary(name: &str) -> anyhow::Result<PathBuf> {
    let variable = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&variable) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot locate the running test binary")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if is_file(&candidate) {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is not built next to {}; run `cargo build -p {name}` or set {variable}",
        exe.display()
    )
}

fn is_file(path: &Path) -> bool {
    path.is_file()
}
