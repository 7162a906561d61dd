//! The file sink: write a temp file beside the target, fsync, rename over it. A reader
//! sees the old file or the new one, never a partial or empty one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::format::{self, FormatOptions};
use super::{FailureLog, Latest, next};
use crate::config::OutputConfig;
use crate::metrics::Metrics;

pub async fn run(
    name: String,
    config: OutputConfig,
    options: FormatOptions,
    mut rx: Latest,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let Some(path) = config.path.clone() else {
        return;
    };
    let mode = config.file_mode();
    let mut log = FailureLog::default();
    while let Some(snapshot) = next(&mut rx, &stop).await {
        let bytes = format::render(config.format(), &snapshot, &options);
        let target = path.clone();
        // Blocking file I/O goes to the blocking pool; it is not cancelled midway, so
        // a shutdown lets an in-flight write finish.
        let result = tokio::task::spawn_blocking(move || write_atomically(&target, &bytes, mode))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match result {
            Ok(()) => {
                metrics.output_write(&name, true);
                log.success(&name);
            }
            Err(e) => {
                metrics.output_write(&name, false);
                log.failure(&name, format!("cannot write {}: {e}", path.display()));
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically, leaving the old file intact on any error.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode at creation.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        // The directory is not fsynced after the rename: a reader needs the rename to be
        // atomic, not durable. After a crash the old file is whole too, and the next cycle
        // replaces it. Each write costs one fsync less (bench/REPORT.md).
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, b"one\n", 0o640).unwrap();
        write_atomically(&path, b"two\n", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/out.txt");
        assert!(write_atomically(&path, b"x", 0o644).is_err());
    }
}
