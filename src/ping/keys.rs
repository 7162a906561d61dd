//! A round's outcome as snapshot entries (SPEC §7). Pure: the key template lives with
//! the rules, so key names come from a closure.
//!
//! - `Ping_latency_over_threshold` is 1 when any echo of the round took longer than
//!   the latency threshold.
//! - `Ping_packet_loss` is 1 when any target lost more than `loss_threshold_percent`.
//!
//! Both are level `warning`, component `ping`, state `firing` at 1 and `ok` at 0;
//! there is no `for`, each round decides on its own. With per-target keys, each
//! target gets both alerts suffixed `_<target with . and : as _>`.

use std::time::Duration;

use jiff::Timestamp;

use super::outcome::{RoundOutcome, TargetOutcome};
use crate::config::PingConfig;
use crate::snapshot::Entry;

pub const COMPONENT: &str = "ping";
pub const LATENCY_ALERT: &str = "Ping_latency_over_threshold";
pub const LOSS_ALERT: &str = "Ping_packet_loss";
pub const LEVEL: &str = "warning";

/// What turns the keys to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRules {
    pub latency_threshold: Duration,
    pub loss_threshold_percent: f64,
    pub per_target_keys: bool,
}

impl From<&PingConfig> for KeyRules {
    fn from(config: &PingConfig) -> Self {
        Self {
            latency_threshold: config.latency_threshold.get(),
            loss_threshold_percent: config.loss_threshold_percent,
            per_target_keys: config.per_target_keys,
        }
    }
}

/// The suffix of a per-target key: the target as configured, with `.` and `:` as `_`
/// (`10.0.1.1` → `10_0_1_1`, `fd00::1` → `fd00__1`).
pub fn target_suffix(target: &str) -> String {
    target.replace(['.', ':'], "_")
}

/// The entries of one round, without `since` (see [`carry_since`]). A round with no
/// targets reports both keys as 0: nothing was lost.
pub fn entries(
    round: &RoundOutcome,
    rules: &KeyRules,
    key_name: &dyn Fn(&str, &str) -> String,
) -> Vec<Entry> {
    let slow = |t: &TargetOutcome| t.over_threshold(rules.latency_threshold) > 0;
    let lossy = |t: &TargetOutcome| t.loss_percent() > rules.loss_threshold_percent;

    let mut entries = vec![
        entry(
            key_name(COMPONENT, LATENCY_ALERT),
            round.targets.iter().any(slow),
        ),
        entry(
            key_name(COMPONENT, LOSS_ALERT),
            round.targets.iter().any(lossy),
        ),
    ];
    if rules.per_target_keys {
        for target in &round.targets {
            let suffix = target_suffix(&target.target.name);
            entries.push(entry(
                key_name(COMPONENT, &format!("{LATENCY_ALERT}_{suffix}")),
                slow(target),
            ));
            entries.push(entry(
                key_name(COMPONENT, &format!("{LOSS_ALERT}_{suffix}")),
                lossy(target),
            ));
        }
    }
    entries
}

fn entry(key: String, firing: bool) -> Entry {
    Entry::computed(key, LEVEL, COMPONENT, firing, None)
}

