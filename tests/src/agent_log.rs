//! The agent's log as the scenarios read it: JSON lines (the harness runs
//! every agent with `ETCD_AWS_LOG_FORMAT=json`, as the stack does), matched
//! by their `event` field ([`etcd_aws_core::contract::events`]) and the
//! fields beside it, never by the wording of their message. etcd's own lines
//! in the same log carry no `event` and are passed over.

use etcd_aws_core::contract::events;
use serde_json::Value;

/// Every line of `log` whose `event` is `event`, oldest first.
pub fn events(log: &str, event: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line[events::FIELD] == event)
        .collect()
}

/// Whether `log` has a line whose `event` is `event`.
pub fn has_event(log: &str, event: &str) -> bool {
    !events(log, event).is_empty()
}

/// Whether the agent waited for the reason of kind `wait` (the `wait` field
/// of an [`events::WAITING`] or [`events::RECOVERY_WAITING`] line).
pub fn waited_for(log: &str, event: &str, wait: &str) -> bool {
    events(log, event).iter().any(|line| line["wait"] == wait)
}

/// `field` of the first line whose `event` is `event`, as text.
pub fn first_field(log: &str, event: &str, field: &str) -> Option<String> {
    events(log, event)
        .first()
        .and_then(|line| match &line[field] {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"timestamp":"t","level":"INFO","message":"waiting for the seed","event":"waiting","wait":"waiting_for_seed","target":"etcd_aws"}"#,
        "\n",
        r#"{"level":"warn","msg":"an etcd line","event-ish":"no"}"#,
        "\n",
        "a line that is not JSON\n",
        r#"{"level":"INFO","message":"restored backup","event":"restored_backup","key":"k1","revision":42}"#,
        "\n",
    );

    #[test]
    fn lines_are_found_by_their_event_and_not_by_their_message() {
        assert_eq!(events(LOG, events::RESTORED_BACKUP).len(), 1);
        assert!(!has_event(LOG, events::FORMED));
        assert!(!has_event(LOG, "restored backup"));
    }

    #[test]
    fn a_waits_kind_is_its_wait_field() {
        assert!(waited_for(LOG, events::WAITING, "waiting_for_seed"));
        assert!(!waited_for(LOG, events::WAITING, "peers_unconfirmed"));
    }

    #[test]
    fn fields_beside_the_event_read_as_text() {
        assert_eq!(
            first_field(LOG, events::RESTORED_BACKUP, "key").as_deref(),
            Some("k1")
        );
        assert_eq!(
            first_field(LOG, events::RESTORED_BACKUP, "revision").as_deref(),
            Some("42")
        );
        assert_eq!(first_field(LOG, events::RESTORED_BACKUP, "nothing"), None);
    }
}
