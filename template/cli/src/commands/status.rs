//! `etcd-aws-cfn status`: every member, the backups, the continuous backup's
//! loss window, the lifecycle's backlog and the functions' recent errors, read
//! through the backup function, the bucket and the queues; judged by
//! [`problems`]; exit 1 when anything is not healthy.

use std::process::ExitCode;
use std::time::Duration;

use etcd_aws_core::clock;
use etcd_aws_io::backup_store::BackupStore;

use crate::cli::OperateArgs;
use crate::operate::function::BackupFunction;
use crate::operate::function_errors::recent_errors;
use crate::operate::stack::StackParts;
use crate::operate::status_view::{
    certificate_days, loss_window_seconds, problems, Capture, Limits, NewestBackup, StatusView,
};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// The newest snapshot older than this is a problem.
    #[arg(long, env = "ETCD_AWS_BACKUP_MAX_AGE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_max_age: Duration,
    /// The fullest member past this share of the quota (percent) is a problem.
    #[arg(long, env = "ETCD_AWS_QUOTA_WARN_PERCENT", default_value_t = 80)]
    pub quota_warn_percent: i64,
    /// A total loss now losing more than this (changes no snapshot or segment
    /// holds yet, by the age of the newest held one) is a problem.
    #[arg(long, env = "ETCD_AWS_LOSS_WINDOW_MAX", default_value = "2m", value_parser = humantime::parse_duration)]
    pub loss_window_max: Duration,
    /// How far back the functions' logs are searched for errors (shown, never
    /// a problem by themselves: what they lead to is).
    #[arg(long, env = "ETCD_AWS_ERRORS_WINDOW", default_value = "1h", value_parser = humantime::parse_duration)]
    pub errors_window: Duration,
}

/// Exit status 1 when the cluster is not healthy.
pub async fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, parts, store) = args.operate.connect().await?;
    let limits = Limits {
        backup_max_age_seconds: args.backup_max_age.as_secs() as i64,
        quota_warn_percent: args.quota_warn_percent,
        loss_window_max_seconds: args.loss_window_max.as_secs() as i64,
    };
    let view = gather(&config, &parts, &store, &limits, args.errors_window).await?;
    args.operate.output.print(&view, &table(&view))?;
    Ok(if view.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn gather(
    config: &aws_config::SdkConfig,
    parts: &StackParts,
    store: &BackupStore,
    limits: &Limits,
    errors_window: std::time::Duration,
) -> Result<StatusView, anyhow::Error> {
    let function = BackupFunction::new(config, &parts.backup_function);
    let cluster = function.status().await?;
    let newest_backup = store.manifests().await?.first().map(|m| NewestBackup {
        key: m.key.clone(),
        revision: m.revision,
        age_seconds: clock::now_unix_seconds() - m.created_at,
    });
    let segments = store.segments().await?;
    let newest_segment = segments.iter().max_by_key(|s| s.last);
    let captured_until = newest_segment.map(|s| s.last);
    let held = captured_until.max(newest_backup.as_ref().map(|b| b.revision));
    let behind_revisions = cluster
        .revision
        .zip(held)
        .map(|(now, held)| (now - held).max(0));
    let segment_held_at = match newest_segment {
        Some(segment) => store
            .read_segment(segment)
            .await?
            .revisions
            .last()
            .map(|r| r.seen_at_ms),
        None => None,
    };
    let snapshot_held_at = newest_backup
        .as_ref()
        .map(|b| (clock::now_unix_seconds() - b.age_seconds) * 1000);
    let capture = Capture {
        captured_until,
        behind_revisions,
        loss_window_seconds: loss_window_seconds(
            behind_revisions,
            segment_held_at.max(snapshot_held_at),
            clock::now_unix_seconds() * 1000,
        ),
    };
    let sqs = aws_sdk_sqs::Client::new(config);
    let errors_window_seconds = errors_window.as_secs() as i64;
    let function_errors = recent_errors(
        &aws_sdk_cloudwatchlogs::Client::new(config),
        &parts.function_log_groups,
        (clock::now_unix_seconds() - errors_window_seconds) * 1000,
    )
    .await;
    let certificates = certificate_days(&cluster.certificates, clock::now_unix_seconds());
    let mut view = StatusView {
        cluster,
        newest_backup,
        capture,
        lifecycle_queue_depth: queue_depth(&sqs, parts.lifecycle_queue_url.as_deref()).await,
        dead_letters: queue_depth(&sqs, parts.dead_letter_queue_url.as_deref()).await,
        function_errors,
        function_errors_window_seconds: errors_window_seconds,
        certificates,
        problems: Vec::new(),
    };
    view.problems = problems(&view, limits);
    Ok(view)
}

/// Messages waiting in a queue; `None` (shown as "not read") when the queue
/// is not known or cannot be read, which the log says.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: Option<&str>) -> Option<u64> {
    let url = url?;
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    match answer {
        Ok(answer) => answer
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok()),
        Err(e) => {
            tracing::warn!(queue = url, error = %etcd_aws_io::aws::error::read(&e).summary, "cannot read the queue's depth");
            None
        }
    }
}

