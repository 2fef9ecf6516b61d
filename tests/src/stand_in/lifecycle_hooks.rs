//! The lifecycle hooks as the stand-in knows them. Moto stores hooks but answers
//! DescribeLifecycleHooks with a fixed NotificationTargetARN and RoleARN, so the
//! stand-in keeps its own copy of what was really put.

use std::time::Duration;

use super::lifecycle_actions::HookResult;

pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// AWS's defaults for a hook put without them.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_RESULT: HookResult = HookResult::Abandon;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleHook {
    pub group_name: String,
    pub hook_name: String,
    pub transition: String,
    pub notification_target_arn: Option<String>,
    pub role_arn: Option<String>,
    pub notification_metadata: Option<String>,
    pub heartbeat_timeout: Duration,
    pub default_result: HookResult,
}

/// The fields of one PutLifecycleHook call; absent fields keep an existing hook's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutLifecycleHook {
    pub group_name: String,
    pub hook_name: String,
    pub transition: Option<String>,
    pub notification_target_arn: Option<String>,
    pub role_arn: Option<String>,
    pub notification_metadata: Option<String>,
    pub heartbeat_timeout: Option<Duration>,
    pub default_result: Option<HookResult>,
}

#[derive(Debug, Default)]
pub struct LifecycleHooks {
    hooks: Vec<LifecycleHook>,
}

impl LifecycleHooks {
    /// Creates or updates a hook the way PutLifecycleHook does, and returns it.
    pub fn put(&mut self, put: PutLifecycleHook) -> LifecycleHook {
        let existing = self.position(&put.group_name, &put.hook_name);
        let base = existing.map(|index| self.hooks[index].clone());
        let hook = LifecycleHook {
            transition: put
                .transition
                .or_else(|| base.as_ref().map(|b| b.transition.clone()))
                .unwrap_or_else(|| TERMINATING.to_owned()),
            notification_target_arn: put.notification_target_arn.or_else(|| {
                base.as_ref()
                    .and_then(|b| b.notification_target_arn.clone())
            }),
            role_arn: put
                .role_arn
                .or_else(|| base.as_ref().and_then(|b| b.role_arn.clone())),
            notification_metadata: put
                .notification_metadata
                .or_else(|| base.as_ref().and_then(|b| b.notification_metadata.clone())),
            heartbeat_timeout: put
                .heartbeat_timeout
                .or_else(|| base.as_ref().map(|b| b.heartbeat_timeout))
                .unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT),
            default_result: put
                .default_result
                .or_else(|| base.as_ref().map(|b| b.default_result))
                .unwrap_or(DEFAULT_RESULT),
            group_name: put.group_name,
            hook_name: put.hook_name,
        };
        match existing {
            Some(index) => self.hooks[index] = hook.clone(),
            None => self.hooks.push(hook.clone()),
        }
        hook
    }

    pub fn delete(&mut self, group_name: &str, hook_name: &str) {
        self.hooks
            .retain(|hook| !(hook.group_name == group_name && hook.hook_name == hook_name));
    }

    pub fn of_group(&self, group_name: &str) -> Vec<LifecycleHook> {
        self.hooks
            .iter()
            .filter(|hook| hook.group_name == group_name)
            .cloned()
            .collect()
    }

    /// The hook that holds the group's terminating instances, if it has one.
    pub fn terminating_hook(&self, group_name: &str) -> Option<LifecycleHook> {
        self.hooks
            .iter()
            .find(|hook| hook.group_name == group_name && hook.transition == TERMINATING)
            .cloned()
    }

    fn position(&self, group_name: &str, hook_name: &str) -> Option<usize> {
        self.hooks
            .iter()
            .position(|hook| hook.group_name == group_name && hook.hook_name == hook_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(hook_name: &str) -> PutLifecycleHook {
        PutLifecycleHook {
            group_name: "group".to_owned(),
            hook_name: hook_name.to_owned(),
            transition: Some(TERMINATING.to_owned()),
            ..PutLifecycleHook::default()
        }
    }

    #[test]
    fn a_hook_put_without_timeout_or_result_gets_the_aws_defaults() {
        let mut hooks = LifecycleHooks::default();
        let hook = hooks.put(put("drain"));
        assert_eq!(hook.heartbeat_timeout, Duration::from_secs(3600));
        assert_eq!(hook.default_result, HookResult::Abandon);
    }

    #[test]
    fn putting_a_hook_again_updates_only_the_given_fields() {
        let mut hooks = LifecycleHooks::default();
        hooks.put(PutLifecycleHook {
            notification_target_arn: Some("arn:aws:sqs:us-east-1:123456789012:q".to_owned()),
            ..put("drain")
        });
        let updated = hooks.put(PutLifecycleHook {
            heartbeat_timeout: Some(Duration::from_secs(30)),
            transition: None,
            ..put("drain")
        });
        assert_eq!(
            updated.notification_target_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:q")
        );
        assert_eq!(updated.heartbeat_timeout, Duration::from_secs(30));
        assert_eq!(hooks.of_group("group").len(), 1);
    }

    #[test]
    fn only_a_terminating_hook_holds_terminating_instances() {
        let mut hooks = LifecycleHooks::default();
        hooks.put(PutLifecycleHook {
            transition: Some("autoscaling:EC2_INSTANCE_LAUNCHING".to_owned()),
            ..put("warm-up")
        });
        assert_eq!(hooks.terminating_hook("group"), None);
        hooks.put(put("drain"));
        assert_eq!(
            hooks.terminating_hook("group").map(|hook| hook.hook_name),
            Some("drain".to_owned())
        );
    }

    #[test]
    fn a_deleted_hook_is_gone() {
        let mut hooks = LifecycleHooks::default();
        hooks.put(put("drain"));
        hooks.delete("group", "drain");
        assert!(hooks.of_group("group").is_empty());
    }
}
