//! Rate-limited failure logging for sinks: an operator sees the first failure, each
//! change of cause, a reminder while it lasts, and the recovery.

use std::time::{Duration, Instant};

/// While a failure lasts, it is logged again at most this often.
const REMIND_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct FailureLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    last_message: String,
    failures: u64,
}

impl FailureLog {
    pub fn failure(&mut self, what: &str, message: String) {
        let now = Instant::now();
        self.failures += 1;
        self.failing_since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= REMIND_EVERY);
        if message != self.last_message || due {
            tracing::error!(
                sink = what,
                failures = self.failures,
                "{message}; retrying on the next cycle"
            );
            self.last_logged = Some(now);
            self.last_message = message;
        }
    }

    pub fn success(&mut self, what: &str) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                sink = what,
                failures = self.failures,
                "recovered after {:.0?}",
                since.elapsed()
            );
        }
        self.failures = 0;
        self.last_logged = None;
        self.last_message.clear();
    }
}
