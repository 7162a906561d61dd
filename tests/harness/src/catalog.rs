//! The built-in catalog as the tests see it, read from `rules/tidb.rules.yml` itself: its
//! keys, scopes and components are never typed out again in a test. The keys are named
//! here by SPEC §1 (`{product}.{component}.{alert}`, each part kept to `[A-Za-z0-9_]`), not
//! by the daemon, so that a test compares the daemon against an independent reading.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::rule_file::{self, text};

/// The product part of every catalog key under the default config.
pub const PRODUCT: &str = "TiDB";
/// How many alerts the catalog has (SPEC §2).
pub const RULES: usize = 41;

/// One catalog rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogRule {
    pub key: String,
    pub alert: String,
    pub component: String,
    /// `emergency`, `critical` or `warning`.
    pub level: String,
    /// `host`, `cluster` or `computed`.
    pub scope: String,
    pub expr: String,
    /// The annotation `source`: a file in `tests/data/upstream`, or `tidb-host-agent…` for
    /// the catalog's own rules.
    pub source: String,
}

impl CatalogRule {
    /// The catalog's own rules (`source: tidb-host-agent…`) have no upstream file.
    pub fn upstream_file(&self) -> Option<PathBuf> {
        (!self.source.starts_with("tidb-host-agent"))
            .then(|| rule_file::upstream_dir().join(&self.source))
    }
}

pub fn path() -> PathBuf {
    crate::repository().join("rules/tidb.rules.yml")
}

/// The 41 rules of `rules/tidb.rules.yml`, in file order.
pub fn catalog() -> &'static [CatalogRule] {
    static CATALOG: OnceLock<Vec<CatalogRule>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let rules: Vec<CatalogRule> = rule_file::read_alerts(&path())
            .iter()
            .map(|entry| {
                let alert = text(entry, "alert").unwrap_or_default().to_string();
                let field = |section: &str, name: &str| {
                    entry
                        .get(section)
                        .and_then(|s| text(s, name))
                        .unwrap_or_else(|| panic!("{alert} has no {section}.{name}"))
                        .to_string()
                };
                let component = field("labels", "component");
                CatalogRule {
                    key: key_of(&component, &alert),
                    level: field("labels", "level"),
                    scope: field("labels", "scope"),
                    source: field("annotations", "source"),
                    expr: text(entry, "expr").unwrap_or_default().trim().to_string(),
                    component,
                    alert,
                }
            })
            .collect();
        assert_eq!(rules.len(), RULES, "the catalog has {RULES} alerts");
        rules
    })
}

/// The rule of the catalog alert named `alert`.
pub fn rule(alert: &str) -> &'static CatalogRule {
    match catalog().iter().find(|r| r.alert == alert) {
        Some(rule) => rule,
        None => panic!("no alert {alert} in the catalog"),
    }
}

/// The key of the catalog alert named `alert`.
pub fn key(alert: &str) -> String {
    rule(alert).key.clone()
}

/// The key of the one computed rule, `Prometheus_is_down`.
pub fn prometheus_key() -> String {
    let computed: Vec<&CatalogRule> = catalog().iter().filter(|r| r.scope == "computed").collect();
    assert_eq!(computed.len(), 1, "one computed key: Prometheus_is_down");
    computed[0].key.clone()
}

/// The daemon's own health key, `Agent_degraded`, under the default product and template
/// (not a catalog rule: every snapshot has it).
pub fn degraded_key() -> String {
    key_of("agent", "Agent_degraded")
}

/// The rules that are PromQL: every one but the computed key.
pub fn promql_rules() -> impl Iterator<Item = &'static CatalogRule> {
    catalog().iter().filter(|r| r.scope != "computed")
}

/// SPEC §1's key of a catalog alert.
fn key_of(component: &str, alert: &str) -> String {
    let part = |text: &str| -> String {
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    format!("{PRODUCT}.{}.{}", part(component), part(alert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_only_word_characters() {
        assert_eq!(
            rule("TiKV_space_used_more_than_80%").key,
            "TiDB.cluster.TiKV_space_used_more_than_80"
        );
        assert_eq!(prometheus_key(), "TiDB.prometheus.Prometheus_is_down");
        assert_eq!(degraded_key(), "TiDB.agent.Agent_degraded");
    }
}
