//! The lifecycle actions of terminating instances as a plain state machine: hold,
//! heartbeat, complete, time out. No I/O and no clock of its own, so every rule of
//! the AWS behaviour is testable with made-up instants.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// A lifecycle hook's DefaultResult, or the result a caller completes an action with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookResult {
    Continue,
    Abandon,
}

impl HookResult {
    pub fn as_aws_str(self) -> &'static str {
        match self {
            Self::Continue => "CONTINUE",
            Self::Abandon => "ABANDON",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CONTINUE" => Some(Self::Continue),
            "ABANDON" => Some(Self::Abandon),
            _ => None,
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    Continue,
    Abandon,
    /// Nobody completed the action in time; the hook's DefaultResult was applied.
    Timeout(HookResult),
}

/// What happened to one lifecycle action, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleActionRecord {
    pub instance_id: String,
    pub group_name: String,
    pub hook_name: String,
    pub token: String,
    pub started_at: SystemTime,
    pub heartbeats: u32,
    /// `None` while the instance is still in Terminating:Wait.
    pub outcome: Option<ActionOutcome>,
    pub completed_at: Option<SystemTime>,
}

/// Everything needed to put an instance in Terminating:Wait.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub instance_id: String,
    pub group_name: String,
    pub hook_name: String,
    pub token: String,
    pub heartbeat_timeout: Duration,
    pub default_result: HookResult,
    /// Scale-in lowers the desired capacity when the instance goes; a replacement
    /// (health check, user termination without decrement) keeps it.
    pub decrement_desired: bool,
}

/// Which action a CompleteLifecycleAction or heartbeat call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionKey {
    pub group_name: String,
    pub hook_name: String,
    pub target: ActionTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionTarget {
    Token(String),
    Instance(String),
}

/// An instance whose wait is over and that must now really be terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proceed {
    pub instance_id: String,
    pub group_name: String,
    pub decrement_desired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Worded as AWS words its ValidationError for the same case.
    #[error("No active Lifecycle Action found with {0}")]
    NoActiveAction(String),
    #[error("instance {0} already has a lifecycle action in progress")]
    AlreadyHeld(String),
}

