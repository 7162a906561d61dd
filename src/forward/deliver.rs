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

/// Wall-clock time that moves with the runtime's monotonic clock from the moment the
/// worker started: a retry waits its backoff even when the system clock is stepped, and
/// the worker can be tested in paused time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: Timestamp,
    started: tokio::time::Instant,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Timestamp::now(),
            started: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.started.elapsed()).unwrap_or_default();
        self.wall.checked_add(elapsed).unwrap_or(self.wall)
    }
}

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
    let clock = Clock::start();
    loop {
        let now = clock.now();
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
                let now = clock.now();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::forward::alert::Event;
    use crate::forward::merge::tests::alert;
    use crate::forward::spool::Spool;
    use crate::forward::transitions::Known;
    use crate::forward::{Bound, target};

    fn failures(metrics: &Metrics) -> usize {
        metrics
            .encode()
            .lines()
            .find(|l| {
                l.starts_with("tidb_host_agent_forward_deliveries_total{") && l.contains("error")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0, |v| v as usize)
    }

    /// A target that always fails is tried at 0 s, then after 5, 10, 20 and 40 s (the
    /// backoff doubling from `retry_initial`), then every `retry_max`.
    #[tokio::test(start_paused = true)]
    async fn a_failing_target_is_retried_after_doubling_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path()).expect("spool");
        let a = alert("aa", 0);
        spool
            .add(Event::firing(&a, a.starts_at), Timestamp::now())
            .expect("spooled");
        let metrics = Arc::new(Metrics::new());
        let pipeline = Arc::new(Mutex::new(Pipeline {
            spool,
            known: Known::default(),
            retention: Duration::from_secs(86_400),
            unsaved: false,
            saved_at: None,
            metrics: Arc::clone(&metrics),
            spool_full: Bound::default(),
        }));
        // Spawning a program that does not exist fails at once, with no I/O to wait for.
        let config = crate::config::ForwardConfig::Exec(crate::config::ExecForward {
            name: Some("t".into()),
            command: vec!["/nonexistent/program".into()],
            timeout: crate::config::Duration::from_secs(10),
        });
        let target = match target::build(&[config]) {
            Ok(mut targets) => targets.remove(0),
            Err(e) => panic!("{e}"),
        };
        let backoff = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let worker = tokio::spawn(run_target(
            target,
            pipeline,
            Arc::new(Notify::new()),
            Arc::from(["t".to_owned()]),
            backoff,
            Arc::clone(&metrics),
            stop.clone(),
        ));
        // Attempts at 0, 5, 15, 35, 75, 135, 195 s.
        for (at, expected) in [
            (1, 1),
            (6, 2),
            (14, 2),
            (16, 3),
            (36, 4),
            (76, 5),
            (134, 5),
            (136, 6),
            (196, 7),
        ] {
            tokio::time::sleep_until(start + Duration::from_secs(at)).await;
            assert_eq!(failures(&metrics), expected, "attempts by {at} s");
        }
        stop.cancel();
        let _ = worker.await;
    }
}
