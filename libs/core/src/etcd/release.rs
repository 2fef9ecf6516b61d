//! Which etcd the agent runs: its release, whether it may run at all, and
//! which of the agent's own flags it understands.
//!
//! Read once at start from the binary itself (`etcd --version` and the flags
//! `etcd --help` lists; the asking is the I/O crate's), so the agent passes
//! what the etcd it launches knows:
//! the corruption checks are experimental flags on 3.4 and 3.5 (the compact
//! hash check only on later 3.5 patch releases) and feature gates from 3.6.

use std::collections::BTreeSet;
use std::fmt;

/// `major.minor.patch`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EtcdRelease {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for EtcdRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A cluster version as etcd states it: `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for ClusterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot start etcd binary {binary} (asking its version: {reason}); check --etcd-binary / ETCD_AWS_ETCD_BINARY and PATH")]
    CannotRun { binary: String, reason: String },
    #[error("{binary} --version did not name an etcd release (it printed {printed:?}); point --etcd-binary at etcd itself")]
    NoVersion { binary: String, printed: String },
    #[error("etcd {0} is not for production: etcd's maintainers withdrew 3.5.0-3.5.2 for a data corruption bug (fixed in 3.5.3); install {RECOMMENDED_3_5} or a later 3.5 release")]
    Withdrawn(EtcdRelease),
    #[error("etcd {0} is too old: etcd-aws joins nodes as learners, which needs etcd 3.4 or later; install {RECOMMENDED_3_5} or a later 3.5 release")]
    TooOld(EtcdRelease),
    #[error("etcd {0} is not for a new stack: a stack starts on etcd 3.5 or newer (3.4 runs only while a cluster is upgraded from it); choose {RECOMMENDED_3_5} or a later release")]
    NotForNewStacks(EtcdRelease),
    #[error("etcd {0} is not for a new stack: its etcdutl cannot bump revisions (`snapshot restore --bump-revision` came with {BUMPS_REVISIONS}), so after a total loss the nodes could not restore the backups without reusing revision numbers watchers already saw, and they refuse to; choose {RECOMMENDED_3_5} or a later release ({BUMPS_REVISIONS} at the least)")]
    CannotBumpRevisions(EtcdRelease),
    #[error("etcd {mine} cannot join a cluster at version {cluster}: etcd never downgrades a cluster; install etcd {cluster} or later on this node")]
    Downgrade {
        mine: EtcdRelease,
        cluster: ClusterVersion,
    },
    #[error("etcd {mine} cannot join a cluster at version {cluster}: etcd upgrades one minor version at a time; replace the members with the latest {next} release first")]
    SkipsMinor {
        mine: EtcdRelease,
        cluster: ClusterVersion,
        next: ClusterVersion,
    },
    #[error("etcd {mine} cannot join while members run {older}: etcd's upgrade guide asks for every {older_minor} member on {minimum} or later before a {mine_minor} member joins; replace the older members with {minimum} or later, then the {mine_minor} nodes", older_minor = older.cluster_version(), mine_minor = mine.cluster_version())]
    UpgradeTooEarly {
        mine: EtcdRelease,
        older: EtcdRelease,
        minimum: EtcdRelease,
    },
}

const fn release(major: u32, minor: u32, patch: u32) -> EtcdRelease {
    EtcdRelease {
        major,
        minor,
        patch,
    }
}

/// The 3.5 release this project tests, images and deploys by default.
pub const RECOMMENDED_3_5: EtcdRelease = release(3, 5, 30);

/// The first release whose etcdutl restores a snapshot with
/// `--bump-revision` and `--mark-compacted`, which every restore here needs
/// ([`crate::backup::revisions`]).
pub const BUMPS_REVISIONS: EtcdRelease = release(3, 5, 13);

