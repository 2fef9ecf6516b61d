//! What a member says about its versions on etcd's plain-HTTP metrics port
//! (the one the load balancer's health check uses; no certificate needed):
//! the release it runs (`etcd_server_version`) and the cluster version it
//! holds (`etcd_cluster_version`, the `etcdcluster` of its `/version`), and
//! its counters (what it sent its peers, for the cost bench).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The agent's default `--metrics-port`, which the harness keeps.
pub const METRICS_PORT: u16 = 2381;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberVersions {
    /// The member's own release, `3.5.16`.
    pub server: String,
    /// The cluster version the member holds, `3.5`: the lowest minor version
    /// among the members, which the leader raises once every member runs a newer one.
    pub cluster: String,
}

/// Reads the versions of the member listening on `ip`'s metrics port.
pub async fn member_versions(ip: Ipv4Addr) -> anyhow::Result<MemberVersions> {
    let metrics = tokio::time::timeout(Duration::from_secs(5), get_metrics(ip))
        .await
        .with_context(|| format!("{ip}:{METRICS_PORT} did not answer /metrics within 5s"))??;
    parse_versions(&metrics).with_context(|| format!("the metrics of {ip}:{METRICS_PORT}"))
}

/// The sum of every series of the counter `metric` on `ip`'s metrics port
/// (`etcd_network_peer_sent_bytes_total` has one per peer).
pub async fn counter_total(ip: Ipv4Addr, metric: &str) -> anyhow::Result<f64> {
    let metrics = tokio::time::timeout(Duration::from_secs(5), get_metrics(ip))
        .await
        .with_context(|| format!("{ip}:{METRICS_PORT} did not answer /metrics within 5s"))??;
    Ok(sum_of(&metrics, metric))
}

/// The values of `metric`'s series (`metric 3` or `metric{...} 3`), added up.
fn sum_of(metrics: &str, metric: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?.1,
                None if rest.starts_with(' ') => rest,
                None => return None,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

async fn get_metrics(ip: Ipv4Addr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect((ip, METRICS_PORT))
        .await
        .with_context(|| format!("cannot connect to {ip}:{METRICS_PORT}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
        bail!(
            "GET /metrics answered {}",
            answer.lines().next().unwrap_or("nothing")
        );
    }
    Ok(answer)
}

/// The two gauges out of Prometheus text: each is 1 for the current label.
fn parse_versions(metrics: &str) -> anyhow::Result<MemberVersions> {
    Ok(MemberVersions {
        server: current_label(metrics, "etcd_server_version", "server_version")
            .context("no etcd_server_version gauge at 1")?,
        cluster: current_label(metrics, "etcd_cluster_version", "cluster_version")
            .context("no etcd_cluster_version gauge at 1 (the member has not learnt the cluster version yet)")?,
    })
}

/// `value` of the line `metric{label="value"} 1`.
fn current_label(metrics: &str, metric: &str, label: &str) -> Option<String> {
    let prefix = format!("{metric}{{{label}=\"");
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(&prefix)?;
        let (value, gauge) = rest.split_once("\"}")?;
        (gauge.trim() == "1").then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS_3_4: &str = "\
# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current cluster version
# TYPE etcd_cluster_version gauge
etcd_cluster_version{cluster_version=\"3.4\"} 1
# TYPE etcd_server_version gauge
etcd_server_version{server_version=\"3.4.23\"} 1
";

    #[test]
    fn the_member_release_and_the_cluster_version_are_read_from_their_gauges() {
        assert_eq!(
            parse_versions(METRICS_3_4).ok(),
            Some(MemberVersions {
                server: "3.4.23".into(),
                cluster: "3.4".into()
            })
        );
    }

    #[test]
    fn a_cluster_version_whose_gauge_was_set_back_to_zero_is_not_current() {
        let metrics = "etcd_cluster_version{cluster_version=\"3.4\"} 0\n\
                       etcd_cluster_version{cluster_version=\"3.5\"} 1\n\
                       etcd_server_version{server_version=\"3.5.16\"} 1\n";
        assert_eq!(
            parse_versions(metrics).map(|v| v.cluster).ok().as_deref(),
            Some("3.5")
        );
    }

    #[test]
    fn a_counter_is_the_sum_of_its_series_and_not_of_its_longer_namesakes() {
        let metrics = "# TYPE etcd_network_peer_sent_bytes_total counter\n\
                       etcd_network_peer_sent_bytes_total{To=\"a\"} 100\n\
                       etcd_network_peer_sent_bytes_total{To=\"b\"} 2.5e+02\n\
                       etcd_network_peer_sent_bytes_total_extra 7\n";
        assert_eq!(sum_of(metrics, "etcd_network_peer_sent_bytes_total"), 350.0);
        assert_eq!(
            sum_of("other 1\n", "etcd_network_peer_sent_bytes_total"),
            0.0
        );
    }

    #[test]
    fn a_member_without_a_cluster_version_yet_is_an_error() {
        let metrics = "etcd_server_version{server_version=\"3.5.16\"} 1\n";
        let error = parse_versions(metrics).map_err(|e| format!("{e:#}"));
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.contains("etcd_cluster_version")),
            "{error:?}"
        );
    }
}
