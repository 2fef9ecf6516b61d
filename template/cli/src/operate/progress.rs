//! What a long command is doing, and for how long it has: one log line per
//! step, with the phase and the seconds since the command started (as text
//! for a person, as fields with `--log-format json`).

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

pub struct Progress {
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn step(&self, phase: &str, message: impl Display) {
        let elapsed = self.elapsed().as_secs_f64();
        tracing::info!(
            phase,
            elapsed_s = elapsed,
            "[{elapsed:6.1}s] {phase}: {message}"
        );
    }
}
