//! One Alertmanager server: `GET /api/v2/alerts` with the configured matchers and
//! switches, a timeout, a bounded body and the server's credentials. Credentials never
//! reach a log or an error message; URLs are shown without user info.

use std::path::Path;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{AlertmanagerConfig, ServerConfig};

use super::alert::{Alert, parse_v2_alerts_bounded};

/// A larger answer is a failure of that server (thousands of alerts fit in far less).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// How much of an error answer is kept for the log.
const ERROR_BODY_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("alertmanager {server}: invalid URL: {why}")]
    Url { server: String, why: String },
    #[error("alertmanager {server}: cannot read {what} {path}: {source}")]
    Secret {
        server: String,
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("alertmanager {server}: ca_file {path}: {why}")]
    Ca {
        server: String,
        path: String,
        why: String,
    },
    #[error("alertmanager {server}: header `{name}` is not a valid HTTP header")]
    Header { server: String, name: String },
    #[error("alertmanager {server}: cannot build the HTTP client: {source}")]
    Build {
        server: String,
        source: reqwest::Error,
    },
    #[error("alertmanager {server}: request failed: {source}")]
    Request {
        server: String,
        source: reqwest::Error,
    },
    #[error("alertmanager {server} answered HTTP {status}: {body:?}")]
    Status {
        server: String,
        status: reqwest::StatusCode,
        /// The start of the answer: Alertmanager explains a bad `filter` matcher there.
        body: String,
    },
    #[error("alertmanager {server}: answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { server: String },
    #[error("alertmanager {server}: answer is not an Alertmanager v2 alert list: {source}")]
    Decode {
        server: String,
        source: serde_json::Error,
    },
}

/// A credential; its Debug output hides it.
#[derive(Clone)]
enum Credentials {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "None",
            Credentials::Basic { .. } => "Basic(<hidden>)",
            Credentials::Bearer(_) => "Bearer(<hidden>)",
        })
    }
}

/// One server's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its alerts, earliest started first.
    pub alerts: Vec<Alert>,
    /// Alerts left out, past `max_alerts`.
    pub ignored: usize,
}

