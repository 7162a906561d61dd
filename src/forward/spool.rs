//! The on-disk spool, so that no event is lost to a failing target or a restart.
//!
//! Every event is written to its own file (temp file, fsync, rename, fsync of the
//! directory) before the first delivery attempt. Each target's success and failed
//! attempts are recorded the same way; the file is removed once every target took the
//! event, or dropped after `max_age`. A crash between a target's success and its record
//! means that target gets the event again: delivery is at least once.
//!
//! The [`Known`] alert state lives beside the events (`known.json`), written after the
//! events it produced, so a crash in between re-derives the same events, which the spool
//! already holds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::alert::Event;
use super::transitions::Known;
use crate::atomic_file::{self, Durability};

const EVENT_SUFFIX: &str = ".event";
const KNOWN_FILE: &str = "known.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "cannot create the forward spool directory {path}: {source}; check alertmanager.spool_dir and its permissions"
    )]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read the forward spool directory {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}; is the disk full or read-only?")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// One spooled event and its delivery record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub version: u32,
    /// Spool order; a target gets one alert's events in this order.
    pub seq: u64,
    pub created: Timestamp,
    pub event: Event,
    /// Targets that took the event.
    pub delivered: BTreeSet<String>,
    /// Failed attempts, per target not yet delivered.
    pub failures: BTreeMap<String, Failures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    pub count: u32,
    pub retry_at: Timestamp,
    pub last_error: String,
}

/// Exponential backoff between `initial` and `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after the `failures`-th failed attempt in a row (counting from 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max)
            .max(self.initial.min(self.max))
    }
}

/// What a target should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Attempt this event now; `attempt` counts from 1.
    Now {
        id: String,
        event: Event,
        attempt: u32,
    },
    /// Nothing is due before this time.
    At(Timestamp),
    /// Nothing is pending for this target.
    Idle,
}

/// An event dropped after `max_age`, for the error log.
#[derive(Debug, Clone)]
pub struct Expired {
    pub event: Event,
    pub created: Timestamp,
    pub undelivered: Vec<String>,
    pub last_error: Option<String>,
}

/// How much the spool holds at most; past either bound the oldest events go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_events: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: usize::MAX,
            max_bytes: u64::MAX,
        }
    }
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    entries: BTreeMap<String, SpooledEvent>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    /// Each event file's size, and their sum.
    sizes: BTreeMap<String, u64>,
    bytes: u64,
    limits: Limits,
    /// Events dropped to make room since [`Spool::take_dropped`] last asked.
    dropped: Vec<SpooledEvent>,
}

