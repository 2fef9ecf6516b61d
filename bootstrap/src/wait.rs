//! Waiting without etcd running: the one helper every wait of the agent goes
//! through (for the CA, for the seed, for quorum, for a learner slot), so that
//! each one honours `--wait-timeout`, stops on a signal and says why it waits.

use std::fmt::Display;
use std::time::Duration;

use etcd_aws_core::contract::events;
use tokio::time::Instant;

use crate::signals::Signals;

/// How often the agent looks again while it waits, and for how long it may
/// wait without starting etcd (`None`: as long as it takes).
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    pub poll_interval: Duration,
    pub timeout: Option<Duration>,
}

/// Why a wait ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// A signal arrived: the operator or systemd asks the agent to stop.
    Signal(i32),
    /// `--wait-timeout` ran out.
    TimedOut,
}

/// One stretch of waiting, from its start (the agent's, or etcd's last run)
/// until what it waits for happens.
pub struct Wait {
    policy: WaitPolicy,
    /// What is waited for, as the log says it: "for the cluster CA".
    what: &'static str,
    since: Instant,
    last_reason: Option<String>,
}

impl Wait {
    pub fn new(policy: WaitPolicy, what: &'static str) -> Self {
        Self {
            policy,
            what,
            since: Instant::now(),
            last_reason: None,
        }
    }

    /// Says why the agent waits (once per new reason, not every poll), then
    /// sleeps one poll interval. `kind` names the reason for queries and
    /// tests (the line's `wait` field). The timeout is checked first,
    /// whatever the reason, and the end is logged with the reason it ends on.
    /// Whether `reason` differs from the last one this wait said: a line
    /// worth an alarm is logged once per reason, not once per poll.
    pub fn is_new(&self, reason: &dyn Display) -> bool {
        self.last_reason.as_deref() != Some(reason.to_string().as_str())
    }

    pub async fn pause(
        &mut self,
        reason: &dyn Display,
        kind: &'static str,
        signals: &mut Signals,
    ) -> Result<(), WaitEnd> {
        let reason = reason.to_string();
        if self.last_reason.as_deref() != Some(reason.as_str()) {
            tracing::info!(event = events::WAITING, wait = kind, %reason, "waiting {}", self.what);
            self.last_reason = Some(reason);
        }
        if let Some(timeout) = self.policy.timeout {
            if self.since.elapsed() >= timeout {
                tracing::error!(
                    event = events::GAVE_UP_WAITING,
                    reason = self.last_reason.as_deref().unwrap_or_default(),
                    waited = %humantime::format_duration(timeout),
                    "gave up waiting {} (--wait-timeout); etcd is not running",
                    self.what
                );
                return Err(WaitEnd::TimedOut);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(self.policy.poll_interval) => Ok(()),
            signal = signals.recv() => {
                tracing::info!(
                    signal,
                    reason = self.last_reason.as_deref().unwrap_or_default(),
                    "stopping on a signal while waiting {}; etcd is not running",
                    self.what
                );
                Err(WaitEnd::Signal(signal))
            }
        }
    }
}
