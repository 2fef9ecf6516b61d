//! A 127.0.X.0/24 (or, for instances on Docker networks, a 172.28.X.0/24) that no
//! other stand-in on this machine uses while this lease lives, even in other test
//! processes: an exclusive flock per range and X.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u8 = 10;
const LAST: u8 = 250;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot use the subnet lock directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("all subnets {0}.{FIRST}.0/24 to {0}.{LAST}.0/24 are leased by other stand-ins", .range.first_octets())]
    Exhausted { range: SubnetRange },
}

/// Where a stand-in's instances get their private IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubnetRange {
    /// 127.0.X.0/24: each instance is a process bound to its loopback IP.
    #[default]
    Loopback,
    /// 172.28.X.0/24: each instance is a container on a Docker network with that
    /// subnet (Docker cannot give containers loopback addresses).
    Docker,
}

impl SubnetRange {
    /// The first two octets of every /24 in the range.
    pub fn first_octets(self) -> &'static str {
        match self {
            SubnetRange::Loopback => "127.0",
            SubnetRange::Docker => "172.28",
        }
    }

    /// Lock files of the two ranges differ, so a loopback and a Docker lease may
    /// share X.
    fn lock_name(self, third_octet: u8) -> String {
        match self {
            SubnetRange::Loopback => format!("{third_octet}.lock"),
            SubnetRange::Docker => format!("docker-{third_octet}.lock"),
        }
    }
}

#[derive(Debug)]
pub struct SubnetLease {
    range: SubnetRange,
    third_octet: u8,
    // Held open for the lease's life: closing the file releases the flock, which is
    // also what makes a crashed process give its subnet back.
    _lock: File,
}

impl SubnetLease {
    pub fn acquire() -> Result<Self, LeaseError> {
        Self::acquire_in(SubnetRange::Loopback)
    }

    pub fn acquire_in(range: SubnetRange) -> Result<Self, LeaseError> {
        let directory = std::env::temp_dir().join("etcd-aws-subnets");
        std::fs::create_dir_all(&directory).map_err(|source| LeaseError::Directory {
            path: directory.clone(),
            source,
        })?;
        let span = u32::from(LAST - FIRST) + 1;
        // Start where concurrent processes are unlikely to start, so they rarely
        // contend for the same locks.
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let offset = std::process::id()
            .wrapping_mul(7)
            .wrapping_add(STARTED.fetch_add(1, Ordering::Relaxed));
        for step in 0..span {
            let third_octet = FIRST + ((offset.wrapping_add(step)) % span) as u8;
            let path = directory.join(range.lock_name(third_octet));
            let Ok(file) = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            if try_lock_exclusive(&file) {
                return Ok(Self {
                    range,
                    third_octet,
                    _lock: file,
                });
            }
        }
        Err(LeaseError::Exhausted { range })
    }

    pub fn third_octet(&self) -> u8 {
        self.third_octet
    }

    pub fn range(&self) -> SubnetRange {
        self.range
    }

    /// "127.0.X" (or "172.28.X")
    pub fn prefix(&self) -> String {
        format!("{}.{}", self.range.first_octets(), self.third_octet)
    }
}

fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leases_held_at_once_differ() {
        let first = SubnetLease::acquire();
        let second = SubnetLease::acquire();
        match (first, second) {
            (Ok(first), Ok(second)) => assert_ne!(first.third_octet(), second.third_octet()),
            (first, second) => panic!("lease failed: {first:?} {second:?}"),
        }
    }

    #[test]
    fn a_released_lease_can_be_taken_again() {
        let Ok(lease) = SubnetLease::acquire() else {
            panic!("no lease");
        };
        let octet = lease.third_octet();
        drop(lease);
        let path = std::env::temp_dir()
            .join("etcd-aws-subnets")
            .join(format!("{octet}.lock"));
        let file = OpenOptions::new().write(true).open(path);
        assert!(file.is_ok_and(|file| try_lock_exclusive(&file)));
    }

    #[test]
    fn a_docker_lease_names_a_slash_24_in_the_docker_range() {
        let Ok(lease) = SubnetLease::acquire_in(SubnetRange::Docker) else {
            panic!("no lease");
        };
        assert_eq!(lease.prefix(), format!("172.28.{}", lease.third_octet()));
    }

    #[test]
    fn loopback_and_docker_leases_of_the_same_x_use_different_locks() {
        assert_ne!(
            SubnetRange::Docker.lock_name(7),
            SubnetRange::Loopback.lock_name(7)
        );
    }

    #[test]
    fn the_prefix_names_the_leased_slash_24() {
        let Ok(lease) = SubnetLease::acquire() else {
            panic!("no lease");
        };
        assert_eq!(lease.prefix(), format!("127.0.{}", lease.third_octet()));
    }
}
