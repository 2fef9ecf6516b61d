//! What the results depend on: the machine, the tools' versions, the date,
//! and whether something else (another engineer's build) competed for the
//! CPU while the benchmarks ran.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tokio::task::JoinHandle;

use etcd_aws_tests::paths;

/// The standard tools the benchmarks compare against.
#[derive(Debug, Clone)]
pub struct Tools {
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub etcdutl: PathBuf,
    /// The AWS CLI from the project venv (`make bench` installs it).
    pub aws: PathBuf,
    pub python: PathBuf,
}

impl Tools {
    pub fn find() -> anyhow::Result<Tools> {
        let venv = paths::workspace_root().join(".venv/bin");
        let aws = venv.join("aws");
        if !aws.is_file() {
            bail!(
                "{} is missing; `make bench` installs the pinned AWS CLI into the venv",
                aws.display()
            );
        }
        Ok(Tools {
            etcd: paths::etcd_tool("etcd")?,
            etcdctl: paths::etcd_tool("etcdctl")?,
            etcdutl: paths::etcd_tool("etcdutl")?,
            aws,
            python: venv.join("python"),
        })
    }
}

/// The "This run" paragraph of the document.
pub async fn describe(tools: &Tools, contention: &Contention) -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.0} GiB", kib / 1048576.0),
        );
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let etcd = first_line(&tools.etcd, &["--version"]).await;
    let aws = first_line(&tools.aws, &["--version"]).await;
    let moto = first_line(
        &tools.python,
        &["-c", "import moto; print('moto', moto.__version__)"],
    )
    .await;
    let rustc = first_line(Path::new("rustc"), &["--version"]).await;
    format!(
        "- date: {} (UTC)\n- machine: {cores} cores ({cpu}), {memory} RAM, Linux {kernel}\n- versions: {etcd} (etcd, etcdctl, etcdutl from Debian's packages); {aws}; {moto} (the stand-in); {rustc}, release build\n- CPU contention: {}",
        utc_now(),
        contention.summary()
    )
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn first_line(program: &Path, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(output) => {
            let text = if output.stdout.is_empty() {
                output.stderr
            } else {
                output.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(error) => format!("{} (cannot run: {error})", program.display()),
    }
}

/// "2026-01-01 12:34".
pub fn utc_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let stamp = etcd_aws_core::clock::utc_stamp(seconds);
    // YYYYMMDDTHHMMSSZ
    format!(
        "{}-{}-{} {}:{}",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13]
    )
}

/// Samples, every few seconds, whether a compiler (`rustc`) runs on the
/// machine: the benchmarks build nothing while they run, so any rustc is
/// someone else's build competing for the two cores. Also keeps the highest
/// 1-minute load average seen. Stops when dropped.
pub struct Contention {
    samples: Arc<AtomicU64>,
    busy: Arc<AtomicU64>,
    max_load_centi: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Contention {
    pub fn start() -> Contention {
        let (samples, busy, max_load) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, b, m) = (samples.clone(), busy.clone(), max_load.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            loop {
                ticks.tick().await;
                s.fetch_add(1, Ordering::Relaxed);
                if compiler_running() {
                    b.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(load) = load_average() {
                    m.fetch_max((load * 100.0) as u64, Ordering::Relaxed);
                }
            }
        });
        Contention {
            samples,
            busy,
            max_load_centi: max_load,
            task,
        }
    }

    pub fn summary(&self) -> String {
        let samples = self.samples.load(Ordering::Relaxed);
        let busy = self.busy.load(Ordering::Relaxed);
        let load = self.max_load_centi.load(Ordering::Relaxed) as f64 / 100.0;
        if samples == 0 {
            return "not sampled".to_owned();
        }
        let share = 100.0 * busy as f64 / samples as f64;
        let verdict = if busy == 0 {
            "no other build was seen"
        } else {
            "another build competed for the CPU during part of the run; ratios still compare like with like (both sides ran in the same conditions, interleaved), absolute times are pessimistic"
        };
        format!(
            "a rustc process (someone else's build) was running in {busy} of {samples} samples taken every 5 s ({share:.0}%); highest 1-minute load average {load:.2} on 2 cores; {verdict}"
        )
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn compiler_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().take(100_000).any(|entry| {
        std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim() == "rustc")
    })
}

fn load_average() -> Option<f64> {
    read("/proc/loadavg")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A scratch directory for snapshots, dumps and restored data dirs; removed
/// when dropped.
pub fn work_dir(under: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("etcd-aws-bench-");
    match under {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            builder.tempdir_in(dir)
        }
        None => builder.tempdir(),
    }
    .context("cannot create the benchmark's work dir")
}
