//! A 127.0.X.0/24 that no other stand-in on this machine uses while this lease
//! lives, even in other test processes: an exclusive flock per X.

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
    #[error("all subnets 127.0.{FIRST}.0/24 to 127.0.{LAST}.0/24 are leased by other stand-ins")]
    Exhausted,
}

#[derive(Debug)]
pub struct SubnetLease {
    third_octet: u8,
    // Held open for the lease's life: closing the file releases the flock, which is
    // also what makes a crashed process give its subnet back.
    _lock: File,
}

impl SubnetLease {
    pub fn acquire() -> Result<Self, LeaseError> {
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
            let path = directory.join(format!("{third_octet}.lock"));
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
                    third_octet,
                    _lock: file,
                });
            }
        }
        Err(LeaseError::Exhausted)
    }

    pub fn third_octet(&self) -> u8 {
        self.third_octet
    }

    /// "127.0.X"
    pub fn prefix(&self) -> String {
        format!("127.0.{}", self.third_octet)
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
    fn the_prefix_names_the_leased_slash_24() {
        let Ok(lease) = SubnetLease::acquire() else {
            panic!("no lease");
        };
        assert_eq!(lease.prefix(), format!("127.0.{}", lease.third_octet()));
    }
}