/// Sets `since`: a key whose value did not change keeps its previous `since`; a new
/// or changed key starts at `now`.
pub fn carry_since(previous: &[Entry], mut next: Vec<Entry>, now: Timestamp) -> Vec<Entry> {
    for entry in &mut next {
        entry.since = previous
            .iter()
            .find(|old| old.key == entry.key && old.value == entry.value)
            .and_then(|old| old.since)
            .or(Some(now));
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::outcome::{Echo, EchoResult};
    use crate::ping::target::Target;
    use crate::snapshot::AlertState;

    const MS: Duration = Duration::from_millis(1);

    fn key_name(component: &str, alert: &str) -> String {
        format!("TiDB.{component}.{alert}")
    }

    fn target(name: &str, results: Vec<EchoResult>) -> TargetOutcome {
        TargetOutcome {
            target: Target {
                name: name.into(),
                address: "127.0.0.1".parse().unwrap(),
            },
            echoes: results
                .into_iter()
                .enumerate()
                .map(|(i, result)| Echo {
                    seq: i as u16,
                    sent_at: Timestamp::UNIX_EPOCH,
                    result,
                })
                .collect(),
        }
    }

    fn round(targets: Vec<TargetOutcome>) -> RoundOutcome {
        RoundOutcome {
            started: Timestamp::UNIX_EPOCH,
            targets,
        }
    }

    fn rules(per_target_keys: bool) -> KeyRules {
        KeyRules {
            latency_threshold: 10 * MS,
            loss_threshold_percent: 0.0,
            per_target_keys,
        }
    }

    fn values(entries: &[Entry]) -> Vec<(String, u8, AlertState)> {
        entries
            .iter()
            .map(|e| (e.key.clone(), e.value, e.state))
            .collect()
    }

    #[test]
    fn a_clean_round_reports_zeros() {
        let r = round(vec![target("10.0.1.1", vec![EchoResult::Reply(MS)])]);
        let got = entries(&r, &rules(false), &key_name);
        assert_eq!(
            values(&got),
            [
                (
                    "TiDB.ping.Ping_latency_over_threshold".into(),
                    0,
                    AlertState::Ok
                ),
                ("TiDB.ping.Ping_packet_loss".into(), 0, AlertState::Ok),
            ]
        );
        assert!(
            got.iter()
                .all(|e| e.level == "warning" && e.component == "ping")
        );
    }

    #[test]
    fn one_slow_echo_and_one_lost_echo_fire_both_keys() {
        let r = round(vec![
            target(
                "10.0.1.1",
                vec![EchoResult::Reply(MS), EchoResult::Reply(11 * MS)],
            ),
            target("fd00::1", vec![EchoResult::Reply(MS), EchoResult::Lost]),
        ]);
        let got = entries(&r, &rules(true), &key_name);
        assert_eq!(
            values(&got),
            [
                (
                    "TiDB.ping.Ping_latency_over_threshold".into(),
                    1,
                    AlertState::Firing
                ),
                ("TiDB.ping.Ping_packet_loss".into(), 1, AlertState::Firing),
                (
                    "TiDB.ping.Ping_latency_over_threshold_10_0_1_1".into(),
                    1,
                    AlertState::Firing
                ),
                (
                    "TiDB.ping.Ping_packet_loss_10_0_1_1".into(),
                    0,
                    AlertState::Ok
                ),
                (
                    "TiDB.ping.Ping_latency_over_threshold_fd00__1".into(),
                    0,
                    AlertState::Ok
                ),
                (
                    "TiDB.ping.Ping_packet_loss_fd00__1".into(),
                    1,
                    AlertState::Firing
                ),
            ]
        );
    }

    #[test]
    fn loss_must_exceed_the_threshold_percent() {
        let half_lost = round(vec![target(
            "10.0.1.1",
            vec![EchoResult::Reply(MS), EchoResult::Lost],
        )]);
        let mut tolerant = rules(false);
        tolerant.loss_threshold_percent = 50.0;
        assert_eq!(entries(&half_lost, &tolerant, &key_name)[1].value, 0);
        tolerant.loss_threshold_percent = 49.9;
        assert_eq!(entries(&half_lost, &tolerant, &key_name)[1].value, 1);
    }

    #[test]
    fn an_empty_round_reports_zeros() {
        let got = entries(&round(vec![]), &rules(true), &key_name);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|e| e.value == 0));
    }

    #[test]
    fn since_survives_an_unchanged_value_and_resets_on_change() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let clean = round(vec![target("a", vec![EchoResult::Reply(MS)])]);
        let lossy = round(vec![target("a", vec![EchoResult::Lost])]);

        let first = carry_since(&[], entries(&clean, &rules(false), &key_name), t0);
        assert!(first.iter().all(|e| e.since == Some(t0)));

        let second = carry_since(&first, entries(&lossy, &rules(false), &key_name), t1);
        assert_eq!(second[0].since, Some(t0), "latency unchanged");
        assert_eq!(second[1].since, Some(t1), "loss went 0 → 1");
    }

    #[test]
    fn suffix_replaces_dots_and_colons() {
        assert_eq!(target_suffix("10.0.1.1"), "10_0_1_1");
        assert_eq!(target_suffix("fd00::1"), "fd00__1");
        assert_eq!(target_suffix("tikv-1.example.com"), "tikv-1_example_com");
    }
}