/// For each minor release, the patch release every member of it must run
/// before a member of the next minor release joins: etcd's upgrade
/// checklists ("Upgrade etcd from v3.5 to v3.6": 3.5.32 or later; "from
/// v3.6 to v3.7": 3.6.11 or later).
pub const BEFORE_NEXT_MINOR: [EtcdRelease; 2] = [release(3, 5, 32), release(3, 6, 11)];

/// The release the members of `minor` must run before the next minor joins.
pub fn minimum_before_next(minor: ClusterVersion) -> Option<EtcdRelease> {
    BEFORE_NEXT_MINOR
        .iter()
        .copied()
        .find(|r| r.cluster_version() == minor)
}

impl EtcdRelease {
    /// The release in `etcd --version` output ("etcd Version: 3.5.16").
    pub fn parse_version_output(printed: &str) -> Option<Self> {
        let version = printed
            .lines()
            .find_map(|line| line.trim().strip_prefix("etcd Version:"))?
            .trim();
        Self::parse(version)
    }

    /// `3.5.16`, tolerating a leading `v` and a suffix such as `-rc.1`.
    pub fn parse(version: &str) -> Option<Self> {
        let version = version.trim().trim_start_matches('v');
        let mut parts = version.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch_text = parts.next()?;
        let digits: String = patch_text
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let patch = digits.parse().ok()?;
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    pub fn cluster_version(&self) -> ClusterVersion {
        ClusterVersion {
            major: self.major,
            minor: self.minor,
        }
    }

    /// Whether the agent may run this release at all.
    pub fn check_supported(&self) -> Result<(), ReleaseError> {
        if (self.major, self.minor) < (3, 4) {
            return Err(ReleaseError::TooOld(*self));
        }
        if (self.major, self.minor) == (3, 5) && self.patch <= 2 {
            return Err(ReleaseError::Withdrawn(*self));
        }
        Ok(())
    }

    /// Whether a new stack may pin this release: one the agent runs, 3.5 or
    /// newer (3.4 runs only while a cluster is upgraded from it), and one
    /// whose etcdutl can restore: a seed refuses to restore with a tool that
    /// cannot bump revisions, so a stack on 3.5.3-3.5.12 would run until its
    /// first total loss and then not come back by itself. The template's
    /// options ask this, the agent [`Self::check_supported`]: one rule, so no
    /// stack deploys a release its nodes then refuse.
    pub fn check_deployable(&self) -> Result<(), ReleaseError> {
        self.check_supported()?;
        if (self.major, self.minor) < (3, 5) {
            return Err(ReleaseError::NotForNewStacks(*self));
        }
        if *self < BUMPS_REVISIONS {
            return Err(ReleaseError::CannotBumpRevisions(*self));
        }
        Ok(())
    }

    /// Whether this release may join (or rejoin) a cluster whose members
    /// run `members`. etcd refuses a member older than its cluster (the lowest
    /// `major.minor` among the members) and supports upgrades one minor
    /// version at a time; the agent refuses first, with what to install. A
    /// member of a newer minor release may join only once every member of the
    /// older one runs the patch release etcd's checklist asks for
    /// ([`BEFORE_NEXT_MINOR`]).
    pub fn check_can_join(&self, members: &[EtcdRelease]) -> Result<(), ReleaseError> {
        let mine = self.cluster_version();
        let Some(cluster) = members.iter().map(EtcdRelease::cluster_version).min() else {
            return Ok(());
        };
        if mine < cluster {
            return Err(ReleaseError::Downgrade {
                mine: *self,
                cluster,
            });
        }
        if mine.major == cluster.major && mine.minor > cluster.minor + 1 {
            return Err(ReleaseError::SkipsMinor {
                mine: *self,
                cluster,
                next: ClusterVersion {
                    major: cluster.major,
                    minor: cluster.minor + 1,
                },
            });
        }
        let too_early = members
            .iter()
            .filter(|m| m.cluster_version() < mine)
            .filter_map(|m| {
                let minimum = minimum_before_next(m.cluster_version())?;
                (*m < minimum).then_some((*m, minimum))
            })
            .min();
        match too_early {
            Some((older, minimum)) => Err(ReleaseError::UpgradeTooEarly {
                mine: *self,
                older,
                minimum,
            }),
            None => Ok(()),
        }
    }
}

/// The etcd binary the agent launches: its release and the flags it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBinary {
    pub release: EtcdRelease,
    /// Every `--flag` its help lists.
    pub flags: BTreeSet<String>,
}

