//! The slow-ping record: one JSON line per echo that took longer than the threshold,
//! and one per lost echo, so that an operator can see when and where the network
//! hiccuped. The file is rotated by size (`record_file.1`, `.2`, …).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::outcome::{EchoResult, RoundOutcome, millis};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot append to the slow-ping record {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate the slow-ping record {from} to {to}: {source}")]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLine {
    /// When the echo was sent.
    pub time: Timestamp,
    /// As configured: an address or a name.
    pub target: String,
    pub address: IpAddr,
    pub seq: u16,
    /// `null` for a lost echo.
    pub rtt_ms: Option<f64>,
    pub threshold_ms: f64,
    /// Why a lost echo failed, when we know more than "no answer".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The lines a round adds to the record: every echo over `threshold`, and every lost
/// one, in target order then sequence order.
pub fn lines(round: &RoundOutcome, threshold: Duration) -> Vec<RecordLine> {
    let mut lines = Vec::new();
    for target in &round.targets {
        for echo in &target.echoes {
            let (rtt_ms, error) = match &echo.result {
                EchoResult::Reply(rtt) if *rtt > threshold => (Some(millis(*rtt)), None),
                EchoResult::Reply(_) => continue,
                EchoResult::Lost => (None, None),
                EchoResult::Failed(why) => (None, Some(why.clone())),
            };
            lines.push(RecordLine {
                time: echo.sent_at,
                target: target.target.name.clone(),
                address: target.target.address,
                seq: echo.seq,
                rtt_ms,
                threshold_ms: millis(threshold),
                error,
            });
        }
    }
    lines
}

/// The record file and its rotation policy. Appends are blocking file I/O.
#[derive(Debug, Clone)]
pub struct Record {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

impl Record {
    /// `keep` rotated files are kept beside `path`; 0 keeps none (the file is
    /// started afresh when full).
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> Self {
        Self {
            path,
            max_bytes,
            keep,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the lines, rotating first if they would take the file past
    /// `max_bytes`. One batch is written whole, even if it alone is larger.
    pub fn append(&self, lines: &[RecordLine]) -> Result<(), RecordError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for line in lines {
            // A struct of strings, numbers and addresses always serializes.
            if let Ok(json) = serde_json::to_string(line) {
                text.push_str(&json);
                text.push('\n');
            }
        }
        let current = match fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(RecordError::Write {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if current > 0 && current + text.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let write = |path: &Path| -> io::Result<()> {
            // Never through a link planted where the record goes.
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            file.write_all(text.as_bytes())
        };
        write(&self.path).map_err(|source| RecordError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// `file.(keep-1)` → `file.keep`, …, `file` → `file.1`; the oldest falls off.
    fn rotate(&self) -> Result<(), RecordError> {
        if self.keep == 0 {
            return fs::remove_file(&self.path).map_err(|source| RecordError::Rotate {
                from: self.path.clone(),
                to: PathBuf::from("(removed)"),
                source,
            });
        }
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            let to = self.rotated(n + 1);
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(RecordError::Rotate { from, to, source }),
            }
        }
        let to = self.rotated(1);
        fs::rename(&self.path, &to).map_err(|source| RecordError::Rotate {
            from: self.path.clone(),
            to,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::outcome::{Echo, TargetOutcome};
    use crate::ping::target::Target;

    const MS: Duration = Duration::from_millis(1);

    fn round() -> RoundOutcome {
        let echo = |seq, result| Echo {
            seq,
            sent_at: Timestamp::from_second(1_700_000_000).unwrap(),
            result,
        };
        RoundOutcome {
            started: Timestamp::UNIX_EPOCH,
            targets: vec![
                TargetOutcome {
                    target: Target {
                        name: "tikv-1".into(),
                        address: "127.0.0.1".parse().unwrap(),
                    },
                    echoes: vec![
                        echo(0, EchoResult::Reply(MS)),
                        echo(1, EchoResult::Reply(3 * MS)),
                        echo(2, EchoResult::Lost),
                    ],
                },
                TargetOutcome {
                    target: Target::from_address("127.0.0.2".parse().unwrap()),
                    echoes: vec![echo(0, EchoResult::Failed("unreachable".into()))],
                },
            ],
        }
    }

    #[test]
    fn slow_and_lost_echoes_become_lines() {
        let lines = lines(&round(), 2 * MS);
        let json: Vec<String> = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect();
        assert_eq!(
            json,
            [
                r#"{"time":"2023-11-14T22:13:20Z","target":"tikv-1","address":"127.0.0.1","seq":1,"rtt_ms":3.0,"threshold_ms":2.0}"#,
                r#"{"time":"2023-11-14T22:13:20Z","target":"tikv-1","address":"127.0.0.1","seq":2,"rtt_ms":null,"threshold_ms":2.0}"#,
                r#"{"time":"2023-11-14T22:13:20Z","target":"127.0.0.2","address":"127.0.0.2","seq":0,"rtt_ms":null,"threshold_ms":2.0,"error":"unreachable"}"#,
            ]
        );
    }

    #[test]
    fn a_high_threshold_records_only_losses() {
        assert_eq!(lines(&round(), Duration::from_secs(1)).len(), 2);
    }

    fn line(seq: u16) -> RecordLine {
        RecordLine {
            time: Timestamp::UNIX_EPOCH,
            target: "127.0.0.1".into(),
            address: "127.0.0.1".parse().unwrap(),
            seq,
            rtt_ms: None,
            threshold_ms: 1.0,
            error: None,
        }
    }

    fn read(path: &Path) -> Vec<u16> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<RecordLine>(l).unwrap().seq)
            .collect()
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        let one = serde_json::to_string(&line(0)).unwrap().len() as u64 + 1;
        // Room for two lines per file, two rotated files kept.
        let record = Record::new(path.clone(), 2 * one, 2);
        for seq in 0..7 {
            record.append(&[line(seq)]).unwrap();
        }
        assert_eq!(read(&path), [6]);
        assert_eq!(read(&record.rotated(1)), [4, 5]);
        assert_eq!(read(&record.rotated(2)), [2, 3]);
        assert!(
            !record.rotated(3).exists(),
            "only `keep` rotated files remain"
        );
    }

    #[test]
    fn keep_zero_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jsonl");
        let record = Record::new(path.clone(), 1, 0);
        record.append(&[line(0)]).unwrap();
        record.append(&[line(1), line(2)]).unwrap();
        assert_eq!(read(&path), [1, 2]);
        assert!(!record.rotated(1).exists());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let record = Record::new(PathBuf::from("/nonexistent-dir/slow.jsonl"), 100, 1);
        let error = record.append(&[line(0)]).unwrap_err().to_string();
        assert!(error.contains("/nonexistent-dir/slow.jsonl"), "{error}");
    }
}
