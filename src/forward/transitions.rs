//! From successive polls of the pair to `firing` and `resolved` events (pure).
//!
//! [`Known`] is what the previous polls established: the alerts considered firing, which
//! servers hold each, and which events were already emitted. It is saved after every
//! poll, so a restart neither re-fires nor forgets.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Event};
use super::merge::merge;

/// One configured server's answer to this poll; `alerts` is `None` when it did not answer.
#[derive(Debug, Clone, Copy)]
pub struct ServerAnswer<'a> {
    pub server: &'a str,
    pub alerts: Option<&'a [Alert]>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Known {
    /// Alerts considered firing, by fingerprint.
    pub alerts: BTreeMap<String, KnownAlert>,
    /// Events already emitted, by [`Event::id`] (the dedupe key).
    pub emitted: BTreeMap<String, Emitted>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownAlert {
    /// The latest merged view, used for the `resolved` event.
    pub alert: Alert,
    /// `startsAt` of the `firing` event, so `resolved` carries the same one.
    pub fired_starts_at: Timestamp,
    /// Servers that reported the alert the last time they answered, with the
    /// `startsAt` each reported.
    pub holders: BTreeMap<String, Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    pub fingerprint: String,
    pub at: Timestamp,
    /// Emitted from a webhook notification only: such a record never stands in for
    /// the polled event with the same key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_webhook: bool,
}

impl Known {
    /// Whether `self` and `other` know the same alerts, held by the same servers since the
    /// same times, with the same events emitted: all a restart needs to neither re-fire
    /// nor forget. The alerts' other fields may differ.
    pub fn same_outline(&self, other: &Known) -> bool {
        self.emitted == other.emitted
            && self.alerts.len() == other.alerts.len()
            && self
                .alerts
                .iter()
                .zip(&other.alerts)
                .all(|((fa, a), (fb, b))| {
                    fa == fb
                        && a.fired_starts_at == b.fired_starts_at
                        && a.holders == b.holders
                        && a.alert.ends_at == b.alert.ends_at
                })
    }

