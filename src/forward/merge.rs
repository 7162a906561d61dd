//! Merging the answers of an Alertmanager pair into one set of alerts (pure).
//!
//! Alerts are not gossiped between clustered Alertmanagers; each server holds what the
//! Prometheus servers sent it. The same alert on both servers shares its fingerprint (a
//! hash of the label set), so the merge is keyed on it.

use std::collections::BTreeMap;

use super::alert::{Alert, AlertState};

/// Merges per-server alert lists, keyed by fingerprint. `server` names each list; the
/// merged alert lists in `servers` every server that reported it.
pub fn merge<'a>(
    answers: impl IntoIterator<Item = (&'a str, &'a [Alert])>,
) -> BTreeMap<String, Alert> {
    let mut merged: BTreeMap<String, Alert> = BTreeMap::new();
    for (server, alerts) in answers {
        for alert in alerts {
            let mut alert = alert.clone();
            alert.servers.insert(server.to_owned());
            match merged.remove(&alert.fingerprint) {
                None => {
                    merged.insert(alert.fingerprint.clone(), alert);
                }
                Some(seen) => {
                    let combined = combine(seen, alert);
                    merged.insert(combined.fingerprint.clone(), combined);
                }
            }
        }
    }
    merged
}

/// Two reports of one alert: the earliest `startsAt` and the strongest state win; the
/// latest `endsAt` (the strongest claim that it is still on) is kept; annotations and
/// the generator URL come from the most recently updated copy.
fn combine(a: Alert, b: Alert) -> Alert {
    let (older, newer) = if b.updated_at >= a.updated_at {
        (a, b)
    } else {
        (b, a)
    };
    let state = older.state.max(newer.state);
    let (silenced_by, inhibited_by) = if state == AlertState::Active {
        // Active on one server: whatever suppresses it elsewhere does not apply yet.
        (Vec::new(), Vec::new())
    } else {
        (
            union(&older.silenced_by, &newer.silenced_by),
            union(&older.inhibited_by, &newer.inhibited_by),
        )
    };
    Alert {
        starts_at: older.starts_at.min(newer.starts_at),
        ends_at: older.ends_at.max(newer.ends_at),
        state,
        silenced_by,
        inhibited_by,
        receivers: union(&older.receivers, &newer.receivers),
        servers: older.servers.union(&newer.servers).cloned().collect(),
        ..newer
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut all: Vec<String> = a.iter().chain(b).cloned().collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use jiff::Timestamp;

    use super::*;

    pub(crate) fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    pub(crate) fn alert(fingerprint: &str, starts: i64) -> Alert {
        Alert {
            fingerprint: fingerprint.into(),
            labels: BTreeMap::from([("alertname".into(), format!("A{fingerprint}"))]),
            annotations: BTreeMap::new(),
            starts_at: at(starts),
            ends_at: Some(at(starts + 300)),
            updated_at: Some(at(starts)),
            generator_url: String::new(),
            state: AlertState::Active,
            silenced_by: Vec::new(),
            inhibited_by: Vec::new(),
            receivers: Vec::new(),
            servers: BTreeSet::new(),
        }
    }

    #[test]
    fn the_same_alert_on_both_servers_is_one_alert() {
        let a = [alert("aa", 10), alert("bb", 0)];
        let b = [alert("aa", 5)];
        let merged = merge([("a", &a[..]), ("b", &b[..])]);
        assert_eq!(merged.len(), 2);
        let aa = &merged["aa"];
        assert_eq!(aa.starts_at, at(5), "earliest startsAt wins");
        assert_eq!(aa.ends_at, Some(at(310)), "latest endsAt is kept");
        assert_eq!(aa.servers, BTreeSet::from(["a".into(), "b".into()]));
        assert_eq!(merged["bb"].servers, BTreeSet::from(["a".into()]));
    }

    #[test]
    fn the_strongest_state_wins_in_either_order() {
        let mut silenced = alert("aa", 0);
        silenced.state = AlertState::Suppressed;
        silenced.silenced_by = vec!["s1".into()];
        silenced.updated_at = Some(at(100));
        let active = alert("aa", 0);
        for (first, second) in [(&silenced, &active), (&active, &silenced)] {
            let (x, y) = ([first.clone()], [second.clone()]);
            let merged = merge([("a", &x[..]), ("b", &y[..])]);
            assert_eq!(merged["aa"].state, AlertState::Active);
            assert!(merged["aa"].silenced_by.is_empty());
        }
        let mut unprocessed = alert("aa", 0);
        unprocessed.state = AlertState::Unprocessed;
        let (x, y) = ([unprocessed], [silenced.clone()]);
        let merged = merge([("a", &x[..]), ("b", &y[..])]);
        assert_eq!(merged["aa"].state, AlertState::Suppressed);
        assert_eq!(merged["aa"].silenced_by, ["s1"]);
    }

    #[test]
    fn annotations_come_from_the_latest_update() {
        let mut old = alert("aa", 0);
        old.annotations.insert("summary".into(), "old".into());
        let mut new = alert("aa", 0);
        new.annotations.insert("summary".into(), "new".into());
        new.updated_at = Some(at(50));
        for (x, y) in [
            ([old.clone()], [new.clone()]),
            ([new.clone()], [old.clone()]),
        ] {
            let merged = merge([("a", &x[..]), ("b", &y[..])]);
            assert_eq!(merged["aa"].annotations["summary"], "new");
        }
    }

    #[test]
    fn nothing_in_is_nothing_out() {
        assert!(merge(std::iter::empty()).is_empty());
    }
}
