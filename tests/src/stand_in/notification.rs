//! The JSON bodies Auto Scaling sends to a lifecycle hook's SQS queue, field for
//! field and in AWS's order, so consumers are tested against the real shape.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub const ACCOUNT_ID: &str = "123456789012";

/// The message for an instance entering a lifecycle wait state.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleNotification {
    #[serde(rename = "Origin")]
    pub origin: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "Service")]
    pub service: String,
    #[serde(rename = "Time")]
    pub time: String,
    #[serde(rename = "AccountId")]
    pub account_id: String,
    #[serde(rename = "LifecycleTransition")]
    pub lifecycle_transition: String,
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "LifecycleActionToken")]
    pub lifecycle_action_token: String,
    #[serde(rename = "EC2InstanceId")]
    pub ec2_instance_id: String,
    #[serde(rename = "LifecycleHookName")]
    pub lifecycle_hook_name: String,
    #[serde(rename = "AutoScalingGroupName")]
    pub auto_scaling_group_name: String,
    #[serde(
        rename = "NotificationMetadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_metadata: Option<String>,
}

impl LifecycleNotification {
    pub fn terminating(
        instance_id: &str,
        group_name: &str,
        hook_name: &str,
        token: &str,
        metadata: Option<String>,
        at: SystemTime,
    ) -> Self {
        Self {
            origin: "AutoScalingGroup".to_owned(),
            destination: "EC2".to_owned(),
            service: "AWS Auto Scaling".to_owned(),
            time: aws_timestamp(at),
            account_id: ACCOUNT_ID.to_owned(),
            lifecycle_transition: super::lifecycle_hooks::TERMINATING.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            lifecycle_action_token: token.to_owned(),
            ec2_instance_id: instance_id.to_owned(),
            lifecycle_hook_name: hook_name.to_owned(),
            auto_scaling_group_name: group_name.to_owned(),
            notification_metadata: metadata,
        }
    }
}

/// The message Auto Scaling sends when a hook's notification target is set.
#[derive(Debug, Clone, Serialize)]
pub struct TestNotification {
    #[serde(rename = "AccountId")]
    pub account_id: String,
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "AutoScalingGroupARN")]
    pub auto_scaling_group_arn: String,
    #[serde(rename = "AutoScalingGroupName")]
    pub auto_scaling_group_name: String,
    #[serde(rename = "Service")]
    pub service: String,
    #[serde(rename = "Event")]
    pub event: String,
    #[serde(rename = "Time")]
    pub time: String,
}

impl TestNotification {
    pub fn new(group_arn: &str, group_name: &str, at: SystemTime) -> Self {
        Self {
            account_id: ACCOUNT_ID.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            auto_scaling_group_arn: group_arn.to_owned(),
            auto_scaling_group_name: group_name.to_owned(),
            service: "AWS Auto Scaling".to_owned(),
            event: "autoscaling:TEST_NOTIFICATION".to_owned(),
            time: aws_timestamp(at),
        }
    }
}

/// "2016-10-06T20:26:09.386Z": UTC with milliseconds, as AWS writes Time.
pub fn aws_timestamp(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm, which
/// avoids a date-time dependency for one formatting need.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_475_785_569_386);
        assert_eq!(aws_timestamp(at), "2016-10-06T20:26:09.386Z");
    }

    #[test]
    fn timestamps_handle_leap_days() {
        let at = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(aws_timestamp(at), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_terminating_notification_has_the_aws_fields_in_aws_order() {
        let message =
            LifecycleNotification::terminating("i-1", "group", "hook", "token", None, UNIX_EPOCH);
        let json = serde_json::to_string(&message).unwrap_or_default();
        let positions: Vec<Option<usize>> = [
            "Origin",
            "Destination",
            "Service",
            "Time",
            "AccountId",
            "LifecycleTransition",
            "RequestId",
            "LifecycleActionToken",
            "EC2InstanceId",
            "LifecycleHookName",
            "AutoScalingGroupName",
        ]
        .iter()
        .map(|key| json.find(&format!("\"{key}\":")))
        .collect();
        assert!(positions.iter().all(Option::is_some), "{json}");
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{json}");
        assert!(!json.contains("NotificationMetadata"));
    }
}
