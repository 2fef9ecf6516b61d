//! Where the programs under test are: the workspace's build output and the
//! etcd binaries that `make setup` links into `.tools/bin`.

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
    let exe = std::env::current_exe().context("cannot locate the running test binary")?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("etcd-aws");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("etcd-aws is not built next to {}; run `cargo build -p etcd-aws` (make test does) or set ETCD_AWS_BIN", exe.display())
}

/// An etcd tool (`etcd`, `etcdctl`, `etcdutl`): `.tools/bin/<name>`.
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
