//! The node's etcd data directory: is there member data, moving it aside,
//! and the moved-aside directories and the disk beside it
//! ([`etcd_aws_core::etcd::disk`] decides what goes).

use etcd_aws_core::clock;
use etcd_aws_core::etcd::disk::{self, Disk, MovedAside};
use etcd_aws_core::membership::observation::LocalData;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "cannot read data directory {path}: {source}; check it exists and etcd-aws may read it"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot move stale data directory {from} to {to}: {source}; move it by hand, then restart etcd-aws")]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot measure the filesystem of {path}: {source}; check it is mounted")]
    Statfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove moved-aside data directory {path}: {source}; remove it by hand")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot sync directory {path} to disk: {source}; check the disk, then restart etcd-aws"
    )]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A member ran here iff its write-ahead log has a segment. A directory that
/// etcd created but abandoned before writing its WAL (a join that failed
/// validation) holds nothing worth keeping.
pub fn inspect(data_dir: &Path) -> Result<LocalData, DataDirError> {
    let wal = data_dir.join("member").join("wal");
    match std::fs::read_dir(&wal) {
        Ok(entries) => {
            let has_segment = entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|ext| ext == "wal"));
            Ok(if has_segment {
                LocalData::Present
            } else {
                LocalData::Empty
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalData::Empty),
        Err(source) => Err(DataDirError::Read { path: wal, source }),
    }
}

/// Renames the data directory to `<dir>.removed-<unix seconds>` beside it.
/// Data is never deleted: an operator may still need it.
pub fn move_aside(data_dir: &Path) -> Result<PathBuf, DataDirError> {
    let stamp = clock::now_unix_seconds();
    let mut name = data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "etcd".into());
    name.push(format!(".removed-{stamp}"));
    let mut target = data_dir.with_file_name(&name);
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        let mut numbered = name.clone();
        numbered.push(format!("-{attempt}"));
        target = data_dir.with_file_name(numbered);
    }
    std::fs::rename(data_dir, &target).map_err(|source| DataDirError::MoveAside {
        from: data_dir.to_owned(),
        to: target.clone(),
        source,
    })?;
    Ok(target)
}

/// The directories moved aside beside `data_dir`, with their sizes.
pub fn moved_aside(data_dir: &Path) -> Result<Vec<MovedAside>, DataDirError> {
    let Some(name) = data_dir.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let parent = data_dir.parent().unwrap_or_else(|| Path::new("."));
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DataDirError::Read {
                path: parent.to_owned(),
                source,
            })
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let entry_name = entry.file_name().to_str()?.to_owned();
            let moved_at = disk::moved_at(name, &entry_name)?;
            Some(MovedAside {
                bytes: size_of(&entry.path()),
                name: entry_name,
                moved_at,
            })
        })
        .collect())
}

/// Bytes under `path`, counting what can be read (a directory being removed
/// by someone else counts for what is left).
fn size_of(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| size_of(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        Ok(meta) => meta.len(),
        Err(_) => 0,
    }
}

/// Deletes one moved-aside directory (named as [`moved_aside`] found it).
pub fn remove_moved_aside(data_dir: &Path, name: &str) -> Result<(), DataDirError> {
    let path = data_dir.with_file_name(name);
    std::fs::remove_dir_all(&path).map_err(|source| DataDirError::Remove { path, source })
}

/// The free and total space of the filesystem that holds `path` (or would:
/// its nearest existing ancestor), as an unprivileged process may use it.
pub fn disk_of(path: &Path) -> Result<Disk, DataDirError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("/"));
    let statfs_error = |source| DataDirError::Statfs {
        path: existing.to_owned(),
        source,
    };
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map_err(|e| statfs_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: statvfs writes into the zeroed struct it is given and reads the
    // NUL-terminated path; both live across the call.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(statfs_error(std::io::Error::last_os_error()));
    }
    let block = stats.f_frsize as u64;
    Ok(Disk {
        free_bytes: (stats.f_bavail as u64).saturating_mul(block),
        total_bytes: (stats.f_blocks as u64).saturating_mul(block),
    })
}

/// Makes a rename of `path` durable: syncs the directory that holds it.
pub fn sync_parent(path: &Path) -> Result<(), DataDirError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| DataDirError::Sync {
            path: parent.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_empty() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            inspect(&root.path().join("nope")).expect("inspect"),
            LocalData::Empty
        );
    }

    #[test]
    fn directory_without_wal_segment_is_empty() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("member/wal")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("member/snap")).expect("mkdir");
        assert_eq!(inspect(root.path()).expect("inspect"), LocalData::Empty);
    }

    #[test]
    fn directory_with_wal_segment_is_present() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("member/wal")).expect("mkdir");
        std::fs::write(
            root.path()
                .join("member/wal/0000000000000000-0000000000000000.wal"),
            b"x",
        )
        .expect("write");
        assert_eq!(inspect(root.path()).expect("inspect"), LocalData::Present);
    }

    #[test]
    fn move_aside_keeps_the_data_beside_the_original() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("etcd");
        std::fs::create_dir_all(dir.join("member/wal")).expect("mkdir");
        std::fs::write(dir.join("member/wal/a.wal"), b"data").expect("write");
        let moved = move_aside(&dir).expect("move aside");
        assert!(!dir.exists());
        assert_eq!(moved.parent(), dir.parent());
        assert!(moved
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("etcd.removed-")));
        assert_eq!(
            std::fs::read(moved.join("member/wal/a.wal")).expect("read"),
            b"data"
        );
    }

    #[test]
    fn moving_aside_twice_in_one_second_never_overwrites() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("etcd");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let first = move_aside(&dir).expect("first");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let second = move_aside(&dir).expect("second");
        assert_ne!(first, second);
        assert!(first.exists() && second.exists());
    }

    #[test]
    fn moved_aside_directories_are_found_with_their_stamp_and_size_and_nothing_else() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("etcd");
        std::fs::create_dir_all(&dir).expect("the live directory");
        let old = root.path().join("etcd.removed-1700000000");
        std::fs::create_dir_all(old.join("member/snap")).expect("mkdir");
        std::fs::write(old.join("member/snap/db"), vec![0u8; 1000]).expect("write");
        std::fs::write(old.join("member/wal.wal"), vec![0u8; 24]).expect("write");
        std::fs::create_dir_all(root.path().join("etcd.removed-1700000000-2")).expect("mkdir");
        std::fs::write(root.path().join("etcd.restore.db"), b"x").expect("write");
        std::fs::create_dir_all(root.path().join("other.removed-1")).expect("mkdir");
        let mut found = moved_aside(&dir).expect("listed");
        found.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            found,
            vec![
                MovedAside {
                    name: "etcd.removed-1700000000".into(),
                    moved_at: 1_700_000_000,
                    bytes: 1024
                },
                MovedAside {
                    name: "etcd.removed-1700000000-2".into(),
                    moved_at: 1_700_000_000,
                    bytes: 0
                },
            ]
        );
        remove_moved_aside(&dir, "etcd.removed-1700000000").expect("removed");
        assert!(!old.exists());
        assert!(dir.exists(), "the live directory stays");
    }

    #[test]
    fn the_disk_of_a_directory_not_yet_made_is_its_nearest_ancestors() {
        let root = tempfile::tempdir().expect("tempdir");
        let disk = disk_of(&root.path().join("not/yet/etcd")).expect("measured");
        assert!(disk.total_bytes > 0);
        assert!(disk.free_bytes <= disk.total_bytes);
    }
}
