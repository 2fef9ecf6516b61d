//! The body of one queue message: what Auto Scaling posts for a lifecycle hook.
//!
//! Two shapes arrive on the hook's queue: the terminating notification, and the
//! `autoscaling:TEST_NOTIFICATION` Auto Scaling posts once when the hook is
//! created. Anything else is someone else's message and is refused with a
//! reason an operator can act on, never a panic.

use serde::Deserialize;

pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
pub const TEST_NOTIFICATION: &str = "autoscaling:TEST_NOTIFICATION";

/// How much of an unparsable body goes into the error: enough to recognise it
/// in the logs, not so much that a huge message floods them.
const EXCERPT_CHARS: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Terminating(TerminatingAction),
    /// Sent once when the hook is wired to the queue; nothing to do.
    Test {
        group_name: Option<String>,
    },
}

/// The lifecycle action of an instance waiting in Terminating:Wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminatingAction {
    pub instance_id: String,
    pub group_name: String,
    pub hook_name: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message has no body")]
    Empty,
    #[error("the message body is not JSON ({reason}): {excerpt}")]
    NotJson { reason: String, excerpt: String },
    #[error("the message is not a lifecycle hook notification ({reason}): {excerpt}")]
    WrongShape { reason: String, excerpt: String },
    #[error("the notification is for {0}, not {TERMINATING}; this queue should only receive the terminating hook's messages")]
    WrongTransition(String),
}

/// The fields of AWS's notification this function needs; AWS sends more
/// (Origin, Destination, Time, RequestId, ...), which are ignored.
#[derive(Deserialize)]
struct RawLifecycleMessage {
    #[serde(rename = "LifecycleTransition")]
    transition: String,
    #[serde(rename = "EC2InstanceId")]
    instance_id: String,
    #[serde(rename = "AutoScalingGroupName")]
    group_name: String,
    #[serde(rename = "LifecycleHookName")]
    hook_name: String,
    #[serde(rename = "LifecycleActionToken")]
    token: String,
}

/// Parses a message body. A hook that notifies an SNS topic subscribed by the
/// queue wraps the notification in SNS's envelope; that is unwrapped first, so
/// both wirings work.
pub fn parse(body: Option<&str>) -> Result<Notification, ParseError> {
    let body = body
        .filter(|b| !b.trim().is_empty())
        .ok_or(ParseError::Empty)?;
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| ParseError::NotJson {
        reason: e.to_string(),
        excerpt: excerpt(body),
    })?;
    let value = unwrap_sns(value, body)?;
    if value.get("Event").and_then(|e| e.as_str()) == Some(TEST_NOTIFICATION) {
        let group_name = value
            .get("AutoScalingGroupName")
            .and_then(|g| g.as_str())
            .map(str::to_owned);
        return Ok(Notification::Test { group_name });
    }
    let raw: RawLifecycleMessage =
        serde_json::from_value(value).map_err(|e| ParseError::WrongShape {
            reason: e.to_string(),
            excerpt: excerpt(body),
        })?;
    if raw.transition != TERMINATING {
        return Err(ParseError::WrongTransition(raw.transition));
    }
    for (field, value) in [
        ("EC2InstanceId", &raw.instance_id),
        ("AutoScalingGroupName", &raw.group_name),
        ("LifecycleHookName", &raw.hook_name),
        ("LifecycleActionToken", &raw.token),
    ] {
        if value.trim().is_empty() {
            return Err(ParseError::WrongShape {
                reason: format!("{field} is empty"),
                excerpt: excerpt(body),
            });
        }
    }
    Ok(Notification::Terminating(TerminatingAction {
        instance_id: raw.instance_id,
        group_name: raw.group_name,
        hook_name: raw.hook_name,
        token: raw.token,
    }))
}

fn unwrap_sns(value: serde_json::Value, body: &str) -> Result<serde_json::Value, ParseError> {
    let is_sns = value.get("Type").and_then(|t| t.as_str()) == Some("Notification")
        && value.get("TopicArn").is_some();
    if !is_sns {
        return Ok(value);
    }
    let inner = value
        .get("Message")
        .and_then(|m| m.as_str())
        .ok_or_else(|| ParseError::WrongShape {
            reason: "SNS envelope without a Message string".to_owned(),
            excerpt: excerpt(body),
        })?;
    serde_json::from_str(inner).map_err(|e| ParseError::NotJson {
        reason: format!("inside the SNS envelope: {e}"),
        excerpt: excerpt(inner),
    })
}

