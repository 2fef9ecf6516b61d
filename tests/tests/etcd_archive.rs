//! The etcd archive the nodes install: built by `bootstrap/image/etcd-archive.sh`
//! from the pinned Debian packages, byte for byte the archive whose checksum the
//! template's `EtcdSha256` defaults to, and holding the etcd the tests run.
//! Debian links etcd dynamically against glibc, so every pinned release is
//! checked against the glibc of Amazon Linux 2023, which the nodes run.

use std::path::Path;
use std::process::Command;

use etcd_aws_template::etcd_archive::pinned;
use etcd_aws_tests::paths::{workspace_root, EtcdRelease};

/// Amazon Linux 2023's glibc (template/package.sh checks the agent and the
/// functions against the same).
const AMAZON_LINUX_2023_GLIBC: (u32, u32) = (2, 34);

/// Builds the archive for `arch` into `out` and returns the script's output.
fn build(arch: &str, out: &Path) -> anyhow::Result<String> {
    let output = Command::new(workspace_root().join("bootstrap/image/etcd-archive.sh"))
        .args([arch, &out.display().to_string()])
        .env_remove("ETCD_ARCHIVE_REPIN")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(
        output.status.success(),
        "etcd-archive.sh {arch} failed:\n{text}"
    );
    Ok(text)
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let output = Command::new("sha256sum").arg(path).output()?;
    anyhow::ensure!(
        output.status.success(),
        "sha256sum {} failed",
        path.display()
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn each_pinned_archive_is_rebuilt_byte_for_byte_from_the_pinned_packages() -> anyhow::Result<()> {
    let pins = pinned();
    anyhow::ensure!(
        pins.iter().any(|p| p.architecture == "arm64")
            && pins.iter().any(|p| p.architecture == "amd64"),
        "both architectures must be pinned: {pins:?}"
    );
    for pin in pins {
        let out = tempfile::tempdir()?;
        build(&pin.architecture, out.path())?;
        let archive = out.path().join(&pin.file);
        assert_eq!(sha256(&archive)?, pin.sha256, "{}", pin.file);
    }
    Ok(())
}

#[test]
fn the_amd64_archive_holds_the_etcd_the_tests_run_in_the_layout_user_data_unpacks(
) -> anyhow::Result<()> {
    let pin = pinned()
        .into_iter()
        .find(|p| p.architecture == "amd64")
        .ok_or_else(|| anyhow::anyhow!("no amd64 pin"))?;
    let out = tempfile::tempdir()?;
    build("amd64", out.path())?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(out.path().join(&pin.file))
        .arg("-C")
        .arg(out.path())
        .status()?;
    anyhow::ensure!(status.success(), "tar failed");
    let directory = out
        .path()
        .join(format!("etcd-v{}-linux-amd64", pin.version));
    for tool in ["etcd", "etcdctl", "etcdutl"] {
        assert!(directory.join(tool).is_file(), "{tool} missing");
    }
    let version = Command::new(directory.join("etcd"))
        .arg("--version")
        .output()?;
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.lines().next() == Some(&format!("etcd Version: {}", pin.version)),
        "{text}"
    );
    Ok(())
}

/// The newest `GLIBC_x.y` symbol version `binary` needs, from `objdump -T`
/// (binutils, which the C toolchain brings).
fn newest_glibc_needed(binary: &Path) -> anyhow::Result<Option<(u32, u32)>> {
    let output = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .map_err(|error| anyhow::anyhow!("cannot run objdump (binutils): {error}"))?;
    anyhow::ensure!(
        output.status.success(),
        "objdump -T {} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(str::parse::<u32>);
            match (parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
                (Some(Ok(major)), None) => Some((major, 0)),
                _ => None,
            }
        })
        .max())
}

#[test]
fn every_pinned_etcd_release_needs_no_glibc_newer_than_amazon_linux_2023s() -> anyhow::Result<()> {
    let releases = [
        EtcdRelease::V3_4_23,
        EtcdRelease::V3_5_16,
        EtcdRelease::V3_5_30,
    ];
    for release in releases {
        let tools: &[&str] = if release.minor() == "3.4" {
            &["etcd", "etcdctl"]
        } else {
            &["etcd", "etcdctl", "etcdutl"]
        };
        for tool in tools {
            let binary = release.tool(tool)?;
            let needed = newest_glibc_needed(&binary)?
                .ok_or_else(|| anyhow::anyhow!("{} names no glibc version", binary.display()))?;
            assert!(
                needed <= AMAZON_LINUX_2023_GLIBC,
                "{release}'s {tool} needs glibc {}.{}, newer than Amazon Linux 2023's {}.{}",
                needed.0,
                needed.1,
                AMAZON_LINUX_2023_GLIBC.0,
                AMAZON_LINUX_2023_GLIBC.1
            );
        }
    }
    Ok(())
}
