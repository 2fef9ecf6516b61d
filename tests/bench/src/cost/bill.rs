//! The monthly bill of a stack: its inventory (from the template), its usage
//! (measured on the stand-in, scaled to a month) and the price table. Pure.

use super::inventory::{Inventory, DETAILED_MONITORING_METRICS};
use super::prices as price;

/// What the stack uses in a month beyond what it holds, at one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// S3 PUT, COPY, POST and LIST requests; GET and HEAD requests.
    pub s3_put_class: f64,
    pub s3_get_class: f64,
    /// Seconds each function runs in the month, by logical id.
    pub function_seconds: Vec<(String, f64)>,
    pub function_requests: f64,
    /// Bytes the nodes and the functions log (CloudWatch Logs ingestion).
    pub log_gb: f64,
    pub secret_calls: f64,
    /// What the members send each other across zones.
    pub cross_az_gb: f64,
    /// Custom metrics the functions publish.
    pub metrics: u32,
}

/// One line of the bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: &'static str,
    pub usd: f64,
    /// Whether it is part of the nodes themselves (instances, volumes, their
    /// monitoring, what they send each other) rather than what surrounds them.
    pub node: bool,
}

/// The lines of the bill; the price table's missing instance type is a zero
/// line named for it.
pub fn bill(inventory: &Inventory, usage: &Usage) -> Vec<Line> {
    let hours = price::HOURS_PER_MONTH;
    let nodes = f64::from(inventory.nodes);
    let lambda_gb_seconds = |arm64: bool| -> f64 {
        inventory
            .functions
            .iter()
            .filter(|f| f.arm64 == arm64)
            .map(|f| {
                let seconds = usage
                    .function_seconds
                    .iter()
                    .filter(|(id, _)| *id == f.id)
                    .map(|(_, s)| s)
                    .sum::<f64>();
                seconds * f.memory_mb / 1024.0
            })
            .sum()
    };
    let traces = usage.function_requests;
    vec![
        Line {
            item: "nodes (on-demand instances)",
            usd: nodes * price::instance_hourly(&inventory.instance_type).unwrap_or(0.0) * hours,
            node: true,
        },
        Line {
            item: "nodes' volumes (gp3)",
            usd: nodes * inventory.volume_gb * price::GP3_GB_MONTH,
            node: true,
        },
        Line {
            item: "nodes' detailed monitoring",
            usd: if inventory.detailed_monitoring {
                nodes * f64::from(DETAILED_MONITORING_METRICS) * price::CLOUDWATCH_METRIC_MONTH
            } else {
                0.0
            },
            node: true,
        },
        Line {
            item: "replication between zones",
            usd: usage.cross_az_gb * price::CROSS_AZ_GB,
            node: true,
        },
        Line {
            item: "load balancer",
            usd: f64::from(inventory.load_balancers) * price::NLB_HOURLY * hours,
            node: false,
        },
        Line {
            item: "interface endpoints",
            usd: f64::from(inventory.interface_endpoint_zones)
                * price::INTERFACE_ENDPOINT_AZ_HOURLY
                * hours,
            node: false,
        },
        Line {
            item: "NAT gateway",
            usd: f64::from(inventory.nat_gateways) * price::NAT_HOURLY * hours,
            node: false,
        },
        Line {
            item: "functions (compute and requests)",
            usd: lambda_gb_seconds(true) * price::LAMBDA_GB_SECOND_ARM64
                + lambda_gb_seconds(false) * price::LAMBDA_GB_SECOND_X86_64
                + usage.function_requests * price::LAMBDA_REQUEST,
            node: false,
        },
        Line {
            item: "X-Ray traces (past the free 100,000)",
            usd: (traces - price::XRAY_FREE_TRACES).max(0.0) * price::XRAY_TRACE,
            node: false,
        },
        Line {
            item: "S3 requests",
            usd: usage.s3_put_class * price::S3_PUT_CLASS_REQUEST
                + usage.s3_get_class * price::S3_GET_CLASS_REQUEST,
            node: false,
        },
        Line {
            item: "custom metrics",
            usd: f64::from(usage.metrics) * price::CLOUDWATCH_METRIC_MONTH,
            node: false,
        },
        Line {
            item: "alarms",
            usd: f64::from(inventory.alarms) * price::CLOUDWATCH_ALARM_MONTH,
            node: false,
        },
        Line {
            item: "dashboard",
            usd: f64::from(inventory.dashboards) * price::CLOUDWATCH_DASHBOARD_MONTH,
            node: false,
        },
        Line {
            item: "node logs' KMS key",
            usd: f64::from(inventory.kms_keys) * price::KMS_KEY_MONTH,
            node: false,
        },
        Line {
            item: "logs ingested",
            usd: usage.log_gb * price::LOGS_INGESTED_GB,
            node: false,
        },
        Line {
            item: "secrets",
            usd: f64::from(inventory.secrets) * price::SECRET_MONTH
                + usage.secret_calls * price::SECRET_API_CALL,
            node: false,
        },
    ]
}

/// (the nodes' share, everything else) of a bill.
pub fn split(lines: &[Line]) -> (f64, f64) {
    lines.iter().fold((0.0, 0.0), |(nodes, rest), line| {
        if line.node {
            (nodes + line.usd, rest)
        } else {
            (nodes, rest + line.usd)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::inventory::Function;

    fn inventory() -> Inventory {
        Inventory {
            nodes: 3,
            instance_type: "t4g.medium".into(),
            volume_gb: 20.0,
            detailed_monitoring: false,
            load_balancers: 1,
            interface_endpoint_zones: 15,
            nat_gateways: 0,
            functions: vec![Function {
                id: "CaptureFunction".into(),
                memory_mb: 256.0,
                arm64: true,
                scheduled_runs_per_month: 43_800.0,
                timeout_seconds: 900,
                environment: Vec::new(),
            }],
            alarms: 10,
            dashboards: 1,
            metric_filters: 0,
            kms_keys: 1,
            secrets: 2,
        }
    }

    fn line(lines: &[Line], item: &str) -> f64 {
        lines
            .iter()
            .find(|l| l.item == item)
            .map_or(f64::NAN, |l| l.usd)
    }

    #[test]
    fn three_t4g_medium_nodes_cost_their_hours() {
        let lines = bill(&inventory(), &Usage::default());
        let nodes = line(&lines, "nodes (on-demand instances)");
        assert!((nodes - 3.0 * 0.0336 * 730.0).abs() < 1e-9, "{nodes}");
    }

    #[test]
    fn each_endpoint_is_paid_in_each_zone() {
        let lines = bill(&inventory(), &Usage::default());
        let endpoints = line(&lines, "interface endpoints");
        assert!(
            (endpoints - 15.0 * 0.01 * 730.0).abs() < 1e-9,
            "{endpoints}"
        );
    }

    #[test]
    fn a_function_is_paid_by_its_memory_and_seconds() {
        let usage = Usage {
            function_seconds: vec![("CaptureFunction".into(), 1024.0)],
            ..Usage::default()
        };
        let lines = bill(&inventory(), &usage);
        let functions = line(&lines, "functions (compute and requests)");
        assert!(
            (functions - 256.0 * price::LAMBDA_GB_SECOND_ARM64).abs() < 1e-12,
            "{functions}"
        );
    }

    #[test]
    fn the_nodes_share_is_what_the_nodes_are() {
        let lines = bill(&inventory(), &Usage::default());
        let (nodes, rest) = split(&lines);
        assert!(nodes > 0.0 && rest > 0.0);
        let total: f64 = lines.iter().map(|l| l.usd).sum();
        assert!((nodes + rest - total).abs() < 1e-9);
    }
}
