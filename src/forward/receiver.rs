//! The optional webhook receiver (`alertmanager.listen`): Alertmanager's webhook POSTs
//! (payload version 4) enter the same pipeline as polled alerts, deduplicated on the
//! same keys. The polled view wins: a webhook event never stands in for, resolves or
//! restates an alert that polling tracks (see [`Known::received`]).
//!
//! The answer is 200 only once the events are on disk; on a spool failure it is 500, so
//! Alertmanager sends the notification again. A malformed payload gets 400, a body not
//! sent within [`BODY_TIMEOUT`] 408, and a request without the configured bearer token
//! 401. The connection cap and the header, idle and age bounds are [`crate::listener`]'s.
//!
//! Everything in a payload is untrusted: it reaches the log only as escaped fields.
//!
//! [`Known::received`]: super::transitions::Known::received

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONNECTION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::alert::WebhookPayload;
use super::{Pipeline, Wakers};
use crate::listener::{self, Limits};
use crate::metrics::Metrics;

/// A larger notification is refused: its alerts parsed would hold several times its size.
/// Alertmanager's `webhook_configs: max_alerts` keeps notifications under it.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The whole body must arrive within this: 4 MiB at 400 kB/s, far slower than any link
/// between an Alertmanager and this host.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent a request head by then is cut off, and so is a kept-alive
/// connection idle for that long. Alertmanager opens a new connection when it must.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection lives longer, whatever it does.
const MAX_AGE: Duration = Duration::from_secs(60);
/// A warning about bad requests is logged at most this often; each is counted.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("alertmanager.listen `{addr}`: cannot listen: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "alertmanager.listen_token_file {path}: cannot read the webhook token: {source}; \
         the receiver needs it to tell Alertmanager from anyone else"
    )]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "alertmanager.listen_token_file {path} is empty; put the token that Alertmanager's \
         webhook_configs http_config sends (authorization: credentials_file) in it"
    )]
    EmptyToken { path: PathBuf },
}

pub async fn bind(addr: &str) -> Result<TcpListener, ReceiverError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ReceiverError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// The token webhook requests must carry; never printed.
#[derive(Clone)]
pub struct BearerToken(Vec<u8>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Reads the token from `path`; surrounding whitespace (the final newline) is not
    /// part of it.
    pub fn read(path: &Path) -> Result<Self, ReceiverError> {
        let text = std::fs::read(path).map_err(|source| ReceiverError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim_ascii();
        if token.is_empty() {
            return Err(ReceiverError::EmptyToken {
                path: path.to_owned(),
            });
        }
        Ok(Self(token.to_vec()))
    }

    /// Whether `request` carries `Authorization: Bearer <token>` (the scheme in any case).
    fn admits<B>(&self, request: &Request<B>) -> bool {
        let Some(value) = request.headers().get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        match value.split_at_checked(scheme.len()) {
            Some((head, credentials)) if head.eq_ignore_ascii_case(scheme) => {
                listener::same_secret(credentials.trim_ascii(), &self.0)
            }
            _ => false,
        }
    }
}

/// How the receiver is set up: from `[alertmanager] listen_*`.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub token: Option<BearerToken>,
    pub max_clients: usize,
    /// Alerts taken from one notification (`[alertmanager] max_alerts`).
    pub max_alerts: usize,
}

struct Context {
    pipeline: Arc<Mutex<Pipeline>>,
    wakers: Wakers,
    token: Option<BearerToken>,
    max_alerts: usize,
    metrics: Arc<Metrics>,
    /// When each kind of refusal was last logged.
    warned: std::sync::Mutex<std::collections::BTreeMap<&'static str, Instant>>,
}

impl Context {
    /// Counts a refused request, and says whether to log it: at most once every
    /// WARN_EVERY for each kind.
    fn refused(&self, result: &'static str) -> bool {
        self.metrics.webhook_request(result);
        self.warn_due(result)
    }

    /// Whether a warning of `kind` may be logged now: at most once every WARN_EVERY.
    fn warn_due(&self, kind: &'static str) -> bool {
        let Ok(mut warned) = self.warned.lock() else {
            return false;
        };
        let due = warned.get(kind).is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            warned.insert(kind, Instant::now());
        }
        due
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    pipeline: Arc<Mutex<Pipeline>>,
    wakers: Wakers,
    access: Access,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            token = access.token.is_some(),
            max_clients = access.max_clients,
            "webhook receiver listening"
        );
    }
    let context = Arc::new(Context {
        pipeline,
        wakers,
        token: access.token,
        max_alerts: access.max_alerts,
        metrics: Arc::clone(&metrics),
        warned: std::sync::Mutex::default(),
    });
    let limits = Limits {
        max_clients: access.max_clients,
        header_timeout: HEADER_TIMEOUT,
        max_age: MAX_AGE,
    };
    let handler = move |request| handle(request, Arc::clone(&context));
    listener::serve("webhook", listener, limits, handler, metrics, shutdown).await;
}

