//! What a run on the stand-in saw, and the month it implies: requests, bytes
//! and run times over a measured stretch, scaled to 730 hours. Pure: the
//! measurement ([`super::measure`]) fills these in.

use std::collections::BTreeSet;

use serde_json::Value;

use super::bill::Usage;
use super::inventory::Inventory;
use super::prices::HOURS_PER_MONTH;
use crate::cost::inventory::Function;
use etcd_aws_template::names::logical as function_ids;

const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;

/// How S3 bills a request: PUT, COPY, POST and LIST at one price, GET and
/// the rest at a tenth of it, DELETE and aborting an upload free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Class {
    Put,
    Get,
    Free,
}

impl S3Class {
    pub fn of(operation: &str) -> S3Class {
        const PUT: [&str; 7] = [
            "Put", "Copy", "Create", "Upload", "Complete", "List", "Post",
        ];
        if operation.starts_with("Delete") || operation.starts_with("Abort") {
            S3Class::Free
        } else if PUT.iter().any(|prefix| operation.starts_with(prefix)) {
            S3Class::Put
        } else {
            S3Class::Get
        }
    }
}

/// One measured stretch at one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stretch {
    pub seconds: f64,
    /// Writes the cluster acknowledged per second during it.
    pub writes_per_second: f64,
    /// The nodes' and the functions' S3 requests, by class.
    pub s3_put: u64,
    pub s3_get: u64,
    pub secret_calls: u64,
    /// What the nodes and the functions logged.
    pub log_bytes: u64,
    /// What the members sent each other.
    pub peer_bytes: f64,
    /// The median length of a capture run and of a maintenance run that
    /// started in it.
    pub capture_run_seconds: f64,
    pub maintenance_run_seconds: f64,
    /// The S3 requests behind `s3_put` and `s3_get`: (caller, operation, count).
    pub s3_requests: Vec<(String, String, u64)>,
}

/// Everything measured: two stretches, and what does not depend on the load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub idle: Stretch,
    pub busy: Stretch,
    /// The median length of a scheduled backup run and of a reconcile run.
    pub backup_run_seconds: f64,
    pub reconcile_run_seconds: f64,
    /// Distinct custom metrics (name and dimensions) the functions published.
    pub published_metrics: u32,
    /// The capture function's peak resident memory, and the share of one
    /// CPU it used, under `peak_writes_per_second`.
    pub capture_peak_rss_mib: f64,
    pub capture_cpu_share: f64,
    pub peak_writes_per_second: f64,
}

/// The month a stack of `inventory` spends at `stretch`'s workload.
pub fn month(inventory: &Inventory, observed: &Observed, stretch: &Stretch) -> Usage {
    let per_month = |count: f64| {
        if stretch.seconds > 0.0 {
            count / stretch.seconds * SECONDS_PER_MONTH
        } else {
            0.0
        }
    };
    let run_seconds = |function: &Function| -> f64 {
        let mean = match function.id.as_str() {
            function_ids::CAPTURE_FUNCTION => stretch.capture_run_seconds,
            function_ids::MAINTENANCE_FUNCTION => stretch.maintenance_run_seconds,
            function_ids::BACKUP_FUNCTION => observed.backup_run_seconds,
            function_ids::LIFECYCLE_FUNCTION => observed.reconcile_run_seconds,
            _ => 0.0,
        };
        mean * function.scheduled_runs_per_month
    };
    Usage {
        s3_put_class: per_month(stretch.s3_put as f64),
        s3_get_class: per_month(stretch.s3_get as f64),
        function_seconds: inventory
            .functions
            .iter()
            .map(|f| (f.id.clone(), run_seconds(f)))
            .collect(),
        function_requests: inventory
            .functions
            .iter()
            .map(|f| f.scheduled_runs_per_month)
            .sum(),
        log_gb: per_month(stretch.log_bytes as f64) / 1e9,
        secret_calls: per_month(stretch.secret_calls as f64),
        // Three members in three zones: everything a member sends a peer
        // crosses a zone.
        cross_az_gb: per_month(stretch.peer_bytes) / 1e9,
        metrics: observed.published_metrics + inventory.metric_filters,
    }
}

