//! The functions' recent errors, from their CloudWatch Logs groups: the
//! lines the functions log at ERROR, and the lines Lambda itself writes for
//! an invocation that timed out or whose runtime crashed. Read with
//! FilterLogEvents, one plain term per query, which CloudWatch Logs matches
//! the same way for text and JSON lines.
//!
//! They are shown, not judged: `status` fails on what the errors lead to (a
//! stale backup, a loss window, a member gone), which is the cluster's
//! health; a capture run that failed once and recovered is not.

use std::collections::BTreeMap;

use aws_sdk_cloudwatchlogs::Client;
use serde::Serialize;
use serde_json::Value;

/// Terms that mark an error line. `ERROR` is the functions' level field
/// (`"level":"ERROR"`); the others are Lambda's own words.
const ERROR_TERMS: [&str; 3] = ["ERROR", "\"Task timed out\"", "\"Runtime exited\""];
/// Lines read per group at most; more are counted as "more".
const MAX_EVENTS: usize = 1000;
/// What of a line the view keeps.
const MAX_MESSAGE_CHARS: usize = 300;
/// Newest lines shown per group (one failure often logs two: the
/// function's own line and the runtime's).
const RECENT: usize = 3;

/// One function log group's errors in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionErrors {
    pub log_group: String,
    /// Error lines in the window (at most [`MAX_EVENTS`]); `None` when the
    /// group could not be read.
    pub count: Option<usize>,
    /// More lines than counted.
    pub more: bool,
    /// The newest lines, newest first, at most [`RECENT`].
    pub recent: Vec<LoggedError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedError {
    /// Milliseconds since the epoch, as CloudWatch Logs stamps lines.
    pub at_ms: i64,
    pub message: String,
}

/// A line as read, before it is summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    pub event_id: String,
    pub at_ms: i64,
    pub line: String,
}

/// The lines of one group summed up: each line once (a line may match
/// two terms), the newest described.
pub fn summarize(log_group: &str, lines: Vec<ErrorLine>, truncated: bool) -> FunctionErrors {
    let unique: BTreeMap<String, ErrorLine> = lines
        .into_iter()
        .map(|line| (line.event_id.clone(), line))
        .collect();
    let mut newest_first: Vec<&ErrorLine> = unique.values().collect();
    newest_first.sort_by(|a, b| (b.at_ms, &b.event_id).cmp(&(a.at_ms, &a.event_id)));
    FunctionErrors {
        log_group: log_group.to_owned(),
        count: Some(unique.len()),
        more: truncated,
        recent: newest_first
            .into_iter()
            .take(RECENT)
            .map(|line| LoggedError {
                at_ms: line.at_ms,
                message: describe(&line.line),
            })
            .collect(),
        unreadable: None,
    }
}

/// What a line says, shortly: a JSON line's message and its error field,
/// any other line as it is; cut to [`MAX_MESSAGE_CHARS`].
pub fn describe(line: &str) -> String {
    let text = match serde_json::from_str::<Value>(line.trim()) {
        Ok(record) => match (
            record.get("message").and_then(Value::as_str),
            record.get("error").and_then(Value::as_str),
        ) {
            (Some(message), Some(error)) => format!("{message}: {error}"),
            (Some(message), None) => message.to_owned(),
            _ => line.trim().to_owned(),
        },
        Err(_) => line.trim().to_owned(),
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Each group's errors since `since_ms`. A group that cannot be read says
/// why in its row; the others are still read.
pub async fn recent_errors(
    logs: &Client,
    log_groups: &[String],
    since_ms: i64,
) -> Vec<FunctionErrors> {
    let mut found = Vec::with_capacity(log_groups.len());
    for group in log_groups {
        found.push(match error_lines(logs, group, since_ms).await {
            Ok((lines, truncated)) => summarize(group, lines, truncated),
            Err(reason) => FunctionErrors {
                log_group: group.clone(),
                count: None,
                more: false,
                recent: Vec::new(),
                unreadable: Some(reason),
            },
        });
    }
    found
}

async fn error_lines(
    logs: &Client,
    group: &str,
    since_ms: i64,
) -> Result<(Vec<ErrorLine>, bool), String> {
    let mut lines = Vec::new();
    for term in ERROR_TERMS {
        let mut token: Option<String> = None;
        loop {
            let answer = logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(since_ms)
                .filter_pattern(term)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read log group {group}: {}; the operator needs logs:FilterLogEvents on it",
                        etcd_aws_io::aws::error::read(&e).summary
                    )
                })?;
            lines.extend(answer.events().iter().map(|event| ErrorLine {
                event_id: event.event_id().unwrap_or_default().to_owned(),
                at_ms: event.timestamp().unwrap_or_default(),
                line: event.message().unwrap_or_default().to_owned(),
            }));
            if lines.len() >= MAX_EVENTS {
                return Ok((lines, true));
            }
            match answer.next_token() {
                // CloudWatch Logs may hand back the token it was given when
                // nothing more is there yet: that is the end too.
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
    }
    Ok((lines, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, at_ms: i64, text: &str) -> ErrorLine {
        ErrorLine {
            event_id: id.into(),
            at_ms,
            line: text.into(),
        }
    }

    #[test]
    fn a_json_line_is_described_by_its_message_and_error() {
        assert_eq!(
            describe(r#"{"level":"ERROR","message":"backup failed","error":"S3 refused"}"#),
            "backup failed: S3 refused"
        );
        assert_eq!(
            describe(r#"{"level":"ERROR","message":"backup failed"}"#),
            "backup failed"
        );
    }

    #[test]
    fn a_text_line_is_described_as_it_is() {
        assert_eq!(
            describe("2026-12-06T10:00:00Z 1f2e Task timed out after 900.00 seconds\n"),
            "2026-12-06T10:00:00Z 1f2e Task timed out after 900.00 seconds"
        );
    }

    #[test]
    fn a_long_line_is_cut() {
        let described = describe(&"x".repeat(1000));
        assert_eq!(described.chars().count(), MAX_MESSAGE_CHARS + 3);
        assert!(described.ends_with("..."));
    }

    #[test]
    fn a_line_matching_two_terms_counts_once_and_the_newest_come_first() {
        let errors = summarize(
            "g",
            vec![
                line("a", 10, "first ERROR"),
                line("b", 30, r#"{"level":"ERROR","message":"newest"}"#),
                line("a", 10, "first ERROR"),
                line("c", 20, "Task timed out"),
            ],
            false,
        );
        assert_eq!(errors.count, Some(3));
        let messages: Vec<&str> = errors.recent.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, vec!["newest", "Task timed out", "first ERROR"]);
        assert!(!errors.more);
    }

    #[test]
    fn only_the_newest_few_lines_are_kept() {
        let lines = (0..10)
            .map(|n| line(&format!("e{n}"), n, &format!("ERROR {n}")))
            .collect();
        let errors = summarize("g", lines, true);
        assert_eq!(errors.count, Some(10));
        assert_eq!(errors.recent.len(), RECENT);
        assert_eq!(errors.recent[0].message, "ERROR 9");
        assert!(errors.more);
    }

    #[test]
    fn no_lines_is_no_error() {
        let errors = summarize("g", vec![], false);
        assert_eq!(errors.count, Some(0));
        assert!(errors.recent.is_empty());
    }
}