#[derive(Debug, Clone)]
pub struct AlertmanagerClient {
    name: String,
    /// Alerts kept from one answer (`[alertmanager] max_alerts`).
    max_alerts: usize,
    alerts_url: Url,
    query: Vec<(&'static str, String)>,
    credentials: Credentials,
    client: reqwest::Client,
}

impl AlertmanagerClient {
    pub fn new(server: &ServerConfig, config: &AlertmanagerConfig) -> Result<Self, ClientError> {
        let mut url = Url::parse(&server.url).map_err(|e| ClientError::Url {
            server: server.url.clone(),
            why: e.to_string(),
        })?;
        // User info in the URL becomes basic auth, never part of the name.
        let url_user = (!url.username().is_empty()).then(|| {
            (
                url.username().to_owned(),
                url.password().unwrap_or_default().to_owned(),
            )
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let name = crate::config::redacted_url(url.as_str());
        let base = url.as_str().trim_end_matches('/');
        let alerts_url =
            Url::parse(&format!("{base}/api/v2/alerts")).map_err(|e| ClientError::Url {
                server: name.clone(),
                why: e.to_string(),
            })?;

        let credentials = match (&server.basic_auth_user, &server.bearer_token_file, url_user) {
            (Some(user), _, _) => Credentials::Basic {
                user: user.clone(),
                password: match &server.basic_auth_password_file {
                    Some(path) => read_secret(&name, "basic_auth_password_file", path)?,
                    None => String::new(),
                },
            },
            (None, Some(path), _) => {
                Credentials::Bearer(read_secret(&name, "bearer_token_file", path)?)
            }
            (None, None, Some((user, password))) => Credentials::Basic { user, password },
            (None, None, None) => Credentials::None,
        };

        let mut headers = HeaderMap::new();
        for (key, value) in &server.headers {
            let bad = || ClientError::Header {
                server: name.clone(),
                name: key.clone(),
            };
            let key = HeaderName::from_bytes(key.as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            // Extra headers often carry tokens.
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        let builder = reqwest::Client::builder()
            .timeout(config.timeout.get())
            .default_headers(headers)
            // A redirect would carry the credentials and headers to wherever it points.
            .redirect(reqwest::redirect::Policy::none());
        let builder = with_ca(builder, &name, server.ca_file.as_deref())?;
        let client = builder.build().map_err(|source| ClientError::Build {
            server: name.clone(),
            source,
        })?;

        let mut query: Vec<(&'static str, String)> = config
            .filter
            .iter()
            .map(|matcher| ("filter", matcher.clone()))
            .collect();
        query.push(("active", config.active.to_string()));
        query.push(("silenced", config.silenced.to_string()));
        query.push(("inhibited", config.inhibited.to_string()));
        Ok(Self {
            max_alerts: config.max_alerts,
            name,
            alerts_url,
            query,
            credentials,
            client,
        })
    }

    /// The server's URL without credentials: its name in logs and in the saved state.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's current alerts, as filtered by the config, at most `max_alerts` of
    /// them (the earliest started).
    pub async fn alerts(&self) -> Result<Answer, ClientError> {
        let request = self.client.get(self.alerts_url.clone()).query(&self.query);
        let request = match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
        };
        let failed = |source: reqwest::Error| ClientError::Request {
            server: self.name.clone(),
            source: source.without_url(),
        };
        let mut response = request.send().await.map_err(failed)?;
        if !response.status().is_success() {
            let status = response.status();
            let mut body = Vec::new();
            while body.len() < ERROR_BODY_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body.truncate(ERROR_BODY_BYTES);
            return Err(ClientError::Status {
                server: self.name.clone(),
                status,
                body: String::from_utf8_lossy(&body).trim_end().to_owned(),
            });
        }
        let too_large = || ClientError::TooLarge {
            server: self.name.clone(),
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let (alerts, ignored) =
            parse_v2_alerts_bounded(&body, self.max_alerts).map_err(|source| {
                ClientError::Decode {
                    server: self.name.clone(),
                    source,
                }
            })?;
        Ok(Answer { alerts, ignored })
    }
}

fn read_secret(server: &str, what: &'static str, path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|source| ClientError::Secret {
            server: server.to_owned(),
            what,
            path: path.display().to_string(),
            source,
        })
}

#[cfg(feature = "tls")]
fn with_ca(
    builder: reqwest::ClientBuilder,
    server: &str,
    ca_file: Option<&Path>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let Some(path) = ca_file else {
        return Ok(builder);
    };
    let ca_error = |why: String| ClientError::Ca {
        server: server.to_owned(),
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
    Ok(builder.add_root_certificate(certificate))
}

#[cfg(not(feature = "tls"))]
fn with_ca(
    builder: reqwest::ClientBuilder,
    server: &str,
    ca_file: Option<&Path>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    match ca_file {
        None => Ok(builder),
        Some(path) => Err(ClientError::Ca {
            server: server.to_owned(),
            path: path.display().to_string(),
            why: "this build has no TLS support (feature `tls`)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_never_reach_the_name() {
        let config = AlertmanagerConfig::default();
        let server = ServerConfig::from_url("http://admin:s3cret@127.0.0.1:9093/am/");
        let client = AlertmanagerClient::new(&server, &config).unwrap();
        assert_eq!(client.name(), "http://127.0.0.1:9093/am");
        assert_eq!(
            client.alerts_url.as_str(),
            "http://127.0.0.1:9093/am/api/v2/alerts"
        );
        assert!(!format!("{client:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_token_file_is_named_without_its_content() {
        let config = AlertmanagerConfig::default();
        let mut server = ServerConfig::from_url("http://127.0.0.1:9093");
        server.bearer_token_file = Some("/nonexistent/token".into());
        let err = AlertmanagerClient::new(&server, &config).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/token"), "{err}");
    }

    #[test]
    fn the_query_carries_matchers_and_switches() {
        let config = AlertmanagerConfig {
            filter: vec!["severity=\"critical\"".into(), "env=~\"prod.*\"".into()],
            silenced: true,
            ..AlertmanagerConfig::default()
        };
        let client =
            AlertmanagerClient::new(&ServerConfig::from_url("http://127.0.0.1:1"), &config)
                .unwrap();
        let pairs: Vec<(&str, &str)> = client.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("filter", "severity=\"critical\""),
                ("filter", "env=~\"prod.*\""),
                ("active", "true"),
                ("silenced", "true"),
                ("inhibited", "false"),
            ]
        );
    }
}
