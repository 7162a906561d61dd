//! Files that processes under test leave behind: what the exec-target fixtures in
//! `tests/fixtures/forward` record (`record.sh` writes each delivery, its arguments, stdin
//! and `ALERT_*` environment, into a directory of its own; `hang.sh` notes the pids of the
//! attempts it holds), and JSON-lines records such as the slow-ping record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A script of `tests/fixtures/forward`.
pub fn fixture(name: &str) -> String {
    crate::repository()
        .join("tests/fixtures/forward")
        .join(name)
        .display()
        .to_string()
}

/// One delivery recorded by `record.sh`.
#[derive(Debug, Clone)]
pub struct Call {
    pub args: Vec<Vec<u8>>,
    pub stdin: Vec<u8>,
    pub env: BTreeMap<String, Vec<u8>>,
}

impl Call {
    pub fn arg(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.args[i]).into_owned()
    }

    pub fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdin)
            .unwrap_or_else(|e| panic!("stdin is not the event JSON: {e}"))
    }

    /// An `ALERT_*` variable without the newline printenv adds.
    pub fn env_var(&self, name: &str) -> Vec<u8> {
        let mut value = self.env.get(name).cloned().unwrap_or_default();
        if value.last() == Some(&b'\n') {
            value.pop();
        }
        value
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every complete delivery recorded under `out`.
pub fn calls(out: &Path) -> Vec<Call> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|dir| dir.join("complete").exists())
        .collect();
    dirs.iter().map(|dir| read_call(dir)).collect()
}

fn read_call(dir: &Path) -> Call {
    let mut args = Vec::new();
    while let Ok(arg) = std::fs::read(dir.join(format!("arg{}", args.len()))) {
        args.push(arg);
    }
    let files =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut env = BTreeMap::new();
    for file in files.flatten() {
        let name = file.file_name().to_string_lossy().into_owned();
        if let Some(var) = name.strip_prefix("env_") {
            env.insert(var.to_owned(), read(&file.path()));
        }
    }
    Call {
        args,
        stdin: read(&dir.join("stdin")),
        env,
    }
}

/// (status, alertname) of every recorded call, sorted.
pub fn statuses(out: &Path) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = calls(out).iter().map(|c| (c.arg(0), c.arg(1))).collect();
    all.sort();
    all
}

/// The pids `hang.sh` noted under `dir`.
pub fn hang_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every line of a JSON-lines file, parsed; none if the file does not exist yet.
pub fn json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}: a line that is not JSON ({e}): {line}", path.display())
            })
        })
        .collect()
}
