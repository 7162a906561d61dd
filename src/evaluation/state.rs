//! The state file: `for` timers and detected components, saved atomically after every
//! cycle and restored at start (SPEC §3, §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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
    // A clock stepped back since the save: a `for` timer must not start in the future,
    // where it would never fire, and a component must not stay present for longer.
    let mut clamped = Vec::new();
    for (key, for_state) in &mut state.keys {
        if let Some(now_state) = for_state.clamped(now) {
            *for_state = now_state;
            clamped.push(key.clone());
        }
    }
    let components = state.components.clamp_to(now);
    if !clamped.is_empty() || components > 0 {
        tracing::warn!(
            keys = ?clamped,
            components,
            "the state file {} holds times later than now (was the clock stepped back?); \
             they start from now",
            path.display()
        );
    }
    state
}

/// Writes the state file atomically.
pub fn save(path: &Path, state: &SavedState) -> std::io::Result<()> {
    let mut state = state.clone();
    state.version = VERSION;
    let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
    crate::atomic_file::replace(path, &bytes, 0o640, crate::atomic_file::Durability::Atomic)
}

/// A state file unchanged for this long (or half of `state_max_age`, if shorter) is
/// written again, to refresh its `saved_at`: the age checked against `state_max_age` at
/// start.
const STATE_REFRESH: Duration = Duration::from_secs(60);

/// The state file of one configuration: read once at start ([`StateWriter::restore`]);
/// written on the blocking pool after a cycle, when the state changed or the file is
/// [`STATE_REFRESH`] old, so that a TiDB host's disk sees about one fsync a minute from
/// it; and at once, waiting for it, at exit and before a reload.
pub struct StateWriter {
    path: PathBuf,
    /// `state_max_age`: older `for` timers are not restored.
    max_age: Duration,
    refresh: Duration,
    /// The write started after the last cycle, if any; true once written.
    pending: Option<tokio::task::JoinHandle<bool>>,
    /// The state last written (without its `saved_at`), and when.
    last: Option<(SavedState, Instant)>,
}

impl StateWriter {
    pub fn new(state_dir: &Path, state_max_age: Duration) -> Self {
        let path = path_in(state_dir);
        crate::atomic_file::remove_leftovers(&path);
        Self {
            path,
            max_age: state_max_age,
            refresh: STATE_REFRESH.min(state_max_age / 2),
            pending: None,
            last: None,
        }
    }

    /// What the file holds now ([`restore`]).
    pub fn restore(&self) -> SavedState {
        restore(&self.path, Timestamp::now(), self.max_age)
    }

    /// Saves `state` now and waits for it. Failures are logged, never fatal.
    pub async fn save_now(&mut self, state: &SavedState) {
        if let Some(pending) = self.pending.take() {
            let _ = pending.await;
        }
        let mut state = state.clone();
        state.saved_at = Some(Timestamp::now());
        write_logged(&self.path, &state);
    }

    /// Saves `state` on the blocking pool when it is due: the fsync of an atomic write
    /// takes milliseconds of CPU and tens of milliseconds on a busy disk, and the cycle
    /// must not wait for it.
    pub fn save_in_background(&mut self, state: &SavedState) {
        if let Some(pending) = &self.pending {
            if !pending.is_finished() {
                // The next cycle saves a newer state anyway.
                return;
            }
            let written = self
                .pending
                .take()
                .and_then(FutureExt::now_or_never)
                .is_some_and(|r| r.unwrap_or(false));
            if !written {
                self.last = None;
            }
        }
        let mut state = state.clone();
        state.saved_at = None;
        if !write_due(self.last.as_ref(), &state, Instant::now(), self.refresh) {
            return;
        }
        self.last = Some((state.clone(), Instant::now()));
        state.saved_at = Some(Timestamp::now());
        let path = self.path.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_logged(&path, &state)
        }));
    }
}

/// Whether `current` (without its `saved_at`) must be written: it differs from the state
/// last written, or that write is `refresh` old, or nothing was written yet.
fn write_due(
    last: Option<&(SavedState, Instant)>,
    current: &SavedState,
    now: Instant,
    refresh: Duration,
) -> bool {
    match last {
        Some((written, at)) => written != current || now.duration_since(*at) >= refresh,
        None => true,
    }
}

/// Writes the state file; false (and a warning) when it could not.
fn write_logged(path: &Path, state: &SavedState) -> bool {
    match save(path, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot save state to {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_written_when_it_changes_or_ages() {
        let t0 = Instant::now();
        let refresh = Duration::from_secs(60);
        let quiet = SavedState::default();
        let mut changed = SavedState::default();
        changed.keys.insert(
            "TiDB.tikv.TiKV_server_is_down".into(),
            ForState::Pending {
                since: Timestamp::UNIX_EPOCH,
            },
        );
        assert!(write_due(None, &quiet, t0, refresh));
        let last = (quiet.clone(), t0);
        let soon = t0 + Duration::from_secs(59);
        assert!(!write_due(Some(&last), &quiet, soon, refresh));
        assert!(write_due(Some(&last), &changed, soon, refresh));
        let later = t0 + refresh;
        assert!(write_due(Some(&last), &quiet, later, refresh));
    }

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
    fn times_in_the_future_start_from_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let future = now + jiff::SignedDuration::from_secs(3600);
        let mut s = SavedState {
            saved_at: Some(now),
            ..Default::default()
        };
        s.keys
            .insert("k".into(), ForState::Pending { since: future });
        s.components.saw(["tikv".to_string()], future);
        save(&path, &s).unwrap();
        let restored = restore(&path, now, Duration::from_secs(3600));
        assert_eq!(restored.keys["k"], ForState::Pending { since: now });
        assert_eq!(restored.components.last_seen["tikv"], now);
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
