//! The arm64 artifacts of `make package`, run on this x86_64 machine under
//! user-mode emulation: the agent (`dist/arm64/etcd-aws`) runs every node of
//! a three-node cluster of the harness, supervising the host's etcd, and the
//! `bootstrap` of each function zip serves invocations through the Runtime
//! API emulator against the stand-in: a scheduled backup, and the removal of
//! a terminating instance's member fed by the lifecycle hook's queue.
//!
//! The emulator is Debian's `qemu-aarch64-static`; the programs are linked
//! against glibc, whose arm64 loader and libc come from `libc6-arm64-cross`
//! (`/usr/aarch64-linux-gnu`). Each program starts through a small script that
//! marks its log and execs the emulator, so the test knows the arm64 build is
//! what ran (and the harness needs nothing new: it takes the agent from
//! `ETCD_AWS_BIN` and each function from `<NAME>_BIN`).
//!
//! Run by `make package-check` with `ETCD_AWS_ARM64_DIST=<repo>/dist/arm64`;
//! behind the `arm64-artifacts` feature, so `make test` does not build it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use etcd_aws_tests::functions::{BackupOnSchedule, LifecycleOnQueue, LifecycleSettings};
use etcd_aws_tests::paths::workspace_root;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_aws_tests::stand_in::ActionOutcome;
use etcd_client::Client;
use tokio::time::Instant;

/// Emulation slows the agent's start (TLS set-up, the first probes) several
/// times over; these bounds leave room for that on a small machine.
const SETTLE: Duration = Duration::from_secs(240);
const BACKUP_WITHIN: Duration = Duration::from_secs(180);
/// The function heartbeats the action while it works, so an emulated removal
/// may take longer than the hook's timeout; a timeout would still show as
/// `ActionOutcome::Timeout`, which the test refuses.
const REMOVAL: Duration = Duration::from_secs(180);
/// The whole scenario, so a wedged emulated program cannot hang the check.
const SCENARIO: Duration = Duration::from_secs(20 * 60);
const KEYS: usize = 20;
/// What the start scripts write first into each program's log.
const MARK: &str = "arm64 artifact under qemu-aarch64-static:";

const EMULATOR: &str = "qemu-aarch64-static";
const SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// ELF's e_machine for AArch64.
const EM_AARCH64: u16 = 183;

#[test]
fn arm64_agent_and_functions_run_a_cluster_under_emulation() -> anyhow::Result<()> {
    let dist = PathBuf::from(std::env::var_os("ETCD_AWS_ARM64_DIST").context(
        "ETCD_AWS_ARM64_DIST is not set: run `make package-check`, which builds dist/arm64 with `make package` and points this test at it",
    )?);
    let emulator = emulator()?;
    let work = tempfile::Builder::new()
        .prefix("etcd-aws-arm64-")
        .tempdir()?;

    let mut programs = vec![("ETCD_AWS_BIN".to_owned(), dist.join("etcd-aws"))];
    for function in ["etcd-aws-lifecycle", "etcd-aws-backup"] {
        let bootstrap = unzip_bootstrap(&dist.join(format!("{function}.zip")), work.path())?;
        let variable = format!("{}_BIN", function.to_uppercase().replace('-', "_"));
        programs.push((variable, bootstrap));
    }
    let mut agent_script = None;
    for (variable, binary) in &programs {
        ensure_aarch64(binary)?;
        let script = start_script(&emulator, binary, work.path())?;
        // Before the runtime exists: nothing else reads the environment yet.
        std::env::set_var(variable, &script);
        if variable == "ETCD_AWS_BIN" {
            agent_script = Some(script);
        }
    }

    // The agent answers at all before a cluster depends on it.
    let agent_script = agent_script.context("no start script for the agent")?;
    let version = Command::new(&agent_script)
        .arg("--version")
        .output()
        .context("cannot run the arm64 etcd-aws")?;
    let printed = String::from_utf8_lossy(&version.stdout);
    ensure!(
        version.status.success() && printed.starts_with("etcd-aws "),
        "the arm64 etcd-aws --version under {EMULATOR} failed ({}): {printed}{}",
        version.status,
        String::from_utf8_lossy(&version.stderr)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(SCENARIO, scenario(&emulator))
            .await
            .with_context(|| format!("the arm64 scenario did not end within {SCENARIO:?}"))?
    })
}

