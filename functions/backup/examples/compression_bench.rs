//! Is zstd faster end to end? Fills an etcd (if it is smaller than asked)
//! with Kubernetes-like objects, then streams its snapshot to S3 with each
//! compression setting through the function's own data path, and prints
//! time, stored size and the process's peak memory.
//!
//! Run it against a single etcd and an S3 emulator on loopback, built in
//! release (as Lambda runs it):
//! ```text
//! compression_bench <etcd client URL> <S3 endpoint URL> <fill MiB> [rounds]
//! ```

use std::time::Instant;

use anyhow::{bail, Context};
use aws_config::BehaviorVersion;
use etcd_aws_backup::run::snapshot_to_s3;
use etcd_aws_backup::BackupConfig;
use etcd_aws_core::backup::manifest::Compression;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::tls::ClientTlsSource;
use etcd_client::{Client, Txn, TxnOp};

const BUCKET: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, etcd, s3, fill_mib, rest @ ..] = args.as_slice() else {
        bail!("usage: compression_bench <etcd URL> <S3 endpoint URL> <fill MiB> [rounds]");
    };
    let fill: u64 = fill_mib.parse::<u64>().context("fill MiB")? * 1024 * 1024;
    let rounds: usize = rest.first().map_or(Ok(1), |r| r.parse())?;
    let db_size = fill_etcd(etcd, fill).await?;
    println!("database: {:.1} MiB", db_size as f64 / 1048576.0);

    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(s3)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .load()
        .await;
    let store = BackupStore::new(&sdk, BUCKET, "bench/");
    let _ = store.s3().create_bucket().bucket(BUCKET).send().await;

    let settings = [
        ("none", Compression::None, 1),
        ("zstd-1", Compression::Zstd, 1),
        ("zstd-3", Compression::Zstd, 3),
    ];
    println!("setting   seconds  stored MiB  ratio  peak RSS MiB");
    for round in 0..rounds {
        for (name, compression, level) in settings {
            let mut config = BackupConfig::new("bench", BUCKET, ClientTlsSource::Plaintext);
            config.compression = compression;
            config.zstd_level = level;
            // The bench starts its own plaintext etcd.
            let access = EtcdAccess::plaintext(config.etcd_timeouts);
            let key = format!("bench/snapshots/{name}-{round}");
            let started = Instant::now();
            let summary = snapshot_to_s3(&config, &store, &access, etcd, &key).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{name:<8} {seconds:8.2} {:11.1} {:6.2} {:13.1}",
                summary.stored_bytes as f64 / 1048576.0,
                summary.snapshot_bytes as f64 / summary.stored_bytes as f64,
                peak_rss_mib()
            );
            // Keep moto's memory flat between runs.
            let _ = store
                .s3()
                .delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await;
        }
    }
    Ok(())
}

/// VmHWM: the most resident memory this process ever had.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(-1.0, |kb| kb / 1024.0)
}

/// Writes objects until the database reaches `target` bytes; returns its size.
async fn fill_etcd(endpoint: &str, target: u64) -> anyhow::Result<u64> {
    let mut client = Client::connect([endpoint], None).await?;
    let mut size = client.status().await?.db_size() as u64;
    let mut rng = XorShift(0x853c_49e6_748f_ea9b);
    let mut n = 0u64;
    while size < target {
        // Four writers, 64 objects per transaction.
        let mut batch = Vec::new();
        for _ in 0..4 {
            let ops: Vec<TxnOp> = (0..64)
                .map(|_| {
                    n += 1;
                    let (key, value) = k8s_object(&mut rng, n);
                    TxnOp::put(key, value, None)
                })
                .collect();
            let mut c = client.clone();
            batch.push(tokio::spawn(async move {
                c.txn(Txn::new().and_then(ops)).await
            }));
        }
        for task in batch {
            task.await??;
        }
        if n % 16_384 < 256 {
            size = client.status().await?.db_size() as u64;
            eprintln!("filled {n} objects, {:.0} MiB", size as f64 / 1048576.0);
        }
    }
    Ok(client.status().await?.db_size() as u64)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[(self.next() % 16) as usize]))
            .collect()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A Kubernetes-like object: JSON with uids, timestamps, labels, a
/// last-applied annotation repeating the spec, and (for one in eight, like
/// Secrets and ConfigMaps) a base64 blob of random bytes that does not compress.
fn k8s_object(rng: &mut XorShift, n: u64) -> (String, String) {
    const KINDS: [&str; 6] = [
        "pods",
        "configmaps",
        "secrets",
        "deployments",
        "services",
        "events",
    ];
    let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
    let namespace = format!("team-{}", rng.below(40));
    let name = format!("app-{}-{}", rng.hex(6), rng.hex(5));
    let uid = format!(
        "{}-{}-{}-{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(4),
        rng.hex(4),
        rng.hex(12)
    );
    let containers: Vec<String> = (0..1 + rng.below(3))
        .map(|i| {
            format!(
                r#"{{"name":"c{i}","image":"registry.example.com/{namespace}/{name}:v1.{}.{}","ports":[{{"containerPort":{},"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"{}m","memory":"{}Mi"}}}},"env":[{{"name":"LOG_LEVEL","value":"info"}},{{"name":"REVISION","value":"{}"}}]}}"#,
                rng.below(30),
                rng.below(100),
                8000 + rng.below(1000),
                100 * (1 + rng.below(8)),
                128 * (1 + rng.below(8)),
                rng.hex(40)
            )
        })
        .collect();
    let spec = format!(
        r#"{{"replicas":{},"containers":[{}]}}"#,
        1 + rng.below(5),
        containers.join(",")
    );
    let blob = if rng.below(8) == 0 {
        let bytes: Vec<u8> = (0..256 + rng.below(4096))
            .map(|_| rng.next() as u8)
            .collect();
        base64(&bytes)
    } else {
        String::new()
    };
    let value = format!(
        r#"{{"apiVersion":"v1","kind":"{kind}","metadata":{{"name":"{name}","namespace":"{namespace}","uid":"{uid}","resourceVersion":"{n}","creationTimestamp":"2026-0{}-1{}T0{}:{}{}:00Z","labels":{{"app":"{name}","tier":"backend","team":"{namespace}"}},"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":{spec:?}}}}},"spec":{spec},"data":"{blob}"}}"#,
        1 + rng.below(9),
        rng.below(10),
        rng.below(10),
        rng.below(6),
        rng.below(10),
    );
    (format!("/registry/{kind}/{namespace}/{name}"), value)
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .chunks(3)
        .flat_map(|c| {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            [18, 12, 6, 0].map(|s| char::from(TABLE[(n >> s & 63) as usize]))
        })
        .collect()
}