    /// Applies one poll and returns the new events, deduplicated.
    ///
    /// - An alert seen for the first time fires.
    /// - A known alert resolves when every server that held it answered without it, or
    ///   when its `endsAt` has passed. A server that did not answer keeps holding what it
    ///   held: its silence is not evidence that an alert ended.
    /// - A known alert that every server holding it now reports with a later `startsAt`
    ///   than it reported before is a new occurrence (it resolved and fired again between
    ///   two polls): the old one resolves and the new one fires.
    /// - When no server answered, nothing changes.
    pub fn step(
        &mut self,
        answers: &[ServerAnswer<'_>],
        now: Timestamp,
        retention: std::time::Duration,
    ) -> Vec<Event> {
        let configured: BTreeSet<&str> = answers.iter().map(|a| a.server).collect();
        let fresh_lists: Vec<(&str, Vec<Alert>)> = answers
            .iter()
            .filter_map(|a| {
                let alerts = a.alerts?;
                // An ended alert in an answer counts as absent from it.
                let live = alerts
                    .iter()
                    .filter(|x| !x.has_ended(now))
                    .cloned()
                    .collect();
                Some((a.server, live))
            })
            .collect();
        if fresh_lists.is_empty() {
            return Vec::new();
        }
        let answered: BTreeSet<&str> = fresh_lists.iter().map(|(server, _)| *server).collect();
        let silent = |holder: &str| configured.contains(holder) && !answered.contains(holder);
        // What each answering server says about each alert's startsAt.
        let mut reported: BTreeMap<&str, BTreeMap<String, Timestamp>> = BTreeMap::new();
        for (server, list) in &fresh_lists {
            for alert in list {
                let starts = reported.entry(alert.fingerprint.as_str()).or_default();
                let earliest = starts
                    .get(*server)
                    .map_or(alert.starts_at, |t| (*t).min(alert.starts_at));
                starts.insert((*server).to_owned(), earliest);
            }
        }
        let fresh = merge(fresh_lists.iter().map(|(s, list)| (*s, list.as_slice())));

        let mut events = Vec::new();
        let gone: Vec<String> = self
            .alerts
            .keys()
            .filter(|fingerprint| !fresh.contains_key(*fingerprint))
            .cloned()
            .collect();
        for fingerprint in gone {
            let Some(known) = self.alerts.get_mut(&fingerprint) else {
                continue;
            };
            known.holders.retain(|holder, _| silent(holder));
            if known.holders.is_empty() || known.alert.has_ended(now) {
                let ends_at = known.alert.ends_at.filter(|end| *end <= now).unwrap_or(now);
                events.push(Event::resolved(
                    &known.alert,
                    known.fired_starts_at,
                    ends_at,
                ));
                self.alerts.remove(&fingerprint);
            }
        }
        for (fingerprint, alert) in fresh {
            let now_reported = reported.remove(fingerprint.as_str()).unwrap_or_default();
            match self.alerts.get_mut(&fingerprint) {
                None => {
                    events.push(Event::firing(&alert, alert.starts_at));
                    self.alerts.insert(
                        fingerprint,
                        KnownAlert {
                            fired_starts_at: alert.starts_at,
                            holders: now_reported,
                            alert,
                        },
                    );
                }
                Some(known) => {
                    let silent_holders: BTreeMap<String, Timestamp> = known
                        .holders
                        .iter()
                        .filter(|(holder, _)| silent(holder))
                        .map(|(holder, starts)| (holder.clone(), *starts))
                        .collect();
                    let mut compared = now_reported
                        .iter()
                        .filter_map(|(server, starts)| Some((known.holders.get(server)?, starts)))
                        .peekable();
                    let restarted = compared.peek().is_some()
                        && compared.all(|(before, now)| now > before)
                        && silent_holders.is_empty()
                        && alert.starts_at > known.fired_starts_at;
                    if restarted {
                        events.push(Event::resolved(
                            &known.alert,
                            known.fired_starts_at,
                            alert.starts_at,
                        ));
                        events.push(Event::firing(&alert, alert.starts_at));
                        known.fired_starts_at = alert.starts_at;
                    }
                    known.holders = silent_holders;
                    known.holders.extend(now_reported);
                    known.alert = alert;
                }
            }
        }
        let events = events
            .into_iter()
            .filter(|e| self.admit(e, now, false))
            .collect();
        self.prune(now, retention);
        events
    }

    /// Events that arrived by webhook, and how many of them were ignored.
    ///
    /// The polled view wins: anyone who can reach the receiver can claim any
    /// fingerprint, so an event for an alert that polling tracks is ignored (it can
    /// neither resolve nor restate that alert), and a webhook event emitted first does
    /// not suppress the polled event with the same key later ([`Emitted::from_webhook`]).
    /// The rest is deduplicated against everything emitted so far.
    pub fn received(
        &mut self,
        events: Vec<Event>,
        now: Timestamp,
        retention: std::time::Duration,
    ) -> (Vec<Event>, usize) {
        let offered = events.len();
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| !self.alerts.contains_key(&e.fingerprint))
            .collect();
        let ignored = offered - events.len();
        let events = events
            .into_iter()
            .filter(|e| self.admit(e, now, true))
            .collect();
        self.prune(now, retention);
        (events, ignored)
    }

    /// Records `event` as emitted; false when it already was. Seeing it again renews the
    /// record, so Alertmanager's repeated notifications of a long-firing alert keep its
    /// key alive past the retention. A polled event whose key only a webhook emitted
    /// is emitted again, and takes the record over.
    fn admit(&mut self, event: &Event, now: Timestamp, from_webhook: bool) -> bool {
        let id = event.id();
        if let Some(seen) = self.emitted.get_mut(&id) {
            seen.at = now;
            if seen.from_webhook && !from_webhook {
                seen.from_webhook = false;
                return true;
            }
            return false;
        }
        self.emitted.insert(
            id,
            Emitted {
                fingerprint: event.fingerprint.clone(),
                at: now,
                from_webhook,
            },
        );
        true
    }