fn excerpt(body: &str) -> String {
    let mut cut: String = body.chars().take(EXCERPT_CHARS).collect();
    if body.chars().count() > EXCERPT_CHARS {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminating notification exactly as Auto Scaling writes it.
    const AWS_TERMINATING: &str = r#"{"Origin":"AutoScalingGroup","Destination":"EC2","Service":"AWS Auto Scaling","Time":"2016-10-06T20:26:09.386Z","AccountId":"123456789012","LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING","RequestId":"b2a4c7e8-0000-4000-8000-000000000000","LifecycleActionToken":"71514b9d-6a40-4b26-8523-05e7ee35fa40","EC2InstanceId":"i-0598c7d356eba48d7","LifecycleHookName":"etcd-member-removal","AutoScalingGroupName":"etcd"}"#;

    const AWS_TEST: &str = r#"{"AccountId":"123456789012","RequestId":"r","AutoScalingGroupARN":"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/etcd","AutoScalingGroupName":"etcd","Service":"AWS Auto Scaling","Event":"autoscaling:TEST_NOTIFICATION","Time":"2016-10-06T20:26:09.386Z"}"#;

    fn terminating() -> TerminatingAction {
        TerminatingAction {
            instance_id: "i-0598c7d356eba48d7".to_owned(),
            group_name: "etcd".to_owned(),
            hook_name: "etcd-member-removal".to_owned(),
            token: "71514b9d-6a40-4b26-8523-05e7ee35fa40".to_owned(),
        }
    }

    #[test]
    fn the_aws_terminating_notification_parses_to_its_action() {
        assert_eq!(
            parse(Some(AWS_TERMINATING)),
            Ok(Notification::Terminating(terminating()))
        );
    }

    #[test]
    fn the_test_notification_is_recognised() {
        assert_eq!(
            parse(Some(AWS_TEST)),
            Ok(Notification::Test {
                group_name: Some("etcd".to_owned())
            })
        );
    }

    #[test]
    fn a_notification_inside_an_sns_envelope_is_unwrapped() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:etcd-lifecycle",
            "Message": AWS_TERMINATING,
        })
        .to_string();
        assert_eq!(
            parse(Some(&envelope)),
            Ok(Notification::Terminating(terminating()))
        );
    }

    #[test]
    fn a_missing_or_blank_body_is_refused() {
        assert_eq!(parse(None), Err(ParseError::Empty));
        assert_eq!(parse(Some("  \n")), Err(ParseError::Empty));
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_with_an_excerpt() {
        let error = parse(Some("hello, queue")).err();
        assert!(
            matches!(&error, Some(ParseError::NotJson { excerpt, .. }) if excerpt == "hello, queue"),
            "{error:?}"
        );
    }

    #[test]
    fn a_long_garbage_body_is_cut_in_the_error() {
        let long = "x".repeat(10_000);
        let message = parse(Some(&long)).err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.len() < 400));
    }

    #[test]
    fn json_of_another_shape_is_refused() {
        let error = parse(Some(r#"{"hello":"world"}"#)).err();
        assert!(
            matches!(error, Some(ParseError::WrongShape { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn a_notification_with_an_empty_instance_id_is_refused() {
        let body = AWS_TERMINATING.replace("i-0598c7d356eba48d7", "");
        let error = parse(Some(&body)).err();
        assert!(
            matches!(&error, Some(ParseError::WrongShape { reason, .. }) if reason.contains("EC2InstanceId")),
            "{error:?}"
        );
    }

    #[test]
    fn a_launching_notification_is_refused_as_the_wrong_transition() {
        let body = AWS_TERMINATING.replace("EC2_INSTANCE_TERMINATING", "EC2_INSTANCE_LAUNCHING");
        assert_eq!(
            parse(Some(&body)),
            Err(ParseError::WrongTransition(
                "autoscaling:EC2_INSTANCE_LAUNCHING".to_owned()
            ))
        );
    }

    #[test]
    fn a_json_array_or_number_is_refused_as_the_wrong_shape() {
        for body in ["[1,2]", "42", "null"] {
            let error = parse(Some(body)).err();
            assert!(
                matches!(error, Some(ParseError::WrongShape { .. })),
                "{body}: {error:?}"
            );
        }
    }
}
