//! The state file: `for` timers and detected components, saved atomically after every
//! cycle and restored at start (SPEC §3, §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ForState;
use crate::discovery::components::StickyComponents;

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u32,
    pub saved_at: Option<Timestamp>,
    /// key → `for` state.
    pub keys: BTreeMap<String, ForState>,
    pub components: StickyComponents,
}

pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

/// Reads the state file. A missing file is a fresh start; a corrupt one, or one from a
/// newer version, is a warning and a fresh start. `for` timers older than `max_age` are
/// dropped; components keep their own TTL.
pub fn restore(path: &Path, now: Timestamp, max_age: Duration) -> SavedState {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SavedState::default(),
        Err(e) => {
            tracing::warn!(
                "cannot read the state file {}: {e}; starting fresh",
                path.display()
            );
            return SavedState::default();
        }
    };
    let mut state: SavedState = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "the state file {} is corrupt ({e}); starting fresh",
                path.display()
            );
            return SavedState::default();
        }
    };
    if state.version > VERSION {
        tracing::warn!(
            "the state file {} is from a newer version ({} > {VERSION}); starting fresh",
            path.display(),
            state.version
        );
        return SavedState::default();
    }
    let age = state
        .saved_at
        .map(|t| Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO));
    if age.is_none_or(|a| a > max_age) {
        state.keys.clear();
    }
    state
}

/// Writes the state file atomically.
pub fn save(path: &Path, state: &SavedState) -> std::io::Result<()> {
    let mut state = state.clone();
    state.version = VERSION;
    let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
    crate::output::write_atomically(path, &bytes, 0o640)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut s = SavedState {
            saved_at: Some(t0),
            ..Default::default()
        };
        s.keys.insert("k".into(), ForState::Pending { since: t0 });
        s.components.saw(["tikv".to_string()], t0);
        save(&path, &s).unwrap();
        let fresh = restore(&path, t0, Duration::from_secs(3600));
        assert_eq!(fresh.keys["k"], ForState::Pending { since: t0 });
        let old = restore(
            &path,
            t0 + jiff::SignedDuration::from_secs(7200),
            Duration::from_secs(3600),
        );
        assert!(old.keys.is_empty());
        assert!(!old.components.is_empty());
    }

    #[test]
    fn corrupt_or_newer_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(
            restore(&path, now, Duration::from_secs(60)),
            SavedState::default()
        );
        std::fs::write(
            &path,
            br#"{"version":99,"saved_at":null,"keys":{},"components":{"last_seen":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            restore(&path, now, Duration::from_secs(60)),
            SavedState::default()
        );
    }
}
