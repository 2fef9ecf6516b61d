//! The node's etcd data directory: is there member data, and moving it aside.

use etcd_aws_core::clock;
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
}
