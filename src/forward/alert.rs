//! What the pipeline carries: alerts as Alertmanager reports them, and the `firing` and
//! `resolved` events that targets receive. Also Alertmanager's JSON shapes (the v2 API
//! and the v4 webhook payload) and their conversion into ours.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An alert's state as Alertmanager reports it. The order is the strength used when the
/// two servers of a pair disagree: `active` beats `suppressed` beats `unprocessed`, so an
/// alert silenced on one server only (the silence not yet gossiped) is still forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Unprocessed,
    Suppressed,
    Active,
}

/// One alert, as one server reports it or as merged across the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// When Alertmanager will consider the alert resolved unless it is refreshed.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    pub state: AlertState,
    #[serde(default)]
    pub silenced_by: Vec<String>,
    #[serde(default)]
    pub inhibited_by: Vec<String>,
    #[serde(default)]
    pub receivers: Vec<String>,
    /// The servers that report this alert (filled in by the merge).
    #[serde(default)]
    pub servers: BTreeSet<String>,
}

impl Alert {
    /// Whether Alertmanager itself would call the alert resolved at `now`.
    pub fn has_ended(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Firing,
    Resolved,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Firing => "firing",
            EventStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a target receives: one alert becoming `firing` or `resolved`. Its JSON is the
/// shape of one alert in Alertmanager's webhook payload, so existing webhook consumers
/// can read it; `endsAt` is null while firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub status: EventStatus,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

impl Event {
    pub fn firing(alert: &Alert, starts_at: Timestamp) -> Self {
        Self {
            status: EventStatus::Firing,
            fingerprint: alert.fingerprint.clone(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at,
            ends_at: None,
            generator_url: alert.generator_url.clone(),
        }
    }

    pub fn resolved(alert: &Alert, starts_at: Timestamp, ends_at: Timestamp) -> Self {
        Self {
            status: EventStatus::Resolved,
            ends_at: Some(ends_at),
            ..Self::firing(alert, starts_at)
        }
    }

    /// The dedupe key (fingerprint, status, startsAt) as a string that is safe as a file
    /// name: the fingerprint is untrusted input, so anything but short lowercase hex is
    /// replaced by a hash of it.
    pub fn id(&self) -> String {
        let fingerprint = if is_plain_fingerprint(&self.fingerprint) {
            self.fingerprint.clone()
        } else {
            format!("h{:016x}", fnv1a(self.fingerprint.as_bytes()))
        };
        format!(
            "{fingerprint}-{}-{}",
            self.starts_at.as_nanosecond(),
            self.status
        )
    }

    /// The alert's name, for logs and `ALERT_NAME`.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// `severity`, or TiDB's `level` label when there is no `severity`.
    pub fn severity(&self) -> &str {
        self.labels
            .get("severity")
            .or_else(|| self.labels.get("level"))
            .map_or("", String::as_str)
    }
}

fn is_plain_fingerprint(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// FNV-1a, 64 bit: stable across builds and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A fingerprint for an alert that came without one: a hash of its sorted label set.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let mut bytes = Vec::new();
    for (name, value) in labels {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0xff);
    }
    format!("{:016x}", fnv1a(&bytes))
}

/// One alert of `GET /api/v2/alerts` (Alertmanager's `gettableAlert`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GettableAlert {
    fingerprint: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Timestamp,
    ends_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
    status: GettableStatus,
    #[serde(default)]
    receivers: Vec<GettableReceiver>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GettableStatus {
    state: AlertState,
    #[serde(default)]
    silenced_by: Vec<String>,
    #[serde(default)]
    inhibited_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct GettableReceiver {
    name: String,
}

/// Parses the body of `GET /api/v2/alerts`. One malformed alert fails the whole answer:
/// skipping it would look like the alert had resolved.
pub fn parse_v2_alerts(body: &[u8]) -> Result<Vec<Alert>, serde_json::Error> {
    parse_v2_alerts_bounded(body, usize::MAX).map(|(alerts, _)| alerts)
}

/// [`parse_v2_alerts`], keeping only the `max` earliest-started alerts (then by
/// fingerprint) while it reads: a flood of alerts never stands in memory whole. Returns
/// them, earliest first, and how many were left out.
pub fn parse_v2_alerts_bounded(
    body: &[u8],
    max: usize,
) -> Result<(Vec<Alert>, usize), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut earliest = Earliest {
        max,
        kept: std::collections::BinaryHeap::new(),
        ignored: 0,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    (&mut earliest).deserialize(&mut deserializer)?;
    deserializer.end()?;
    let alerts = earliest
        .kept
        .into_sorted_vec()
        .into_iter()
        .map(|ByStart(a)| a.into())
        .collect();
    Ok((alerts, earliest.ignored))
}

/// The alerts kept so far, the latest-started on top of the heap.
struct Earliest {
    max: usize,
    kept: std::collections::BinaryHeap<ByStart>,
    ignored: usize,
}

/// An alert ordered by `startsAt`, then fingerprint.
struct ByStart(GettableAlert);

impl ByStart {
    fn key(&self) -> (Timestamp, &str) {
        (self.0.starts_at, &self.0.fingerprint)
    }
}

impl PartialEq for ByStart {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByStart {}

impl PartialOrd for ByStart {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByStart {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut Earliest {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Earliest {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of alerts")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(alert) = seq.next_element::<GettableAlert>()? {
            self.kept.push(ByStart(alert));
            if self.kept.len() > self.max {
                self.kept.pop();
                self.ignored += 1;
            }
        }
        Ok(())
    }
}

impl From<GettableAlert> for Alert {
    fn from(a: GettableAlert) -> Alert {
        Alert {
            fingerprint: a.fingerprint,
            labels: a.labels,
            annotations: a.annotations,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            updated_at: a.updated_at,
            generator_url: a.generator_url,
            state: a.status.state,
            silenced_by: a.status.silenced_by,
            inhibited_by: a.status.inhibited_by,
            receivers: a.receivers.into_iter().map(|r| r.name).collect(),
            servers: BTreeSet::new(),
        }
    }
}

/// Alertmanager's webhook payload (version 4).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: EventStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

impl WebhookAlert {
    /// The event this notification stands for. A firing alert's `endsAt` is Go's zero
    /// time in the payload; it becomes null like in our own firing events.
    pub fn into_event(self) -> Event {
        let fingerprint = if self.fingerprint.is_empty() {
            fingerprint_of(&self.labels)
        } else {
            self.fingerprint
        };
        let ends_at = match self.status {
            EventStatus::Firing => None,
            EventStatus::Resolved => self.ends_at,
        };
        Event {
            status: self.status,
            fingerprint,
            labels: self.labels,
            annotations: self.annotations,
            starts_at: self.starts_at,
            ends_at,
            generator_url: self.generator_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"[{"annotations":{"summary":"s"},"endsAt":"2026-11-21T19:59:37.022Z",
        "fingerprint":"d5e08c84ef09a8b8","receivers":[{"name":"null"}],
        "startsAt":"2026-11-21T19:54:37.022Z",
        "status":{"inhibitedBy":[],"silencedBy":["abc"],"state":"suppressed"},
        "updatedAt":"2026-11-21T19:54:37.022Z","generatorURL":"http://x",
        "labels":{"alertname":"X","severity":"critical"}}]"#;

    #[test]
    fn parses_the_v2_answer() {
        let alerts = parse_v2_alerts(V2.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.fingerprint, "d5e08c84ef09a8b8");
        assert_eq!(a.state, AlertState::Suppressed);
        assert_eq!(a.silenced_by, ["abc"]);
        assert_eq!(a.receivers, ["null"]);
        assert_eq!(a.labels["alertname"], "X");
        assert_eq!(a.starts_at.to_string(), "2026-11-21T19:54:37.022Z");
    }

    #[test]
    fn past_max_the_earliest_started_alerts_are_kept() {
        let answer: Vec<String> = [("f1", 50), ("f2", 10), ("f3", 30), ("f4", 10), ("f5", 40)]
            .iter()
            .map(|(fingerprint, second)| {
                V2.trim_start_matches('[')
                    .trim_end_matches(']')
                    .replace("d5e08c84ef09a8b8", fingerprint)
                    .replace("19:54:37.022Z", &format!("19:54:{second}Z"))
            })
            .collect();
        let body = format!("[{}]", answer.join(","));
        let (kept, ignored) = parse_v2_alerts_bounded(body.as_bytes(), 3).unwrap();
        let fingerprints: Vec<&str> = kept.iter().map(|a| a.fingerprint.as_str()).collect();
        assert_eq!(fingerprints, ["f2", "f4", "f3"]);
        assert_eq!(ignored, 2);
        let (all, ignored) = parse_v2_alerts_bounded(body.as_bytes(), 10).unwrap();
        assert_eq!((all.len(), ignored), (5, 0));
        assert!(parse_v2_alerts_bounded(b"[] trailing", 10).is_err());
    }

    #[test]
    fn one_malformed_alert_fails_the_answer() {
        let bad = V2.replace(r#""severity":"critical""#, r#""severity":5"#);
        assert!(parse_v2_alerts(bad.as_bytes()).is_err());
        assert!(parse_v2_alerts(b"<html>").is_err());
    }

    #[test]
    fn event_ids_are_file_names_whatever_the_fingerprint() {
        let alert = &parse_v2_alerts(V2.as_bytes()).unwrap()[0];
        let event = Event::firing(alert, alert.starts_at);
        assert_eq!(
            event.id(),
            format!(
                "d5e08c84ef09a8b8-{}-firing",
                alert.starts_at.as_nanosecond()
            )
        );
        let hostile = Event {
            fingerprint: "../../etc/passwd".into(),
            ..event.clone()
        };
        let id = hostile.id();
        assert!(
            id.starts_with('h') && !id.contains('/') && !id.contains(".."),
            "{id}"
        );
        assert_ne!(
            Event::resolved(alert, alert.starts_at, alert.starts_at).id(),
            event.id()
        );
    }

    #[test]
    fn the_severity_falls_back_to_tidbs_level_label() {
        let alert = &parse_v2_alerts(V2.as_bytes()).unwrap()[0];
        let mut event = Event::firing(alert, alert.starts_at);
        assert_eq!(event.severity(), "critical");
        event.labels.remove("severity");
        event.labels.insert("level".into(), "emergency".into());
        assert_eq!(event.severity(), "emergency");
    }

    #[test]
    fn webhook_alerts_become_events() {
        let payload: WebhookPayload = serde_json::from_str(
            r#"{"version":"4","receiver":"r","status":"firing","groupKey":"{}:{}",
            "alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},
            "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z",
            "generatorURL":"","fingerprint":""}]}"#,
        )
        .unwrap();
        let event = payload.alerts.into_iter().next().unwrap().into_event();
        assert_eq!(event.status, EventStatus::Firing);
        assert_eq!(event.ends_at, None);
        assert_eq!(event.fingerprint.len(), 16, "computed from the labels");
    }
}