async fn handle(request: Request<Incoming>, context: Arc<Context>) -> Response<Full<Bytes>> {
    if let Some(token) = &context.token
        && !token.admits(&request)
    {
        if context.refused("unauthorized") {
            tracing::warn!(
                "webhook receiver: request without the bearer token of \
                 alertmanager.listen_token_file, answered 401 (further ones for a minute \
                 are only counted in tidb_host_agent_webhook_requests_total)"
            );
        }
        let mut response = reply(StatusCode::UNAUTHORIZED, "bearer token required\n");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    if request.method() != Method::POST {
        context.metrics.webhook_request("method");
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST Alertmanager webhook payloads here\n",
        );
    }
    let read = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            if context.refused("too_large") {
                tracing::warn!(
                    "webhook receiver: body larger than {MAX_BODY_BYTES} bytes, answered 413"
                );
            }
            return closing(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY_BYTES} bytes\n"),
            ));
        }
        Ok(Err(e)) => {
            context.metrics.webhook_request("bad_request");
            tracing::debug!(error = ?e.to_string(), "webhook receiver: cannot read the body");
            return closing(reply(StatusCode::BAD_REQUEST, "cannot read the body\n"));
        }
        Err(_) => {
            context.metrics.listener_timeout("webhook", "body");
            if context.refused("timeout") {
                tracing::warn!(
                    "webhook receiver: body not received within {}s, answered 408 and closed",
                    BODY_TIMEOUT.as_secs()
                );
            }
            return closing(reply(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time\n",
            ));
        }
    };
    let payload: WebhookPayload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            // serde's messages quote the offending input (an unknown variant, say).
            if context.refused("bad_request") {
                tracing::warn!(
                    error = ?e.to_string(),
                    "webhook receiver: not an Alertmanager webhook payload, answered 400"
                );
            }
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("not an Alertmanager webhook payload: {e}\n"),
            );
        }
    };
    if payload.version != "4" {
        tracing::warn!(
            version = ?payload.version,
            receiver = ?payload.receiver,
            "webhook payload version is not 4; reading it as version 4"
        );
    }
    let mut alerts = payload.alerts;
    if alerts.len() > context.max_alerts {
        let ignored = alerts.len() - context.max_alerts;
        alerts.truncate(context.max_alerts);
        context
            .metrics
            .forward_dropped("alerts_over_max", ignored as u64);
        if context.warn_due("alerts_over_max") {
            tracing::warn!(
                ignored,
                max_alerts = context.max_alerts,
                "webhook receiver: a notification held more alerts than \
                 alertmanager.max_alerts; the first are taken"
            );
        }
    }
    let events = alerts.into_iter().map(|a| a.into_event()).collect();
    let now = Timestamp::now();
    let mut locked = context.pipeline.lock().await;
    let retention = locked.retention;
    let mut ignored = 0;
    let result = locked.apply(now, |known| {
        let (events, polled) = known.received(events, now, retention);
        ignored = polled;
        events
    });
    drop(locked);
    if ignored > 0 {
        context
            .metrics
            .webhook_events_ignored("polled", ignored as u64);
        tracing::debug!(
            ignored,
            "webhook alerts ignored: polling tracks their fingerprints"
        );
    }
    match result {
        Ok(events) => {
            context.metrics.webhook_request("ok");
            if !events.is_empty() {
                context.wakers.wake_all();
            }
            reply(StatusCode::OK, "")
        }
        Err(e) => {
            context.metrics.webhook_request("error");
            tracing::error!("webhook receiver: {e}; answered 500 so that Alertmanager retries");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot spool the alerts\n",
            )
        }
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

/// The rest of the body is not read: the connection ends with the answer.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method("POST").uri("/hook");
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_the_bearer_token_is_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let token = BearerToken::read(&path).unwrap();
        assert!(token.admits(&request(Some("Bearer s3cret-token"))));
        assert!(token.admits(&request(Some("bearer s3cret-token"))));
        assert!(!token.admits(&request(None)));
        assert!(!token.admits(&request(Some("Bearer s3cret-tokem"))));
        assert!(!token.admits(&request(Some("Bearer s3cret-token2"))));
        assert!(!token.admits(&request(Some("Basic s3cret-token"))));
        assert!(!token.admits(&request(Some("Bearer"))));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn an_empty_or_missing_token_file_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        let empty = BearerToken::read(&path).unwrap_err().to_string();
        assert!(empty.contains("listen_token_file"), "{empty}");
        let missing = BearerToken::read(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("listen_token_file"), "{missing}");
    }
}
