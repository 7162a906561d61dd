//! `kind = "http"`: sends each event to a URL. The URL, header values and body are
//! templates; the body defaults to the event JSON (with `Content-Type:
//! application/json`). Any 2xx answer is success; redirects are not followed, so a 3xx
//! is a failure the operator sees rather than a silently changed request.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::{DeliveryError, TargetError};
use crate::forward::alert::Event;
use crate::forward::template::{Templates, event_context};

/// Response body kept for the failure log.
const BODY_KEPT_BYTES: usize = 512;

/// Longest header value a target sends; servers commonly refuse headers past 8 KiB.
const HEADER_MAX_BYTES: usize = 8 * 1024;

#[derive(Debug)]
pub struct HttpTarget {
    name: String,
    method: Method,
    url: String,
    headers: Vec<(HeaderName, String)>,
    body: Option<String>,
    client: reqwest::Client,
    templates: Arc<Templates>,
}

impl HttpTarget {
    pub(super) fn new(
        name: String,
        method: &str,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
        timeout: Duration,
        templates: Arc<Templates>,
    ) -> Result<Self, TargetError> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            TargetError::Method {
                name: name.clone(),
                method: method.to_owned(),
            }
        })?;
        let headers = headers
            .into_iter()
            .map(|(header, template)| {
                HeaderName::from_bytes(header.as_bytes())
                    .map(|h| (h, template))
                    .map_err(|_| TargetError::HeaderName {
                        name: name.clone(),
                        header,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| TargetError::Client {
                name: name.clone(),
                source,
            })?;
        Ok(Self {
            name,
            method,
            url,
            headers,
            body,
            client,
            templates,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let context = event_context(event);
        let url = self.templates.render(&self.url, &context)?;
        let parsed = Url::parse(&url).map_err(|e| DeliveryError::BadUrl {
            url: crate::config::redacted_url(&url),
            why: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DeliveryError::BadUrl {
                url: crate::config::redacted_url(&url),
                why: "the scheme must be http or https".into(),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, template) in &self.headers {
            let value = self.templates.render(template, &context)?;
            if value.len() > HEADER_MAX_BYTES {
                return Err(DeliveryError::BadHeader {
                    name: name.to_string(),
                    why: format!("it is {} bytes; at most {HEADER_MAX_BYTES}", value.len()),
                });
            }
            let value = HeaderValue::from_str(&value).map_err(|_| DeliveryError::BadHeader {
                name: name.to_string(),
                why: "it holds a control character (CR, LF or NUL)".into(),
            })?;
            headers.insert(name.clone(), value);
        }
        let body = match &self.body {
            Some(template) => self.templates.render(template, &context)?,
            None => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                serde_json::to_string(event).unwrap_or_default()
            }
        };
        // For logs: without credentials or query string, which may carry tokens.
        let shown = crate::config::redacted_url(parsed.as_str());
        let response = self
            .client
            .request(self.method.clone(), parsed)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|source| DeliveryError::Request {
                url: shown.clone(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(DeliveryError::Status {
            url: shown,
            status,
            body: head(response).await,
        })
    }
}

/// The start of a response body, for the failure log; never reads the whole of it.
async fn head(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < BODY_KEPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(BODY_KEPT_BYTES);
    String::from_utf8_lossy(&kept).trim_end().to_owned()
}
