//! The optional webhook receiver (`alertmanager.listen`): Alertmanager's webhook POSTs
//! (payload version 4) enter the same pipeline as polled alerts, deduplicated on the
//! same keys.
//!
//! The answer is 200 only once the events are on disk; on a spool failure it is 500, so
//! Alertmanager sends the notification again. A malformed payload gets 400.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alert::WebhookPayload;
use super::{Pipeline, Wakers};

/// A larger notification is refused (Alertmanager truncates groups long before this).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its headers by then is cut off.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("alertmanager.listen `{addr}`: cannot listen: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub async fn bind(addr: &str) -> Result<TcpListener, ReceiverError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ReceiverError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

pub(crate) async fn serve(
    listener: TcpListener,
    pipeline: Arc<Mutex<Pipeline>>,
    wakers: Wakers,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "webhook receiver listening");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("webhook receiver: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let pipeline = Arc::clone(&pipeline);
        let wakers = wakers.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                handle(request, Arc::clone(&pipeline), wakers.clone())
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

async fn handle(
    request: Request<Incoming>,
    pipeline: Arc<Mutex<Pipeline>>,
    wakers: Wakers,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST Alertmanager webhook payloads here\n",
        ));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the body (at most {MAX_BODY_BYTES} bytes): {e}\n"),
            ));
        }
    };
    let payload: WebhookPayload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::warn!("webhook receiver: not an Alertmanager webhook payload: {e}");
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                &format!("not an Alertmanager webhook payload: {e}\n"),
            ));
        }
    };
    if payload.version != "4" {
        tracing::warn!(
            version = %payload.version,
            receiver = %payload.receiver,
            "webhook payload version is not 4; reading it as version 4"
        );
    }
    let events = payload.alerts.into_iter().map(|a| a.into_event()).collect();
    let now = Timestamp::now();
    let mut locked = pipeline.lock().await;
    let retention = locked.retention;
    let result = locked.apply(now, |known| known.received(events, now, retention));
    drop(locked);
    match result {
        Ok(events) => {
            if !events.is_empty() {
                wakers.wake_all();
            }
            Ok(reply(StatusCode::OK, ""))
        }
        Err(e) => {
            tracing::error!("webhook receiver: {e}; answered 500 so that Alertmanager retries");
            Ok(reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot spool the alerts\n",
            ))
        }
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}
