//! The snapshot: every key this host reports, with its value and why. Built once per
//! cycle and handed, whole, to every sink.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a key stands in its rule's `for` state machine (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition is false.
    Ok,
    /// The condition is true but has not lasted `for` yet.
    Pending,
    /// The condition has lasted `for`: the value is 1.
    Firing,
    /// No server could answer; the value follows `on_no_data`.
    Unknown,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key's line in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// 0 or 1, never anything else (SPEC §1).
    pub value: u8,
    pub level: String,
    pub component: String,
    pub state: AlertState,
    /// When the current state began, if known.
    pub since: Option<Timestamp>,
    /// Why the rule is true (pending or firing): a few of the series its query returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

impl Entry {
    /// A key the agent computes itself (Prometheus liveness, ping, `Agent_degraded`): 1
    /// and firing while `firing`, else 0 and ok, with no `for` and no reasons.
    pub fn computed(
        key: String,
        level: &str,
        component: &str,
        firing: bool,
        since: Option<Timestamp>,
    ) -> Self {
        Self {
            key,
            value: u8::from(firing),
            level: level.to_owned(),
            component: component.to_owned(),
            state: if firing {
                AlertState::Firing
            } else {
                AlertState::Ok
            },
            since,
            reasons: Vec::new(),
        }
    }
}

/// One series that made a rule true: its labels (without `__name__`) and sample value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub labels: BTreeMap<String, String>,
    pub value: String,
}

/// `instance="10.0.1.5:20180" value=0`, the way PromQL writes label matchers.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.labels {
            write!(f, "{name}={value:?} ")?;
        }
        write!(f, "value={}", self.value)
    }
}

/// Everything one cycle reports, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub host: String,
    pub timestamp: Timestamp,
    /// Seconds between cycles, for formats that carry a step (falcon).
    pub step_secs: u64,
    pub entries: Vec<Entry>,
    /// Why `Agent_degraded` is 1; empty when it is 0.
    #[serde(default)]
    pub degraded: Degraded,
}

/// What makes the agent itself degraded (`Agent_degraded`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degraded {
    /// Keys unknown for several cycles in a row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_keys: Vec<String>,
    /// Sinks whose last write failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_sinks: Vec<String>,
}

impl Degraded {
    pub fn is_degraded(&self) -> bool {
        !self.unknown_keys.is_empty() || !self.failing_sinks.is_empty()
    }
}

impl Snapshot {
    /// Builds a snapshot, sorting the entries and keeping the first of any duplicate key.
    pub fn new(
        host: String,
        timestamp: Timestamp,
        step_secs: u64,
        mut entries: Vec<Entry>,
    ) -> Self {
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries.dedup_by(|b, a| a.key == b.key);
        Self {
            host,
            timestamp,
            step_secs,
            entries,
            degraded: Degraded::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.key.as_str().cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
    }
}
