//! The agent's exit status: the one place that turns how things ended into
//! a number for systemd, a container runtime or a shell.

use std::process::ExitStatus;

/// `--wait-timeout` ran out (EX_TEMPFAIL: try again later).
pub const GAVE_UP_WAITING: u8 = 75;

/// A process that ended on `signal`, the way a shell reports it: 128 + signal.
pub fn for_signal(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}

/// etcd's exit becomes the agent's: its code, or 128 + the signal that ended it.
pub fn of_etcd(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => for_signal(signal),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn etcds_code_becomes_the_agents() {
        assert_eq!(of_etcd(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(of_etcd(ExitStatus::from_raw(0)), 0);
    }

    #[test]
    fn a_signal_is_reported_as_128_plus_its_number() {
        assert_eq!(of_etcd(ExitStatus::from_raw(libc::SIGTERM)), 128 + 15);
        assert_eq!(for_signal(libc::SIGINT), 130);
    }
}
