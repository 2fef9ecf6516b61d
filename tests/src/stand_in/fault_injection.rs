//! Faults the proxy applies to matching AWS calls before moto sees them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What happens to a call that a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// Answer with this AWS error in the service's own error shape; moto never sees the call.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// Wait, then forward as usual.
    Delay(Duration),
    /// Forward to moto (so the call takes effect) but close the connection without an
    /// answer, the way a response lost on the network looks to the caller.
    DropResponse,
}

/// Applies `effect` to the next `count` calls of `operation` on `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// "autoscaling", "ec2", "s3" or "sqs": the SigV4 credential scope's service.
    pub service: String,
    /// The operation name as AWS spells it ("CompleteLifecycleAction", "UploadPart"),
    /// or "*" for every operation of the service.
    pub operation: String,
    pub count: usize,
    pub effect: FaultEffect,
}

impl FaultRule {
    pub fn error(service: &str, operation: &str, status: u16, code: &str, message: &str) -> Self {
        Self::once(
            service,
            operation,
            FaultEffect::Error {
                status,
                code: code.to_owned(),
                message: message.to_owned(),
            },
        )
    }

    pub fn delay(service: &str, operation: &str, delay: Duration) -> Self {
        Self::once(service, operation, FaultEffect::Delay(delay))
    }

    pub fn drop_response(service: &str, operation: &str) -> Self {
        Self::once(service, operation, FaultEffect::DropResponse)
    }

    /// Applies the rule to the next `count` matching calls instead of one.
    pub fn times(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    fn once(service: &str, operation: &str, effect: FaultEffect) -> Self {
        Self {
            service: service.to_owned(),
            operation: operation.to_owned(),
            count: 1,
            effect,
        }
    }

    fn matches(&self, service: &str, operation: &str) -> bool {
        self.count > 0
            && self.service.eq_ignore_ascii_case(service)
            && (self.operation == "*" || self.operation == operation)
    }
}

/// The rules in force; cloning shares them, so a test and the proxy see the same set.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl FaultInjector {
    pub fn inject(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many applications are still owed across all rules.
    pub fn pending(&self) -> usize {
        self.lock().iter().map(|rule| rule.count).sum()
    }

    /// The effect for this call, if a rule matches; uses up one application of the
    /// first matching rule (rules apply in the order they were injected).
    pub fn take(&self, service: &str, operation: &str) -> Option<FaultEffect> {
        let mut rules = self.lock();
        let index = rules
            .iter()
            .position(|rule| rule.matches(service, operation))?;
        let rule = &mut rules[index];
        rule.count -= 1;
        let effect = rule.effect.clone();
        if rule.count == 0 {
            rules.remove(index);
        }
        Some(effect)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        // A panic while holding this lock cannot leave the Vec half-updated, so the
        // rules stay usable after a poisoned lock.
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_applies_to_exactly_its_count_of_calls() {
        let faults = FaultInjector::default();
        faults.inject(FaultRule::drop_response("sqs", "SendMessage").times(2));
        assert_eq!(
            faults.take("sqs", "SendMessage"),
            Some(FaultEffect::DropResponse)
        );
        assert_eq!(
            faults.take("sqs", "SendMessage"),
            Some(FaultEffect::DropResponse)
        );
        assert_eq!(faults.take("sqs", "SendMessage"), None);
    }

    #[test]
    fn a_rule_ignores_other_services_and_operations() {
        let faults = FaultInjector::default();
        faults.inject(FaultRule::drop_response("s3", "UploadPart"));
        assert_eq!(faults.take("s3", "PutObject"), None);
        assert_eq!(faults.take("sqs", "UploadPart"), None);
        assert_eq!(faults.pending(), 1);
    }

    #[test]
    fn a_wildcard_rule_matches_every_operation_of_its_service() {
        let faults = FaultInjector::default();
        faults.inject(FaultRule::delay("ec2", "*", Duration::from_millis(5)));
        assert_eq!(
            faults.take("ec2", "DescribeInstances"),
            Some(FaultEffect::Delay(Duration::from_millis(5)))
        );
    }

    #[test]
    fn earlier_rules_apply_before_later_ones() {
        let faults = FaultInjector::default();
        faults.inject(FaultRule::drop_response("s3", "PutObject"));
        faults.inject(FaultRule::delay("s3", "PutObject", Duration::from_secs(1)));
        assert_eq!(
            faults.take("s3", "PutObject"),
            Some(FaultEffect::DropResponse)
        );
        assert_eq!(
            faults.take("s3", "PutObject"),
            Some(FaultEffect::Delay(Duration::from_secs(1)))
        );
    }

    #[test]
    fn clear_removes_every_rule() {
        let faults = FaultInjector::default();
        faults.inject(FaultRule::error("sqs", "*", 500, "InternalError", "boom"));
        faults.clear();
        assert_eq!(faults.take("sqs", "ReceiveMessage"), None);
    }
}
