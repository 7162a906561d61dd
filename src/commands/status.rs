//! `tidb-host-agent status`: the running daemon's latest snapshot as a table (key, value,
//! state, since, level, and why each key that is 1 or pending is so), or as its json
//! document (`--json`). Exit 0 when no key is 1, 1 when some is, [`EXIT_NO_SNAPSHOT`] when
//! there is no fresh snapshot.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use super::print;
use super::published::{self, PublishedError};
use crate::evaluation::degraded;
use crate::lifecycle::exit::EXIT_NO_SNAPSHOT;
use crate::output::format::json::{Document, Value};
use crate::snapshot::AlertState;

pub fn run(path: &Path, json: bool) -> ExitCode {
    let doc = match published::read(path, Timestamp::now()) {
        Ok(doc) => doc,
        Err(e) => return no_snapshot(&e),
    };
    let text = if json {
        // The document as the daemon wrote it, for scripts.
        let mut bytes = serde_json::to_vec(&doc).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    } else {
        render(&doc).into_bytes()
    };
    let printed = print(&text);
    let firing = doc.values.iter().any(|v| v.value == 1);
    match (printed == ExitCode::SUCCESS, firing) {
        (false, _) => printed,
        (true, false) => ExitCode::SUCCESS,
        (true, true) => ExitCode::from(1),
    }
}

/// The error, and the exit code of a missing or stale snapshot.
pub fn no_snapshot(e: &PublishedError) -> ExitCode {
    eprintln!("{}", crate::error::chain(e));
    ExitCode::from(EXIT_NO_SNAPSHOT)
}

const HEADER: [&str; 6] = ["KEY", "VALUE", "STATE", "SINCE", "LEVEL", "WHY"];

/// A summary line, then one aligned row per key.
fn render(doc: &Document<'_>) -> String {
    let firing = doc.values.iter().filter(|v| v.value == 1).count();
    let mut out = format!(
        "host {}, snapshot of {} (every {}s): {} keys, {} at 1\n",
        doc.host,
        doc.timestamp,
        doc.interval_secs,
        doc.values.len(),
        firing
    );
    let rows: Vec<[String; 6]> = doc
        .values
        .iter()
        .map(|v| {
            [
                v.key.to_string(),
                v.value.to_string(),
                v.state.to_string(),
                v.since.clone().unwrap_or_else(|| "-".into()),
                v.level.to_string(),
                why(doc, v),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Why a key that is 1 or pending is so: its reasons, or for `Agent_degraded` its causes.
fn why(doc: &Document<'_>, v: &Value<'_>) -> String {
    if v.value != 1 && v.state != AlertState::Pending {
        return String::new();
    }
    if v.component == degraded::COMPONENT && doc.degraded.is_degraded() {
        let mut causes = Vec::new();
        if !doc.degraded.unknown_keys.is_empty() {
            causes.push(format!(
                "unknown for {}+ cycles: {}",
                degraded::UNKNOWN_CYCLES,
                doc.degraded.unknown_keys.join(", ")
            ));
        }
        if !doc.degraded.failing_sinks.is_empty() {
            causes.push(format!(
                "last write failed: {}",
                doc.degraded.failing_sinks.join(", ")
            ));
        }
        return causes.join("; ");
    }
    if v.state == AlertState::Unknown {
        return "no Prometheus answered (on_no_data)".into();
    }
    v.reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format;
    use crate::snapshot::{Degraded, Entry, Snapshot};

    #[test]
    fn table_with_reasons_and_degraded_causes() {
        let mut snapshot = format::fixture::snapshot();
        snapshot.entries.push(Entry {
            key: "TiDB.agent.Agent_degraded".into(),
            value: 1,
            level: "warning".into(),
            component: "agent".into(),
            state: AlertState::Firing,
            since: None,
            reasons: Vec::new(),
        });
        let snapshot = Snapshot::new(
            snapshot.host,
            snapshot.timestamp,
            snapshot.step_secs,
            snapshot.entries,
        );
        let mut snapshot = snapshot;
        snapshot.degraded = Degraded {
            unknown_keys: vec!["TiDB.pd.PD_server_is_down".into()],
            failing_sinks: vec!["file:/nowhere/a.txt".into()],
        };
        let bytes = format::render(
            crate::config::FormatKind::Json,
            &snapshot,
            &Default::default(),
        );
        let doc = Document::parse(&bytes).unwrap();
        assert_eq!(
            render(&doc),
            concat!(
                "host tidb-1, snapshot of 2026-11-21T10:05:00Z (every 15s): 3 keys, 2 at 1\n",
                "KEY                            VALUE  STATE   SINCE                 LEVEL      WHY\n",
                "TiDB.agent.Agent_degraded      1      firing  -                     warning    unknown for 3+ cycles: TiDB.pd.PD_server_is_down; last write failed: file:/nowhere/a.txt\n",
                "TiDB.pd.PD_server_is_down      0      ok      -                     emergency\n",
                "TiDB.tikv.TiKV_server_is_down  1      firing  2026-11-21T10:00:00Z  emergency  instance=\"10.0.1.5:20180\" value=0\n",
            )
        );
    }
}
