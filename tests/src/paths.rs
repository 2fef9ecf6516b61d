//! Where the programs under test are: the workspace's build output and the
//! etcd releases that `make setup` extracts from Debian's packages into
//! `.tools/etcd/<version>` (3.5.30's tools are also linked into `.tools/bin`).

use std::path::PathBuf;

use anyhow::{bail, Context};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The `etcd-aws` binary: `$ETCD_AWS_BIN`, or the one built beside the
/// running test (target/<profile>/etcd-aws).
pub fn etcd_aws_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_AWS_BIN") {
        return Ok(PathBuf::from(path));
    }
    built_binary("etcd-aws")
}

/// A binary of the workspace built beside the running test
/// (target/<profile>/<name>).
pub fn built_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running test binary")?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is not built next to {}; run `cargo build --workspace --bins` (make test does)",
        exe.display()
    )
}

/// An etcd tool (`etcd`, `etcdctl`, `etcdutl`) of the release everything
/// runs by default: `.tools/bin/<name>`.
pub fn etcd_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = workspace_root().join(".tools/bin").join(name);
    if !path.is_file() {
        bail!(
            "{} is missing; run `make setup` to install the pinned etcd",
            path.display()
        );
    }
    Ok(path)
}

/// One of the etcd releases `make setup` extracts (pinned in
/// `bootstrap/image/debian-packages.lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdRelease {
    version: &'static str,
}

impl EtcdRelease {
    /// Debian trixie's 3.5.16: where the patch-release upgrade scenario starts.
    pub const V3_5_16: EtcdRelease = EtcdRelease { version: "3.5.16" };
    /// Debian bookworm's 3.4.23: where the rolling-upgrade scenario starts.
    pub const V3_4_23: EtcdRelease = EtcdRelease { version: "3.4.23" };
    /// Debian forky's 3.5.30, the newest 3.5 Debian serves: what tests,
    /// demo, benchmarks, the image and new stacks run.
    pub const V3_5_30: EtcdRelease = EtcdRelease { version: "3.5.30" };

    /// `3.5.16`, as `etcd --version` and the `etcd_server_version` metric say it.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The cluster version etcd reports while every member runs this release
    /// (`3.5` for 3.5.16): major and minor.
    pub fn minor(&self) -> &'static str {
        let mut dots = self.version.match_indices('.').map(|(i, _)| i);
        let end = dots.nth(1).unwrap_or(self.version.len());
        &self.version[..end]
    }

    /// `.tools/etcd/<version>/usr/bin/<name>`.
    pub fn tool(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = workspace_root()
            .join(".tools/etcd")
            .join(self.version)
            .join("usr/bin")
            .join(name);
        if !path.is_file() {
            bail!(
                "{} is missing; run `make setup` to fetch the pinned etcd {} packages",
                path.display(),
                self.version
            );
        }
        Ok(path)
    }

    /// What the agent restores backups with (`--etcdutl-binary`).
    pub fn restore_tool(&self) -> anyhow::Result<PathBuf> {
        self.tool(self.restore_tool_name())
    }

    /// etcdutl; 3.4 has none, and its etcdctl's `snapshot restore` (which
    /// etcdutl took over in 3.5) takes the same arguments.
    fn restore_tool_name(&self) -> &'static str {
        if self.minor() == "3.4" {
            "etcdctl"
        } else {
            "etcdutl"
        }
    }
}

impl Default for EtcdRelease {
    fn default() -> Self {
        Self::V3_5_30
    }
}

impl std::fmt::Display for EtcdRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd {}", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_reports_its_major_and_minor_as_the_cluster_version() {
        assert_eq!(EtcdRelease::V3_5_16.minor(), "3.5");
        assert_eq!(EtcdRelease::V3_4_23.minor(), "3.4");
    }

    #[test]
    fn etcd_3_4_restores_with_its_etcdctl_and_3_5_with_etcdutl() {
        assert_eq!(EtcdRelease::V3_4_23.restore_tool_name(), "etcdctl");
        assert_eq!(EtcdRelease::V3_5_16.restore_tool_name(), "etcdutl");
    }
}