/// The table for people.
fn table(view: &StatusView) -> String {
    let cluster = &view.cluster;
    let mut out = String::new();
    out.push_str(&format!(
        "cluster {}  version {}  revision {}  quota {} bytes\n",
        cluster
            .cluster_id
            .map_or_else(|| "(unknown)".to_owned(), |id| id.to_string()),
        cluster.cluster_version.as_deref().unwrap_or("?"),
        cluster
            .revision
            .map_or_else(|| "?".to_owned(), |r| r.to_string()),
        cluster.quota_bytes
    ));
    out.push_str(&format!(
        "{:<18} {:<20} {:<16} {:<12} {:<8} {:<7} {:<8} {:>12} {:>12}\n",
        "MEMBER", "INSTANCE", "IP", "ZONE", "ROLE", "LEADER", "VERSION", "DB BYTES", "IN USE"
    ));
    for member in &cluster.members {
        let instance = cluster.instance_running(member);
        let ip = instance
            .and_then(|i| i.private_ip.clone())
            .unwrap_or_default();
        let zone = instance
            .and_then(|i| i.availability_zone.clone())
            .unwrap_or_default();
        let role = if member.is_learner {
            "learner"
        } else {
            "voter"
        };
        let (version, size, used) = match &member.status {
            Some(s) => (
                s.version.clone(),
                s.db_size.to_string(),
                s.db_size_in_use.to_string(),
            ),
            None => ("-".into(), "no answer".into(), "-".into()),
        };
        out.push_str(&format!(
            "{:<18} {:<20} {:<16} {:<12} {:<8} {:<7} {:<8} {:>12} {:>12}\n",
            member.id,
            member.name,
            ip,
            zone,
            role,
            if Some(member.id) == cluster.leader_id {
                "yes"
            } else {
                ""
            },
            version,
            size,
            used
        ));
    }
    match &view.newest_backup {
        Some(b) => out.push_str(&format!(
            "newest snapshot: {} (revision {}, {} s old)\n",
            b.key, b.revision, b.age_seconds
        )),
        None => out.push_str("newest snapshot: none\n"),
    }
    let captured = view.capture.captured_until.map_or_else(
        || "no segment yet".to_owned(),
        |until| format!("captured up to revision {until}"),
    );
    let behind = view
        .capture
        .behind_revisions
        .map_or_else(String::new, |b| format!(", {b} revisions behind"));
    let window = view
        .capture
        .loss_window_seconds
        .map_or_else(|| "unknown".to_owned(), |w| format!("{w} s"));
    out.push_str(&format!(
        "continuous backup: {captured}{behind}; a total loss now loses {window}\n"
    ));
    let count = |n: Option<u64>| n.map_or_else(|| "not read".to_owned(), |n| n.to_string());
    out.push_str(&format!(
        "lifecycle queue: {} waiting, {} dead letters\n",
        count(view.lifecycle_queue_depth),
        count(view.dead_letters)
    ));
    out.push_str(&certificate_line(view));
    out.push_str(&function_errors_lines(view));
    if view.problems.is_empty() {
        out.push_str("healthy\n");
    } else {
        out.push_str("NOT HEALTHY:\n");
        for problem in &view.problems {
            out.push_str(&format!("  - {problem}\n"));
        }
    }
    out
}

