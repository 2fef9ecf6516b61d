//! The etcd release archives this project builds and pins
//! (`etcd-archives.lock`, written by `bootstrap/image/etcd-archive.sh` from the
//! pinned Debian packages the tests run): the template's default etcd version is
//! the one pinned there, and its `EtcdSha256` parameter defaults to the pin for
//! the nodes' architecture.

use crate::options::{Architecture, EtcdVersion, Sha256};

const LOCK: &str = include_str!("../etcd-archives.lock");

/// One line of the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedArchive {
    /// etcd's spelling: `amd64` or `arm64`.
    pub architecture: String,
    pub version: String,
    pub sha256: String,
    pub file: String,
}

/// Every archive the lock pins (comments and blank lines skipped).
pub fn pinned() -> Vec<PinnedArchive> {
    LOCK.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [architecture, version, sha256, file] = fields.as_slice() else {
                return None;
            };
            Some(PinnedArchive {
                architecture: (*architecture).to_string(),
                version: (*version).to_string(),
                sha256: (*sha256).to_string(),
                file: (*file).to_string(),
            })
        })
        .collect()
}

/// The pinned checksum of `version`'s archive for `architecture`, if this
/// project builds that one.
pub fn pinned_sha256(version: &EtcdVersion, architecture: Architecture) -> Option<Sha256> {
    pinned()
        .into_iter()
        .find(|pin| {
            pin.version == version.as_str() && pin.architecture == architecture.etcd_release_name()
        })
        .and_then(|pin| pin.sha256.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::defaults;

    #[test]
    fn every_line_of_the_lock_is_a_well_formed_pin() {
        let lines = LOCK
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .count();
        let pins = pinned();
        assert_eq!(pins.len(), lines, "a line of the lock does not parse");
        for pin in &pins {
            assert!(pin.sha256.parse::<Sha256>().is_ok(), "{pin:?}");
            assert_eq!(
                pin.file,
                format!("etcd-v{}-linux-{}.tar.gz", pin.version, pin.architecture)
            );
        }
    }

    #[test]
    fn the_default_version_is_pinned_for_both_architectures() {
        let version: EtcdVersion = defaults::ETCD_VERSION.parse().expect("default parses");
        for architecture in [Architecture::Arm64, Architecture::X86_64] {
            assert!(
                pinned_sha256(&version, architecture).is_some(),
                "{architecture:?}"
            );
        }
    }

    #[test]
    fn a_version_this_project_does_not_build_has_no_pin() {
        let version: EtcdVersion = "3.5.21".parse().expect("parses");
        assert_eq!(pinned_sha256(&version, Architecture::Arm64), None);
    }
}
