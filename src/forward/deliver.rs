//! One delivery worker per target: take the next due event from the spool, attempt it,
//! record the outcome, and sleep until something is due. A slow or failing target
//! never holds up another.

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use super::spool::{Backoff, Due};
use super::target::Target;
use crate::metrics::Metrics;

pub(crate) async fn run_target(
    target: Target,
    pipeline: Arc<Mutex<Pipeline>>,
    wake: Arc<Notify>,
    all_targets: Arc<[String]>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let name = target.name().to_owned();
    loop {
        let now = Timestamp::now();
        let due = pipeline.lock().await.spool.next_due(&name, now);
        let (id, event, attempt) = match due {
            Due::Now { id, event, attempt } => (id, event, attempt),
            Due::At(at) => {
                let wait =
                    std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            Due::Idle => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                }
                continue;
            }
        };
        // Cancelling drops the attempt (an exec child is killed); the event stays
        // spooled and is attempted again after the restart.
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = target.deliver(&event) => outcome,
        };
        metrics.forward_delivery(&name, outcome.is_ok());
        let mut pipeline = pipeline.lock().await;
        match outcome {
            Ok(()) => {
                tracing::info!(
                    target = %name,
                    alertname = event.alertname(),
                    status = %event.status,
                    fingerprint = ?event.fingerprint,
                    attempt,
                    "alert event delivered"
                );
                if let Err(e) = pipeline.spool.delivered(&id, &name, &all_targets) {
                    tracing::error!(
                        "{e}; after a restart, target `{name}` may get this event again"
                    );
                }
            }
            Err(error) if error.is_permanent() => {
                // Retrying renders the same thing: give this target up, once, loudly.
                metrics.forward_dropped("undeliverable", 1);
                tracing::error!(
                    target = %name,
                    alertname = ?event.alertname(),
                    status = %event.status,
                    fingerprint = ?event.fingerprint,
                    "alert event cannot be delivered to this target, and is not retried: {error}"
                );
                if let Err(e) = pipeline.spool.delivered(&id, &name, &all_targets) {
                    tracing::error!("{e}; target `{name}` may be tried again after a restart");
                }
            }
            Err(error) => {
                let now = Timestamp::now();
                match pipeline
                    .spool
                    .failed(&id, &name, error.to_string(), now, backoff)
                {
                    Ok(retry_at) => tracing::warn!(
                        target = %name,
                        alertname = event.alertname(),
                        status = %event.status,
                        fingerprint = ?event.fingerprint,
                        attempt,
                        retry_at = %retry_at,
                        "alert event not delivered: {error}"
                    ),
                    Err(e) => tracing::error!(
                        target = %name,
                        "alert event not delivered: {error}; and recording the attempt failed: {e}"
                    ),
                }
            }
        }
    }
}
