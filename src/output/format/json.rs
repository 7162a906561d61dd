//! `{"host", "timestamp", "interval_secs", "values": [{key, value, level, component, state,
//! since, reasons?}], "degraded"?}`. `reasons` (the series that made a pending or firing
//! key's rule true) and `degraded` (why `Agent_degraded` is 1) appear only when not empty.
//! The same document is the daemon's published snapshot, read back by `status` and
//! `zabbix` ([`Document::parse`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::snapshot::{AlertState, Degraded, Reason, Snapshot};

#[derive(Debug, Serialize, Deserialize)]
pub struct Document<'a> {
    pub host: Cow<'a, str>,
    pub timestamp: String,
    /// Seconds between cycles: a document older than a few is stale.
    pub interval_secs: u64,
    pub values: Vec<Value<'a>>,
    #[serde(default, skip_serializing_if = "is_fine")]
    pub degraded: Cow<'a, Degraded>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Value<'a> {
    pub key: Cow<'a, str>,
    pub value: u8,
    pub level: Cow<'a, str>,
    pub component: Cow<'a, str>,
    pub state: AlertState,
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "<[Reason]>::is_empty")]
    pub reasons: Cow<'a, [Reason]>,
}

fn is_fine(degraded: &Degraded) -> bool {
    !degraded.is_degraded()
}

impl Document<'static> {
    /// Reads a document this format wrote.
    pub fn parse(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
}

pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    let doc = Document {
        host: Cow::Borrowed(&snapshot.host),
        timestamp: rfc3339(snapshot.timestamp),
        interval_secs: snapshot.step_secs,
        values: snapshot
            .entries
            .iter()
            .map(|e| Value {
                key: Cow::Borrowed(&e.key),
                value: e.value,
                level: Cow::Borrowed(&e.level),
                component: Cow::Borrowed(&e.component),
                state: e.state,
                since: e.since.map(rfc3339),
                reasons: Cow::Borrowed(&e.reasons),
            })
            .collect(),
        degraded: Cow::Borrowed(&snapshot.degraded),
    };
    // Serializing plain strings and numbers cannot fail.
    let mut out = serde_json::to_vec(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// RFC 3339 in UTC with whole seconds, e.g. `2026-11-21T10:05:00Z`.
pub(crate) fn rfc3339(t: jiff::Timestamp) -> String {
    t.round(jiff::Unit::Second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_document() {
        let text = String::from_utf8(render(&super::super::fixture::snapshot())).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"host":"tidb-1","timestamp":"2026-11-21T10:05:00Z","interval_secs":15,"values":["#,
                r#"{"key":"TiDB.pd.PD_server_is_down","value":0,"level":"emergency","component":"pd","state":"ok","since":null},"#,
                r#"{"key":"TiDB.tikv.TiKV_server_is_down","value":1,"level":"emergency","component":"tikv","state":"firing","since":"2026-11-21T10:00:00Z","#,
                r#""reasons":[{"labels":{"instance":"10.0.1.5:20180"},"value":"0"}]}]}"#,
                "\n"
            )
        );
    }

    #[test]
    fn degraded_causes_are_written_and_read_back() {
        let mut snapshot = super::super::fixture::snapshot();
        snapshot.degraded = Degraded {
            unknown_keys: vec!["TiDB.pd.PD_server_is_down".into()],
            failing_sinks: vec!["file:/nowhere/alerts.txt".into()],
        };
        let bytes = render(&snapshot);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.trim_end().ends_with(concat!(
            r#""degraded":{"unknown_keys":["TiDB.pd.PD_server_is_down"],"#,
            r#""failing_sinks":["file:/nowhere/alerts.txt"]}}"#
        )));
        let doc = Document::parse(&bytes).unwrap();
        assert_eq!(doc.degraded.as_ref(), &snapshot.degraded);
        assert_eq!(doc.interval_secs, 15);
        assert_eq!(
            doc.values[1].reasons.as_ref(),
            snapshot.entries[1].reasons.as_slice()
        );
        assert!(doc.values[0].reasons.is_empty());
    }
}