async fn scenario(emulator: &Path) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    for id in cluster.instance_ids() {
        let pid = cluster
            .with_node(&id, |node| node.pid())?
            .with_context(|| format!("the node of {id} runs no agent"))?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
        ensure!(
            exe == emulator,
            "the node of {id} runs {}, not the arm64 agent under {}",
            exe.display(),
            emulator.display()
        );
        let log = cluster.with_node(&id, |node| node.log())?;
        ensure!(
            log.contains(MARK),
            "the node of {id} did not start through the arm64 script:\n{log}"
        );
    }

    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    let mut revision = 0;
    for i in 0..KEYS {
        revision = client
            .put(format!("arm64/{i}"), format!("value-{i}"), None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
    }

    // The backup function: a scheduled run stores a snapshot holding the writes.
    let backups = BackupOnSchedule::start(&cluster.stand_in, Duration::from_secs(5)).await?;
    let backup = backups
        .wait_for_upload(Instant::now(), revision, BACKUP_WITHIN)
        .await
        .with_context(|| format!("backup function log:\n{}", backups.log()))?;
    ensure!(
        backup.stored_bytes > 0,
        "the arm64 backup function stored an empty snapshot: {backup:?}"
    );
    ensure!(
        backups.log().contains(MARK),
        "the backup function did not start through the arm64 script:\n{}",
        backups.log()
    );
    drop(backups);

    // The lifecycle function: a termination held by the hook is completed
    // with CONTINUE once the function removed the member.
    let lifecycle = LifecycleOnQueue::start_with(
        &cluster.stand_in,
        LifecycleSettings {
            retry_for: Duration::from_secs(60),
            etcd_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            function_timeout: Duration::from_secs(120),
        },
    )
    .await?;
    let victim = cluster.instance_ids()[0].clone();
    cluster.stand_in.terminate(&victim).await?;
    let outcome = wait_for(
        "the victim's lifecycle action to complete",
        REMOVAL,
        || async {
            match action_outcome(&cluster, &victim) {
                Some(outcome) => Ok(outcome),
                None => bail!("{victim} still waits in Terminating:Wait"),
            }
        },
    )
    .await
    .with_context(|| format!("lifecycle function log:\n{}", lifecycle.log()))?;
    ensure!(
        outcome == ActionOutcome::Continue,
        "the action of {victim} ended {outcome:?}; lifecycle function log:\n{}",
        lifecycle.log()
    );
    ensure!(
        lifecycle.logged_for("removed member", &victim) == 1,
        "the arm64 lifecycle function did not log the removal of {victim}:\n{}",
        lifecycle.log()
    );
    ensure!(
        lifecycle.log().contains(MARK),
        "the lifecycle function did not start through the arm64 script:\n{}",
        lifecycle.log()
    );

    // The replacement (an arm64 agent too) joins; nothing written is lost.
    let after = cluster.wait_healthy(3, SETTLE).await?;
    ensure!(
        after.cluster_id == before.cluster_id,
        "the cluster was re-formed"
    );
    ensure!(
        after.members.iter().all(|m| m.name != victim),
        "the member of {victim} is still listed"
    );
    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    for i in 0..KEYS {
        let found = client.get(format!("arm64/{i}"), None).await?.kvs().len();
        ensure!(found == 1, "acknowledged key arm64/{i} is lost");
    }
    Ok(())
}

fn action_outcome(cluster: &SimCluster, instance_id: &str) -> Option<ActionOutcome> {
    cluster
        .stand_in
        .lifecycle_actions()
        .into_iter()
        .find(|a| a.instance_id == instance_id)
        .and_then(|a| a.outcome)
}

/// The emulator on PATH and the arm64 glibc it runs programs with.
fn emulator() -> anyhow::Result<PathBuf> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(EMULATOR))
        .find(|path| path.is_file());
    let Some(emulator) = found else {
        bail!("{EMULATOR} is not on PATH: install Debian's qemu-user-static (`make package-check` does)");
    };
    let loader = Path::new(SYSROOT).join("lib/ld-linux-aarch64.so.1");
    ensure!(
        loader.is_file(),
        "{} is missing: install Debian's libc6-arm64-cross (`make package-check` does)",
        loader.display()
    );
    Ok(emulator.canonicalize()?)
}

/// Extracts `bootstrap` from a function zip, as Lambda does.
fn unzip_bootstrap(zip: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    ensure!(
        zip.is_file(),
        "{} is missing: run `make package`",
        zip.display()
    );
    let name = zip
        .file_stem()
        .and_then(|s| s.to_str())
        .context("a zip without a name")?;
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let python = workspace_root().join(".venv/bin/python");
    let output = Command::new(&python)
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('bootstrap', sys.argv[2])",
        ])
        .arg(zip)
        .arg(&dir)
        .output()
        .with_context(|| format!("cannot run {} (run `make setup`)", python.display()))?;
    ensure!(
        output.status.success(),
        "{} holds no readable `bootstrap`: {}",
        zip.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let bootstrap = dir.join("bootstrap");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))?;
    Ok(bootstrap)
}

/// Refuses anything but a 64-bit little-endian AArch64 ELF file: a host build
/// in dist/arm64 would otherwise run natively and prove nothing.
fn ensure_aarch64(binary: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(binary)
        .with_context(|| format!("cannot read {} (run `make package`)", binary.display()))?;
    ensure!(
        bytes.len() > 20 && bytes.starts_with(b"\x7fELF") && bytes[4] == 2 && bytes[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        binary.display()
    );
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    ensure!(
        machine == EM_AARCH64,
        "{} is built for ELF machine {machine}, not AArch64 ({EM_AARCH64})",
        binary.display()
    );
    Ok(())
}

/// A script named like the program that marks the log and execs the emulator.
fn start_script(emulator: &Path, binary: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let name = if binary.file_name().is_some_and(|n| n == "bootstrap") {
        binary
            .parent()
            .and_then(Path::file_name)
            .context("a bootstrap outside a directory")?
    } else {
        binary.file_name().context("a program without a name")?
    };
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin)?;
    let script = bin.join(name);
    let binary = binary.canonicalize()?;
    // --version output must stay clean for the version check: the mark goes
    // to stderr, which every harness log also receives.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"{MARK} {binary}\" >&2\nexec {emulator} -L {SYSROOT} {binary} \"$@\"\n",
            binary = binary.display(),
            emulator = emulator.display(),
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}
