//! Alert rules (SPEC §2): the built-in catalog, user rule files in Prometheus' format, key
//! naming, `disable` and `override`.
//!
//! [`load`] reads the user files named by globs; everything after reading is pure
//! ([`assemble`]) and reports every problem at once.

mod catalog;
mod file;

pub use crate::config::{DEFAULT_KEY_TEMPLATE, KeyTemplate, Scope, key_part};
pub use catalog::{CATALOG_NAME, CATALOG_YAML};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PRODUCT: &str = "TiDB";

/// One alert rule, named by its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub key: String,
    pub alert: String,
    pub component: String,
    /// The PromQL as written in the rule file (trimmed). Host rules are rewritten from it.
    pub expr: String,
    pub for_: Duration,
    pub level: String,
    pub scope: Scope,
    /// The file the rule came from, or [`CATALOG_NAME`].
    pub source: String,
    /// The expression is an instant vector, so it can share a query with others (the
    /// host rewrite keeps the type).
    pub instant_vector: bool,
}

/// The rules the daemon evaluates, in catalog order and then in user-file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    disabled: Vec<String>,
}

impl RuleSet {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, key: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.key == key)
    }

    /// Keys turned off by `[rules] disable`, in configuration order.
    pub fn disabled(&self) -> &[String] {
        &self.disabled
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// `[rules.override."KEY"]`: replaces a rule's `for`, level or scope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleOverride {
    pub for_: Option<Duration>,
    pub level: Option<String>,
    pub scope: Option<Scope>,
}

/// What the configuration says about rules; the config module fills it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    pub product: String,
    pub key_template: KeyTemplate,
    /// Glob patterns of user rule files.
    pub files: Vec<String>,
    /// Keys to turn off.
    pub disable: Vec<String>,
    pub overrides: BTreeMap<String, RuleOverride>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            product: DEFAULT_PRODUCT.to_owned(),
            key_template: KeyTemplate::default(),
            files: Vec::new(),
            disable: Vec::new(),
            overrides: BTreeMap::new(),
        }
    }
}

/// One user rule file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    pub path: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("[rules] files: `{pattern}` is not a valid glob pattern: {message}")]
    Glob { pattern: String, message: String },
    #[error("[rules] files: rule file {path} does not exist")]
    Missing { path: String },
    #[error("cannot read rule file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rule file {file}: {source}")]
    Yaml {
        file: String,
        source: yaml_serde::Error,
    },
    #[error("rule file {file}: {path}: alert `{alert}`: {problem}")]
    Rule {
        file: String,
        path: String,
        alert: String,
        problem: String,
    },
    #[error(
        "duplicate rule key `{key}`: {first} and {second}; give one of them another alert name \
         or `component` label"
    )]
    DuplicateKey {
        key: String,
        first: String,
        second: String,
    },
    #[error(
        "[rules] disable: no rule has the key `{key}`; `tidb-host-agent explain` lists the keys"
    )]
    UnknownDisabled { key: String },
    #[error(
        "[rules.override.\"{key}\"]: no rule has this key; `tidb-host-agent explain` lists the keys"
    )]
    UnknownOverride { key: String },
    #[error(
        "[rules.override.\"{key}\"]: the daemon computes this key itself (SPEC §6), so only \
         `level` can be overridden, not `{field}`"
    )]
    ComputedOverride { key: String, field: &'static str },
    #[error(
        "[rules.override.\"{key}\"]: scope `computed` is reserved for keys the daemon computes \
         itself; use `host` or `cluster`"
    )]
    OverrideToComputed { key: String },
}

