//! The soak's client load: a checking writer that puts, deletes, writes
//! transactions and leased keys, retrying each operation until the cluster
//! acknowledges it and recording every acknowledgement; and a reader that
//! reads the transactions back all the time and counts any it sees torn.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::checker::{Acked, Op};
use crate::lock;
use crate::sim_cluster::Endpoints;
use crate::workload::{connect, connected, wait_for_acknowledgements, Failures};

/// Every key the workload writes is under this prefix.
pub const PREFIX: &str = "soak/";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Pause between one acknowledged operation and the next.
    pub interval: Duration,
    pub retry_delay: Duration,
    /// The TTL of each leased key's lease (never kept alive).
    pub lease_ttl: Duration,
    /// Bound on the whole run, so a forgotten writer stops by itself.
    pub max_duration: Duration,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(50),
            retry_delay: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(3),
            max_duration: Duration::from_secs(6 * 3600),
        }
    }
}

/// What an operation number does: mostly puts, with a transaction, a
/// delete of an earlier put and a leased key in every ten.
fn planned(seq: u64, deletable: &mut VecDeque<String>, lease_ttl: Duration) -> Op {
    match seq % 10 {
        6 => Op::Txn {
            keys: vec![
                format!("{PREFIX}txn/{seq:08}/a"),
                format!("{PREFIX}txn/{seq:08}/b"),
            ],
        },
        7 => match deletable.pop_front() {
            Some(key) => Op::Delete { key },
            None => Op::Put {
                key: format!("{PREFIX}put/{seq:08}"),
            },
        },
        8 => Op::Leased {
            key: format!("{PREFIX}lease/{seq:08}"),
            ttl: lease_ttl,
        },
        _ => Op::Put {
            key: format!("{PREFIX}put/{seq:08}"),
        },
    }
}

#[derive(Debug, Default)]
struct Record {
    acked: Vec<Acked>,
    /// The operation being tried, until it is acknowledged.
    trying: Option<Op>,
    failures: Failures,
}

/// The running writer; dropping it stops it.
pub struct CheckingWriter {
    record: Arc<Mutex<Record>>,
    started: Instant,
    task: JoinHandle<()>,
}

impl CheckingWriter {
    pub fn start(endpoints: Endpoints, options: WorkloadOptions) -> Self {
        let record = Arc::new(Mutex::new(Record::default()));
        let task = tokio::spawn(write(endpoints, options, Arc::clone(&record)));
        Self {
            record,
            started: Instant::now(),
            task,
        }
    }

    pub fn acked(&self) -> Vec<Acked> {
        lock(&self.record).acked.clone()
    }

    /// The operations after the first `count` acknowledged ones: those
    /// acknowledged since, and the one being tried.
    pub fn since(&self, count: usize) -> Vec<Op> {
        let record = lock(&self.record);
        record
            .acked
            .iter()
            .skip(count)
            .map(|a| a.op.clone())
            .chain(record.trying.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        lock(&self.record).acked.len()
    }

    pub fn last(&self) -> Option<Acked> {
        lock(&self.record).acked.last().cloned()
    }

    pub fn failed_attempts(&self) -> u64 {
        lock(&self.record).failures.attempts
    }

    /// How long the writer has gone without an acknowledgement.
    pub fn current_stall(&self) -> Duration {
        self.last().map_or(self.started, |a| a.at).elapsed()
    }

    /// Waits until `count` more operations are acknowledged than now.
    pub async fn wait_for_more(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        wait_for_acknowledgements(
            || self.count(),
            count,
            timeout,
            || lock(&self.record).failures.last_error.clone(),
        )
        .await
    }
}

impl Drop for CheckingWriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn write(endpoints: Endpoints, options: WorkloadOptions, record: Arc<Mutex<Record>>) {
    let deadline = Instant::now() + options.max_duration;
    let mut client: Option<Client> = None;
    let mut deletable = VecDeque::new();
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let op = planned(seq, &mut deletable, options.lease_ttl);
        lock(&record).trying = Some(op.clone());
        // The same operation on every attempt: a retry after an ambiguous
        // failure (committed, answer lost) changes nothing it promised.
        loop {
            if Instant::now() >= deadline {
                return;
            }
            match apply(&mut client, &endpoints, &op).await {
                Ok((revision, cluster_id)) => {
                    if let Op::Put { key } = &op {
                        deletable.push_back(key.clone());
                    }
                    let mut record = lock(&record);
                    record.trying = None;
                    record.acked.push(Acked {
                        seq,
                        op: op.clone(),
                        revision,
                        cluster_id,
                        at: Instant::now(),
                    });
                    break;
                }
                Err(error) => {
                    client = None;
                    lock(&record).failures.record(&error);
                    tokio::time::sleep(options.retry_delay).await;
                }
            }
        }
        seq += 1;
        tokio::time::sleep(options.interval).await;
    }
}

