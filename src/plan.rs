//! From config to the exact queries a cycle sends: rules loaded, disabled and
//! overridden, each host-scoped rule rewritten to this host's addresses. `explain`
//! prints this plan, and the cycle runs it.

use std::time::Duration;

use crate::config::{Config, HostMatcher, RuleSource};
use crate::promql::{HostScope, PromqlError};
use crate::rules::{self, LoadError, LoadOptions, RuleSet, Scope};

/// One key as the daemon runs it: its rule, and the exact PromQL it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRule {
    pub key: String,
    pub component: String,
    pub level: String,
    pub for_: Duration,
    /// `Host` rules are rewritten to this host; `Cluster` rules run unmodified on cluster
    /// reporters; the `Computed` key is the daemon's own (no query).
    pub scope: Scope,
    /// The query sent; empty for the computed key.
    pub query: String,
    /// The file the rule came from.
    pub source: String,
    /// An instant-vector expression, so it can share a query with others
    /// ([`crate::prometheus::batch`]).
    pub batchable: bool,
    /// The rule's alertname.
    pub alert: String,
    /// The expression as written in the rule file, before the host rewrite: what `auto`
    /// compares with the pair's rule of the same name.
    pub expr: String,
    /// `[rules] source`, or the key's override.
    pub value_source: RuleSource,
    /// Why the key can never be read from the pair's alerts, whatever its source says.
    pub alerts_blocked: Option<&'static str>,
}

/// Why a host rule whose expression drops the host label is always evaluated.
pub const HOST_LABEL_AGGREGATED_AWAY: &str = "its expression aggregates the host label away, so \
     the pair's alerts of it name no host; as a cluster rule it would be read from them";

/// Everything a cycle needs to know about rules, computed once per configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This host's matcher, added to every selector of a host rule.
    pub host: HostScope,
    /// `[host] matcher`: under `instances` the daemon re-scopes the host rules to the exact
    /// values the pair has ([`rescoped`]).
    pub matcher: HostMatcher,
    /// Every key, in rule-set order (the catalog's, then the user files').
    pub rules: Vec<PlannedRule>,
    /// Keys turned off by `[rules] disable`.
    pub disabled: Vec<String>,
    /// Component detection's one query: `count by (group) (probe_success{HOST}) or
    /// count by (job) (up{HOST})`.
    pub detect: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Rules(#[from] LoadError),
    #[error("[host] addresses")]
    Host(#[source] PromqlError),
    #[error("rule {key} ({origin}) cannot be scoped to this host")]
    Rewrite {
        key: String,
        origin: String,
        #[source]
        source: PromqlError,
    },
}

impl Plan {
    /// Loads the rules `config` names and plans them for `addresses`.
    pub fn build(config: &Config, addresses: &[String]) -> Result<Plan, PlanError> {
        let set = rules::load(&load_options(config))?;
        let host = HostScope::new(&config.host.label, addresses).map_err(PlanError::Host)?;
        let mut plan = Plan::new(&set, host)?;
        plan.matcher = config.host.matcher;
        for rule in &mut plan.rules {
            rule.value_source = config
                .rules
                .overrides
                .get(&rule.key)
                .and_then(|o| o.source)
                .unwrap_or(config.rules.source);
        }
        Ok(plan)
    }

    /// Plans `set` for `host`.
    pub fn new(set: &RuleSet, host: HostScope) -> Result<Plan, PlanError> {
        let mut planned = Vec::with_capacity(set.len());
        for rule in set.rules() {
            let query = query(rule.scope, &rule.expr, &host)
                .map_err(rewrite_error(&rule.key, &rule.source))?;
            let alerts_blocked = match rule.scope {
                Scope::Host => match crate::promql::parse(&rule.expr) {
                    Ok(expr) if crate::promql::keeps_label(&expr, host.label()) => None,
                    _ => Some(HOST_LABEL_AGGREGATED_AWAY),
                },
                Scope::Cluster => None,
                Scope::Computed => Some("the daemon computes it"),
            };
            planned.push(PlannedRule {
                key: rule.key.clone(),
                component: rule.component.clone(),
                level: rule.level.clone(),
                for_: rule.for_,
                scope: rule.scope,
                query,
                source: rule.source.clone(),
                batchable: rule.instant_vector && rule.scope != Scope::Computed,
                alert: rule.alert.clone(),
                expr: rule.expr.clone(),
                value_source: RuleSource::Evaluate,
                alerts_blocked,
            });
        }
        Ok(Plan {
            detect: host
                .rewrite("count by (group) (probe_success) or count by (job) (up)")
                .map_err(PlanError::Host)?,
            rules: planned,
            disabled: set.disabled().to_vec(),
            host,
            matcher: HostMatcher::Pattern,
        })
    }

    /// The rules a cycle sends to Prometheus.
    pub fn evaluated(&self) -> Vec<PlannedRule> {
        self.rules
            .iter()
            .filter(|r| r.scope != Scope::Computed)
            .cloned()
            .collect()
    }

    /// The key and level of `Prometheus_is_down` (SPEC §6): the catalog's, or the
    /// template's with level `critical` when the catalog entry is disabled.
    pub fn prometheus_key(&self, config: &Config) -> (String, String) {
        match self.rules.iter().find(|r| r.scope == Scope::Computed) {
            Some(rule) => (rule.key.clone(), rule.level.clone()),
            None => (
                config.agent.key_template.key(
                    &config.agent.product,
                    "prometheus",
                    "Prometheus_is_down",
                ),
                "critical".to_owned(),
            ),
        }
    }
}

/// `rules` with each host rule's query scoped by `host` instead: `[host] matcher =
/// "instances"` scopes them to the exact values the pair has ([`HostScope::with_instances`]).
pub fn rescoped(rules: &[PlannedRule], host: &HostScope) -> Result<Vec<PlannedRule>, PlanError> {
    rules
        .iter()
        .map(|rule| {
            let query = query(rule.scope, &rule.expr, host)
                .map_err(rewrite_error(&rule.key, &rule.source))?;
            Ok(PlannedRule {
                query,
                ..rule.clone()
            })
        })
        .collect()
}

/// The query a rule of `scope` sends: `expr` scoped by `host`, as it is, or none.
fn query(scope: Scope, expr: &str, host: &HostScope) -> Result<String, PromqlError> {
    match scope {
        Scope::Host => host.rewrite(expr),
        Scope::Cluster => Ok(expr.to_owned()),
        Scope::Computed => Ok(String::new()),
    }
}

/// The error of a rule `key` from `origin` that cannot be scoped.
fn rewrite_error<'a>(key: &'a str, origin: &'a str) -> impl FnOnce(PromqlError) -> PlanError + 'a {
    move |source| PlanError::Rewrite {
        key: key.to_owned(),
        origin: origin.to_owned(),
        source,
    }
}

/// What the configuration says about rules, for [`rules::load`].
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
                    rules::RuleOverride {
                        for_: o.for_.map(|d| d.get()),
                        level: o.level.clone(),
                        scope: o.scope,
                    },
                )
            })
            .collect(),
    }
}
