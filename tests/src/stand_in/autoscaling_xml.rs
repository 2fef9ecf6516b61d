//! Auto Scaling answers for the calls the stand-in handles itself, and the rewrite
//! that shows held instances in moto's answers with their lifecycle state.

use std::collections::HashMap;
use std::time::SystemTime;

use super::aws_errors::xml_escape;
use super::lifecycle_hooks::LifecycleHook;
use super::notification::aws_timestamp;

const NAMESPACE: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

/// A response with an empty result element, for actions that return nothing.
pub fn empty_result(action: &str) -> String {
    wrap(action, "")
}

/// TerminateInstanceInAutoScalingGroup's answer: the activity that was started.
pub fn terminate_activity(
    group_name: &str,
    instance_id: &str,
    decrement_desired: bool,
    at: SystemTime,
) -> String {
    let time = aws_timestamp(at);
    let capacity_note = if decrement_desired {
        " and the desired capacity was decreased"
    } else {
        ""
    };
    let activity = format!(
        "<Activity><ActivityId>{}</ActivityId>\
         <AutoScalingGroupName>{}</AutoScalingGroupName>\
         <Description>Terminating EC2 instance: {}</Description>\
         <Cause>At {time} instance {} was taken out of service in response to a user request{capacity_note}.</Cause>\
         <StartTime>{time}</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress>\
         <Details>{{}}</Details></Activity>",
        uuid::Uuid::new_v4(),
        xml_escape(group_name),
        xml_escape(instance_id),
        xml_escape(instance_id),
    );
    wrap("TerminateInstanceInAutoScalingGroup", &activity)
}

/// DescribeLifecycleHooks from the stand-in's own record of the hooks.
pub fn describe_lifecycle_hooks(hooks: &[LifecycleHook]) -> String {
    let members: String = hooks.iter().map(hook_member).collect();
    wrap(
        "DescribeLifecycleHooks",
        &format!("<LifecycleHooks>{members}</LifecycleHooks>"),
    )
}

fn hook_member(hook: &LifecycleHook) -> String {
    let optional = |name: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|value| format!("<{name}>{}</{name}>", xml_escape(value)))
            .unwrap_or_default()
    };
    let heartbeat = hook.heartbeat_timeout.as_secs();
    format!(
        "<member><LifecycleHookName>{}</LifecycleHookName>\
         <AutoScalingGroupName>{}</AutoScalingGroupName>\
         <LifecycleTransition>{}</LifecycleTransition>{}{}{}\
         <HeartbeatTimeout>{heartbeat}</HeartbeatTimeout>\
         <GlobalTimeout>{}</GlobalTimeout><DefaultResult>{}</DefaultResult></member>",
        xml_escape(&hook.hook_name),
        xml_escape(&hook.group_name),
        xml_escape(&hook.transition),
        optional("NotificationTargetARN", &hook.notification_target_arn),
        optional("RoleARN", &hook.role_arn),
        optional("NotificationMetadata", &hook.notification_metadata),
        (heartbeat * 100).min(172_800),
        hook.default_result.as_aws_str(),
    )
}

fn wrap(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NAMESPACE}\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        uuid::Uuid::new_v4()
    )
}

/// Replaces the LifecycleState of the listed instances in a DescribeAutoScalingGroups
/// or DescribeAutoScalingInstances answer. Moto writes each instance as a `<member>`
/// whose InstanceId precedes its LifecycleState.
pub fn overlay_lifecycle_states(xml: &str, states: &HashMap<String, &str>) -> String {
    const ID_OPEN: &str = "<InstanceId>";
    const STATE_OPEN: &str = "<LifecycleState>";
    const STATE_CLOSE: &str = "</LifecycleState>";
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(id_at) = rest.find(ID_OPEN) {
        let id_start = id_at + ID_OPEN.len();
        let Some(id_len) = rest[id_start..].find('<') else {
            break;
        };
        let id = &rest[id_start..id_start + id_len];
        let member_end = rest[id_start..]
            .find("</member>")
            .map_or(rest.len(), |at| id_start + at);
        let state_span = rest[id_start..member_end].find(STATE_OPEN).and_then(|at| {
            let value_start = id_start + at + STATE_OPEN.len();
            let value_len = rest[value_start..member_end].find(STATE_CLOSE)?;
            Some((value_start, value_start + value_len))
        });
        match (states.get(id), state_span) {
            (Some(state), Some((value_start, value_end))) => {
                out.push_str(&rest[..value_start]);
                out.push_str(state);
                rest = &rest[value_end..];
            }
            _ => {
                out.push_str(&rest[..id_start]);
                rest = &rest[id_start..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_INSTANCES: &str = "<Instances>\
        <member><InstanceId>i-1</InstanceId><LifecycleState>InService</LifecycleState></member>\
        <member><InstanceId>i-2</InstanceId><LifecycleState>InService</LifecycleState></member>\
        </Instances>";

    #[test]
    fn a_held_instance_shows_its_overridden_state() {
        let states = HashMap::from([("i-2".to_owned(), "Terminating:Wait")]);
        let xml = overlay_lifecycle_states(TWO_INSTANCES, &states);
        assert_eq!(
            xml,
            "<Instances>\
             <member><InstanceId>i-1</InstanceId><LifecycleState>InService</LifecycleState></member>\
             <member><InstanceId>i-2</InstanceId><LifecycleState>Terminating:Wait</LifecycleState></member>\
             </Instances>"
        );
    }

    #[test]
    fn without_held_instances_the_answer_is_unchanged() {
        assert_eq!(
            overlay_lifecycle_states(TWO_INSTANCES, &HashMap::new()),
            TWO_INSTANCES
        );
    }

    #[test]
    fn an_instance_without_a_state_element_does_not_borrow_the_next_ones() {
        let xml = "<member><InstanceId>i-1</InstanceId></member>\
                   <member><InstanceId>i-2</InstanceId><LifecycleState>InService</LifecycleState></member>";
        let states = HashMap::from([("i-1".to_owned(), "Terminating:Wait")]);
        assert_eq!(overlay_lifecycle_states(xml, &states), xml);
    }

    #[test]
    fn a_terminate_activity_is_in_progress_for_the_instance() {
        let xml = terminate_activity("group", "i-1", false, SystemTime::UNIX_EPOCH);
        assert!(xml.starts_with(
            "<TerminateInstanceInAutoScalingGroupResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">"
        ));
        assert!(xml.contains("<Description>Terminating EC2 instance: i-1</Description>"));
        assert!(xml.contains("<StatusCode>InProgress</StatusCode>"));
    }
}
