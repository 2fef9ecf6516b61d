//! Running the standard tools as measured child processes: wall time from
//! the first spawn to the last exit, and each process's peak resident memory
//! (VmHWM, sampled; see [`wait_all`]). Pipelines (`etcdctl ... | gzip`)
//! are wired with real pipes. Every process is killed when the timeout
//! passes, and reaped whatever happens.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One program of a pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Stage {
    pub fn new(program: &Path, args: &[&str]) -> Stage {
        Stage {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, env: &[(String, String)]) -> Stage {
        self.env.extend(env.iter().cloned());
        self
    }

    fn describe(&self) -> String {
        let name = self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("{name} {}", self.args.join(" "))
    }
}

/// How a measured run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub elapsed: Duration,
    /// Peak resident set of each stage, in KiB, in pipeline order.
    pub max_rss_kib: Vec<u64>,
}

impl Finished {
    pub fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }
}

/// Runs `stages` as a pipeline (each one's stdout into the next one's stdin,
/// the last one's into `stdout_to`, or nowhere), their stderr appended to
/// `log`. Fails, naming the command and the end of its output, unless every
/// stage exits 0 within `timeout`.
pub async fn run_pipeline(
    stages: Vec<Stage>,
    stdout_to: Option<PathBuf>,
    log: PathBuf,
    timeout: Duration,
) -> anyhow::Result<Finished> {
    let described = stages
        .iter()
        .map(Stage::describe)
        .collect::<Vec<_>>()
        .join(" | ");
    tokio::task::spawn_blocking(move || run_blocking(&stages, stdout_to.as_deref(), &log, timeout))
        .await
        .context("the measuring thread failed")?
        .with_context(|| format!("`{described}` failed"))
}

/// A single command.
pub async fn run(stage: Stage, log: PathBuf, timeout: Duration) -> anyhow::Result<Finished> {
    run_pipeline(vec![stage], None, log, timeout).await
}