/// One attempt; the revision and cluster id of the answer.
async fn apply(
    client: &mut Option<Client>,
    endpoints: &Endpoints,
    op: &Op,
) -> anyhow::Result<(i64, u64)> {
    let client = connected(client, endpoints).await?;
    let header = match op {
        Op::Put { key } => bounded(client.put(key.as_str(), "v", None))
            .await?
            .header()
            .cloned(),
        Op::Delete { key } => bounded(client.delete(key.as_str(), None))
            .await?
            .header()
            .cloned(),
        Op::Txn { keys } => {
            let puts: Vec<TxnOp> = keys
                .iter()
                .map(|k| TxnOp::put(k.as_str(), "v", None))
                .collect();
            bounded(client.txn(Txn::new().and_then(puts)))
                .await?
                .header()
                .cloned()
        }
        Op::Leased { key, ttl } => {
            let lease = bounded(client.lease_grant(ttl.as_secs() as i64, None)).await?;
            bounded(client.put(
                key.as_str(),
                "v",
                Some(PutOptions::new().with_lease(lease.id())),
            ))
            .await?
            .header()
            .cloned()
        }
    };
    let header = header.context("the answer has no header")?;
    Ok((header.revision(), header.cluster_id()))
}

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .context("no answer in time")??)
}

/// Every key under [`PREFIX`] the cluster serves now (a linearizable read).
pub async fn read_keys(endpoints: &Endpoints) -> anyhow::Result<HashSet<String>> {
    let mut client = connect(endpoints).await?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(
            PREFIX,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    )
    .await
    .context("reading the keys back timed out")??;
    Ok(answer
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect())
}

/// Transactions whose keys a single read saw only in part.
pub fn torn_in(keys: &HashSet<String>) -> Vec<String> {
    let mut halves: std::collections::BTreeMap<&str, usize> = Default::default();
    for key in keys {
        if let Some(txn) = key
            .strip_suffix("/a")
            .or_else(|| key.strip_suffix("/b"))
            .filter(|k| k.starts_with(&format!("{PREFIX}txn/")))
        {
            *halves.entry(txn).or_default() += 1;
        }
    }
    halves
        .into_iter()
        .filter(|(_, count)| *count == 1)
        .map(|(txn, _)| txn.to_owned())
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct ReaderRecord {
    pub reads: u64,
    /// Transactions seen half-written by one read, with when.
    pub torn: Vec<String>,
}

/// Reads every transaction back in one read, over and over; dropping it stops it.
pub struct TornReader {
    record: Arc<Mutex<ReaderRecord>>,
    task: JoinHandle<()>,
}

impl TornReader {
    pub fn start(endpoints: Endpoints, every: Duration, max_duration: Duration) -> Self {
        let record = Arc::new(Mutex::new(ReaderRecord::default()));
        let shared = Arc::clone(&record);
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + max_duration;
            let mut ticks = tokio::time::interval(every);
            while Instant::now() < deadline {
                ticks.tick().await;
                let Ok(mut client) = connect(&endpoints).await else {
                    continue;
                };
                let read = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    client.get(
                        format!("{PREFIX}txn/"),
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    ),
                )
                .await;
                if let Ok(Ok(answer)) = read {
                    let keys: HashSet<String> = answer
                        .kvs()
                        .iter()
                        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
                        .collect();
                    let torn = torn_in(&keys);
                    let mut record = lock(&shared);
                    record.reads += 1;
                    record.torn.extend(torn);
                }
            }
        });
        Self { record, task }
    }

    pub fn record(&self) -> ReaderRecord {
        lock(&self.record).clone()
    }
}

impl Drop for TornReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ten_operations_hold_a_transaction_a_delete_of_an_earlier_put_and_a_leased_key() {
        let mut deletable = VecDeque::new();
        let ttl = Duration::from_secs(3);
        let ops: Vec<Op> = (0..10)
            .map(|seq| {
                let op = planned(seq, &mut deletable, ttl);
                if let Op::Put { key } = &op {
                    deletable.push_back(key.clone());
                }
                op
            })
            .collect();
        assert_eq!(
            ops[6],
            Op::Txn {
                keys: vec!["soak/txn/00000006/a".into(), "soak/txn/00000006/b".into()]
            }
        );
        assert_eq!(
            ops[7],
            Op::Delete {
                key: "soak/put/00000000".into()
            }
        );
        assert_eq!(
            ops[8],
            Op::Leased {
                key: "soak/lease/00000008".into(),
                ttl
            }
        );
        assert!(matches!(ops[9], Op::Put { .. }));
    }

    #[test]
    fn a_delete_with_nothing_to_delete_is_a_put() {
        let mut deletable = VecDeque::new();
        assert_eq!(
            planned(7, &mut deletable, Duration::from_secs(3)),
            Op::Put {
                key: "soak/put/00000007".into()
            }
        );
    }

    #[test]
    fn a_transaction_seen_with_one_key_is_torn() {
        let keys: HashSet<String> = [
            "soak/txn/00000006/a",
            "soak/txn/00000006/b",
            "soak/txn/00000016/b",
            "soak/put/00000001",
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        assert_eq!(torn_in(&keys), vec!["soak/txn/00000016"]);
    }
}
