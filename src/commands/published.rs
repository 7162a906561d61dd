//! The running daemon's published snapshot (`[agent] snapshot_file`), as `status` and
//! `zabbix` read it: missing means the daemon is not running, and a snapshot older than
//! [`STALE_INTERVALS`] cycles means it is stuck or stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use crate::output::format::json::Document;

/// A snapshot older than this many intervals is stale...
pub const STALE_INTERVALS: u64 = 3;
/// ...and at least this old: a cycle may take the query timeout (SPEC §13).
const STALE_MIN: Duration = Duration::from_secs(30);

/// Why there is no fresh snapshot to show.
#[derive(Debug, thiserror::Error)]
pub enum PublishedError {
    #[error(
        "no snapshot at {0}: the daemon is not running (or publishes elsewhere: see \
         [agent] snapshot_file, and give its path with --snapshot)"
    )]
    Missing(PathBuf),
    #[error("cannot read the snapshot {0}")]
    Unreadable(PathBuf, #[source] std::io::Error),
    #[error("the snapshot {0} is not the daemon's json document")]
    Corrupt(PathBuf, #[source] serde_json::Error),
    #[error(
        "the snapshot {path} is stale: written {age}s ago, and the daemon writes one every \
         {interval}s; it is stopped or stuck (see `systemctl status tidb-host-agent` and its \
         journal)"
    )]
    Stale {
        path: PathBuf,
        age: u64,
        interval: u64,
    },
}

/// The snapshot at `path`, when it is fresh at `now`.
pub fn read(path: &Path, now: Timestamp) -> Result<Document<'static>, PublishedError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PublishedError::Missing(path.to_owned()),
        _ => PublishedError::Unreadable(path.to_owned(), e),
    })?;
    let doc = Document::parse(&bytes).map_err(|e| PublishedError::Corrupt(path.to_owned(), e))?;
    let written: Timestamp = doc.timestamp.parse().map_err(|_| {
        PublishedError::Corrupt(
            path.to_owned(),
            serde::de::Error::custom(format!("bad timestamp {:?}", doc.timestamp)),
        )
    })?;
    let age = now.duration_since(written).as_secs().max(0).unsigned_abs();
    if is_stale(age, doc.interval_secs) {
        return Err(PublishedError::Stale {
            path: path.to_owned(),
            age,
            interval: doc.interval_secs,
        });
    }
    Ok(doc)
}

fn is_stale(age_secs: u64, interval_secs: u64) -> bool {
    let limit = (interval_secs.saturating_mul(STALE_INTERVALS)).max(STALE_MIN.as_secs());
    age_secs > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_after_three_intervals_and_half_a_minute() {
        assert!(!is_stale(45, 15));
        assert!(is_stale(46, 15));
        assert!(!is_stale(30, 1));
        assert!(is_stale(31, 1));
    }
}