/// Every problem found while loading rules, in the order found.
#[derive(Debug)]
pub struct LoadError {
    pub problems: Vec<RulesError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Reads the user rule files that `options.files` matches, then [`assemble`]s the rule set.
pub fn load(options: &LoadOptions) -> Result<RuleSet, LoadError> {
    let mut problems = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for pattern in &options.files {
        let matched = match glob::glob(pattern) {
            Ok(matched) => matched,
            Err(e) => {
                problems.push(RulesError::Glob {
                    pattern: pattern.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut found: Vec<PathBuf> = Vec::new();
        for entry in matched {
            match entry {
                Ok(path) => found.push(path),
                Err(e) => problems.push(RulesError::Read {
                    path: e.path().display().to_string(),
                    source: e.into(),
                }),
            }
        }
        // A pattern without wildcards names one file: its absence is a typo, not an empty
        // rules.d directory.
        if found.is_empty() && !pattern.contains(['*', '?', '[']) {
            problems.push(RulesError::Missing {
                path: pattern.clone(),
            });
        }
        found.sort();
        for path in found {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(RuleFile {
                path: path.display().to_string(),
                text,
            }),
            Err(source) => problems.push(RulesError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }
    match assemble(options, &files) {
        Ok(rules) if problems.is_empty() => Ok(rules),
        Ok(_) => Err(LoadError { problems }),
        Err(mut more) => {
            problems.append(&mut more.problems);
            Err(LoadError { problems })
        }
    }
}

/// Builds the rule set from the built-in catalog and user rule files already read.
///
/// A user rule whose key is also a built-in key replaces the built-in rule, so that dropping
/// in TiUP's rule files just works; two user rules with one key are an error.
pub fn assemble(options: &LoadOptions, files: &[RuleFile]) -> Result<RuleSet, LoadError> {
    let mut problems = Vec::new();
    let template = &options.key_template;
    let mut rules = catalog::rules(options, template, &mut problems);
    let builtin_count = rules.len();
    // Where each key was defined, for duplicate messages.
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let parsed = match file::parse(&file.text) {
            Ok(parsed) => parsed,
            Err(source) => {
                problems.push(RulesError::Yaml {
                    file: file.path.clone(),
                    source,
                });
                continue;
            }
        };
        let stem = file_stem(&file.path);
        for file_rule in parsed {
            let origin = format!(
                "{} {} (alert `{}`)",
                file.path, file_rule.path, file_rule.alert
            );
            let rule = match user_rule(options, template, &file.path, &stem, file_rule) {
                Ok(rule) => rule,
                Err(e) => {
                    problems.push(e);
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
            let builtin = rules[..builtin_count]
                .iter_mut()
                .find(|builtin| builtin.key == rule.key);
            match builtin {
                Some(builtin) if builtin.scope == Scope::Computed => {
                    problems.push(RulesError::DuplicateKey {
                        key: rule.key.clone(),
                        first: "the built-in key computed by the daemon (SPEC §6)".to_owned(),
                        second: origin,
                    });
                    continue;
                }
                Some(builtin) => *builtin = rule.clone(),
                None => rules.push(rule.clone()),
            }
            origins.insert(rule.key, origin);
        }
    }
    let mut disabled = Vec::new();
    for key in &options.disable {
        if rules.iter().any(|rule| &rule.key == key) {
            if !disabled.contains(key) {
                disabled.push(key.clone());
            }
        } else {
            problems.push(RulesError::UnknownDisabled { key: key.clone() });
        }
    }
    for (key, change) in &options.overrides {
        match rules.iter_mut().find(|rule| &rule.key == key) {
            None => problems.push(RulesError::UnknownOverride { key: key.clone() }),
            Some(rule) => {
                if let Err(e) = apply_override(rule, change) {
                    problems.push(e);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(LoadError { problems });
    }
    rules.retain(|rule| !disabled.contains(&rule.key));
    Ok(RuleSet { rules, disabled })
}

fn apply_override(rule: &mut Rule, change: &RuleOverride) -> Result<(), RulesError> {
    let key = rule.key.clone();
    if rule.scope == Scope::Computed {
        if change.for_.is_some() {
            return Err(RulesError::ComputedOverride { key, field: "for" });
        }
        if change.scope.is_some() {
            return Err(RulesError::ComputedOverride {
                key,
                field: "scope",
            });
        }
    }
    if change.scope == Some(Scope::Computed) {
        return Err(RulesError::OverrideToComputed { key });
    }
    if let Some(for_) = change.for_ {
        rule.for_ = for_;
    }
    if let Some(level) = &change.level {
        rule.level = level.clone();
    }
    if let Some(scope) = change.scope {
        rule.scope = scope;
    }
    Ok(())
}

/// A rule from a user file: the component comes from its `component` label or else from the
/// file name; the level from `level`, else `severity`, else `warning`; scope defaults to host.
fn user_rule(
    options: &LoadOptions,
    template: &KeyTemplate,
    path: &str,
    stem: &str,
    rule: file::FileRule,
) -> Result<Rule, RulesError> {
    let (rule_path, alert) = (rule.path.clone(), rule.alert.clone());
    let problem = |problem: String| RulesError::Rule {
        file: path.to_owned(),
        path: rule_path,
        alert,
        problem,
    };
    if rule.scope == Some(Scope::Computed) {
        return Err(problem(
            "scope `computed` is reserved for keys the daemon computes itself; use `host` or \
             `cluster`"
                .into(),
        ));
    }
    let component = rule
        .labels
        .get("component")
        .cloned()
        .unwrap_or_else(|| stem.to_owned());
    named_rule(options, template, path, component, rule, Scope::Host).map_err(problem)
}

/// Names a checked rule by its key. Fails when a part of the key would be empty.
fn named_rule(
    options: &LoadOptions,
    template: &KeyTemplate,
    source: &str,
    component: String,
    rule: file::FileRule,
    default_scope: Scope,
) -> Result<Rule, String> {
    if key_part(&component).is_empty() {
        return Err(format!(
            "the component `{component}` has no letter, digit or underscore to put in a key; \
             set a `component` label"
        ));
    }
    if key_part(&rule.alert).is_empty() {
        return Err("the alert name has no letter, digit or underscore to put in a key".to_owned());
    }
    let level = rule
        .labels
        .get("level")
        .or_else(|| rule.labels.get("severity"))
        .cloned()
        .unwrap_or_else(|| "warning".to_owned());
    Ok(Rule {
        key: template.key(&options.product, &component, &rule.alert),
        component,
        expr: rule.expr,
        for_: rule.for_,
        level,
        scope: rule.scope.unwrap_or(default_scope),
        source: source.to_owned(),
        alert: rule.alert,
        instant_vector: rule.instant_vector,
    })
}

/// `tikv.rules.yml` → `tikv`: TiUP names its rule files after the component.
fn file_stem(path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('.') {
        Some((stem, _)) => stem.to_owned(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_file(path: &str, text: &str) -> RuleFile {
        RuleFile {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    fn messages(options: &LoadOptions, files: &[RuleFile]) -> Vec<String> {
        match assemble(options, files) {
            Ok(rules) => panic!("expected problems, got {} rules", rules.len()),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn loaded(options: &LoadOptions, files: &[RuleFile]) -> RuleSet {
        match assemble(options, files) {
            Ok(rules) => rules,
            Err(e) => panic!("{e}"),
        }
    }

    const ONE_RULE: &str = "groups:\n- name: g\n  rules:\n  - alert: Disk_full\n    expr: node_filesystem_avail_bytes == 0\n    for: 5m\n";

    #[test]
    fn the_catalog_alone() {
        let rules = loaded(&LoadOptions::default(), &[]);
        assert_eq!(rules.len(), 41);
        let computed: Vec<_> = rules
            .rules()
            .iter()
            .filter(|rule| rule.scope == Scope::Computed)
            .map(|rule| rule.key.as_str())
            .collect();
        assert_eq!(computed, ["TiDB.prometheus.Prometheus_is_down"]);
        let Some(space) = rules.get("TiDB.cluster.TiKV_space_used_more_than_80") else {
            panic!("key 36 is missing");
        };
        assert_eq!(space.alert, "TiKV_space_used_more_than_80%");
        assert_eq!(space.source, CATALOG_NAME);
    }

    #[test]
    fn product_and_template_name_the_keys() {
        let options = LoadOptions {
            product: "Prod-DB".into(),
            key_template: KeyTemplate::parse("{product}/{component}/{alert}").expect("a template"),
            ..LoadOptions::default()
        };
        let rules = loaded(&options, &[]);
        assert_eq!(rules.rules()[0].key, "ProdDB/pd/PD_server_is_down");
    }

    #[test]
    fn user_rules_take_component_from_label_or_file_name() {
        let labelled = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      component: tikv\n      severity: page\n";
        let rules = loaded(
            &LoadOptions::default(),
            &[
                user_file("/r/disk.rules.yml", ONE_RULE),
                user_file("/r/other.yml", labelled),
            ],
        );
        assert_eq!(rules.len(), 43);
        let Some(disk) = rules.get("TiDB.disk.Disk_full") else {
            panic!("no disk rule");
        };
        assert_eq!(
            (
                disk.component.as_str(),
                disk.scope,
                disk.for_,
                disk.level.as_str()
            ),
            ("disk", Scope::Host, Duration::from_secs(300), "warning")
        );
        assert_eq!(disk.source, "/r/disk.rules.yml");
        assert_eq!(
            rules.get("TiDB.tikv.A").map(|r| r.level.as_str()),
            Some("page")
        );
    }

    #[test]
    fn a_user_rule_replaces_the_built_in_rule_with_its_key() {
        let tikv = "groups:\n- name: g\n  rules:\n  - alert: TiKV_node_restart\n    expr: changes(process_start_time_seconds{job=\"tikv\"}[10m]) > 0\n    labels:\n      level: critical\n";
        let rules = loaded(
            &LoadOptions::default(),
            &[user_file("/etc/rules.d/tikv.rules.yml", tikv)],
        );
        assert_eq!(rules.len(), 41);
        let Some(rule) = rules.get("TiDB.tikv.TiKV_node_restart") else {
            panic!("rule missing");
        };
        assert_eq!(rule.level, "critical");
        assert_eq!(rule.source, "/etc/rules.d/tikv.rules.yml");
        // It keeps the catalog's place.
        assert_eq!(rules.rules()[10].key, "TiDB.tikv.TiKV_node_restart");
    }

    #[test]
    fn disable_and_override() {
        let options = LoadOptions {
            disable: vec![
                "TiDB.tikv.TiKV_write_stall".into(),
                "TiDB.tikv.TiKV_write_stall".into(),
            ],
            overrides: BTreeMap::from([
                (
                    "TiDB.cluster.PD_leader_change".to_owned(),
                    RuleOverride {
                        for_: Some(Duration::ZERO),
                        level: Some("critical".into()),
                        scope: Some(Scope::Host),
                    },
                ),
                (
                    "TiDB.prometheus.Prometheus_is_down".to_owned(),
                    RuleOverride {
                        level: Some("emergency".into()),
                        ..RuleOverride::default()
                    },
                ),
            ]),
            ..LoadOptions::default()
        };
        let rules = loaded(&options, &[]);
        assert_eq!(rules.len(), 40);
        assert!(rules.get("TiDB.tikv.TiKV_write_stall").is_none());
        assert_eq!(rules.disabled(), ["TiDB.tikv.TiKV_write_stall"]);
        let Some(leader) = rules.get("TiDB.cluster.PD_leader_change") else {
            panic!("missing");
        };
        assert_eq!(
            (leader.for_, leader.level.as_str(), leader.scope),
            (Duration::ZERO, "critical", Scope::Host)
        );
        assert_eq!(
            rules
                .get("TiDB.prometheus.Prometheus_is_down")
                .map(|r| r.level.as_str()),
            Some("emergency")
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let options = LoadOptions {
            disable: vec!["TiDB.tikv.Nope".into()],
            overrides: BTreeMap::from([
                ("TiDB.pd.Nope".to_owned(), RuleOverride::default()),
                (
                    "TiDB.prometheus.Prometheus_is_down".to_owned(),
                    RuleOverride {
                        for_: Some(Duration::from_secs(60)),
                        ..RuleOverride::default()
                    },
                ),
                (
                    "TiDB.pd.PD_server_is_down".to_owned(),
                    RuleOverride {
                        scope: Some(Scope::Computed),
                        ..RuleOverride::default()
                    },
                ),
            ]),
            ..LoadOptions::default()
        };
        let computed = "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: up\n    labels:\n      scope: computed\n";
        let prometheus =
            "groups:\n- name: g\n  rules:\n  - alert: Prometheus_is_down\n    expr: up == 0\n";
        let no_name = "groups:\n- name: g\n  rules:\n  - alert: '%%'\n    expr: up\n";
        assert_eq!(
            messages(
                &options,
                &[
                    user_file("/r/a.yml", ONE_RULE),
                    user_file("/r/a.rules.yml", ONE_RULE),
                    user_file("/r/c.yml", computed),
                    user_file("/r/prometheus.yml", prometheus),
                    user_file("/r/n.yml", no_name),
                ]
            ),
            [
                "duplicate rule key `TiDB.a.Disk_full`: /r/a.yml groups[0].rules[0] (alert \
                 `Disk_full`) and /r/a.rules.yml groups[0].rules[0] (alert `Disk_full`); give one \
                 of them another alert name or `component` label",
                "rule file /r/c.yml: groups[0].rules[0]: alert `X`: scope `computed` is reserved \
                 for keys the daemon computes itself; use `host` or `cluster`",
                "duplicate rule key `TiDB.prometheus.Prometheus_is_down`: the built-in key \
                 computed by the daemon (SPEC §6) and /r/prometheus.yml groups[0].rules[0] (alert \
                 `Prometheus_is_down`); give one of them another alert name or `component` label",
                "rule file /r/n.yml: groups[0].rules[0]: alert `%%`: the alert name has no \
                 letter, digit or underscore to put in a key",
                "[rules] disable: no rule has the key `TiDB.tikv.Nope`; `tidb-host-agent explain` \
                 lists the keys",
                "[rules.override.\"TiDB.pd.Nope\"]: no rule has this key; `tidb-host-agent \
                 explain` lists the keys",
                "[rules.override.\"TiDB.pd.PD_server_is_down\"]: scope `computed` is reserved for \
                 keys the daemon computes itself; use `host` or `cluster`",
                "[rules.override.\"TiDB.prometheus.Prometheus_is_down\"]: the daemon computes \
                 this key itself (SPEC §6), so only `level` can be overridden, not `for`",
            ]
        );
    }

    #[test]
    fn file_stems_follow_tiup_names() {
        assert_eq!(file_stem("/etc/x/tikv.rules.yml"), "tikv");
        assert_eq!(file_stem("tikv.accelerate.rules.yml"), "tikv");
        assert_eq!(file_stem("/etc/x/README"), "README");
    }

    #[test]
    fn scope_reads_like_the_config() {
        assert_eq!("cluster".parse::<Scope>(), Ok(Scope::Cluster));
        assert_eq!(
            "Host".parse::<Scope>(),
            Err("unknown scope `Host`; use `host` or `cluster`".to_owned())
        );
        assert_eq!(Scope::Computed.to_string(), "computed");
    }
}
