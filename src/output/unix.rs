//! The unix socket sink: every connection gets the whole latest snapshot, then EOF.
//!
//! Clients are served by their own tasks with a write timeout and a bound on how
//! many run at once, so nothing a client does can block a cycle.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::format::{self, FormatOptions};
use super::{FailureLog, Latest, next};
use crate::config::{FormatKind, UnixOutput};
use crate::metrics::Metrics;

pub async fn run(
    mut log: FailureLog,
    config: UnixOutput,
    format: FormatKind,
    options: FormatOptions,
    mut rx: Latest,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let path = config.path.clone();
    let name = log.name().to_owned();
    // Binding is retried every cycle, like any other sink failure (say, the runtime
    // directory appears later).
    let listener = loop {
        match bind(&path, config.mode).await {
            Ok(l) => break l,
            Err(e) => {
                metrics.output_write(&name, false);
                log.failure(format!("cannot listen on {}: {e}", path.display()));
                if next(&mut rx, &stop).await.is_none() {
                    return;
                }
            }
        }
    };
    log.success();

    let (rendered_tx, rendered) = watch::channel::<Option<Arc<Vec<u8>>>>(None);
    if let Some(s) = rx.borrow().clone() {
        rendered_tx.send_replace(Some(Arc::new(format::render(format, &s, &options))));
    }
    let clients = TaskTracker::new();
    let max_clients = crate::listener::within_open_files(&name, config.max_clients);
    let slots = Arc::new(Semaphore::new(max_clients));
    let mut saturation = crate::listener::Saturation::new(name.clone(), max_clients);
    let write_timeout = config.timeout.get();
    // A failed accept (EMFILE) leaves the connection pending and the socket readable:
    // without a pause the loop would spin.
    let mut backoff = crate::listener::AcceptBackoff::new(name.clone());

    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                if let Some(s) = rx.borrow_and_update().clone() {
                    rendered_tx.send_replace(Some(Arc::new(format::render(format, &s, &options))));
                }
            }
            accepted = listener.accept() => {
                let stream = match backoff.settle(accepted, &metrics) {
                    Ok(stream) => stream,
                    Err(pause) => tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    },
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Full: turn the client away at once rather than queue it.
                    metrics.output_write(&name, false);
                    saturation.refused(&metrics);
                    continue;
                };
                saturation.admitted();
                let rendered = rendered.clone();
                let metrics = metrics.clone();
                let name = name.clone();
                clients.spawn(async move {
                    let ok = serve(stream, rendered, write_timeout).await;
                    metrics.output_write(&name, ok);
                    drop(permit);
                });
            }
        }
    }
    // Let clients in flight finish (each is bounded by the write timeout), then
    // remove the socket so nobody connects to a dead daemon.
    clients.close();
    let _ = tokio::time::timeout(write_timeout, clients.wait()).await;
    drop(listener);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(sink = %name, "cannot remove {}: {e}", path.display());
    }
}

async fn serve(
    mut stream: UnixStream,
    mut rendered: watch::Receiver<Option<Arc<Vec<u8>>>>,
    write_timeout: std::time::Duration,
) -> bool {
    let work = async {
        // Before the first cycle there is nothing to send yet: wait for it.
        let bytes = rendered
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|b| b.clone());
        let Some(bytes) = bytes else { return false };
        stream.write_all(&bytes).await.is_ok() && stream.shutdown().await.is_ok()
    };
    tokio::time::timeout(write_timeout, work)
        .await
        .unwrap_or(false)
}

async fn bind(path: &Path, mode: u32) -> std::io::Result<UnixListener> {
    remove_stale(path).await?;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Removes a socket left by a previous run. Refuses to touch anything that is not a
/// socket, or a socket another process still answers on.
async fn remove_stale(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "{} exists and is not a socket; not removing it",
            path.display()
        )));
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(std::io::Error::other(format!(
            "another process is serving {}; is a second agent running?",
            path.display()
        )));
    }
    std::fs::remove_file(PathBuf::from(path))
}