    /// Forgets dedupe keys older than `retention`, except those of alerts still firing.
    fn prune(&mut self, now: Timestamp, retention: std::time::Duration) {
        let horizon = now.checked_sub(retention).unwrap_or(Timestamp::MIN);
        let alerts = &self.alerts;
        self.emitted
            .retain(|_, e| e.at >= horizon || alerts.contains_key(&e.fingerprint));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::alert::EventStatus;
    use super::super::merge::tests::{alert, at};
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn answer<'a>(server: &'a str, alerts: &'a [Alert]) -> ServerAnswer<'a> {
        ServerAnswer {
            server,
            alerts: Some(alerts),
        }
    }

    fn down(server: &str) -> ServerAnswer<'_> {
        ServerAnswer {
            server,
            alerts: None,
        }
    }

    #[test]
    fn the_outline_ignores_what_moves_on_every_resend() {
        let mut known = Known::default();
        known.step(&[answer("a", &[alert("aa", 0)])], at(1), DAY);
        let mut resent = known.clone();
        if let Some(k) = resent.alerts.get_mut("aa") {
            k.alert.updated_at = Some(at(60));
        }
        assert!(resent.same_outline(&known));
        let mut held_elsewhere = known.clone();
        held_elsewhere.step(
            &[
                answer("a", &[alert("aa", 0)]),
                answer("b", &[alert("aa", 0)]),
            ],
            at(2),
            DAY,
        );
        assert!(!held_elsewhere.same_outline(&known));
        let mut another = known.clone();
        another.step(
            &[answer("a", &[alert("aa", 0), alert("bb", 0)])],
            at(2),
            DAY,
        );
        assert!(!another.same_outline(&known));
    }

    fn summary(events: &[Event]) -> Vec<(String, EventStatus, Timestamp)> {
        events
            .iter()
            .map(|e| (e.fingerprint.clone(), e.status, e.starts_at))
            .collect()
    }

