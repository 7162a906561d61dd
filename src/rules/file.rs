//! Prometheus rule files (`groups:` → `rules:`), read into the alerting rules they hold.
//!
//! Each rule is checked while it is deserialized, so that a problem is reported by
//! yaml_serde with the rule's path in the file (`groups[0].rules[3]`) and its line:column.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use yaml_serde::Value;

use super::Scope;
use crate::promql;

/// One alerting rule as written in a file, checked but not yet named by a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileRule {
    /// Where the rule sits, in yaml_serde's notation: `groups[0].rules[3]`.
    pub path: String,
    pub alert: String,
    pub expr: String,
    pub for_: Duration,
    pub labels: BTreeMap<String, String>,
    pub scope: Option<Scope>,
    /// The expression is an instant vector (not a scalar or string).
    pub instant_vector: bool,
}

/// Reads the alerting rules of one Prometheus rule file. Recording rules are skipped: the
/// agent only reports alerts, and a recording rule's output lives in Prometheus anyway.
pub(crate) fn parse(text: &str) -> Result<Vec<FileRule>, yaml_serde::Error> {
    // An empty file (or one holding only comments) is a valid, empty rule file for Prometheus.
    let file: Option<RuleFileYaml> = yaml_serde::from_str(text)?;
    let mut rules = Vec::new();
    for (g, group) in file
        .map(|f| f.groups)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        for (r, rule) in group.rules.into_iter().enumerate() {
            if let RuleYaml::Alert(alert) = rule {
                rules.push(FileRule {
                    path: format!("groups[{g}].rules[{r}]"),
                    alert: alert.alert,
                    expr: alert.expr,
                    for_: alert.for_,
                    labels: alert.labels,
                    scope: alert.scope,
                    instant_vector: alert.instant_vector,
                });
            }
        }
    }
    Ok(rules)
}

/// Parses a `for:` duration with Prometheus' syntax: `0`, or units `y w d h m s ms` in that
/// order (`1m`, `1h30m`, `0s`). Bare numbers other than `0` are refused, as Prometheus does.
pub(crate) fn parse_for(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("`{text}` is not a duration; write it like Prometheus does: `1m`, `1h30m` or `0s`")
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() || text.parse::<f64>().is_ok() {
        return Err(invalid());
    }
    // promql-parser silently drops a unit whose number overflows u32 (`1m4294967296s` is 1m).
    if text
        .split(|c: char| !c.is_ascii_digit())
        .any(|number| !number.is_empty() && number.parse::<u32>().is_err())
    {
        return Err(invalid());
    }
    match promql_parser::util::parse_duration(text) {
        Ok(duration) => Ok(duration),
        // promql-parser refuses zero durations, which are fine as a `for`. A text whose
        // digits are all zeros is a valid zero duration when it parses with 1s in their place.
        Err(_) if text.chars().all(|c| c == '0' || !c.is_ascii_digit()) => {
            match promql_parser::util::parse_duration(&text.replace('0', "1")) {
                Ok(_) => Ok(Duration::ZERO),
                Err(_) => Err(invalid()),
            }
        }
        Err(_) => Err(invalid()),
    }
}

// `expecting` words the "invalid type" messages for an operator.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a Prometheus rule file: a map with `groups`"
)]
struct RuleFileYaml {
    #[serde(default)]
    groups: Vec<GroupYaml>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule group: a map with `name` and `rules`"
)]
struct GroupYaml {
    #[allow(dead_code)] // Required by Prometheus; not used by the agent.
    name: String,
    // Accepted because Prometheus accepts them; the agent runs on its own interval.
    #[serde(default)]
    #[allow(dead_code)]
    interval: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    query_offset: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    limit: IgnoredAny,
    #[serde(default)]
    rules: Vec<RuleYaml>,
}

enum RuleYaml {
    Alert(AlertYaml),
    Recording,
}

struct AlertYaml {
    alert: String,
    expr: String,
    for_: Duration,
    labels: BTreeMap<String, String>,
    scope: Option<Scope>,
    instant_vector: bool,
}

/// The fields of a rule as Prometheus defines them; checked in `TryFrom` below.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    alert: Option<Value>,
    record: Option<Value>,
    expr: Option<Value>,
    #[serde(rename = "for")]
    for_: Option<Value>,
    #[allow(dead_code)] // Prometheus' own hold time; the agent reports the alert's state.
    keep_firing_for: Option<IgnoredAny>,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: IgnoredAny,
}

