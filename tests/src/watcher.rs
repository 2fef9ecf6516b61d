//! A watcher as Kubernetes' informers watch: list once, then watch from the
//! revision after the list, resume after a broken stream from the revision
//! after the last event seen, and list afresh only when etcd answers that the
//! revision to resume from was compacted. Through restores it reconnects to
//! whichever cluster the nodes serve, and records every revision it is shown,
//! in order, so a scenario can check that revisions only ever go up and that
//! no change is skipped silently.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::task::JoinHandle;

use crate::lock;
use crate::sim_cluster::{wait_for, Endpoints};
use crate::workload;

/// Pause before reconnecting after a failure.
const RETRY: Duration = Duration::from_millis(200);
/// A stream that shows nothing for this long is opened again (from the same
/// revision: nothing is lost), in case its member went away without closing it.
const QUIET: Duration = Duration::from_secs(5);

/// One thing the watcher was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// An event's revision, or the revision a list was served at.
    pub revision: i64,
    pub key: String,
    /// From a list (after a compaction), not an event.
    pub listed: bool,
}

pub struct Watcher {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Watches every key under `prefix`, until dropped.
    pub fn start(endpoints: Endpoints, prefix: &str) -> Watcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(watch(endpoints, prefix.to_owned(), seen.clone()));
        Watcher { seen, task }
    }

    /// Everything shown so far, in the order it was shown.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// Waits, at most `timeout`, until the watcher was shown `key` at
    /// `revision` or later.
    pub async fn wait_for(
        &self,
        key: &str,
        revision: i64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_for(
            &format!("the watcher to be shown {key} at revision {revision} or later"),
            timeout,
            || async {
                let seen = self.seen();
                match seen.iter().find(|s| s.key == key && s.revision >= revision) {
                    Some(_) => Ok(()),
                    None => anyhow::bail!(
                        "not yet; the newest revision shown is {:?}",
                        seen.last().map(|s| s.revision)
                    ),
                }
            },
        )
        .await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(endpoints: Endpoints, prefix: String, seen: Arc<Mutex<Vec<Seen>>>) {
    // The revision to resume from; `None` when a list is due.
    let mut next: Option<i64> = None;
    loop {
        let Ok(mut client) = workload::connect(&endpoints).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let start = match next {
            Some(revision) => revision,
            None => match list(&mut client, &prefix, &seen).await {
                Ok(revision) => revision + 1,
                Err(_) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        next = Some(start);
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let Ok(mut stream) = client.watch(prefix.as_str(), Some(options)).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        while let Ok(Ok(Some(answer))) = tokio::time::timeout(QUIET, stream.message()).await {
            if answer.compact_revision() > 0 {
                next = None;
                break;
            }
            if answer.canceled() {
                break;
            }
            for event in answer.events() {
                if let Some(kv) = event.kv() {
                    lock(&seen).push(Seen {
                        revision: kv.mod_revision(),
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        listed: false,
                    });
                    next = Some(kv.mod_revision() + 1);
                }
            }
        }
    }
}

/// Lists every key under `prefix`; returns the revision the list was served at.
async fn list(client: &mut Client, prefix: &str, seen: &Mutex<Vec<Seen>>) -> anyhow::Result<i64> {
    let answer = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = answer.header().map_or(0, |h| h.revision());
    let mut seen = lock(seen);
    seen.extend(answer.kvs().iter().map(|kv| Seen {
        revision,
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        listed: true,
    }));
    Ok(revision)
}