/// `certificates, days left: node i-1 300.0, functions 600.0`.
fn certificate_line(view: &StatusView) -> String {
    if view.certificates.is_empty() {
        return "certificates: none read (no TLS, or the status job could not)\n".to_owned();
    }
    let each: Vec<String> = view
        .certificates
        .iter()
        .map(|c| {
            let days = c
                .days_left
                .map_or_else(|| "not read".to_owned(), |d| format!("{d:.1}"));
            format!("{} {days}", c.certificate)
        })
        .collect();
    format!("certificates, days left: {}\n", each.join(", "))
}

fn function_errors_lines(view: &StatusView) -> String {
    let window = humantime::format_duration(std::time::Duration::from_secs(
        view.function_errors_window_seconds.max(0) as u64,
    ));
    if view.function_errors.is_empty() {
        return "function errors: log groups not known\n".to_owned();
    }
    let mut out = format!("function errors in the last {window}:\n");
    for group in &view.function_errors {
        let line = match (&group.unreadable, group.count) {
            (Some(reason), _) => format!("not read: {reason}"),
            (None, Some(0) | None) => "none".to_owned(),
            (None, Some(count)) => {
                let more = if group.more { "+" } else { "" };
                format!("{count}{more}, newest first:")
            }
        };
        out.push_str(&format!("  {}: {line}\n", group.log_group));
        for error in &group.recent {
            out.push_str(&format!(
                "    {}  {}\n",
                humantime::format_rfc3339_seconds(clock::from_unix_millis(error.at_ms)),
                error.message
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operate::function_errors;
    use crate::operate::status_view::healthy_view;

    #[test]
    fn a_healthy_cluster_is_shown_as_healthy() {
        assert!(table(&healthy_view()).ends_with("healthy\n"));
    }

    #[test]
    fn the_table_shows_the_cluster_version_and_each_members_zone() {
        let shown = table(&healthy_view());
        assert!(
            shown.starts_with("cluster c1  version 3.5.0  revision 9"),
            "{shown}"
        );
        let row = shown
            .lines()
            .find(|l| l.starts_with("2 "))
            .unwrap_or_default();
        assert!(
            row.contains(" i-2 ") && row.contains(" us-east-1a "),
            "{row}"
        );
    }

    #[test]
    fn the_table_shows_the_days_left_on_each_certificate() {
        let shown = table(&healthy_view());
        assert!(
            shown.contains("certificates, days left: node i-1 300.0, functions 600.0\n"),
            "{shown}"
        );
    }

    #[test]
    fn function_errors_are_shown_newest_first() {
        let mut view = healthy_view();
        view.function_errors = vec![
            function_errors::summarize(
                "/aws/lambda/backup",
                vec![function_errors::ErrorLine {
                    event_id: "e1".into(),
                    at_ms: 1_765_000_000_000,
                    line: r#"{"level":"ERROR","message":"backup failed","error":"S3 refused"}"#
                        .into(),
                }],
                false,
            ),
            function_errors::summarize("/aws/lambda/lifecycle", vec![], false),
        ];
        let shown = table(&view);
        assert!(
            shown.contains("function errors in the last 1h:\n  /aws/lambda/backup: 1, newest first:\n    2025-12-06T05:46:40Z  backup failed: S3 refused\n  /aws/lambda/lifecycle: none\n"),
            "{shown}"
        );
    }
}
