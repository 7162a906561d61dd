//! `tidb-host-agent explain` (SPEC §10): each key with its scope, `for`, level, and the exact
//! PromQL the daemon sends for this host: the [`Plan`] the cycle runs, printed.

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use promql_parser::util::display_duration;

use super::{EXIT_CONFIG, EXIT_USAGE, print};
use crate::config::{Config, HostMatcher, RuleSource};
use crate::discovery::addresses;
use crate::plan::{Plan, PlanError, PlannedRule};
use crate::rules::Scope;

/// Width of the field names, so that the values line up.
const INDENT: &str = "             ";

/// `explain`: the plan for this host, or for `addresses` when given.
pub fn run(path: &Path, config: &Config, addresses: &[String]) -> ExitCode {
    let (addresses, given) = if addresses.is_empty() {
        (addresses::host_addresses(&config.host.addresses), false)
    } else {
        (addresses.to_vec(), true)
    };
    match Plan::build(config, &addresses) {
        Ok(plan) => print(render(&plan).as_bytes()),
        Err(PlanError::Host(e)) if given => {
            eprintln!("--address: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("{}: {}", path.display(), crate::error::chain(&e));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Renders one block per key. Host rules show the query rewritten for this host; cluster
/// rules show the expression unmodified, as it is sent; the computed key shows no query.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# host matcher: {}", plan.host);
    if plan.matcher == HostMatcher::Instances {
        let _ = writeln!(
            out,
            "# [host] matcher = \"instances\": the daemon sends the exact values the pair has \
             for this matcher instead, read at start, at each reload and every 5 minutes; the \
             queries below show the matcher itself."
        );
    }
    let _ = writeln!(
        out,
        "# {} rules. Host rules carry the host matcher on every selector; cluster rules run \
         unmodified, only on cluster reporters.",
        plan.rules.len()
    );
    for rule in &plan.rules {
        let scope = match rule.scope {
            Scope::Host => "host".to_owned(),
            Scope::Cluster => "cluster (sent unmodified, only by cluster reporters)".to_owned(),
            Scope::Computed => "computed (by the daemon itself, not PromQL)".to_owned(),
        };
        let query = match rule.scope {
            Scope::Host | Scope::Cluster => rule.query.clone(),
            Scope::Computed => {
                "none: the daemon probes every Prometheus server (SPEC §6)".to_owned()
            }
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", rule.key);
        let _ = writeln!(out, "  component: {}", rule.component);
        let _ = writeln!(out, "  scope:     {scope}");
        let _ = writeln!(out, "  for:       {}", display_duration(&rule.for_));
        let _ = writeln!(out, "  level:     {}", rule.level);
        let _ = writeln!(out, "  source:    {}", rule.source);
        if rule.scope != Scope::Computed {
            let _ = writeln!(out, "  from:      {}", value_source(rule));
        }
        let _ = writeln!(
            out,
            "  query:     {}",
            query.replace('\n', &format!("\n{INDENT}"))
        );
    }
    if !plan.disabled.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# disabled by [rules] disable: {}",
            plan.disabled.join(", ")
        );
    }
    out
}

/// Where the key's value comes from (SPEC §15 "Sources"), as far as the configuration
/// decides it; under `auto`, `check --connect` shows what the servers decide.
fn value_source(rule: &PlannedRule) -> String {
    if let Some(why) = rule.alerts_blocked {
        return format!("evaluate ({why})");
    }
    let alerts = match rule.scope {
        Scope::Host => format!("ALERTS{{alertname=\"{}\"}} on this host", rule.alert),
        _ => format!("ALERTS{{alertname=\"{}\"}} on any instance", rule.alert),
    };
    match rule.value_source {
        RuleSource::Evaluate => "evaluate".to_owned(),
        RuleSource::Alerts => format!("alerts: the pair's {alerts}"),
        RuleSource::Auto => format!(
            "auto: the pair's {alerts} when every server loads this rule with the same \
             expression, else evaluate (check --connect shows which)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::promql::HostScope;
    use crate::rules::{LoadOptions, RuleFile, RuleOverride, assemble};

    fn host() -> HostScope {
        match HostScope::new("instance", &["10.0.1.5"]) {
            Ok(host) => host,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn blocks_show_the_query_as_sent() {
        let options = LoadOptions {
            disable: vec!["TiDB.grafana.Grafana_server_is_down".into()],
            overrides: BTreeMap::from([(
                "TiDB.pd.PD_node_restart".to_owned(),
                RuleOverride {
                    for_: Some(Duration::from_secs(90)),
                    ..RuleOverride::default()
                },
            )]),
            ..LoadOptions::default()
        };
        let file = RuleFile {
            path: "/etc/tidb-host-agent/rules.d/extra.rules.yml".into(),
            text: "groups:\n- name: x\n  rules:\n  - alert: Multi\n    expr: |\n      up\n        == 0\n    labels:\n      scope: cluster\n".into(),
        };
        let rules = match assemble(&options, &[file]) {
            Ok(rules) => rules,
            Err(e) => panic!("{e}"),
        };
        let plan = match Plan::new(&rules, host()) {
            Ok(plan) => plan,
            Err(e) => panic!("{e}"),
        };
        let text = render(&plan);
        assert!(text.starts_with(
            "# host matcher: instance=~\"(?:10\\\\.0\\\\.1\\\\.5)(?::[0-9]+)?\"\n# 41 rules."
        ));
        assert!(text.contains(
            "\nTiDB.pd.PD_node_restart\n  component: pd\n  scope:     host\n  for:       1m30s\n  \
             level:     warning\n  source:    built-in catalog (rules/tidb.rules.yml)\n  \
             from:      evaluate\n  query:     changes(process_start_time_seconds{instance=~\"(?:10\\\\.0\\\\.1\\\\.5)(?::[0-9]+)?\",job=\"pd\"}[5m]) > 0\n"
        ));
        assert!(text.contains(
            "\nTiDB.extra.Multi\n  component: extra\n  scope:     cluster (sent unmodified, only by \
             cluster reporters)\n  for:       0s\n  level:     warning\n  source:    \
             /etc/tidb-host-agent/rules.d/extra.rules.yml\n  from:      evaluate\n  query:     up\n               == 0\n"
        ));
        assert!(
            text.ends_with(
                "\n\n# disabled by [rules] disable: TiDB.grafana.Grafana_server_is_down\n"
            )
        );
        assert!(!text.contains("\nTiDB.grafana.Grafana_server_is_down\n"));
    }
}