fn run_blocking(
    stages: &[Stage],
    stdout_to: Option<&Path>,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<Finished> {
    if stages.is_empty() {
        bail!("an empty pipeline");
    }
    let log_offset = std::fs::metadata(log).map_or(0, |m| m.len());
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    let mut previous_stdout = None;
    for (index, stage) in stages.iter().enumerate() {
        let last = index + 1 == stages.len();
        let stdout = match (last, stdout_to) {
            (false, _) => Stdio::piped(),
            (true, Some(path)) => Stdio::from(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ),
            (true, None) => Stdio::null(),
        };
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let stdin = previous_stdout.take().map_or_else(Stdio::null, Stdio::from);
        let spawned = Command::new(&stage.program)
            .args(&stage.args)
            .envs(stage.env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            // Its own group, so the timeout's kill reaches any helper it forks.
            .process_group(0)
            .spawn();
        match spawned {
            Ok(mut child) => {
                previous_stdout = child.stdout.take();
                children.push(child);
            }
            Err(error) => {
                kill_and_reap(&children);
                return Err(error)
                    .with_context(|| format!("cannot start {}", stage.program.display()));
            }
        }
    }
    drop(previous_stdout);
    let pids: Vec<i32> = children
        .iter()
        .filter_map(|c| i32::try_from(c.id()).ok())
        .collect();
    let (done, watched) = mpsc::channel::<()>();
    let watchdog_pids = pids.clone();
    let watchdog = std::thread::spawn(move || {
        // No word within the timeout (or the sender gone): kill everything.
        if watched.recv_timeout(timeout).is_err() {
            for pid in &watchdog_pids {
                signal_group(*pid, libc::SIGKILL);
            }
            return true;
        }
        false
    });
    let outcomes = wait_all(&pids, timeout);
    let elapsed = started.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    if timed_out {
        bail!("killed after {timeout:?}{}", log_tail(log, log_offset));
    }
    for (stage, (status, _)) in stages.iter().zip(&outcomes) {
        if !(libc::WIFEXITED(*status) && libc::WEXITSTATUS(*status) == 0) {
            bail!(
                "{} ended with wait status {status:#x}{}",
                stage.describe(),
                log_tail(log, log_offset)
            );
        }
    }
    Ok(Finished {
        elapsed,
        max_rss_kib: outcomes.iter().map(|(_, rss)| *rss).collect(),
    })
}

/// Waits for every pid; (wait status, peak RSS in KiB) of each. The peak is
/// VmHWM from /proc, sampled every 5 ms until the process exits: rusage's
/// `ru_maxrss` would be wrong here, since Linux carries a process's maxrss
/// across exec and a forked child starts with its parent's (this runner's)
/// resident size. A peak in a process's last 5 ms can be missed.
fn wait_all(pids: &[i32], timeout: Duration) -> Vec<(i32, u64)> {
    let mut outcomes: Vec<Option<(i32, u64)>> = vec![None; pids.len()];
    let mut peaks = vec![0u64; pids.len()];
    // The watchdog kills at `timeout`; this bound only guards against a
    // process that cannot be reaped at all.
    let deadline = Instant::now() + timeout + Duration::from_secs(30);
    while outcomes.iter().any(Option::is_none) && Instant::now() < deadline {
        for (index, pid) in pids.iter().enumerate() {
            if outcomes[index].is_some() {
                continue;
            }
            if let Some(kib) = u32::try_from(*pid).ok().and_then(vm_hwm_kib) {
                peaks[index] = peaks[index].max(kib);
            }
            let mut status = 0;
            // SAFETY: polling a child this thread spawned, with a valid pointer.
            let reaped = unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) };
            if reaped == *pid || reaped < 0 {
                outcomes[index] = Some((if reaped < 0 { -1 } else { status }, peaks[index]));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    outcomes.into_iter().map(|o| o.unwrap_or((-1, 0))).collect()
}

/// Waits for `pid` (a child being killed); its wait status.
fn wait(pid: i32) -> i32 {
    let mut status = 0;
    // EINTR is the only retryable error; bound the retries anyway.
    for _ in 0..1000 {
        // SAFETY: waiting for a child this thread spawned, with a valid pointer.
        let result = unsafe { libc::waitpid(pid, &mut status, 0) };
        if result == pid {
            return status;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    -1
}

fn kill_and_reap(children: &[Child]) {
    for child in children {
        if let Ok(pid) = i32::try_from(child.id()) {
            signal_group(pid, libc::SIGKILL);
            wait(pid);
        }
    }
}

fn signal_group(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: signalling a process group this module created.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// The last lines the failed command wrote to its log.
fn log_tail(log: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        let _ = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from));
        let _ = file.take(1 << 20).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its output ended:\n{tail}")
    }
}

/// A running process's peak resident set (VmHWM in /proc/<pid>/status), KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU time a running process has used so far (user and system, from
/// /proc/<pid>/stat), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let ticks = cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    // SAFETY: sysconf reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// utime + stime of a /proc/<pid>/stat line, in clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the fields
    // after its last ')' do not.
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system_ticks_even_with_spaces_in_the_name() {
        let stat =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 3 0 5 0 0";
        assert_eq!(cpu_ticks(stat), Some(267));
        assert_eq!(cpu_ticks("4242 (short"), None);
    }

    #[tokio::test]
    async fn a_pipeline_reports_each_stage_and_a_failure_names_the_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let log = dir.path().join("log");
        let finished = run_pipeline(
            vec![
                Stage::new(Path::new("/bin/echo"), &["hello"]),
                Stage::new(Path::new("/bin/cat"), &[]),
            ],
            Some(out.clone()),
            log.clone(),
            Duration::from_secs(10),
        )
        .await
        .expect("pipeline runs");
        // echo and cat may exit before the first 5 ms sample: only the count.
        assert_eq!(finished.max_rss_kib.len(), 2);
        let sleeper = run(
            Stage::new(Path::new("/bin/sleep"), &["0.2"]),
            log.clone(),
            Duration::from_secs(10),
        )
        .await
        .expect("sleep runs");
        assert!(sleeper.max_rss_kib[0] > 0, "{sleeper:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "hello\n");

        let failed = run(
            Stage::new(Path::new("/bin/sh"), &["-c", "echo broken >&2; exit 3"]),
            log,
            Duration::from_secs(10),
        )
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
        assert!(
            failed.contains("sh -c") && failed.contains("broken"),
            "{failed}"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let started = Instant::now();
        let failed = run(
            Stage::new(Path::new("/bin/sleep"), &["30"]),
            dir.path().join("log"),
            Duration::from_millis(200),
        )
        .await;
        assert!(failed.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
