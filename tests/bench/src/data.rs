//! Filling etcd to a database size fast: concurrent puts of 256 KiB values
//! that look like configuration objects, part text that compresses and part
//! base64 of random bytes that does not (Secrets, certificates, blobs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Size of each value: large values fill fast, and stay well under etcd's
/// 1.5 MiB request limit.
pub const VALUE_BYTES: usize = 256 * 1024;
/// Share of each value that is base64 of random bytes; the rest is text.
const RANDOM_SHARE: f64 = 0.4;
const WRITERS: usize = 8;
/// Bound on one fill, whatever the size asked.
const FILL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy)]
pub struct Filled {
    /// The member's database size (bbolt file) after the fill.
    pub db_bytes: u64,
    /// Keys under the prefix.
    pub keys: u64,
    pub seconds: f64,
}

/// Puts values under `prefix` through `endpoints` until the database of the
/// member at `endpoints[0]` is at least `target_bytes`. Keys continue from
/// what is already there, so a second call grows the same data set.
pub async fn fill_to(
    endpoints: &[String],
    prefix: &str,
    target_bytes: u64,
) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(30));
    let client = Client::connect(endpoints, Some(options))
        .await
        .with_context(|| format!("cannot connect to etcd at {endpoints:?} to fill it"))?;
    let mut status = client.clone();
    let existing = count(&mut client.clone(), prefix).await?;
    let next = Arc::new(AtomicU64::new(existing));
    // Every key beyond this many means the database refuses to grow.
    let max_keys = existing + target_bytes / (VALUE_BYTES as u64 / 2) + 1000;
    let mut last_report = Instant::now();
    loop {
        let size = db_size(&mut status).await?;
        // etcd commits its backend in batches (every 100 ms), so its size
        // lags the puts; stop on what was written, too, not to overshoot.
        let written = (next.load(Ordering::SeqCst) - existing) * VALUE_BYTES as u64;
        if size >= target_bytes || existing * VALUE_BYTES as u64 + written >= target_bytes {
            break;
        }
        if started.elapsed() > FILL_TIMEOUT || next.load(Ordering::SeqCst) > max_keys {
            bail!(
                "filling etcd to {} MiB stopped at {} MiB after {} keys and {:?}",
                target_bytes >> 20,
                size >> 20,
                next.load(Ordering::SeqCst),
                started.elapsed()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "    filling: {} MiB of {} MiB",
                size >> 20,
                target_bytes >> 20
            );
            last_report = Instant::now();
        }
        // A round of puts, then look at the size again.
        let missing = target_bytes - size;
        let round = (missing / VALUE_BYTES as u64).clamp(WRITERS as u64, 256);
        let mut writers = JoinSet::new();
        for _ in 0..WRITERS {
            let (mut client, next, prefix) = (client.clone(), next.clone(), prefix.to_owned());
            let share = round.div_ceil(WRITERS as u64);
            writers.spawn(async move {
                for _ in 0..share {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let value = value(index);
                    client
                        .put(format!("{prefix}{index:010}"), value, None)
                        .await
                        .with_context(|| format!("put of key {index} failed"))?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(result) = writers.join_next().await {
            result.context("a writer task failed")??;
        }
    }
    // Let the last batch commit before reporting the size.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Filled {
        db_bytes: db_size(&mut status).await?,
        keys: count(&mut status, prefix).await?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn db_size(client: &mut Client) -> anyhow::Result<u64> {
    let status = client.status().await.context("etcd status failed")?;
    Ok(u64::try_from(status.db_size()).unwrap_or(0))
}

/// Keys under `prefix`.
pub async fn count(client: &mut Client, prefix: &str) -> anyhow::Result<u64> {
    let response = client
        .get(
            prefix,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .with_context(|| format!("counting keys under {prefix} failed"))?;
    Ok(u64::try_from(response.count()).unwrap_or(0))
}

/// A deterministic value for key `index`: a ConfigMap-like JSON object whose
/// text repeats with variations, and a base64 blob of random bytes.
pub fn value(index: u64) -> Vec<u8> {
    let mut rng = XorShift(index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let random_chars = (VALUE_BYTES as f64 * RANDOM_SHARE) as usize;
    let mut text = String::with_capacity(VALUE_BYTES);
    text.push_str(&format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"bench-{index}","namespace":"team-{}","uid":"{:016x}","resourceVersion":"{index}"}},"data":{{"settings.yaml":""#,
        rng.below(40),
        rng.next()
    ));
    let text_end = VALUE_BYTES - random_chars - 64;
    let mut line = 0u64;
    while text.len() < text_end {
        line += 1;
        text.push_str(&format!(
            "service-{line}:\\n  replicas: {}\\n  image: registry.example.com/team/app-{}:v1.{}\\n  port: {}\\n",
            1 + rng.below(5),
            rng.below(1000),
            rng.below(100),
            8000 + rng.below(1000)
        ));
    }
    text.truncate(text_end);
    text.push_str(r#"","blob":""#);
    let bytes: Vec<u8> = (0..random_chars * 3 / 4)
        .map(|_| rng.next() as u8)
        .collect();
    text.push_str(&base64(&bytes));
    text.push_str(r#""}}"#);
    text.into_bytes()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_about_the_size_asked_and_deterministic() {
        let a = value(7);
        assert!(a.len().abs_diff(VALUE_BYTES) < 1024, "{}", a.len());
        assert_eq!(a, value(7));
        assert_ne!(a, value(8));
        assert!(serde_json::from_slice::<serde_json::Value>(&a).is_ok());
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
