//! The http sink: POST the snapshot every cycle, e.g. to an Open-Falcon agent's
//! `/v1/push`. A failure is logged and counted; the next cycle tries again.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use tokio_util::sync::CancellationToken;

use super::format::{self, FormatOptions};
use super::{FailureLog, Latest, next};
use crate::config::{FormatKind, HttpOutput};
use crate::metrics::Metrics;

pub async fn run(
    mut log: FailureLog,
    config: HttpOutput,
    format: FormatKind,
    options: FormatOptions,
    mut rx: Latest,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let url = config.url.clone();
    let name = log.name().to_owned();
    // Checked when the configuration was built ([`super::check`]).
    let headers = headers(&config).unwrap_or_default();
    let client = match reqwest::Client::builder()
        .timeout(config.timeout.get())
        .default_headers(headers)
        // A redirect would carry the configured headers (often a token) to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log.failure(format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    while let Some(snapshot) = next(&mut rx, &stop).await {
        let body = format::render(format, &snapshot, &options);
        let request = client
            .post(&url)
            .header("content-type", format::content_type(format))
            .body(body);
        let result = match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("POST {name} answered {}", r.status())),
            // reqwest's errors name the URL, query string included: strip it.
            Err(e) => Err(format!(
                "POST {name} failed: {}",
                crate::error::chain(&e.without_url())
            )),
        };
        metrics.output_write(&name, result.is_ok());
        match result {
            Ok(()) => log.success(),
            Err(message) => log.failure(message),
        }
    }
}

/// The configured headers, marked sensitive; the name of the first that cannot be sent.
pub(super) fn headers(config: &HttpOutput) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in &config.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| name.clone())?;
        let mut value = HeaderValue::from_str(value).map_err(|_| name.clone())?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}
