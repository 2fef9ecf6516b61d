//! What Lambda does with a function's output: every line goes to the
//! function's CloudWatch Logs group. The harness tails the function's log
//! file into the stand-in's CloudWatch Logs, so a program under test (the
//! operator's `status`) finds the functions' errors where it would on AWS.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use tokio::task::JoinHandle;

/// How often the file is read: Lambda ships within about a second too.
const SHIP_EVERY: Duration = Duration::from_millis(200);
/// Lines per PutLogEvents call (CloudWatch Logs takes up to 10,000).
const BATCH: usize = 1000;
/// A forgotten shipper stops by itself.
const MAX_SHIPPING: Duration = Duration::from_secs(3 * 3600);

/// Ships the lines of a log file to a log group until dropped.
pub struct LogShipper {
    task: JoinHandle<()>,
}

impl LogShipper {
    /// Creates `group` (if missing) and a stream in it, then ships every
    /// complete line the file gets, from its start.
    pub async fn start(client: Client, group: &str, file: PathBuf) -> anyhow::Result<Self> {
        let stream = "harness/[$LATEST]local".to_owned();
        if let Err(error) = client.create_log_group().log_group_name(group).send().await {
            if !error
                .as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception())
            {
                return Err(error).with_context(|| format!("cannot create log group {group}"));
            }
        }
        client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(&stream)
            .send()
            .await
            .with_context(|| format!("cannot create log stream {stream} in {group}"))?;
        let group = group.to_owned();
        let task = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + MAX_SHIPPING;
            let mut offset = 0u64;
            let mut ticks = tokio::time::interval(SHIP_EVERY);
            while tokio::time::Instant::now() < deadline {
                ticks.tick().await;
                let lines = match new_lines(&file, &mut offset) {
                    Ok(lines) => lines,
                    Err(error) => {
                        tracing::warn!(file = %file.display(), %error, "cannot read the function's log");
                        continue;
                    }
                };
                for batch in lines.chunks(BATCH) {
                    ship(&client, &group, &stream, batch).await;
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for LogShipper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The complete lines after `offset`; `offset` moves past them. A line
/// still being written waits for the next read.
fn new_lines(file: &std::path::Path, offset: &mut u64) -> std::io::Result<Vec<String>> {
    let mut handle = match std::fs::File::open(file) {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    handle.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    handle.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    *offset += complete as u64;
    Ok(String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

async fn ship(client: &Client, group: &str, stream: &str, lines: &[String]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let events: Vec<InputLogEvent> = lines
        .iter()
        .filter_map(|line| {
            InputLogEvent::builder()
                .timestamp(now)
                .message(line)
                .build()
                .ok()
        })
        .collect();
    let put = client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await;
    if let Err(error) = put {
        tracing::warn!(group, error = %aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&error), "cannot ship the function's log lines");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn only_complete_lines_are_read_and_each_once() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("function.log");
        let mut file = std::fs::File::create(&path).expect("a log file");
        write!(file, "one\ntwo\nthr").expect("written");
        let mut offset = 0;
        assert_eq!(
            new_lines(&path, &mut offset).expect("read"),
            vec!["one", "two"]
        );
        writeln!(file, "ee").expect("written");
        assert_eq!(new_lines(&path, &mut offset).expect("read"), vec!["three"]);
        assert_eq!(
            new_lines(&path, &mut offset).expect("read"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_file_not_written_yet_has_no_lines() {
        let mut offset = 0;
        assert_eq!(
            new_lines(
                std::path::Path::new("/nonexistent/function.log"),
                &mut offset
            )
            .expect("no file is no lines"),
            Vec::<String>::new()
        );
    }
}