impl<'de> Deserialize<'de> for RuleYaml {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RuleVisitor)
    }
}

/// Checks the rule inside `visit_map`, while yaml_serde still knows the rule's position:
/// an error raised after the map is consumed would point at the enclosing list instead.
struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = RuleYaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rule: a map with `alert` or `record`, and `expr`")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RuleYaml, A::Error> {
        let fields = RuleFields::deserialize(MapAccessDeserializer::new(map))?;
        RuleYaml::try_from(fields).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RuleFields> for RuleYaml {
    type Error = String;

    fn try_from(fields: RuleFields) -> Result<Self, String> {
        let alert = fields
            .alert
            .as_ref()
            .map(|v| scalar(v, "alert"))
            .transpose()?;
        let record = fields
            .record
            .as_ref()
            .map(|v| scalar(v, "record"))
            .transpose()?;
        let alert = match (alert, record) {
            (Some(_), Some(_)) => {
                return Err("a rule has either `alert` or `record`, not both".into());
            }
            (None, Some(_)) => return Ok(RuleYaml::Recording),
            (None, None) => {
                return Err("the rule has neither `alert` nor `record`".into());
            }
            (Some(alert), None) if alert.trim().is_empty() => {
                return Err("the rule's `alert` name is empty".into());
            }
            (Some(alert), None) => alert,
        };
        let in_alert = |problem: String| format!("alert `{alert}`: {problem}");
        let expr = match fields.expr.as_ref().map(|v| scalar(v, "expr")).transpose() {
            Ok(Some(expr)) if !expr.trim().is_empty() => expr.trim().to_owned(),
            Ok(_) => return Err(in_alert("`expr` is missing or empty".into())),
            Err(problem) => return Err(in_alert(problem)),
        };
        let parsed = promql::parse(&expr).map_err(|e| in_alert(e.to_string()))?;
        promql::check_prometheus_only(&parsed).map_err(|e| in_alert(e.to_string()))?;
        let instant_vector = parsed.value_type() == promql_parser::parser::value::ValueType::Vector;
        let for_ = match fields.for_.as_ref().map(|v| scalar(v, "for")).transpose() {
            Ok(Some(text)) => {
                parse_for(text.trim()).map_err(|e| in_alert(format!("`for`: {e}")))?
            }
            Ok(None) => Duration::ZERO,
            Err(problem) => return Err(in_alert(problem)),
        };
        let mut labels = BTreeMap::new();
        for (name, value) in &fields.labels {
            let value = scalar(value, &format!("label `{name}`")).map_err(in_alert)?;
            labels.insert(name.clone(), value);
        }
        let scope = match labels.get("scope") {
            Some(scope) => Some(scope.parse::<Scope>().map_err(in_alert)?),
            None => None,
        };
        Ok(RuleYaml::Alert(AlertYaml {
            alert,
            expr,
            for_,
            labels,
            scope,
            instant_vector,
        }))
    }
}