impl EtcdBinary {
    pub fn knows(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }
}

/// The flags a help text lists: words that start a line with `--`.
pub fn listed_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> EtcdRelease {
        EtcdRelease::parse(text).unwrap_or(EtcdRelease {
            major: 0,
            minor: 0,
            patch: 0,
        })
    }

    #[test]
    fn the_release_is_read_from_etcds_version_output() {
        let printed = "etcd Version: 3.5.16\nGit SHA: Not provided\nGo Version: go1.24.0\nGo OS/Arch: linux/amd64\n";
        assert_eq!(
            EtcdRelease::parse_version_output(printed),
            Some(release("3.5.16"))
        );
        assert_eq!(EtcdRelease::parse_version_output("nothing here"), None);
    }

    #[test]
    fn versions_with_a_prefix_or_a_pre_release_suffix_parse() {
        assert_eq!(release("v3.6.0-rc.1"), release("3.6.0"));
        assert_eq!(EtcdRelease::parse("3.5"), None);
        assert_eq!(EtcdRelease::parse("three"), None);
    }

    #[test]
    fn releases_order_by_number_not_by_text() {
        assert!(release("3.5.16") > release("3.5.3"));
        assert!(release("3.10.0") > release("3.9.9"));
    }

    #[test]
    fn the_withdrawn_3_5_releases_are_refused_with_what_to_install() {
        for text in ["3.5.0", "3.5.1", "3.5.2"] {
            let error = release(text).check_supported().map_err(|e| e.to_string());
            assert!(
                error
                    .as_ref()
                    .is_err_and(|e| e.contains(&RECOMMENDED_3_5.to_string())),
                "{text}: {error:?}"
            );
        }
    }

    #[test]
    fn supported_releases_pass() {
        for text in ["3.4.23", "3.5.3", "3.5.16", "3.6.1"] {
            assert_eq!(release(text).check_supported(), Ok(()), "{text}");
        }
    }

    #[test]
    fn releases_without_learners_are_refused() {
        assert_eq!(
            release("3.3.27").check_supported(),
            Err(ReleaseError::TooOld(release("3.3.27")))
        );
    }

    #[test]
    fn a_node_may_not_be_older_than_its_cluster() {
        let members = [release("3.5.16"), release("3.5.16")];
        assert_eq!(release("3.5.3").check_can_join(&members), Ok(()));
        assert_eq!(
            release("3.4.23").check_can_join(&members),
            Err(ReleaseError::Downgrade {
                mine: release("3.4.23"),
                cluster: ClusterVersion { major: 3, minor: 5 }
            })
        );
    }

    #[test]
    fn a_newer_node_joins_a_cluster_still_on_the_older_release() {
        let members = [release("3.4.23"), release("3.5.16")];
        assert_eq!(release("3.5.16").check_can_join(&members), Ok(()));
    }

    #[test]
    fn a_3_6_node_waits_for_every_3_5_member_to_run_the_release_etcd_asks_for_first() {
        let members = [release("3.5.32"), release("3.5.30")];
        assert_eq!(
            release("3.6.0").check_can_join(&members),
            Err(ReleaseError::UpgradeTooEarly {
                mine: release("3.6.0"),
                older: release("3.5.30"),
                minimum: release("3.5.32")
            })
        );
        let ready = [release("3.5.32"), release("3.5.33"), release("3.6.0")];
        assert_eq!(release("3.6.1").check_can_join(&ready), Ok(()));
    }

    #[test]
    fn a_3_7_node_waits_for_every_3_6_member_to_run_3_6_11() {
        let members = [release("3.6.10"), release("3.6.11")];
        assert_eq!(
            release("3.7.0").check_can_join(&members),
            Err(ReleaseError::UpgradeTooEarly {
                mine: release("3.7.0"),
                older: release("3.6.10"),
                minimum: release("3.6.11")
            })
        );
        let ready = [release("3.6.11"), release("3.7.0")];
        assert_eq!(release("3.7.1").check_can_join(&ready), Ok(()));
    }

    #[test]
    fn a_node_may_not_skip_a_minor_release() {
        let members = [release("3.5.32"), release("3.5.32")];
        assert_eq!(
            release("3.7.0").check_can_join(&members),
            Err(ReleaseError::SkipsMinor {
                mine: release("3.7.0"),
                cluster: ClusterVersion { major: 3, minor: 5 },
                next: ClusterVersion { major: 3, minor: 6 },
            })
        );
    }

    #[test]
    fn a_patch_upgrade_within_a_minor_release_needs_nothing_first() {
        let members = [release("3.5.16"), release("3.5.16")];
        assert_eq!(release("3.5.30").check_can_join(&members), Ok(()));
    }

    #[test]
    fn a_new_stack_pins_a_release_whose_restore_bumps_revisions() {
        let cases: [(&str, Result<(), ReleaseError>); 12] = [
            ("3.3.27", Err(ReleaseError::TooOld(release("3.3.27")))),
            (
                "3.4.23",
                Err(ReleaseError::NotForNewStacks(release("3.4.23"))),
            ),
            ("3.5.0", Err(ReleaseError::Withdrawn(release("3.5.0")))),
            ("3.5.2", Err(ReleaseError::Withdrawn(release("3.5.2")))),
            (
                "3.5.3",
                Err(ReleaseError::CannotBumpRevisions(release("3.5.3"))),
            ),
            (
                "3.5.12",
                Err(ReleaseError::CannotBumpRevisions(release("3.5.12"))),
            ),
            ("3.5.13", Ok(())),
            ("3.5.16", Ok(())),
            ("3.5.30", Ok(())),
            ("3.6.0", Ok(())),
            ("3.6.1", Ok(())),
            ("3.7.0", Ok(())),
        ];
        for (text, expected) in cases {
            assert_eq!(release(text).check_deployable(), expected, "{text}");
        }
    }

    #[test]
    fn a_release_that_cannot_bump_says_why_and_what_to_choose() {
        let said = ReleaseError::CannotBumpRevisions(release("3.5.12")).to_string();
        for needed in ["reusing revision", "3.5.13", &RECOMMENDED_3_5.to_string()] {
            assert!(said.contains(needed), "{needed:?} missing from {said}");
        }
    }

    #[test]
    fn the_agent_still_runs_what_a_new_stack_may_not_pin() {
        // A cluster upgraded from 3.4 or an older 3.5 passes through them:
        // they join; only a seed's restore refuses them.
        for text in ["3.4.23", "3.5.3", "3.5.12"] {
            assert_eq!(release(text).check_supported(), Ok(()), "{text}");
        }
    }

    #[test]
    fn the_recommended_release_is_one_the_rules_accept() {
        assert_eq!(RECOMMENDED_3_5.check_deployable(), Ok(()));
    }

    #[test]
    fn no_member_release_known_means_nothing_to_refuse() {
        assert_eq!(release("3.5.16").check_can_join(&[]), Ok(()));
    }

    #[test]
    fn the_flags_a_help_text_lists_are_found() {
        let help = "Usage:\n\n  etcd [flags]\n\nMember:\n  --name 'default'\n    Human-readable name.\n  --experimental-compact-hash-check-enabled 'false'\n      --feature-gates=InitialCorruptCheck=true\n";
        let flags = listed_flags(help);
        assert!(flags.contains("--name"));
        assert!(flags.contains("--experimental-compact-hash-check-enabled"));
        assert!(flags.contains("--feature-gates"));
        assert!(!flags.contains("--"));
    }
}
