//! From config to the exact queries a cycle sends: rules loaded, disabled and
//! overridden, each host-scoped rule rewritten to this host's addresses.

use crate::config::{Config, RuleScope as ConfigScope};
use crate::evaluation::{PlannedRule, RuleScope};
use crate::promql::HostScope;
use crate::rules::{self, LoadOptions, RuleOverride, Scope};

/// Everything a cycle needs to know about rules, computed once per configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rules: Vec<PlannedRule>,
    /// `count by (group) (probe_success{HOST})`.
    pub detect_groups: String,
    /// `count by (job) (up{HOST})`.
    pub detect_jobs: String,
    pub prometheus_key: String,
    pub prometheus_level: String,
}

impl Plan {
    pub fn build(config: &Config, addresses: &[String]) -> Result<Plan, String> {
        let options = load_options(config);
        let set = rules::load(&options).map_err(|e| e.to_string())?;
        let scope = HostScope::new(&config.host.label, addresses).map_err(|e| e.to_string())?;
        let mut planned = Vec::new();
        let mut prometheus_key = rules::KeyTemplate::parse(&config.agent.key_template)
            .map_err(|e| e.to_string())?
            .key(&config.agent.product, "prometheus", "Prometheus_is_down");
        let mut prometheus_level = "critical".to_string();
        for rule in set.rules().iter().cloned() {
            let scope_kind = match rule.scope {
                Scope::Computed => {
                    prometheus_key = rule.key.clone();
                    prometheus_level = rule.level.clone();
                    continue;
                }
                Scope::Host => RuleScope::Host,
                Scope::Cluster => RuleScope::Cluster,
            };
            let query = match scope_kind {
                RuleScope::Host => scope
                    .rewrite(&rule.expr)
                    .map_err(|e| format!("rule {} ({}): {e}", rule.key, rule.source))?,
                RuleScope::Cluster => rule.expr.clone(),
            };
            planned.push(PlannedRule {
                key: rule.key,
                component: rule.component,
                level: rule.level,
                for_: rule.for_,
                scope: scope_kind,
                query,
                batchable: rule.instant_vector,
            });
        }
        let detect = |q: &str| scope.rewrite(q).map_err(|e| e.to_string());
        Ok(Plan {
            rules: planned,
            detect_groups: detect("count by (group) (probe_success)")?,
            detect_jobs: detect("count by (job) (up)")?,
            prometheus_key,
            prometheus_level,
        })
    }
}

pub fn load_options(config: &Config) -> LoadOptions {
    LoadOptions {
        product: config.agent.product.clone(),
        key_template: config.agent.key_template.clone(),
        files: config.rules.files.clone(),
        disable: config.rules.disable.clone(),
        overrides: config
            .rules
            .overrides
            .iter()
            .map(|(k, o)| {
                (
                    k.clone(),
                    RuleOverride {
                        for_: o.for_.map(|d| d.get()),
                        level: o.level.clone(),
                        scope: o.scope.map(|s| match s {
                            ConfigScope::Host => Scope::Host,
                            ConfigScope::Cluster => Scope::Cluster,
                        }),
                    },
                )
            })
            .collect(),
    }
}
