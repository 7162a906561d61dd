//! The file sink: the snapshot replaces the file atomically ([`crate::atomic_file`]), so a
//! reader sees the old file or the new one, never a partial or empty one.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::format::{self, FormatOptions};
use super::{FailureLog, Latest, next};
use crate::atomic_file::{self, Durability};
use crate::config::{FileOutput, FormatKind};
use crate::metrics::Metrics;

pub async fn run(
    mut log: FailureLog,
    config: FileOutput,
    format: FormatKind,
    options: FormatOptions,
    mut rx: Latest,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let FileOutput { path, mode, .. } = config;
    atomic_file::remove_leftovers(&path);
    let name = log.name().to_owned();
    while let Some(snapshot) = next(&mut rx, &stop).await {
        let bytes = format::render(format, &snapshot, &options);
        let target = path.clone();
        // Blocking file I/O goes to the blocking pool; it is not cancelled midway, so
        // a shutdown lets an in-flight write finish.
        let result = tokio::task::spawn_blocking(move || {
            atomic_file::replace(&target, &bytes, mode, Durability::Atomic)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match result {
            Ok(()) => {
                metrics.output_write(&name, true);
                log.success();
            }
            Err(e) => {
                metrics.output_write(&name, false);
                log.failure(format!("cannot write {}: {e}", path.display()));
            }
        }
    }
}