/// A YAML scalar as Prometheus reads it into a string field (`level: 1` is the label "1").
fn scalar(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
            Err(format!("{what} must be a plain value, not a list or a map"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(rules) => panic!("expected an error, got {rules:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn for_durations_follow_prometheus() {
        let cases = [
            ("1m", 60),
            ("1h30m", 5400),
            ("0s", 0),
            ("0", 0),
            ("0m", 0),
            ("0h0m", 0),
            ("00s", 0),
            ("90s", 90),
            ("1d", 86_400),
            ("1w", 604_800),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_for(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse_for("1500ms"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "60",
            "1.5m",
            "5 m",
            "m",
            "1m1h",
            "-1m",
            "1x",
            "0x",
            "1m4294967296s",
            "99999999999m",
        ] {
            assert!(parse_for(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_for("60"),
            Err(
                "`60` is not a duration; write it like Prometheus does: `1m`, `1h30m` or `0s`"
                    .into()
            )
        );
    }

    #[test]
    fn alerting_rules_are_read_and_recording_rules_skipped() {
        let text = r#"
groups:
- name: a
  interval: 30s
  rules:
  - record: job:up:sum
    expr: sum(up) by (job)
  - alert: Down
    expr: up == 0
    for: 2m
    keep_firing_for: 5m
    labels:
      level: 1
      page: true
      component: pd
      scope: cluster
    annotations:
      summary: down
- name: b
  rules:
  - alert: NoFor
    expr: |
      up
        == 0
"#;
        let rules = match parse(text) {
            Ok(rules) => rules,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].path, "groups[0].rules[1]");
        assert_eq!(rules[0].alert, "Down");
        assert_eq!(rules[0].for_, Duration::from_secs(120));
        assert_eq!(rules[0].labels.get("level").map(String::as_str), Some("1"));
        assert_eq!(
            rules[0].labels.get("page").map(String::as_str),
            Some("true")
        );
        assert_eq!(rules[0].scope, Some(Scope::Cluster));
        assert_eq!(rules[1].path, "groups[1].rules[0]");
        assert_eq!(rules[1].expr, "up\n  == 0");
        assert_eq!(rules[1].for_, Duration::ZERO);
        assert_eq!(rules[1].scope, None);
    }

    #[test]
    fn empty_files_hold_no_rules() {
        for text in ["", "# only a comment\n", "groups: []\n", "groups:\n"] {
            assert_eq!(parse(text).map(|r| r.len()).ok(), Some(0), "{text:?}");
        }
    }

    #[test]
    fn problems_name_the_rule_and_its_position() {
        let bad_expr = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n";
        assert_eq!(
            error(bad_expr),
            "groups[0].rules[0]: alert `A`: invalid PromQL: invalid promql query at line 4 column 5"
        );
        let bad_scope = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      scope: hots\n";
        assert_eq!(
            error(bad_scope),
            "groups[0].rules[0]: alert `A`: unknown scope `hots`; use `host` or `cluster` at line 4 column 5"
        );
        let bad_for = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5\n";
        assert_eq!(
            error(bad_for),
            "groups[0].rules[0]: alert `A`: `for`: `5` is not a duration; write it like \
             Prometheus does: `1m`, `1h30m` or `0s` at line 4 column 5"
        );
        let typo = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    fro: 5m\n";
        assert_eq!(
            error(typo),
            "groups[0].rules[0]: unknown field `fro`, expected one of `alert`, `record`, `expr`, \
             `for`, `keep_firing_for`, `labels`, `annotations` at line 6 column 5"
        );
        let or_matcher =
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'up{a=\"b\" or c=\"d\"}'\n";
        assert!(error(or_matcher).starts_with(
            "groups[0].rules[0]: alert `A`: the selector `up{a=\"b\" or c=\"d\"}` uses `or`"
        ));
        let neither = "groups:\n- name: g\n  rules:\n  - expr: up\n";
        assert_eq!(
            error(neither),
            "groups[0].rules[0]: the rule has neither `alert` nor `record` at line 4 column 5"
        );
        let list_label = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      level: [a]\n";
        assert_eq!(
            error(list_label),
            "groups[0].rules[0]: alert `A`: label `level` must be a plain value, not a list or a \
             map at line 4 column 5"
        );
    }

    #[test]
    fn broken_yaml_gives_its_position() {
        assert_eq!(
            error("groups:\n- name: g\n  rules:\n  - alert: A\n   expr: up\n"),
            "groups[0].rules[0]: alert `A`: `expr` is missing or empty at line 4 column 5"
        );
        let tabs = "groups:\n\t- name: g\n";
        assert!(error(tabs).contains("line 2 column 1"), "{}", error(tabs));
        assert_eq!(
            error("groups:\n- rules: []\n"),
            "groups[0]: missing field `name` at line 2 column 3"
        );
        assert_eq!(
            error("groups:\n- just a string\n"),
            "groups[0]: invalid type: string \"just a string\", expected a rule group: a map \
             with `name` and `rules` at line 2 column 3"
        );
        assert_eq!(
            error("groups:\n- name: g\n  rules:\n  - 42\n"),
            "groups[0].rules[0]: invalid type: integer `42`, expected a rule: a map with `alert` or \
             `record`, and `expr` at line 4 column 5"
        );
        assert_eq!(
            error("- a\n- b\n"),
            "invalid type: sequence, expected a Prometheus rule file: a map with `groups`"
        );
    }

    #[test]
    fn only_instant_vector_rules_can_share_a_query() {
        let text = r#"
groups:
- name: a
  rules:
  - alert: Vector
    expr: up == 0
  - alert: Scalar
    expr: scalar(up) + 1
"#;
        let rules = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<(&str, bool)> = rules
            .iter()
            .map(|r| (r.alert.as_str(), r.instant_vector))
            .collect();
        assert_eq!(kinds, [("Vector", true), ("Scalar", false)]);
    }
}
