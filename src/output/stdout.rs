//! The stdout sink: the snapshot on standard output every cycle (foreground runs, tests).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::format::{self, FormatOptions};
use super::{FailureLog, Latest, next};
use crate::config::{FormatKind, StdoutOutput};
use crate::metrics::Metrics;

pub async fn run(
    mut log: FailureLog,
    _config: StdoutOutput,
    format: FormatKind,
    options: FormatOptions,
    mut rx: Latest,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut out = tokio::io::stdout();
    let name = log.name().to_owned();
    while let Some(snapshot) = next(&mut rx, &stop).await {
        let bytes = format::render(format, &snapshot, &options);
        let result = async {
            out.write_all(&bytes).await?;
            out.flush().await
        }
        .await;
        metrics.output_write(&name, result.is_ok());
        match result {
            Ok(()) => log.success(),
            Err(e) => log.failure(format!("cannot write to stdout: {e}")),
        }
    }
}