impl Spool {
    /// Opens (creating it if needed) the spool at `dir` and loads the pending events.
    /// Unreadable event files are set aside as `*.corrupt` with an error log.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SpoolError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let read_dir = |source| SpoolError::ReadDir {
            path: dir.to_owned(),
            source,
        };
        let mut spool = Spool {
            dir: dir.to_owned(),
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 1,
            sizes: BTreeMap::new(),
            bytes: 0,
            limits: Limits::default(),
            dropped: Vec::new(),
        };
        for entry in fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if crate::atomic_file::is_temp(name) {
                // A write interrupted by a crash; the rename never happened.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = name.strip_suffix(EVENT_SUFFIX) else {
                continue;
            };
            match read_event(&path) {
                Ok(spooled) if spooled.version > FORMAT_VERSION => tracing::warn!(
                    file = %path.display(),
                    version = spooled.version,
                    "spooled event written by a newer version; leaving it alone"
                ),
                Ok(spooled) => {
                    let size = fs::metadata(&path).map_or(0, |m| m.len());
                    spool.track_size(id, size);
                    spool.next_seq = spool.next_seq.max(spooled.seq.saturating_add(1));
                    spool.order.insert(spooled.seq, id.to_owned());
                    spool.entries.insert(id.to_owned(), spooled);
                }
                Err(why) => {
                    let aside = path.with_extension("corrupt");
                    tracing::error!(
                        file = %path.display(),
                        moved_to = %aside.display(),
                        "unreadable spooled event set aside: {why}"
                    );
                    let _ = fs::rename(&path, &aside);
                }
            }
        }
        Ok(spool)
    }

    /// Sets the bounds; events past them are dropped, oldest first, on the next add.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The events dropped to make room since the last call.
    pub fn take_dropped(&mut self) -> Vec<SpooledEvent> {
        std::mem::take(&mut self.dropped)
    }

    /// Bytes of the event files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn track_size(&mut self, id: &str, size: u64) {
        let old = self.sizes.insert(id.to_owned(), size).unwrap_or(0);
        self.bytes = self.bytes.saturating_sub(old).saturating_add(size);
    }

    /// Drops the oldest events until `incoming` more bytes and one more event fit.
    fn make_room(&mut self, incoming: u64) -> Result<(), SpoolError> {
        while !self.entries.is_empty()
            && (self.entries.len() >= self.limits.max_events
                || self.bytes.saturating_add(incoming) > self.limits.max_bytes)
        {
            let Some(oldest) = self.order.values().next().cloned() else {
                break;
            };
            if let Some(spooled) = self.entries.get(&oldest).cloned() {
                self.dropped.push(spooled);
            }
            self.remove(&oldest)?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&SpooledEvent> {
        self.entries.get(id)
    }

    /// Writes `event` to disk. Returns false when the spool already holds it (the
    /// same dedupe key), keeping its delivery record.
    pub fn add(&mut self, event: Event, now: Timestamp) -> Result<bool, SpoolError> {
        let id = event.id();
        if self.entries.contains_key(&id) {
            return Ok(false);
        }
        let spooled = SpooledEvent {
            version: FORMAT_VERSION,
            seq: self.next_seq,
            created: now,
            event,
            delivered: BTreeSet::new(),
            failures: BTreeMap::new(),
        };
        let bytes = encode(&self.event_path(&id), &spooled)?;
        self.make_room(bytes.len() as u64)?;
        write_bytes(&self.event_path(&id), &bytes)?;
        self.track_size(&id, bytes.len() as u64);
        self.next_seq += 1;
        self.order.insert(spooled.seq, id.clone());
        self.entries.insert(id, spooled);
        Ok(true)
    }

    /// The next event `target` should attempt. One alert's events go to a target in
    /// spool order: a `resolved` never overtakes its `firing` that is waiting for a retry.
    pub fn next_due(&self, target: &str, now: Timestamp) -> Due {
        let mut waiting: BTreeSet<&str> = BTreeSet::new();
        let mut earliest: Option<Timestamp> = None;
        for id in self.order.values() {
            let Some(spooled) = self.entries.get(id) else {
                continue;
            };
            if spooled.delivered.contains(target)
                || !waiting.insert(spooled.event.fingerprint.as_str())
            {
                continue;
            }
            match spooled.failures.get(target) {
                Some(f) if f.retry_at > now => {
                    earliest = Some(earliest.map_or(f.retry_at, |e| e.min(f.retry_at)));
                }
                failures => {
                    return Due::Now {
                        id: id.clone(),
                        event: spooled.event.clone(),
                        attempt: failures.map_or(1, |f| f.count.saturating_add(1)),
                    };
                }
            }
        }
        earliest.map_or(Due::Idle, Due::At)
    }

    /// Records that `target` took event `id`; the event leaves the spool once every
    /// one of `targets` has.
    pub fn delivered(
        &mut self,
        id: &str,
        target: &str,
        targets: &[String],
    ) -> Result<(), SpoolError> {
        let Some(spooled) = self.entries.get_mut(id) else {
            return Ok(());
        };
        spooled.delivered.insert(target.to_owned());
        spooled.failures.remove(target);
        if targets.iter().all(|t| spooled.delivered.contains(t)) {
            self.remove(id)
        } else {
            let spooled = spooled.clone();
            let size = write_atomically(&self.event_path(id), &spooled)?;
            self.track_size(id, size);
            Ok(())
        }
    }

    /// Records a failed attempt and returns when to retry.
    pub fn failed(
        &mut self,
        id: &str,
        target: &str,
        error: String,
        now: Timestamp,
        backoff: Backoff,
    ) -> Result<Timestamp, SpoolError> {
        let path = self.event_path(id);
        let Some(spooled) = self.entries.get_mut(id) else {
            return Ok(now);
        };
        let count = spooled
            .failures
            .get(target)
            .map_or(0, |f| f.count)
            .saturating_add(1);
        let retry_at = later(now, backoff.delay(count));
        spooled.failures.insert(
            target.to_owned(),
            Failures {
                count,
                retry_at,
                last_error: error,
            },
        );
        let spooled = spooled.clone();
        let size = write_atomically(&path, &spooled)?;
        self.track_size(id, size);
        Ok(retry_at)
    }

    /// Removes events every one of `targets` took (a crash can leave them behind) and
    /// returns those older than `max_age`, which are dropped.
    pub fn sweep(
        &mut self,
        now: Timestamp,
        max_age: Duration,
        targets: &[String],
    ) -> Result<Vec<Expired>, SpoolError> {
        let horizon = now.checked_sub(max_age).unwrap_or(Timestamp::MIN);
        let mut done = Vec::new();
        let mut expired = Vec::new();
        for (id, spooled) in &self.entries {
            let undelivered: Vec<String> = targets
                .iter()
                .filter(|t| !spooled.delivered.contains(*t))
                .cloned()
                .collect();
            if undelivered.is_empty() {
                done.push(id.clone());
            } else if spooled.created <= horizon {
                done.push(id.clone());
                expired.push(Expired {
                    event: spooled.event.clone(),
                    created: spooled.created,
                    last_error: undelivered
                        .iter()
                        .find_map(|t| spooled.failures.get(t))
                        .map(|f| f.last_error.clone()),
                    undelivered,
                });
            }
        }
        for id in done {
            self.remove(&id)?;
        }
        Ok(expired)
    }

    fn remove(&mut self, id: &str) -> Result<(), SpoolError> {
        let path = self.event_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SpoolError::Remove { path, source }),
        }
        sync_dir(&self.dir).map_err(|source| SpoolError::Remove { path, source })?;
        if let Some(spooled) = self.entries.remove(id) {
            self.order.remove(&spooled.seq);
        }
        if let Some(size) = self.sizes.remove(id) {
            self.bytes = self.bytes.saturating_sub(size);
        }
        Ok(())
    }

    fn event_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{EVENT_SUFFIX}"))
    }

    pub fn known_path(&self) -> PathBuf {
        self.dir.join(KNOWN_FILE)
    }

    /// The saved alert state; a missing file is a first start, a corrupt or newer one
    /// gives a warning and a fresh state.
    pub fn load_known(&self) -> Known {
        let path = self.known_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Known::default(),
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read the saved alert state, starting afresh: {e}");
                return Known::default();
            }
        };
        match serde_json::from_slice::<SavedKnown>(&bytes) {
            Ok(saved) if saved.version == FORMAT_VERSION => saved.known,
            Ok(saved) => {
                tracing::warn!(
                    file = %path.display(),
                    version = saved.version,
                    "saved alert state is from another version, starting afresh; alerts firing now are sent again"
                );
                Known::default()
            }
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    "saved alert state is corrupt, starting afresh; alerts firing now are sent again: {e}"
                );
                Known::default()
            }
        }
    }

    pub fn save_known(&self, known: &Known) -> Result<(), SpoolError> {
        write_atomically(
            &self.known_path(),
            &SavedKnownRef {
                version: FORMAT_VERSION,
                known,
            },
        )
        .map(|_| ())
    }
}

