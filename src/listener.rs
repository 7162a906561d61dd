//! What the two HTTP listeners (the webhook receiver and self-metrics) share, so that no
//! peer can hold them (SPEC §15, Listeners):
//!
//! - a connection cap that refuses: past `max_clients`, a new connection is closed at
//!   once rather than left in the kernel's backlog;
//! - accept errors (EMFILE, ENFILE, ENOBUFS…) back off from 10 ms up to 1 s instead of
//!   spinning, with one log line when the condition starts and one when it ends;
//! - a header timeout, which hyper also runs while a kept-alive connection waits for its
//!   next request, so it is the idle timeout too;
//! - a bound on a connection's whole life, whatever it does (a client that never reads
//!   its answers holds no slot for longer).
//!
//! Body timeouts belong to the handler that reads the body (the receiver). Every bound
//! hit is counted in self-metrics and logged once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed at once.
    pub max_clients: usize,
    /// A request's head must arrive within this; also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// A connection is closed this long after it was accepted, gracefully: a response
    /// in flight may finish within [`SHUTDOWN_GRACE`].
    pub max_age: Duration,
}

/// How long in-flight requests may finish after shutdown or `max_age`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A listener that fills up again within this is not logged again (only counted).
const REWARN_AFTER: Duration = Duration::from_secs(60);

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown`; returns once every
/// connection has ended. `name` labels the metrics and the log lines.
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    limits: Limits,
    handler: H,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let max_clients = within_open_files(name, limits.max_clients);
    let slots = Arc::new(Semaphore::new(max_clients));
    let connections = TaskTracker::new();
    let mut backoff = AcceptBackoff::new(name);
    let mut saturation = Saturation::new(name, max_clients);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match backoff.settle(accepted, &metrics) {
            Ok(stream) => stream,
            Err(pause) => tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => continue,
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: closing now frees the descriptor at once; a queued client would
            // hold it and wait for nothing.
            drop(stream);
            saturation.refused(&metrics);
            continue;
        };
        saturation.admitted();
        let handler = handler.clone();
        let metrics = Arc::clone(&metrics);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new(name, &metrics);
            let service = hyper::service::service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let aged = tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(e) = ended
                        && e.is_timeout()
                    {
                        metrics.listener_timeout(name, "header");
                    }
                    return;
                }
                _ = tokio::time::sleep(limits.max_age) => true,
                _ = shutdown.cancelled() => false,
            };
            if aged {
                metrics.listener_timeout(name, "age");
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        });
    }
    connections.close();
    connections.wait().await;
}

/// The share of the open files limit one listener may use: an eighth each, so that
/// self-metrics, the webhook receiver and a unix sink held full together leave more
/// than half of it to the sinks, queries and state file.
const OPEN_FILES_SHARE: u64 = 8;

/// `max_clients`, lowered to an eighth of the soft open files limit when that is
/// smaller (say, a daemon started by hand with `ulimit -n 256`), with a log line.
pub fn within_open_files(listener: &str, max_clients: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let budget = soft.map_or(usize::MAX, |soft| {
        usize::try_from(soft / OPEN_FILES_SHARE)
            .unwrap_or(usize::MAX)
            .max(1)
    });
    if budget < max_clients {
        tracing::warn!(
            listener,
            max_clients,
            lowered_to = budget,
            open_files_limit = ?soft,
            "the open files limit is low: this listener serves fewer connections at once \
             (raise LimitNOFILE, or ulimit -n)"
        );
        return budget;
    }
    max_clients
}

/// Keeps the open-connections gauge right however a connection task ends.
struct OpenConnection<'a> {
    name: &'static str,
    metrics: &'a Metrics,
}

impl<'a> OpenConnection<'a> {
    fn new(name: &'static str, metrics: &'a Metrics) -> Self {
        metrics.listener_connections(name, 1);
        Self { name, metrics }
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics.listener_connections(self.name, -1);
    }
}

/// Pauses after failed accepts, doubling up to [`ACCEPT_BACKOFF_MAX`]. A listening
/// socket with a pending connection stays readable, so retrying at once would spin.
/// Logs when failures start and when they end, and counts each one.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: String,
    pause: Duration,
    failures: u64,
}

impl AcceptBackoff {
    pub fn new(listener: impl Into<String>) -> Self {
        Self {
            listener: listener.into(),
            pause: Duration::ZERO,
            failures: 0,
        }
    }

    /// Counts `error` and returns how long to wait before the next accept.
    fn failed(&mut self, error: &std::io::Error, metrics: &Metrics) -> Duration {
        metrics.listener_accept_error(&self.listener);
        if self.failures == 0 {
            tracing::warn!(
                listener = %self.listener,
                error = %error,
                "cannot accept connections; retrying with a pause of up to {}s, further failures \
                 are counted in tidb_host_agent_listener_accept_errors_total (\"Too many open \
                 files\": raise LimitNOFILE in the unit)",
                ACCEPT_BACKOFF_MAX.as_secs()
            );
        }
        self.failures += 1;
        self.pause = (self.pause * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        self.pause
    }

    /// The connection `accepted` holds, or how long to pause after a failed accept.
    pub fn settle<S, A>(
        &mut self,
        accepted: std::io::Result<(S, A)>,
        metrics: &Metrics,
    ) -> Result<S, Duration> {
        match accepted {
            Ok((stream, _)) => {
                self.succeeded();
                Ok(stream)
            }
            Err(e) => Err(self.failed(&e, metrics)),
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                listener = %self.listener,
                failures = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
            self.pause = Duration::ZERO;
        }
    }
}

/// Counts connections refused at the cap; logs the first refusal of an episode, at
/// most once every [`REWARN_AFTER`], and the end of a logged episode.
#[derive(Debug)]
pub struct Saturation {
    listener: String,
    max_clients: usize,
    refused: u64,
    logged: bool,
    last_warning: Option<Instant>,
}

impl Saturation {
    pub fn new(listener: impl Into<String>, max_clients: usize) -> Self {
        Self {
            listener: listener.into(),
            max_clients,
            refused: 0,
            logged: false,
            last_warning: None,
        }
    }

    pub fn refused(&mut self, metrics: &Metrics) {
        metrics.listener_refused(&self.listener);
        if self.refused == 0
            && self
                .last_warning
                .is_none_or(|at| at.elapsed() >= REWARN_AFTER)
        {
            tracing::warn!(
                listener = %self.listener,
                max_clients = self.max_clients,
                "listener full: new connections are closed at once until one ends; \
                 counted in tidb_host_agent_listener_connections_refused_total"
            );
            self.logged = true;
            self.last_warning = Some(Instant::now());
        }
        self.refused += 1;
    }

    pub fn admitted(&mut self) {
        if self.logged {
            tracing::info!(
                listener = %self.listener,
                refused = self.refused,
                "listener accepts connections again"
            );
        }
        self.refused = 0;
        self.logged = false;
    }
}

/// Whether two secrets are equal, in a time that depends on their lengths only.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let metrics = Metrics::new();
        let mut backoff = AcceptBackoff::new("test");
        let error = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed(&error, &metrics)).collect();
        assert_eq!(pauses[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(pauses[1], ACCEPT_BACKOFF_MIN * 2);
        assert_eq!(pauses[9], ACCEPT_BACKOFF_MAX);
        backoff.succeeded();
        assert_eq!(backoff.failed(&error, &metrics), ACCEPT_BACKOFF_MIN);
        assert!(
            metrics
                .encode()
                .contains(r#"listener_accept_errors_total{listener="test"} 11"#),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3cres"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"", b"x"));
        assert!(same_secret(b"", b""));
    }
}
