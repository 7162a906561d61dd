//! The http sink: POST the snapshot every cycle, e.g. to an Open-Falcon agent's
//! `/v1/push`. A failure is logged and counted; the next cycle tries again.

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
    let Some(url) = config.url.clone() else {
        return;
    };
    let mut log = FailureLog::default();
    let client = match reqwest::Client::builder()
        .timeout(config.timeout_or_default())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log.failure(&name, format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    let format = config.format();
    while let Some(snapshot) = next(&mut rx, &stop).await {
        let body = format::render(format, &snapshot, &options);
        let mut request = client
            .post(&url)
            .header("content-type", format::content_type(format))
            .body(body);
        for (k, v) in &config.headers {
            request = request.header(k, v);
        }
        let result = match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("POST {url} answered {}", r.status())),
            Err(e) => Err(format!("POST {url} failed: {}", error_chain(&e))),
        };
        metrics.output_write(&name, result.is_ok());
        match result {
            Ok(()) => log.success(&name),
            Err(message) => log.failure(&name, message),
        }
    }
}

/// reqwest's top-level message hides the cause (refused, timed out…); the chain has it.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