impl ActionError {
    fn no_active_action(target: &ActionTarget) -> Self {
        match target {
            ActionTarget::Instance(id) => Self::NoActiveAction(format!("instance ID {id}")),
            ActionTarget::Token(token) => Self::NoActiveAction(format!("token {token}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Terminating:Wait: waiting for a completion, a heartbeat or the timeout.
    Waiting,
    /// Terminating:Proceed: decided, but moto has not terminated the instance yet.
    Proceeding,
    /// Gone from the group; kept only for its record.
    Finished,
}

#[derive(Debug, Clone)]
struct Action {
    record: LifecycleActionRecord,
    phase: Phase,
    heartbeat_timeout: Duration,
    default_result: HookResult,
    decrement_desired: bool,
    deadline: Instant,
    /// AWS caps the total wait at 100 heartbeat timeouts or 48 hours, whichever is less.
    global_deadline: Instant,
}

impl Action {
    fn proceed(&mut self, outcome: ActionOutcome, at: SystemTime) -> Proceed {
        self.phase = Phase::Proceeding;
        self.record.outcome = Some(outcome);
        self.record.completed_at = Some(at);
        Proceed {
            instance_id: self.record.instance_id.clone(),
            group_name: self.record.group_name.clone(),
            decrement_desired: self.decrement_desired,
        }
    }
}

const MAX_GLOBAL_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, Default)]
pub struct LifecycleActions {
    actions: Vec<Action>,
}

impl LifecycleActions {
    /// Puts the instance in Terminating:Wait.
    pub fn hold(
        &mut self,
        new: NewAction,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<LifecycleActionRecord, ActionError> {
        if self.unfinished(&new.instance_id).is_some() {
            return Err(ActionError::AlreadyHeld(new.instance_id));
        }
        let global_timeout = new
            .heartbeat_timeout
            .saturating_mul(100)
            .min(MAX_GLOBAL_TIMEOUT);
        let record = LifecycleActionRecord {
            instance_id: new.instance_id,
            group_name: new.group_name,
            hook_name: new.hook_name,
            token: new.token,
            started_at: wall_now,
            heartbeats: 0,
            outcome: None,
            completed_at: None,
        };
        self.actions.push(Action {
            record: record.clone(),
            phase: Phase::Waiting,
            heartbeat_timeout: new.heartbeat_timeout,
            default_result: new.default_result,
            decrement_desired: new.decrement_desired,
            deadline: now + new.heartbeat_timeout,
            global_deadline: now + global_timeout,
        });
        Ok(record)
    }

    /// CompleteLifecycleAction: only a waiting action can be completed, once.
    pub fn complete(
        &mut self,
        key: &ActionKey,
        result: HookResult,
        wall_now: SystemTime,
    ) -> Result<Proceed, ActionError> {
        let action = self.waiting_mut(key)?;
        let outcome = match result {
            HookResult::Continue => ActionOutcome::Continue,
            HookResult::Abandon => ActionOutcome::Abandon,
        };
        Ok(action.proceed(outcome, wall_now))
    }

    /// RecordLifecycleActionHeartbeat: restarts the heartbeat timeout, never past the
    /// global timeout.
    pub fn heartbeat(&mut self, key: &ActionKey, now: Instant) -> Result<(), ActionError> {
        let action = self.waiting_mut(key)?;
        action.deadline = (now + action.heartbeat_timeout).min(action.global_deadline);
        action.record.heartbeats += 1;
        Ok(())
    }

    /// Applies the default result to every waiting action whose time is up.
    pub fn expire(&mut self, now: Instant, wall_now: SystemTime) -> Vec<Proceed> {
        self.actions
            .iter_mut()
            .filter(|action| action.phase == Phase::Waiting && action.deadline <= now)
            .map(|action| {
                let outcome = ActionOutcome::Timeout(action.default_result);
                action.proceed(outcome, wall_now)
            })
            .collect()
    }

    /// The instance has left the group (terminated in moto); its record stays.
    pub fn finish(&mut self, instance_id: &str) {
        if let Some(index) = self.unfinished(instance_id) {
            self.actions[index].phase = Phase::Finished;
        }
    }

    /// The lifecycle state AWS would show for the instance, when an action overrides
    /// what moto says.
    pub fn lifecycle_state(&self, instance_id: &str) -> Option<&'static str> {
        let action = &self.actions[self.unfinished(instance_id)?];
        match action.phase {
            Phase::Waiting => Some("Terminating:Wait"),
            Phase::Proceeding => Some("Terminating:Proceed"),
            Phase::Finished => None,
        }
    }

    /// Instances in Terminating:Wait or Terminating:Proceed.
    pub fn held_instances(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter(|action| action.phase != Phase::Finished)
            .map(|action| action.record.instance_id.clone())
            .collect()
    }

    /// How many held instances will lower the desired capacity when they go.
    pub fn pending_decrements(&self) -> usize {
        self.actions
            .iter()
            .filter(|action| action.phase != Phase::Finished && action.decrement_desired)
            .count()
    }

    pub fn records(&self) -> Vec<LifecycleActionRecord> {
        self.actions
            .iter()
            .map(|action| action.record.clone())
            .collect()
    }

    fn unfinished(&self, instance_id: &str) -> Option<usize> {
        self.actions.iter().position(|action| {
            action.phase != Phase::Finished && action.record.instance_id == instance_id
        })
    }

    fn waiting_mut(&mut self, key: &ActionKey) -> Result<&mut Action, ActionError> {
        self.actions
            .iter_mut()
            .find(|action| {
                let record = &action.record;
                action.phase == Phase::Waiting
                    && record.group_name == key.group_name
                    && record.hook_name == key.hook_name
                    && match &key.target {
                        ActionTarget::Token(token) => &record.token == token,
                        ActionTarget::Instance(id) => &record.instance_id == id,
                    }
            })
            .ok_or_else(|| ActionError::no_active_action(&key.target))
    }
}

impl fmt::Display for HookResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_aws_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn new_action(instance_id: &str, default_result: HookResult) -> NewAction {
        NewAction {
            instance_id: instance_id.to_owned(),
            group_name: "group".to_owned(),
            hook_name: "hook".to_owned(),
            token: format!("token-{instance_id}"),
            heartbeat_timeout: TIMEOUT,
            default_result,
            decrement_desired: false,
        }
    }

    fn by_instance(instance_id: &str) -> ActionKey {
        ActionKey {
            group_name: "group".to_owned(),
            hook_name: "hook".to_owned(),
            target: ActionTarget::Instance(instance_id.to_owned()),
        }
    }

    fn by_token(token: &str) -> ActionKey {
        ActionKey {
            target: ActionTarget::Token(token.to_owned()),
            ..by_instance("unused")
        }
    }

    fn holding(instance_id: &str, now: Instant) -> LifecycleActions {
        let mut actions = LifecycleActions::default();
        let held = actions.hold(
            new_action(instance_id, HookResult::Continue),
            now,
            SystemTime::UNIX_EPOCH,
        );
        assert!(held.is_ok());
        actions
    }

    #[test]
    fn a_held_instance_is_in_terminating_wait() {
        let actions = holding("i-1", Instant::now());
        assert_eq!(actions.lifecycle_state("i-1"), Some("Terminating:Wait"));
        assert_eq!(actions.lifecycle_state("i-2"), None);
    }

    #[test]
    fn holding_an_instance_twice_is_refused() {
        let now = Instant::now();
        let mut actions = holding("i-1", now);
        let again = actions.hold(
            new_action("i-1", HookResult::Continue),
            now,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(again, Err(ActionError::AlreadyHeld("i-1".to_owned())));
    }

    #[test]
    fn completing_by_instance_id_proceeds_with_the_termination() {
        let mut actions = holding("i-1", Instant::now());
        let proceed = actions.complete(
            &by_instance("i-1"),
            HookResult::Continue,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            proceed.map(|p| p.instance_id),
            Ok("i-1".to_owned()),
            "complete by instance id"
        );
        assert_eq!(actions.lifecycle_state("i-1"), Some("Terminating:Proceed"));
        assert_eq!(actions.records()[0].outcome, Some(ActionOutcome::Continue));
    }

    #[test]
    fn completing_by_token_proceeds_with_the_termination() {
        let mut actions = holding("i-1", Instant::now());
        let proceed = actions.complete(
            &by_token("token-i-1"),
            HookResult::Abandon,
            SystemTime::UNIX_EPOCH,
        );
        assert!(proceed.is_ok());
        assert_eq!(actions.records()[0].outcome, Some(ActionOutcome::Abandon));
    }

    #[test]
    fn completing_twice_finds_no_active_action() {
        let mut actions = holding("i-1", Instant::now());
        let first = actions.complete(
            &by_instance("i-1"),
            HookResult::Continue,
            SystemTime::UNIX_EPOCH,
        );
        assert!(first.is_ok());
        let second = actions.complete(
            &by_instance("i-1"),
            HookResult::Continue,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            second.map_err(|e| e.to_string()),
            Err("No active Lifecycle Action found with instance ID i-1".to_owned())
        );
    }

    #[test]
    fn completing_with_the_wrong_hook_name_finds_no_active_action() {
        let mut actions = holding("i-1", Instant::now());
        let key = ActionKey {
            hook_name: "other".to_owned(),
            ..by_instance("i-1")
        };
        let result = actions.complete(&key, HookResult::Continue, SystemTime::UNIX_EPOCH);
        assert!(matches!(result, Err(ActionError::NoActiveAction(_))));
    }

    #[test]
    fn an_action_nobody_completes_times_out_with_the_default_result() {
        let start = Instant::now();
        let mut actions = LifecycleActions::default();
        let held = actions.hold(
            new_action("i-1", HookResult::Abandon),
            start,
            SystemTime::UNIX_EPOCH,
        );
        assert!(held.is_ok());
        assert!(actions
            .expire(
                start + TIMEOUT - Duration::from_millis(1),
                SystemTime::UNIX_EPOCH
            )
            .is_empty());
        let expired = actions.expire(start + TIMEOUT, SystemTime::UNIX_EPOCH);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            actions.records()[0].outcome,
            Some(ActionOutcome::Timeout(HookResult::Abandon))
        );
    }

    #[test]
    fn a_heartbeat_restarts_the_timeout() {
        let start = Instant::now();
        let mut actions = holding("i-1", start);
        let beat = actions.heartbeat(&by_instance("i-1"), start + Duration::from_secs(50));
        assert!(beat.is_ok());
        assert!(actions
            .expire(start + TIMEOUT, SystemTime::UNIX_EPOCH)
            .is_empty());
        assert_eq!(
            actions
                .expire(start + Duration::from_secs(110), SystemTime::UNIX_EPOCH)
                .len(),
            1
        );
        assert_eq!(actions.records()[0].heartbeats, 1);
    }

    #[test]
    fn heartbeats_never_extend_past_the_global_timeout() {
        let start = Instant::now();
        let mut actions = holding("i-1", start);
        let global = TIMEOUT * 100;
        let beat = actions.heartbeat(&by_instance("i-1"), start + global - Duration::from_secs(1));
        assert!(beat.is_ok());
        assert_eq!(
            actions.expire(start + global, SystemTime::UNIX_EPOCH).len(),
            1
        );
    }

    #[test]
    fn a_timed_out_action_can_no_longer_be_completed() {
        let start = Instant::now();
        let mut actions = holding("i-1", start);
        assert_eq!(
            actions
                .expire(start + TIMEOUT, SystemTime::UNIX_EPOCH)
                .len(),
            1
        );
        let late = actions.complete(
            &by_instance("i-1"),
            HookResult::Continue,
            SystemTime::UNIX_EPOCH,
        );
        assert!(matches!(late, Err(ActionError::NoActiveAction(_))));
    }

    #[test]
    fn a_finished_instance_shows_moto_state_again_but_keeps_its_record() {
        let mut actions = holding("i-1", Instant::now());
        let done = actions.complete(
            &by_instance("i-1"),
            HookResult::Continue,
            SystemTime::UNIX_EPOCH,
        );
        assert!(done.is_ok());
        actions.finish("i-1");
        assert_eq!(actions.lifecycle_state("i-1"), None);
        assert!(actions.held_instances().is_empty());
        assert_eq!(actions.records().len(), 1);
    }

    #[test]
    fn only_scale_in_actions_count_as_pending_decrements() {
        let now = Instant::now();
        let mut actions = holding("i-1", now);
        let scale_in = NewAction {
            decrement_desired: true,
            ..new_action("i-2", HookResult::Continue)
        };
        assert!(actions.hold(scale_in, now, SystemTime::UNIX_EPOCH).is_ok());
        assert_eq!(actions.pending_decrements(), 1);
    }
}
