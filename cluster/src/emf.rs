//! CloudWatch embedded metric format: one JSON line on stdout per report,
//! which CloudWatch Logs turns into metrics without an API call (and without
//! the function needing cloudwatch:PutMetricData or a route to it).
//!
//! Every metric of the project is in namespace [`names::metrics::NAMESPACE`]
//! with the group's name as its one dimension, which the stack's alarms and
//! dashboard read.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::names;

/// The units the project's metrics use (CloudWatch's names for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Bytes,
    Count,
    Percent,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Seconds => "Seconds",
            Self::Bytes => "Bytes",
            Self::Count => "Count",
            Self::Percent => "Percent",
            Self::None => "None",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: Value,
}

impl Metric {
    pub fn new(name: &'static str, unit: Unit, value: impl Into<Value>) -> Self {
        Self {
            name,
            unit,
            value: value.into(),
        }
    }
}

/// A value the line carries for Logs Insights without declaring it a metric
/// (an identifier, a name): CloudWatch keeps it as a field of the log event.
pub type Property = (&'static str, Value);

/// The EMF document for `metrics` of `group`, with `properties` beside them;
/// `timestamp_ms` is milliseconds since the epoch.
pub fn document(
    group: &str,
    metrics: &[Metric],
    properties: &[Property],
    timestamp_ms: i64,
) -> Value {
    let declared: Vec<Value> = metrics
        .iter()
        .map(|m| json!({ "Name": m.name, "Unit": m.unit.as_str() }))
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": names::metrics::NAMESPACE,
                "Dimensions": [[names::metrics::GROUP_DIMENSION]],
                "Metrics": declared,
            }],
        }),
    );
    document.insert(
        names::metrics::GROUP_DIMENSION.to_owned(),
        Value::from(group),
    );
    for (name, value) in properties {
        document.insert((*name).to_owned(), value.clone());
    }
    for metric in metrics {
        document.insert(metric.name.to_owned(), metric.value.clone());
    }
    Value::Object(document)
}

/// The document as the single line CloudWatch Logs expects.
pub fn line(group: &str, metrics: &[Metric], timestamp_ms: i64) -> String {
    document(group, metrics, &[], timestamp_ms).to_string()
}

/// Prints the line on stdout, now: printed, not logged, because CloudWatch
/// reads the metrics from the bare JSON line. Returns it.
pub fn print(group: &str, metrics: &[Metric]) -> String {
    print_with(group, metrics, &[])
}

/// [`print`] with properties beside the metrics.
pub fn print_with(group: &str, metrics: &[Metric], properties: &[Property]) -> String {
    let line = document(group, metrics, properties, unix_millis()).to_string();
    println!("{line}");
    line
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let text = line(
            "etcd-group",
            &[
                Metric::new("Bytes", Unit::Bytes, 1_234),
                Metric::new("Age", Unit::Seconds, 2.5),
            ],
            1_700_000_000_000,
        );
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    #[test]
    fn the_line_declares_namespace_dimension_and_each_metric_with_its_unit() {
        let doc = sample();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EtcdAws");
        assert_eq!(directive["Dimensions"], json!([["GroupName"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Bytes", "Unit": "Bytes"}, {"Name": "Age", "Unit": "Seconds"}])
        );
    }

    #[test]
    fn every_declared_metric_and_the_dimension_have_a_value_at_the_top_level() {
        let doc = sample();
        assert_eq!(doc["GroupName"], "etcd-group");
        assert_eq!(doc["Bytes"], json!(1_234));
        assert_eq!(doc["Age"], json!(2.5));
    }

    #[test]
    fn a_property_is_a_field_of_the_line_but_not_a_declared_metric() {
        let doc = document(
            "etcd-group",
            &[Metric::new("Bytes", Unit::Bytes, 1)],
            &[("LeaderId", json!("8e9e05c52164694d"))],
            1,
        );
        assert_eq!(doc["LeaderId"], "8e9e05c52164694d");
        let declared = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(declared, &json!([{"Name": "Bytes", "Unit": "Bytes"}]));
    }

    #[test]
    fn the_timestamp_is_in_milliseconds() {
        assert_eq!(sample()["_aws"]["Timestamp"], json!(1_700_000_000_000_i64));
    }
}
