//! Key naming: `[agent] key_template`, default `{product}.{component}.{alert}` (SPEC §1),
//! parsed once, when the configuration is read.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

pub const DEFAULT_KEY_TEMPLATE: &str = "{product}.{component}.{alert}";

/// A parsed key template: literal text and the placeholders `{product}`, `{component}` and
/// `{alert}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Product,
    Component,
    Alert,
}

impl KeyTemplate {
    /// Parses `template`; the error says everything that is wrong with it, for
    /// `[agent] key_template`.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut problems: Vec<String> = Vec::new();
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(0) if rest.starts_with('}') => {
                    problems.push("it has a `}` without a `{`".into());
                    break;
                }
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        problems.push("it has a `{` without a `}`".into());
                        break;
                    };
                    match &rest[1..end] {
                        "product" => parts.push(Part::Product),
                        "component" => parts.push(Part::Component),
                        "alert" => parts.push(Part::Alert),
                        other => problems.push(format!(
                            "`{{{other}}}` is not a placeholder; use {{product}}, {{component}} and {{alert}}"
                        )),
                    }
                    rest = &rest[end + 1..];
                }
                Some(start) => {
                    parts.push(Part::Literal(rest[..start].to_owned()));
                    rest = &rest[start..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        // After an unbalanced brace the parts are incomplete: say only that.
        let unbalanced = problems.last().is_some_and(|p| p.contains("without a"));
        if !unbalanced && !parts.contains(&Part::Alert) {
            problems.push(
                "it lacks {alert}, so the rules of a component would all get the same key".into(),
            );
        }
        if problems.is_empty() {
            Ok(Self { parts })
        } else {
            Err(format!("`{template}`: {}", problems.join("; ")))
        }
    }

    /// The key of one rule. Each part keeps only `[A-Za-z0-9_]`, so that a key never holds
    /// the template's separators or characters an agent may choke on:
    /// `TiKV_space_used_more_than_80%` becomes `TiKV_space_used_more_than_80`.
    pub fn key(&self, product: &str, component: &str, alert: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.clone(),
                Part::Product => key_part(product),
                Part::Component => key_part(component),
                Part::Alert => key_part(alert),
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for KeyTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TemplateVisitor;
        impl Visitor<'_> for TemplateVisitor {
            type Value = KeyTemplate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key template such as \"{product}.{component}.{alert}\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyTemplate, E> {
                KeyTemplate::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(TemplateVisitor)
    }
}

impl Default for KeyTemplate {
    fn default() -> Self {
        Self {
            parts: vec![
                Part::Product,
                Part::Literal(".".into()),
                Part::Component,
                Part::Literal(".".into()),
                Part::Alert,
            ],
        }
    }
}

/// Drops every character outside `[A-Za-z0-9_]`.
pub fn key_part(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> KeyTemplate {
        match KeyTemplate::parse(text) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn default_template_names_keys_like_the_spec() {
        assert_eq!(template(DEFAULT_KEY_TEMPLATE), KeyTemplate::default());
        let t = KeyTemplate::default();
        assert_eq!(
            t.key("TiDB", "pd", "PD_server_is_down"),
            "TiDB.pd.PD_server_is_down"
        );
        assert_eq!(
            t.key("TiDB", "cluster", "TiKV_space_used_more_than_80%"),
            "TiDB.cluster.TiKV_space_used_more_than_80"
        );
        assert_eq!(
            t.key("Ti DB", "my-rules", "NODE_disk_used_more_than_80%"),
            "TiDB.myrules.NODE_disk_used_more_than_80"
        );
    }

    #[test]
    fn other_templates() {
        assert_eq!(template("{alert}").key("TiDB", "pd", "A"), "A");
        assert_eq!(
            template("prod-{product}/{component}:{alert}!").key("TiDB", "pd", "A"),
            "prod-TiDB/pd:A!"
        );
    }

    #[test]
    fn bad_templates_are_explained() {
        let cases = [
            (
                "{product}.{component}",
                "it lacks {alert}, so the rules of a component would all get the same key",
            ),
            (
                "{product}.{host}.{alert}",
                "`{host}` is not a placeholder; use {product}, {component} and {alert}",
            ),
            (
                "{product}.{host}",
                "`{host}` is not a placeholder; use {product}, {component} and {alert}; it lacks \
                 {alert}, so the rules of a component would all get the same key",
            ),
            ("{product}.{alert", "it has a `{` without a `}`"),
            ("{alert}}", "it has a `}` without a `{`"),
            (
                "",
                "it lacks {alert}, so the rules of a component would all get the same key",
            ),
        ];
        for (text, problem) in cases {
            assert_eq!(
                KeyTemplate::parse(text).map_err(|e| e.to_string()),
                Err(format!("`{text}`: {problem}")),
            );
        }
    }
}