    #[test]
    fn an_alert_on_both_servers_fires_once_and_resolves_once() {
        let mut known = Known::default();
        let (a, b) = ([alert("aa", 10)], [alert("aa", 12)]);
        let events = known.step(&[answer("a", &a), answer("b", &b)], at(20), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Firing, at(10))]
        );
        assert!(
            known
                .step(&[answer("a", &a), answer("b", &b)], at(30), DAY)
                .is_empty()
        );

        // Gone from one server only: still firing.
        assert!(
            known
                .step(&[answer("a", &[]), answer("b", &b)], at(40), DAY)
                .is_empty()
        );
        let events = known.step(&[answer("a", &[]), answer("b", &[])], at(50), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(10))]
        );
        assert_eq!(events[0].ends_at, Some(at(50)));
        assert!(
            known
                .step(&[answer("a", &[]), answer("b", &[])], at(60), DAY)
                .is_empty()
        );
    }

    #[test]
    fn no_answer_infers_nothing() {
        let mut known = Known::default();
        let a = [alert("aa", 0)];
        known.step(&[answer("a", &a), answer("b", &a)], at(10), DAY);
        let before = known.clone();
        // Even past the alert's endsAt: without an answer there is no evidence at all.
        assert!(
            known
                .step(&[down("a"), down("b")], at(1_000), DAY)
                .is_empty()
        );
        assert_eq!(known, before);
    }

    #[test]
    fn a_server_that_is_down_keeps_holding_its_alerts() {
        let mut known = Known::default();
        let mut only_on_a = alert("aa", 0);
        only_on_a.ends_at = Some(at(3_600));
        let both = alert("bb", 0);
        let (a, b) = ([only_on_a.clone(), both.clone()], [both.clone()]);
        assert_eq!(
            known
                .step(&[answer("a", &a), answer("b", &b)], at(10), DAY)
                .len(),
            2
        );

        // `a` goes down: `aa` is absent from every answering server, yet `a` held it.
        assert!(
            known
                .step(&[down("a"), answer("b", &b)], at(20), DAY)
                .is_empty()
        );
        // Alerts still flow from `b`.
        let b2 = [both.clone(), alert("cc", 15)];
        let events = known.step(&[down("a"), answer("b", &b2)], at(30), DAY);
        assert_eq!(
            summary(&events),
            [("cc".into(), EventStatus::Firing, at(15))]
        );
        // `a` answers again, without `aa`: now it resolved.
        let events = known.step(&[answer("a", &[]), answer("b", &b2)], at(40), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(0))]
        );
    }

    #[test]
    fn a_held_alert_resolves_when_its_ends_at_passes() {
        let mut known = Known::default();
        let a = [alert("aa", 0)]; // endsAt = at(300)
        known.step(&[answer("a", &a), answer("b", &[])], at(10), DAY);
        assert!(
            known
                .step(&[down("a"), answer("b", &[])], at(299), DAY)
                .is_empty()
        );
        let events = known.step(&[down("a"), answer("b", &[])], at(301), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(0))]
        );
        assert_eq!(events[0].ends_at, Some(at(300)));
    }

    #[test]
    fn an_answer_listing_an_ended_alert_resolves_it() {
        let mut known = Known::default();
        let a = [alert("aa", 0)];
        known.step(&[answer("a", &a)], at(10), DAY);
        let events = known.step(&[answer("a", &a)], at(400), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(0))]
        );
        assert_eq!(events[0].ends_at, Some(at(300)));
    }

    #[test]
    fn a_later_starts_at_is_a_new_occurrence() {
        let mut known = Known::default();
        known.step(&[answer("a", &[alert("aa", 0)])], at(10), DAY);
        let events = known.step(&[answer("a", &[alert("aa", 100)])], at(110), DAY);
        assert_eq!(
            summary(&events),
            [
                ("aa".into(), EventStatus::Resolved, at(0)),
                ("aa".into(), EventStatus::Firing, at(100)),
            ]
        );
        // An earlier startsAt from the other server refines nothing already sent.
        let events = known.step(
            &[
                answer("a", &[alert("aa", 100)]),
                answer("b", &[alert("aa", 50)]),
            ],
            at(120),
            DAY,
        );
        assert!(events.is_empty());
        let events = known.step(&[answer("a", &[]), answer("b", &[])], at(130), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(100))]
        );
    }

    #[test]
    fn a_server_that_always_had_a_later_starts_at_is_no_new_occurrence() {
        let mut known = Known::default();
        let (a, b) = ([alert("aa", 10)], [alert("aa", 12)]);
        known.step(&[answer("a", &a), answer("b", &b)], at(20), DAY);
        // Resolved on `a` first: only `b` and its later startsAt remain.
        assert!(
            known
                .step(&[answer("a", &[]), answer("b", &b)], at(30), DAY)
                .is_empty()
        );
        // `b` reports a later startsAt than it did before: that is a new occurrence.
        let events = known.step(
            &[answer("a", &[]), answer("b", &[alert("aa", 40)])],
            at(45),
            DAY,
        );
        assert_eq!(
            summary(&events),
            [
                ("aa".into(), EventStatus::Resolved, at(10)),
                ("aa".into(), EventStatus::Firing, at(40)),
            ]
        );
    }

    #[test]
    fn a_later_starts_at_waits_for_silent_holders() {
        let mut known = Known::default();
        known.step(
            &[
                answer("a", &[alert("aa", 0)]),
                answer("b", &[alert("aa", 0)]),
            ],
            at(10),
            DAY,
        );
        let events = known.step(&[down("a"), answer("b", &[alert("aa", 100)])], at(110), DAY);
        assert!(events.is_empty(), "`a` may still hold the first occurrence");
    }

    #[test]
    fn an_alert_seen_again_with_the_same_starts_at_is_not_resent() {
        let mut known = Known::default();
        let a = [alert("aa", 0)];
        assert_eq!(known.step(&[answer("a", &a)], at(10), DAY).len(), 1);
        assert_eq!(known.step(&[answer("a", &[])], at(20), DAY).len(), 1);
        // A stale copy shows up again (a server back from a partition), then goes.
        assert!(known.step(&[answer("a", &a)], at(30), DAY).is_empty());
        assert!(known.step(&[answer("a", &[])], at(40), DAY).is_empty());
    }

    #[test]
    fn servers_removed_from_the_config_hold_nothing() {
        let mut known = Known::default();
        known.step(&[answer("old", &[alert("aa", 0)])], at(10), DAY);
        let events = known.step(&[answer("new", &[])], at(20), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(0))]
        );
    }

    #[test]
    fn webhook_events_share_the_dedupe_keys() {
        let mut known = Known::default();
        let firing = Event::firing(&alert("bb", 0), at(0));
        assert_eq!(known.received(vec![firing.clone()], at(10), DAY).0.len(), 1);
        assert!(known.received(vec![firing], at(11), DAY).0.is_empty());
        let resolved = Event::resolved(&alert("bb", 0), at(0), at(12));
        assert_eq!(
            known.received(vec![resolved.clone()], at(12), DAY).0.len(),
            1
        );
        assert!(known.received(vec![resolved], at(13), DAY).0.is_empty());
    }

    #[test]
    fn a_webhook_event_never_resolves_or_restates_a_polled_alert() {
        let mut known = Known::default();
        let events = known.step(&[answer("a", &[alert("aa", 0)])], at(10), DAY);
        let (same, ignored) = known.received(events, at(11), DAY);
        assert!(same.is_empty());
        assert_eq!(ignored, 1);
        // A forged resolve (or a forged firing with other labels) of a polled alert.
        let mut forged = Event::resolved(&alert("aa", 0), at(0), at(12));
        forged.labels.insert("alertname".into(), "Forged".into());
        assert_eq!(known.received(vec![forged], at(12), DAY), (Vec::new(), 1));
        // The real resolve still comes from polling.
        let events = known.step(&[answer("a", &[])], at(20), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Resolved, at(0))]
        );
    }

    #[test]
    fn a_webhook_event_first_does_not_suppress_the_polled_one() {
        let mut known = Known::default();
        // Forged ahead of the poll, with the fingerprint and startsAt the poll will see.
        let mut forged = Event::firing(&alert("aa", 0), at(0));
        forged.labels.insert("alertname".into(), "Forged".into());
        assert_eq!(known.received(vec![forged], at(5), DAY).0.len(), 1);
        let events = known.step(&[answer("a", &[alert("aa", 0)])], at(10), DAY);
        assert_eq!(
            summary(&events),
            [("aa".into(), EventStatus::Firing, at(0))]
        );
        assert_eq!(events[0].alertname(), "Aaa", "the polled labels");
        // From now on the key is polling's: seen again, it is not sent again.
        let events = known.step(&[answer("a", &[alert("aa", 0)])], at(20), DAY);
        assert!(events.is_empty());
    }

    #[test]
    fn repeated_notifications_keep_their_key_alive() {
        let mut known = Known::default();
        let a = alert("aa", 0);
        let firing = Event::firing(&a, a.starts_at);
        let hour = Duration::from_secs(3600);
        assert_eq!(known.received(vec![firing.clone()], at(0), hour).0.len(), 1);
        // Repeated every 40 minutes, for longer than the retention: never sent again.
        for repeat in 1..=5 {
            let now = at(repeat * 2400);
            assert!(known.received(vec![firing.clone()], now, hour).0.is_empty());
        }
        // Silent for longer than the retention: forgotten, so bounded.
        known.received(Vec::new(), at(5 * 2400 + 3601), hour);
        assert!(known.emitted.is_empty());
    }

    #[test]
    fn dedupe_keys_expire_after_the_retention_unless_still_firing() {
        let mut known = Known::default();
        let mut bb = alert("bb", 0);
        bb.ends_at = None;
        known.step(&[answer("a", &[alert("aa", 0), bb.clone()])], at(10), DAY);
        known.step(&[answer("a", &[bb.clone()])], at(20), DAY);
        assert_eq!(known.emitted.len(), 3);
        known.step(&[answer("a", &[bb])], at(20 + 86_401), DAY);
        let left: Vec<&str> = known
            .emitted
            .values()
            .map(|e| e.fingerprint.as_str())
            .collect();
        assert_eq!(left, ["bb"]);
    }
}
