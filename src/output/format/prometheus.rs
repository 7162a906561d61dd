//! node_exporter textfile format: `tidb_host_agent_alert{key="…",component="…",level="…"} 0`.

use std::fmt::Write;

use crate::snapshot::Snapshot;

pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = String::with_capacity(160 + snapshot.entries.len() * 110);
    out.push_str(
        "# HELP tidb_host_agent_alert 1 while the alert fires on this host, 0 otherwise.\n",
    );
    out.push_str("# TYPE tidb_host_agent_alert gauge\n");
    for e in &snapshot.entries {
        let _ = writeln!(
            out,
            "tidb_host_agent_alert{{key=\"{}\",component=\"{}\",level=\"{}\"}} {}",
            escape(&e.key),
            escape(&e.component),
            escape(&e.level),
            e.value
        );
    }
    out.into_bytes()
}

/// Label values escape backslash, double quote and newline (exposition format).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn textfile_lines() {
        let text = String::from_utf8(super::render(&super::super::fixture::snapshot())).unwrap();
        assert_eq!(
            text,
            "# HELP tidb_host_agent_alert 1 while the alert fires on this host, 0 otherwise.\n\
             # TYPE tidb_host_agent_alert gauge\n\
             tidb_host_agent_alert{key=\"TiDB.pd.PD_server_is_down\",component=\"pd\",level=\"emergency\"} 0\n\
             tidb_host_agent_alert{key=\"TiDB.tikv.TiKV_server_is_down\",component=\"tikv\",level=\"emergency\"} 1\n"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
