//! `tidb-host-agent alerts [--format TEMPLATE | --json]`: the merged current alerts of
//! the Alertmanager pair, printed once, for scripts that send them anywhere.

use std::process::ExitCode;

use jiff::Timestamp;

use crate::config::{AlertmanagerConfig, Config};

use super::alert::Alert;
use super::client::{AlertmanagerClient, ClientError};
use super::merge::merge;
use super::template::{TemplateError, Templates, alert_context};

/// One line per alert unless `--format` or `--json` says otherwise.
pub const DEFAULT_FORMAT: &str = "{{ startsAt }} {{ state }} {{ alertname }} {{ labels | kv }}";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AlertsArgs {
    /// Print each alert through this minijinja template, one per line, e.g.
    /// '{{ alertname }} {{ labels.instance }} {{ startsAt }}'.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "json")]
    pub format: Option<String>,
    /// Print the alerts as one JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("no Alertmanager configured: set [alertmanager] servers = [\"http://HOST:9093\", …]")]
    NoServers,
    #[error(transparent)]
    Client(ClientError),
    #[error("no Alertmanager answered:{}", list(.0))]
    NoAnswer(Vec<ClientError>),
    #[error("--format: {0}")]
    Template(#[from] TemplateError),
}

fn list(errors: &[ClientError]) -> String {
    errors.iter().map(|e| format!("\n  {e}")).collect()
}

impl AlertsError {
    /// SPEC §10: 78 for configuration, 2 for usage, 1 for runtime failures.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AlertsError::NoServers | AlertsError::Client(_) => ExitCode::from(78),
            AlertsError::Template(TemplateError::Compile { .. }) => ExitCode::from(2),
            AlertsError::NoAnswer(_) | AlertsError::Template(_) => ExitCode::FAILURE,
        }
    }
}

/// What `alerts` prints, and the servers that did not answer (for stderr).
#[derive(Debug)]
pub struct AlertsOutput {
    pub text: String,
    pub failures: Vec<ClientError>,
}

pub async fn main(config: &Config, args: AlertsArgs) -> ExitCode {
    match output(&config.alertmanager, &args).await {
        Ok(out) => {
            for failure in &out.failures {
                eprintln!("warning: {failure}");
            }
            print!("{}", out.text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tidb-host-agent alerts: {e}");
            e.exit_code()
        }
    }
}

/// Asks every server once and renders the merged alerts. Succeeds when at least one
/// server answered.
pub async fn output(
    config: &AlertmanagerConfig,
    args: &AlertsArgs,
) -> Result<AlertsOutput, AlertsError> {
    if config.servers.is_empty() {
        return Err(AlertsError::NoServers);
    }
    let mut templates = Templates::new();
    if !args.json {
        templates.add("--format", args.format.as_deref().unwrap_or(DEFAULT_FORMAT))?;
    }
    let clients = config
        .servers
        .iter()
        .map(|server| AlertmanagerClient::new(server, config))
        .collect::<Result<Vec<_>, _>>()
        .map_err(AlertsError::Client)?;
    let answers = futures::future::join_all(clients.iter().map(|c| c.alerts())).await;
    let mut lists = Vec::new();
    let mut failures = Vec::new();
    for (client, answer) in clients.iter().zip(answers) {
        match answer {
            Ok(answer) => lists.push((client.name(), answer.alerts)),
            Err(e) => failures.push(e),
        }
    }
    if lists.is_empty() {
        return Err(AlertsError::NoAnswer(failures));
    }
    let now = Timestamp::now();
    let mut alerts: Vec<Alert> = merge(lists.iter().map(|(name, list)| (*name, list.as_slice())))
        .into_values()
        .filter(|a| !a.has_ended(now))
        .collect();
    alerts.sort_by(|a, b| (a.starts_at, &a.fingerprint).cmp(&(b.starts_at, &b.fingerprint)));
    let text = render(&alerts, args.json, &templates)?;
    Ok(AlertsOutput { text, failures })
}

fn render(alerts: &[Alert], json: bool, templates: &Templates) -> Result<String, AlertsError> {
    if json {
        let mut text = serde_json::to_string_pretty(alerts).unwrap_or_else(|_| "[]".into());
        text.push('\n');
        return Ok(text);
    }
    let mut text = String::new();
    for alert in alerts {
        text.push_str(&templates.render("--format", &alert_context(alert))?);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::merge::tests::alert;

    #[test]
    fn each_alert_is_one_rendered_line() {
        let mut templates = Templates::new();
        templates
            .add(
                "--format",
                "{{ alertname }}|{{ state }}|{{ servers | join(',') }}",
            )
            .unwrap();
        let mut a = alert("aa", 0);
        a.servers.insert("http://a".into());
        let b = alert("bb", 1);
        let text = render(&[a, b], false, &templates).unwrap();
        assert_eq!(text, "Aaa|active|http://a\nAbb|active|\n");
    }

    #[test]
    fn json_is_an_array_of_alerts() {
        let text = render(&[alert("aa", 0)], true, &Templates::new()).unwrap();
        let back: Vec<Alert> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [alert("aa", 0)]);
        assert_eq!(render(&[], true, &Templates::new()).unwrap(), "[]\n");
    }

    #[tokio::test]
    async fn no_servers_is_a_configuration_error() {
        let err = output(&AlertmanagerConfig::default(), &AlertsArgs::default())
            .await
            .unwrap_err();
        assert!(matches!(err, AlertsError::NoServers));
    }

    #[tokio::test]
    async fn a_bad_template_is_a_usage_error() {
        let config = AlertmanagerConfig {
            servers: vec![crate::config::ServerConfig::from_url("http://127.0.0.1:1")],
            ..AlertmanagerConfig::default()
        };
        let args = AlertsArgs {
            format: Some("{{ oops".into()),
            json: false,
        };
        let err = output(&config, &args).await.unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::from(2));
    }
}
