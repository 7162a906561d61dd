//! `Agent_degraded`: the watcher watched. 1 when a key has been `unknown` for
//! [`UNKNOWN_CYCLES`] cycles in a row, or a sink failed its last write; the snapshot says
//! which. Pure: the cycle hands in its entries and the failing sinks.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::snapshot::{AlertState, Degraded, Entry};

/// Cycles a key must stay unknown before the agent counts as degraded.
pub const UNKNOWN_CYCLES: u32 = 3;

/// `Agent_degraded`'s component and level.
pub const COMPONENT: &str = "agent";
pub const LEVEL: &str = "warning";

#[derive(Debug)]
pub struct DegradedWatch {
    key: String,
    /// Consecutive unknown cycles per key; keys not unknown are absent.
    unknown_streaks: HashMap<String, u32>,
    /// Since when the current value holds.
    since: Option<Timestamp>,
    last: Option<bool>,
}

impl DegradedWatch {
    /// Watches under the key `key` (the template's `Agent_degraded`).
    pub fn new(key: String) -> Self {
        Self {
            key,
            unknown_streaks: HashMap::new(),
            since: None,
            last: None,
        }
    }

    /// Counts this cycle's unknown keys in `entries`; returns the `Agent_degraded` entry
    /// and its causes.
    pub fn observe(
        &mut self,
        entries: &[Entry],
        failing_sinks: Vec<String>,
        now: Timestamp,
    ) -> (Entry, Degraded) {
        let mut streaks = HashMap::with_capacity(self.unknown_streaks.len());
        for entry in entries.iter().filter(|e| e.state == AlertState::Unknown) {
            let streak = self.unknown_streaks.get(&entry.key).copied().unwrap_or(0) + 1;
            streaks.insert(entry.key.clone(), streak);
        }
        self.unknown_streaks = streaks;
        let mut unknown_keys: Vec<String> = self
            .unknown_streaks
            .iter()
            .filter(|(_, n)| **n >= UNKNOWN_CYCLES)
            .map(|(k, _)| k.clone())
            .collect();
        unknown_keys.sort();
        let degraded = Degraded {
            unknown_keys,
            failing_sinks,
        };
        let firing = degraded.is_degraded();
        if self.last != Some(firing) {
            self.last = Some(firing);
            self.since = Some(now);
        }
        let entry = Entry::computed(self.key.clone(), LEVEL, COMPONENT, firing, self.since);
        (entry, degraded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, state: AlertState) -> Entry {
        Entry {
            key: key.into(),
            value: 0,
            level: "critical".into(),
            component: "tikv".into(),
            state,
            since: None,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn unknown_for_three_cycles_in_a_row_degrades() {
        let mut watch = DegradedWatch::new("TiDB.agent.Agent_degraded".into());
        let now = Timestamp::UNIX_EPOCH;
        let unknown = [entry("a", AlertState::Unknown), entry("b", AlertState::Ok)];
        for _ in 1..UNKNOWN_CYCLES {
            let (e, d) = watch.observe(&unknown, Vec::new(), now);
            assert_eq!((e.value, e.state), (0, AlertState::Ok));
            assert!(!d.is_degraded());
        }
        let (e, d) = watch.observe(&unknown, Vec::new(), now);
        assert_eq!(e.key, "TiDB.agent.Agent_degraded");
        assert_eq!((e.value, e.state), (1, AlertState::Firing));
        assert_eq!(d.unknown_keys, ["a"]);
        // One answered cycle ends the streak.
        let answered = [entry("a", AlertState::Ok)];
        assert_eq!(watch.observe(&answered, Vec::new(), now).0.value, 0);
        assert_eq!(watch.observe(&unknown, Vec::new(), now).0.value, 0);
    }

    #[test]
    fn a_failing_sink_degrades_at_once() {
        let mut watch = DegradedWatch::new("k".into());
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + jiff::SignedDuration::from_secs(15);
        let (e, _) = watch.observe(&[], Vec::new(), t0);
        assert_eq!((e.value, e.since), (0, Some(t0)));
        let (e, d) = watch.observe(&[], vec!["file:/x/alerts.txt".into()], t1);
        assert_eq!((e.value, e.since), (1, Some(t1)));
        assert_eq!(d.failing_sinks, ["file:/x/alerts.txt"]);
        // `since` stays while the value holds.
        let t2 = t1 + jiff::SignedDuration::from_secs(15);
        let (e, _) = watch.observe(&[], vec!["file:/x/alerts.txt".into()], t2);
        assert_eq!(e.since, Some(t1));
    }
}
