//! Snapshot formats (SPEC §8): one file per format, one dispatch point here.

mod agent;
mod falcon;
pub mod json;
mod plain;
mod prometheus;

use crate::config::FormatKind;
use crate::snapshot::Snapshot;

/// Options some formats need beyond the snapshot itself.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Falcon `endpoint`; the snapshot's host when unset.
    pub endpoint: Option<String>,
}

/// Renders `snapshot` in `format`; the bytes are exactly what a sink writes.
pub fn render(format: FormatKind, snapshot: &Snapshot, options: &FormatOptions) -> Vec<u8> {
    match format {
        FormatKind::Agent => agent::render(snapshot),
        FormatKind::Plain => plain::render(snapshot),
        FormatKind::Json => json::render(snapshot),
        FormatKind::Prometheus => prometheus::render(snapshot),
        FormatKind::Falcon => falcon::render(snapshot, options),
    }
}

/// The HTTP content type of each format, for the http sink.
pub fn content_type(format: FormatKind) -> &'static str {
    match format {
        FormatKind::Json | FormatKind::Falcon => "application/json",
        FormatKind::Prometheus => "text/plain; version=0.0.4",
        FormatKind::Agent | FormatKind::Plain => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    use crate::snapshot::{AlertState, Entry, Snapshot};

    pub fn snapshot() -> Snapshot {
        let since: jiff::Timestamp = "2026-11-21T10:00:00Z".parse().unwrap_or_default();
        Snapshot::new(
            "tidb-1".into(),
            "2026-11-21T10:05:00Z".parse().unwrap_or_default(),
            15,
            vec![
                Entry {
                    key: "TiDB.tikv.TiKV_server_is_down".into(),
                    value: 1,
                    level: "emergency".into(),
                    component: "tikv".into(),
                    state: AlertState::Firing,
                    since: Some(since),
                    reasons: vec![crate::snapshot::Reason {
                        labels: [("instance".to_owned(), "10.0.1.5:20180".to_owned())].into(),
                        value: "0".into(),
                    }],
                },
                Entry {
                    key: "TiDB.pd.PD_server_is_down".into(),
                    value: 0,
                    level: "emergency".into(),
                    component: "pd".into(),
                    state: AlertState::Ok,
                    since: None,
                    reasons: Vec::new(),
                },
            ],
        )
    }
}
