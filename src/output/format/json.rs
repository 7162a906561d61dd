//! `{"host", "timestamp", "values": [{key, value, level, component, state, since}]}`.

use serde::Serialize;

use crate::snapshot::{AlertState, Snapshot};

#[derive(Serialize)]
struct Document<'a> {
    host: &'a str,
    timestamp: String,
    values: Vec<Value<'a>>,
}

#[derive(Serialize)]
struct Value<'a> {
    key: &'a str,
    value: u8,
    level: &'a str,
    component: &'a str,
    state: AlertState,
    since: Option<String>,
}

pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    let doc = Document {
        host: &snapshot.host,
        timestamp: rfc3339(snapshot.timestamp),
        values: snapshot
            .entries
            .iter()
            .map(|e| Value {
                key: &e.key,
                value: e.value,
                level: &e.level,
                component: &e.component,
                state: e.state,
                since: e.since.map(rfc3339),
            })
            .collect(),
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
    #[test]
    fn exact_document() {
        let text = String::from_utf8(super::render(&super::super::fixture::snapshot())).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"host":"tidb-1","timestamp":"2026-11-21T10:05:00Z","values":["#,
                r#"{"key":"TiDB.pd.PD_server_is_down","value":0,"level":"emergency","component":"pd","state":"ok","since":null},"#,
                r#"{"key":"TiDB.tikv.TiKV_server_is_down","value":1,"level":"emergency","component":"tikv","state":"firing","since":"2026-11-21T10:00:00Z"}]}"#,
                "\n"
            )
        );
    }
}