#[derive(Deserialize)]
struct SavedKnown {
    version: u32,
    #[serde(default)]
    known: Known,
}

#[derive(Serialize)]
struct SavedKnownRef<'a> {
    version: u32,
    known: &'a Known,
}

fn later(t: Timestamp, by: Duration) -> Timestamp {
    t.checked_add(by).unwrap_or(Timestamp::MAX)
}

fn read_event(path: &Path) -> Result<SpooledEvent, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Replaces `path` with `value` durably: after a crash the file is either the old or the
/// new version, never a torn one, and a returned write survives the crash. Returns the
/// file's size.
fn write_atomically(path: &Path, value: &impl Serialize) -> Result<u64, SpoolError> {
    let bytes = encode(path, value)?;
    write_bytes(path, &bytes)?;
    Ok(bytes.len() as u64)
}

fn encode(path: &Path, value: &impl Serialize) -> Result<Vec<u8>, SpoolError> {
    serde_json::to_vec(value).map_err(|source| SpoolError::Encode {
        path: path.to_owned(),
        source,
    })
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    atomic_file::replace(path, bytes, 0o600, Durability::Durable).map_err(|source| {
        SpoolError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::alert::EventStatus;
    use super::super::merge::tests::{alert, at};
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };

    fn targets(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn firing(fingerprint: &str) -> Event {
        let a = alert(fingerprint, 0);
        Event::firing(&a, a.starts_at)
    }

    fn resolved(fingerprint: &str) -> Event {
        let a = alert(fingerprint, 0);
        Event::resolved(&a, a.starts_at, at(100))
    }

    fn due_id(due: Due) -> String {
        match due {
            Due::Now { id, .. } => id,
            other => panic!("expected an event due now, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let delays: Vec<u64> = (1..=6).map(|n| BACKOFF.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(BACKOFF.delay(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn an_event_survives_a_reopen_with_its_delivery_record() {
        let dir = tempfile::tempdir().unwrap();
        let all = targets(&["a", "b"]);
        let mut spool = Spool::open(dir.path()).unwrap();
        assert!(spool.add(firing("aa"), at(0)).unwrap());
        assert!(!spool.add(firing("aa"), at(1)).unwrap(), "same dedupe key");
        let id = due_id(spool.next_due("a", at(0)));
        spool.delivered(&id, "a", &all).unwrap();
        spool
            .failed(&id, "b", "exit status 1".into(), at(0), BACKOFF)
            .unwrap();

        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.next_due("a", at(0)), Due::Idle, "a already took it");
        assert_eq!(spool.next_due("b", at(1)), Due::At(at(5)), "b backs off");
        match spool.next_due("b", at(5)) {
            Due::Now { attempt, event, .. } => {
                assert_eq!(attempt, 2);
                assert_eq!(event, firing("aa"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn past_max_events_the_oldest_events_are_dropped_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.set_limits(Limits {
            max_events: 3,
            max_bytes: u64::MAX,
        });
        for (i, fingerprint) in ["a1", "a2", "a3", "a4", "a5"].iter().enumerate() {
            assert!(spool.add(firing(fingerprint), at(i as i64)).unwrap());
        }
        assert_eq!(spool.len(), 3);
        let dropped: Vec<String> = spool
            .take_dropped()
            .into_iter()
            .map(|d| d.event.fingerprint)
            .collect();
        assert_eq!(dropped, ["a1", "a2"]);
        assert!(spool.take_dropped().is_empty(), "reported once");
        // The files went too: a reopened spool holds the three newest.
        let reopened = Spool::open(dir.path()).unwrap();
        assert_eq!(reopened.len(), 3);
        assert_eq!(reopened.bytes(), spool.bytes());
        let due = reopened.next_due("a", at(10));
        assert!(matches!(due, Due::Now { event, .. } if event.fingerprint == "a3"));
    }

    #[test]
    fn past_max_bytes_the_oldest_events_are_dropped_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.add(firing("b1"), at(0)).unwrap();
        let one = spool.bytes();
        assert!(one > 0);
        spool.set_limits(Limits {
            max_events: usize::MAX,
            max_bytes: one * 2 + one / 2,
        });
        spool.add(firing("b2"), at(1)).unwrap();
        assert!(spool.take_dropped().is_empty());
        spool.add(firing("b3"), at(2)).unwrap();
        assert_eq!(spool.len(), 2);
        assert!(
            spool.bytes() <= one * 2 + one / 2,
            "{} bytes",
            spool.bytes()
        );
        let dropped = spool.take_dropped();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].event.fingerprint, "b1");
    }

    #[test]
    fn the_file_goes_once_every_target_took_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let all = targets(&["a", "b"]);
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.add(firing("aa"), at(0)).unwrap();
        let id = due_id(spool.next_due("a", at(0)));
        spool.delivered(&id, "a", &all).unwrap();
        spool.delivered(&id, "b", &all).unwrap();
        assert!(spool.is_empty());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn resolved_never_overtakes_its_firing() {
        let dir = tempfile::tempdir().unwrap();
        let all = targets(&["a"]);
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.add(firing("aa"), at(0)).unwrap();
        spool.add(resolved("aa"), at(0)).unwrap();
        spool.add(firing("bb"), at(0)).unwrap();
        let first = due_id(spool.next_due("a", at(0)));
        assert_eq!(first, firing("aa").id());
        spool
            .failed(&first, "a", "down".into(), at(0), BACKOFF)
            .unwrap();
        // bb is independent; aa's resolved waits for aa's firing.
        let next = due_id(spool.next_due("a", at(1)));
        assert_eq!(next, firing("bb").id());
        spool.delivered(&next, "a", &all).unwrap();
        assert_eq!(spool.next_due("a", at(1)), Due::At(at(5)));
        spool.delivered(&first, "a", &all).unwrap();
        match spool.next_due("a", at(1)) {
            Due::Now { event, .. } => assert_eq!(event.status, EventStatus::Resolved),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_are_dropped_after_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let all = targets(&["a", "b"]);
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.add(firing("aa"), at(0)).unwrap();
        spool.add(firing("bb"), at(50)).unwrap();
        let id = firing("aa").id();
        spool.delivered(&id, "a", &all).unwrap();
        spool
            .failed(&id, "b", "HTTP 503".into(), at(1), BACKOFF)
            .unwrap();
        let expired = spool.sweep(at(99), Duration::from_secs(100), &all).unwrap();
        assert!(expired.is_empty());
        let expired = spool
            .sweep(at(100), Duration::from_secs(100), &all)
            .unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].undelivered, ["b"]);
        assert_eq!(expired[0].last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(spool.len(), 1);
        assert_eq!(Spool::open(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn corrupt_files_are_set_aside_and_torn_writes_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x-1-firing.event"), b"{not json").unwrap();
        fs::write(
            dir.path().join(".y-1-firing.json.tmp.0123456789abcdef"),
            b"{",
        )
        .unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert!(spool.is_empty());
        assert!(dir.path().join("x-1-firing.corrupt").exists());
        assert!(
            !dir.path()
                .join(".y-1-firing.json.tmp.0123456789abcdef")
                .exists()
        );
    }

    #[test]
    fn the_known_state_round_trips_and_corruption_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.load_known(), Known::default());
        let mut known = Known::default();
        let a = [alert("aa", 0)];
        let answer = super::super::transitions::ServerAnswer {
            server: "s",
            alerts: Some(&a),
        };
        known.step(&[answer], at(1), Duration::from_secs(3600));
        spool.save_known(&known).unwrap();
        assert_eq!(spool.load_known(), known);
        fs::write(spool.known_path(), b"\x00garbage").unwrap();
        assert_eq!(spool.load_known(), Known::default());
        fs::write(spool.known_path(), br#"{"version":99}"#).unwrap();
        assert_eq!(spool.load_known(), Known::default());
    }

    #[test]
    fn an_unwritable_spool_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            Spool::open(&file.join("spool")),
            Err(SpoolError::CreateDir { .. })
        ));
    }
}