/// The distinct metrics (a name with one set of dimension values) that
/// embedded-metric-format lines define: what CloudWatch bills as custom metrics.
pub fn distinct_metrics<'a>(lines: impl IntoIterator<Item = &'a Value>) -> u32 {
    let mut metrics = BTreeSet::new();
    for line in lines {
        let Some(directives) = line["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        for directive in directives {
            let dimension_sets = directive["Dimensions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let dimension_sets = if dimension_sets.is_empty() {
                vec![Value::Array(Vec::new())]
            } else {
                dimension_sets
            };
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let Some(name) = metric["Name"].as_str() else {
                    continue;
                };
                for set in &dimension_sets {
                    let values: Vec<String> = set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|dimension| format!("{dimension}={}", line[dimension]))
                        .collect();
                    metrics.insert((directive["Namespace"].to_string(), name.to_owned(), values));
                }
            }
        }
    }
    metrics.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn s3_requests_are_billed_by_their_class() {
        let table = [
            ("PutObject", S3Class::Put),
            ("CopyObject", S3Class::Put),
            ("CreateMultipartUpload", S3Class::Put),
            ("UploadPart", S3Class::Put),
            ("CompleteMultipartUpload", S3Class::Put),
            ("ListObjectsV2", S3Class::Put),
            ("GetObject", S3Class::Get),
            ("HeadObject", S3Class::Get),
            ("GetObjectRetention", S3Class::Get),
            ("DeleteObject", S3Class::Free),
            ("DeleteObjects", S3Class::Free),
            ("AbortMultipartUpload", S3Class::Free),
        ];
        for (operation, class) in table {
            assert_eq!(S3Class::of(operation), class, "{operation}");
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            nodes: 3,
            instance_type: "t4g.medium".into(),
            volume_gb: 20.0,
            detailed_monitoring: false,
            load_balancers: 1,
            interface_endpoint_zones: 0,
            nat_gateways: 0,
            functions: vec![Function {
                id: function_ids::CAPTURE_FUNCTION.into(),
                memory_mb: 256.0,
                arm64: true,
                scheduled_runs_per_month: 43_800.0,
                timeout_seconds: 900,
                environment: Vec::new(),
            }],
            alarms: 0,
            dashboards: 0,
            metric_filters: 4,
            kms_keys: 0,
            secrets: 0,
        }
    }

    #[test]
    fn requests_in_an_hour_are_730_times_that_in_a_month() {
        let stretch = Stretch {
            seconds: 3600.0,
            s3_put: 60,
            s3_get: 2,
            ..Stretch::default()
        };
        let usage = month(&inventory(), &Observed::default(), &stretch);
        assert_eq!(usage.s3_put_class, 60.0 * 730.0);
        assert_eq!(usage.s3_get_class, 2.0 * 730.0);
    }

    #[test]
    fn a_function_runs_its_mean_run_at_each_scheduled_run() {
        let stretch = Stretch {
            seconds: 60.0,
            capture_run_seconds: 70.0,
            ..Stretch::default()
        };
        let usage = month(&inventory(), &Observed::default(), &stretch);
        assert_eq!(
            usage.function_seconds,
            vec![(function_ids::CAPTURE_FUNCTION.to_owned(), 70.0 * 43_800.0)]
        );
        assert_eq!(usage.function_requests, 43_800.0);
    }

    #[test]
    fn metric_filters_count_as_custom_metrics_beside_the_published_ones() {
        let observed = Observed {
            published_metrics: 10,
            ..Observed::default()
        };
        let usage = month(&inventory(), &observed, &Stretch::default());
        assert_eq!(usage.metrics, 14);
    }

    #[test]
    fn an_empty_stretch_implies_no_usage_rather_than_infinity() {
        let stretch = Stretch {
            s3_put: 5,
            ..Stretch::default()
        };
        let usage = month(&inventory(), &Observed::default(), &stretch);
        assert_eq!(usage.s3_put_class, 0.0);
    }

    #[test]
    fn a_metric_is_counted_once_per_set_of_dimension_values() {
        let line = |member: &str, size: u64| {
            json!({
                "_aws": { "CloudWatchMetrics": [{
                    "Namespace": "EtcdAws",
                    "Dimensions": [["Cluster"], ["Cluster", "Member"]],
                    "Metrics": [{ "Name": "DbSize", "Unit": "Bytes" }],
                }]},
                "Cluster": "c",
                "Member": member,
                "DbSize": size,
            })
        };
        let lines = [line("a", 1), line("a", 2), line("b", 3)];
        // DbSize by Cluster once, and by (Cluster, Member) for a and b.
        assert_eq!(distinct_metrics(&lines), 3);
    }

    #[test]
    fn a_metric_without_dimensions_is_one_metric() {
        let line = json!({
            "_aws": { "CloudWatchMetrics": [{
                "Namespace": "EtcdAws",
                "Dimensions": [],
                "Metrics": [{ "Name": "CaptureLag" }],
            }]},
            "CaptureLag": 1,
        });
        assert_eq!(distinct_metrics([&line, &line]), 1);
    }

    #[test]
    fn lines_without_metrics_count_nothing() {
        assert_eq!(distinct_metrics(&[json!({"message": "hello"})]), 0);
    }
}
