//! `check [--connect]`: everything a start would refuse, then, with `--connect`, every
//! server probed and every rule run once.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::time::Instant;

use super::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::config::{Config, HostMatcher};
use crate::daemon::Generation;
use crate::discovery::instances;
use crate::evaluation::sources::{self, ServerRules};
use crate::metrics::Metrics;
use crate::plan::PlannedRule;

/// `println!` that leaves a closed stdout (`check --connect | head`) alone: the report goes
/// out line by line as the queries answer, and the exit status still tells the result.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub async fn run(path: &Path, config: Config, connect: bool) -> ExitCode {
    let generation = match Generation::build(config, Arc::new(Metrics::new())).await {
        Ok(generation) => generation,
        Err(problems) => {
            eprintln!("{}: cannot start:\n{problems}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = &generation.config;
    let rules = generation.plan.evaluated();
    say!(
        "{}: configuration OK ({} rules, {} outputs)",
        path.display(),
        rules.len(),
        config.outputs.len()
    );
    for warning in secret_file_warnings(config) {
        eprintln!("warning: {warning}");
    }
    if !connect {
        return ExitCode::SUCCESS;
    }
    let pair = generation.pair();
    let mut failed = false;
    for member in pair.members() {
        match member
            .server
            .probe(config.prometheus.probe_timeout.get())
            .await
        {
            Ok(()) => say!(
                "server {} (local: {}): up",
                member.server.name,
                member.local
            ),
            Err(e) => {
                failed = true;
                say!(
                    "server {} (local: {}): DOWN: {e}",
                    member.server.name,
                    member.local
                );
            }
        }
    }
    for server in &config.alertmanager.servers {
        let answer =
            match crate::forward::client::AlertmanagerClient::new(server, &config.alertmanager) {
                Ok(client) => client
                    .alerts()
                    .await
                    .map(|answer| (client, answer.alerts.len())),
                Err(e) => Err(e),
            };
        match answer {
            Ok((client, alerts)) => {
                say!("alertmanager {}: up ({alerts} alerts match)", client.name());
            }
            Err(e) => {
                failed = true;
                // The error names the server (without the URL's credentials).
                say!("DOWN: {e}");
            }
        }
    }
    if config.host.matcher == HostMatcher::Instances {
        let pattern = &generation.plan.host;
        match instances::read(pair, pattern, config.prometheus.timeout.get()).await {
            Ok(host) => match host.instances() {
                Some(values) => say!(
                    "host matcher: {} exact values ({}); the keys below are asked with the \
                     pattern {pattern}",
                    values.len(),
                    values.join(", ")
                ),
                None => say!(
                    "host matcher: the pair has no value for {pattern}, or more than {}: the \
                     pattern stays",
                    crate::promql::MAX_INSTANCES
                ),
            },
            Err(e) => {
                failed = true;
                say!("host matcher: cannot read this host's values: {e}");
            }
        }
    }
    let servers = sources::read(pair, &rules, config.prometheus.timeout.get()).await;
    for server in &servers {
        if let Err(e) = &server.rules {
            say!(
                "server {}: cannot read its alerting rules: {e}",
                server.server
            );
        }
    }
    for rule in &rules {
        let deadline = Instant::now() + config.prometheus.timeout.get();
        match pair.query(&rule.query, deadline).await {
            Ok(a) if a.series.is_empty() => say!("{}: ok", rule.key),
            Ok(a) => say!("{}: firing ({} series)", rule.key, a.series.len()),
            Err(e) => {
                failed = true;
                say!("{}: error: {e}", rule.key);
            }
        }
        say!("{}", sources_of(rule, &servers).trim_end_matches('\n'));
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// A key's source as the daemon would decide it now, and how each server's rule of the
/// same name compares with the agent's.
fn sources_of(rule: &PlannedRule, servers: &[ServerRules]) -> String {
    let decision = sources::decide(rule, servers);
    let mut out = format!(
        "  source: {} ({})\n",
        decision.source.name(),
        decision.reason
    );
    for server in servers {
        if let Some(comparison) = server.compare(rule) {
            out.push_str(&format!(
                "  server {}: {}\n",
                server.server,
                comparison.describe()
            ));
        }
    }
    out
}

/// Secret files any user of the host can read: the token is as good as public there.
fn secret_file_warnings(config: &Config) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let servers = config
        .prometheus
        .servers
        .iter()
        .chain(&config.alertmanager.servers);
    let files = servers.flat_map(|s| {
        [
            s.basic_auth_password_file.as_deref(),
            s.bearer_token_file.as_deref(),
        ]
    });
    files
        .chain(std::iter::once(
            config.alertmanager.listen_token_file.as_deref(),
        ))
        .flatten()
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0))
        .map(|path| {
            format!(
                "{} is readable by every user of this host; make it readable by the agent \
                 only: chown root:tidb-host-agent FILE; chmod 0640 FILE",
                path.display()
            )
        })
        .collect()
}
