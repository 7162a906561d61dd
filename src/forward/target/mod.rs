//! Forward targets: where events go. One file per kind, one dispatch point here.

mod exec;
mod http;

use std::sync::Arc;

use crate::config::ForwardConfig;

use super::alert::Event;
use super::template::{TemplateError, Templates};

pub use exec::{ENV_VALUE_MAX_BYTES, ExecTarget};
pub use http::HttpTarget;

/// Rendered programs and URLs carry label values (untrusted): they are quoted and
/// escaped in messages, never interpolated raw.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the command template rendered an empty program name")]
    EmptyProgram,
    #[error("argument {index} of the command cannot be passed: {why}")]
    BadArgument { index: usize, why: String },
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program:?} failed while running: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error("{program:?} exited with {status}{}", stderr_suffix(.stderr))]
    Exit {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{program:?} did not finish within {timeout:?}; killed it")]
    ExecTimeout {
        program: String,
        timeout: std::time::Duration,
    },
    #[error("the url template rendered {url:?}, which is not a URL: {why}")]
    BadUrl { url: String, why: String },
    #[error("header `{name}` cannot carry the rendered value: {why}")]
    BadHeader { name: String, why: String },
    #[error("request to {url:?} failed: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{url:?} answered {status}{}", stderr_suffix(.body))]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
}

impl DeliveryError {
    /// The event can never be delivered to this target as configured (its templates
    /// render something unusable): retrying would fail the same way.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Template(_)
                | DeliveryError::EmptyProgram
                | DeliveryError::BadArgument { .. }
                | DeliveryError::BadUrl { .. }
                | DeliveryError::BadHeader { .. }
        )
    }
}

fn stderr_suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text:?}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("forward target `{name}`: {source}")]
    Template { name: String, source: TemplateError },
    #[error("forward target `{name}`: `{method}` is not an HTTP method")]
    Method { name: String, method: String },
    #[error("forward target `{name}`: `{header}` is not an HTTP header name")]
    HeaderName { name: String, header: String },
    #[error("forward target `{name}`: cannot build the HTTP client: {source}")]
    Client {
        name: String,
        source: reqwest::Error,
    },
}

/// One configured target.
#[derive(Debug)]
pub enum Target {
    Exec(ExecTarget),
    Http(HttpTarget),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Exec(t) => t.name(),
            Target::Http(t) => t.name(),
        }
    }

    /// One delivery attempt; bounded by the target's timeout.
    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        match self {
            Target::Exec(t) => t.deliver(event).await,
            Target::Http(t) => t.deliver(event).await,
        }
    }
}

/// Compiles every target's templates and builds the targets.
pub fn build(configs: &[ForwardConfig]) -> Result<Vec<Target>, TargetError> {
    let mut templates = Templates::new();
    let mut pending = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        let name = config.name(index);
        let mut add = |field: &str, source: &str| {
            let template = format!("forward.{name}.{field}");
            templates
                .add(&template, source)
                .map(|()| template)
                .map_err(|source| TargetError::Template {
                    name: name.clone(),
                    source,
                })
        };
        let kind = match config {
            ForwardConfig::Exec(exec) => {
                let argv = exec
                    .command
                    .iter()
                    .enumerate()
                    .map(|(i, source)| add(&format!("command[{i}]"), source))
                    .collect::<Result<Vec<_>, _>>()?;
                Pending::Exec { argv }
            }
            ForwardConfig::Http(http) => {
                let url = add("url", &http.url)?;
                let headers = http
                    .headers
                    .iter()
                    .map(|(header, source)| {
                        Ok((header.clone(), add(&format!("headers.{header}"), source)?))
                    })
                    .collect::<Result<Vec<_>, TargetError>>()?;
                let body = http.body.as_deref().map(|b| add("body", b)).transpose()?;
                Pending::Http {
                    method: &http.method,
                    url,
                    headers,
                    body,
                }
            }
        };
        pending.push((name, config, kind));
    }
    let templates = Arc::new(templates);
    pending
        .into_iter()
        .map(|(name, config, kind)| match kind {
            Pending::Exec { argv } => Ok(Target::Exec(ExecTarget::new(
                name,
                argv,
                config.timeout().get(),
                Arc::clone(&templates),
            ))),
            Pending::Http {
                method,
                url,
                headers,
                body,
            } => HttpTarget::new(
                name,
                method,
                url,
                headers,
                body,
                config.timeout().get(),
                Arc::clone(&templates),
            )
            .map(Target::Http),
        })
        .collect()
}

/// Template names, before the shared template set is frozen.
enum Pending<'a> {
    Exec {
        argv: Vec<String>,
    },
    Http {
        method: &'a str,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
    },
}
