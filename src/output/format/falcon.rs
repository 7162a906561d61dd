//! The Open-Falcon push array: `[{endpoint, metric, value, step, counterType, tags, timestamp}]`.

use serde::Serialize;

use super::FormatOptions;
use crate::snapshot::Snapshot;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Point<'a> {
    endpoint: &'a str,
    metric: &'a str,
    value: u8,
    step: u64,
    counter_type: &'static str,
    tags: String,
    timestamp: i64,
}

pub fn render(snapshot: &Snapshot, options: &FormatOptions) -> Vec<u8> {
    let endpoint = options.endpoint.as_deref().unwrap_or(&snapshot.host);
    let points: Vec<Point<'_>> = snapshot
        .entries
        .iter()
        .map(|e| Point {
            endpoint,
            metric: &e.key,
            value: e.value,
            step: snapshot.step_secs,
            counter_type: "GAUGE",
            tags: format!("component={},level={}", e.component, e.level),
            timestamp: snapshot.timestamp.as_second(),
        })
        .collect();
    let mut out = serde_json::to_vec(&points).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_array() {
        let snapshot = super::super::fixture::snapshot();
        let text = String::from_utf8(render(&snapshot, &FormatOptions::default())).unwrap();
        let ts = snapshot.timestamp.as_second();
        assert_eq!(
            text,
            format!(
                concat!(
                    r#"[{{"endpoint":"tidb-1","metric":"TiDB.pd.PD_server_is_down","value":0,"step":15,"counterType":"GAUGE","tags":"component=pd,level=emergency","timestamp":{ts}}},"#,
                    r#"{{"endpoint":"tidb-1","metric":"TiDB.tikv.TiKV_server_is_down","value":1,"step":15,"counterType":"GAUGE","tags":"component=tikv,level=emergency","timestamp":{ts}}}]"#,
                    "\n"
                ),
                ts = ts
            )
        );
        let custom = FormatOptions {
            endpoint: Some("10.0.1.5".into()),
        };
        assert!(
            String::from_utf8(render(&snapshot, &custom))
                .unwrap()
                .contains(r#""endpoint":"10.0.1.5""#)
        );
    }
}
