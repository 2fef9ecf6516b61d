//! The etcd binary the agent launches, asked what it is: `--version` for its
//! release, `--help` for the flags it knows ([`EtcdBinary`]'s rules are the core's).

use std::path::Path;

use etcd_aws_core::etcd::release::{listed_flags, EtcdBinary, EtcdRelease, ReleaseError};

/// Asks the binary itself: `--version`, then `--help`.
pub async fn probe(binary: &Path) -> Result<EtcdBinary, ReleaseError> {
    let run = |arg: &'static str| async move {
        tokio::process::Command::new(binary)
            .arg(arg)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| ReleaseError::CannotRun {
                binary: binary.display().to_string(),
                reason: e.to_string(),
            })
    };
    let version = run("--version").await?;
    let printed = String::from_utf8_lossy(&version.stdout).into_owned();
    let release =
        EtcdRelease::parse_version_output(&printed).ok_or_else(|| ReleaseError::NoVersion {
            binary: binary.display().to_string(),
            printed: printed.chars().take(200).collect(),
        })?;
    // etcd prints its help on stdout (3.5) or stderr (3.4).
    let help = run("--help").await?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&help.stderr)
    );
    Ok(EtcdBinary {
        release,
        flags: listed_flags(&text),
    })
}
