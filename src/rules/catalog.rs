//! The built-in catalog: `rules/tidb.rules.yml`, compiled into the binary (SPEC §2).

use std::collections::BTreeMap;

use super::{KeyTemplate, LoadOptions, Rule, RulesError, file, named_rule};

/// How rules of the catalog name their source in messages and in `explain`.
pub const CATALOG_NAME: &str = "built-in catalog (rules/tidb.rules.yml)";

pub const CATALOG_YAML: &str = include_str!("../../rules/tidb.rules.yml");

/// The catalog's rules, named with the configured product and key template. Every catalog
/// rule must say its `component` and `scope`: nothing is guessed for built-in rules.
pub(super) fn rules(
    options: &LoadOptions,
    template: &KeyTemplate,
    problems: &mut Vec<RulesError>,
) -> Vec<Rule> {
    let parsed = match file::parse(CATALOG_YAML) {
        Ok(parsed) => parsed,
        Err(source) => {
            problems.push(RulesError::Yaml {
                file: CATALOG_NAME.to_owned(),
                source,
            });
            return Vec::new();
        }
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for file_rule in parsed {
        let origin = format!(
            "{CATALOG_NAME} {} (alert `{}`)",
            file_rule.path, file_rule.alert
        );
        let problem = |problem: &str| RulesError::Rule {
            file: CATALOG_NAME.to_owned(),
            path: file_rule.path.clone(),
            alert: file_rule.alert.clone(),
            problem: problem.to_owned(),
        };
        let Some(component) = file_rule.labels.get("component").cloned() else {
            problems.push(problem("a built-in rule needs a `component` label"));
            continue;
        };
        if file_rule.scope.is_none() {
            problems.push(problem("a built-in rule needs a `scope` label"));
            continue;
        }
        let rule = match named_rule(
            options,
            template,
            CATALOG_NAME,
            component,
            file_rule.clone(),
            super::Scope::Host,
        ) {
            Ok(rule) => rule,
            Err(e) => {
                problems.push(problem(&e));
                continue;
            }
        };
        if let Some(first) = origins.get(&rule.key) {
            problems.push(RulesError::DuplicateKey {
                key: rule.key.clone(),
                first: first.clone(),
                second: origin,
            });
            continue;
        }
        origins.insert(rule.key.clone(), origin);
        rules.push(rule);
    }
    rules
}
