//! The `for` state machine (SPEC §5), pure: inactive → pending(since) → firing once
//! `for` has elapsed; back to inactive on the first false; unknown changes nothing.
//! Times are wall-clock timestamps so that a pending rule keeps its age across restarts.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::prometheus::alerts::AlertsState;

/// A rule condition's observation in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ForState {
    Inactive { since: Option<Timestamp> },
    Pending { since: Timestamp },
    Firing { since: Timestamp },
}

impl Default for ForState {
    fn default() -> Self {
        ForState::Inactive { since: None }
    }
}

impl ForState {
    /// The next state after observing `obs` at `now`, for a rule with `for_` duration.
    pub fn step(self, obs: Observation, now: Timestamp, for_: Duration) -> ForState {
        match (self, obs) {
            (s, Observation::Unknown) => s,
            (ForState::Inactive { .. }, Observation::False) => self,
            (_, Observation::False) => ForState::Inactive { since: Some(now) },
            (ForState::Inactive { .. }, Observation::True) => {
                ForState::Pending { since: now }.promote(now, for_)
            }
            (ForState::Pending { .. }, Observation::True) => self.promote(now, for_),
            (ForState::Firing { .. }, Observation::True) => self,
        }
    }

    fn promote(self, now: Timestamp, for_: Duration) -> ForState {
        match self {
            ForState::Pending { since } if elapsed(since, now) >= for_ => {
                ForState::Firing { since: now }
            }
            s => s,
        }
    }

    /// The next state of a key read from the pair's alerts, whose `for` Prometheus owns:
    /// its state, with `since` the time the agent first saw it.
    pub fn follow(self, alert: AlertsState, now: Timestamp) -> ForState {
        match (self, alert) {
            (ForState::Inactive { .. }, AlertsState::Inactive)
            | (ForState::Pending { .. }, AlertsState::Pending)
            | (ForState::Firing { .. }, AlertsState::Firing) => self,
            (_, AlertsState::Inactive) => ForState::Inactive { since: Some(now) },
            (_, AlertsState::Pending) => ForState::Pending { since: now },
            (_, AlertsState::Firing) => ForState::Firing { since: now },
        }
    }

    pub fn is_firing(self) -> bool {
        matches!(self, ForState::Firing { .. })
    }

    /// The same state, with a `since` later than `now` (a clock stepped back since it
    /// was saved) moved to `now`; `None` when nothing was in the future.
    pub fn clamped(self, now: Timestamp) -> Option<ForState> {
        match self {
            ForState::Inactive { since: Some(t) } if t > now => {
                Some(ForState::Inactive { since: Some(now) })
            }
            ForState::Pending { since } if since > now => Some(ForState::Pending { since: now }),
            ForState::Firing { since } if since > now => Some(ForState::Firing { since: now }),
            _ => None,
        }
    }

    pub fn since(self) -> Option<Timestamp> {
        match self {
            ForState::Inactive { since } => since,
            ForState::Pending { since } | ForState::Firing { since } => Some(since),
        }
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_since_in_the_future_is_clamped_to_now() {
        let now = at(100);
        assert_eq!(
            ForState::Pending { since: at(500) }.clamped(now),
            Some(ForState::Pending { since: now })
        );
        assert_eq!(
            ForState::Firing { since: at(101) }.clamped(now),
            Some(ForState::Firing { since: now })
        );
        assert_eq!(ForState::Pending { since: at(99) }.clamped(now), None);
        assert_eq!(ForState::Inactive { since: None }.clamped(now), None);
    }

    #[test]
    fn fires_only_after_for_has_elapsed() {
        let s = ForState::default().step(Observation::True, at(0), MIN);
        assert_eq!(s, ForState::Pending { since: at(0) });
        let s = s.step(Observation::True, at(59), MIN);
        assert!(!s.is_firing());
        let s = s.step(Observation::True, at(60), MIN);
        assert_eq!(s, ForState::Firing { since: at(60) });
        let s = s.step(Observation::True, at(120), MIN);
        assert_eq!(s, ForState::Firing { since: at(60) });
    }

    #[test]
    fn zero_for_fires_at_once() {
        let s = ForState::default().step(Observation::True, at(0), Duration::ZERO);
        assert!(s.is_firing());
    }

    #[test]
    fn first_false_resets() {
        let s = ForState::Pending { since: at(0) }.step(Observation::False, at(30), MIN);
        assert_eq!(
            s,
            ForState::Inactive {
                since: Some(at(30))
            }
        );
        let s = s.step(Observation::True, at(45), MIN);
        assert_eq!(s, ForState::Pending { since: at(45) });
        let s = ForState::Firing { since: at(0) }.step(Observation::False, at(90), MIN);
        assert!(!s.is_firing());
    }

    #[test]
    fn unknown_changes_nothing() {
        for s in [
            ForState::default(),
            ForState::Pending { since: at(0) },
            ForState::Firing { since: at(0) },
        ] {
            assert_eq!(s.step(Observation::Unknown, at(500), MIN), s);
        }
        // The pending age keeps counting through an unknown stretch.
        let s = ForState::Pending { since: at(0) }
            .step(Observation::Unknown, at(30), MIN)
            .step(Observation::True, at(61), MIN);
        assert!(s.is_firing());
    }

    #[test]
    fn clock_going_backwards_does_not_fire() {
        let s = ForState::Pending { since: at(100) }.step(Observation::True, at(0), MIN);
        assert!(!s.is_firing());
    }
}
