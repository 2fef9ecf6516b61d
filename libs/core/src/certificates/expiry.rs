//! How close the cluster's certificates are to expiring, as the maintenance
//! run publishes it: days left on the soonest certificate a member serves, on
//! the functions' client certificate and on the CA, and the thresholds the
//! stack's alarms hold them to.

use std::time::SystemTime;

use crate::contract::metrics::{self, Metric, Unit};

/// The warning alarm: time to find out why nothing renewed (a node's
/// certificate renews at two thirds of its life, months before this).
pub const WARNING_DAYS: f64 = 30.0;
/// The critical alarm: a week left to act before TLS handshakes fail.
pub const CRITICAL_DAYS: f64 = 7.0;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// Days from `now` until `not_after`, to a hundredth; below zero as soon as
/// it is past (a certificate expired a minute ago reads -0.01, not 0).
pub fn days_left(now: SystemTime, not_after: SystemTime) -> f64 {
    match not_after.duration_since(now) {
        Ok(left) => (left.as_secs_f64() / SECONDS_PER_DAY * 100.0).round() / 100.0,
        Err(past) => -(past.duration().as_secs_f64() / SECONDS_PER_DAY * 100.0).ceil() / 100.0,
    }
}

/// When each certificate seen expires. A member whose certificate could not
/// be read is left out of `nodes` (it answered nothing, which other metrics
/// say); one whose handshake failed because its certificate has expired is
/// in it, with an expiry in the past.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiries {
    pub nodes: Vec<SystemTime>,
    pub functions: Option<SystemTime>,
    pub ca: Option<SystemTime>,
}

impl Expiries {
    /// The days-left metrics at `now`: each one only when it was seen.
    pub fn metrics(&self, now: SystemTime) -> Vec<Metric> {
        let soonest_node = self.nodes.iter().min();
        [
            (metrics::NODE_CERTIFICATE_DAYS_LEFT, soonest_node.copied()),
            (metrics::FUNCTIONS_CERTIFICATE_DAYS_LEFT, self.functions),
            (metrics::CA_DAYS_LEFT, self.ca),
        ]
        .into_iter()
        .filter_map(|(name, not_after)| {
            not_after.map(|at| Metric::new(name, Unit::None, days_left(now, at)))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn days_left_count_down_to_a_hundredth_and_below_zero() {
        let now = UNIX_EPOCH + 20_000 * DAY;
        let cases = [
            (now + 30 * DAY, 30.0),
            (now + DAY / 2, 0.5),
            (now + Duration::from_secs(864), 0.01),
            (now, 0.0),
            (now - Duration::from_secs(10), -0.01),
            (now - 2 * DAY, -2.0),
        ];
        for (not_after, days) in cases {
            assert_eq!(days_left(now, not_after), days, "{not_after:?}");
        }
    }

    #[test]
    fn the_node_metric_is_the_soonest_certificate_any_member_serves() {
        let now = UNIX_EPOCH + 20_000 * DAY;
        let expiries = Expiries {
            nodes: vec![now + 200 * DAY, now + 3 * DAY, now + 100 * DAY],
            functions: Some(now + 700 * DAY),
            ca: Some(now + 3650 * DAY),
        };
        let published: Vec<(&str, serde_json::Value)> = expiries
            .metrics(now)
            .into_iter()
            .map(|m| (m.name, m.value))
            .collect();
        assert_eq!(
            published,
            vec![
                (metrics::NODE_CERTIFICATE_DAYS_LEFT, json!(3.0)),
                (metrics::FUNCTIONS_CERTIFICATE_DAYS_LEFT, json!(700.0)),
                (metrics::CA_DAYS_LEFT, json!(3650.0)),
            ]
        );
    }

    #[test]
    fn a_certificate_not_seen_publishes_nothing_rather_than_a_guess() {
        let now = UNIX_EPOCH + 20_000 * DAY;
        let expiries = Expiries {
            nodes: Vec::new(),
            functions: None,
            ca: Some(now + DAY),
        };
        let names: Vec<&str> = expiries.metrics(now).iter().map(|m| m.name).collect();
        assert_eq!(names, vec![metrics::CA_DAYS_LEFT]);
    }
}
