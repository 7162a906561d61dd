//! Rate-limited failure logging for sinks: an operator sees the first failure, each
//! change of cause, a reminder while it lasts, and the recovery. The sinks whose last
//! write failed are also kept in a [`SinkHealth`], for `Agent_degraded`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// While a failure lasts, it is logged again at most this often.
const REMIND_EVERY: Duration = Duration::from_secs(300);

/// The names of the sinks whose last write failed, shared by the sinks of one
/// configuration.
#[derive(Debug, Clone, Default)]
pub struct SinkHealth(Arc<Mutex<BTreeSet<String>>>);

impl SinkHealth {
    /// The failing sinks, by name.
    pub fn failing(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn set(&self, sink: &str, failing: bool) {
        if let Ok(mut set) = self.0.lock() {
            if failing {
                set.insert(sink.to_owned());
            } else {
                set.remove(sink);
            }
        }
    }
}

/// One sink's failures: logged, and reported to its [`SinkHealth`].
#[derive(Debug)]
pub struct FailureLog {
    /// The sink's name in logs and metrics.
    name: String,
    health: SinkHealth,
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    last_message: String,
    failures: u64,
}

impl FailureLog {
    pub fn new(name: String, health: SinkHealth) -> Self {
        Self {
            name,
            health,
            failing_since: None,
            last_logged: None,
            last_message: String::new(),
            failures: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn failure(&mut self, message: String) {
        self.health.set(&self.name, true);
        let now = Instant::now();
        self.failures += 1;
        self.failing_since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= REMIND_EVERY);
        if message != self.last_message || due {
            tracing::error!(
                sink = self.name,
                failures = self.failures,
                "{message}; retrying on the next cycle"
            );
            self.last_logged = Some(now);
            self.last_message = message;
        }
    }

    pub fn success(&mut self) {
        self.health.set(&self.name, false);
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                sink = self.name,
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
