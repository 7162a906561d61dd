//! The host matcher and the rewriter that adds it to every selector of a rule (SPEC §3).

use std::net::Ipv6Addr;
use std::time::SystemTime;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, LabelModifier, VectorSelector};
use regex::Regex;

use super::PromqlError;

/// The label matcher that confines a query to this host's targets, and the rewriter that
/// adds it to every vector and matrix selector of an expression.
///
/// The matcher is `LABEL=~"(?:a|b|…)(?::[0-9]+)?"`. Prometheus anchors regexes, so
/// `10.0.1.1` never matches `10.0.1.10:20180`. IPv6 addresses match in their bracketed form
/// (`[fe80::1]:9100`), the only form Prometheus gives a `host:port` target.
#[derive(Debug, Clone)]
pub struct HostScope {
    label: String,
    addresses: Vec<String>,
    /// The addresses' pattern.
    pattern: Matcher,
    /// What queries carry: the pattern, or the exact values.
    matcher: Matcher,
    /// The exact label values the matcher lists, when it lists them
    /// ([`HostScope::with_instances`]).
    instances: Option<Vec<String>>,
}

/// The most label values an exact matcher lists; a host with more keeps its pattern.
pub const MAX_INSTANCES: usize = 256;

impl HostScope {
    pub const DEFAULT_LABEL: &'static str = "instance";

    /// Builds the matcher on `label` for `addresses` (IP addresses or host names). Duplicate
    /// addresses are dropped; order is kept so the matcher reads like the configuration.
    pub fn new<S: AsRef<str>>(label: &str, addresses: &[S]) -> Result<Self, PromqlError> {
        if !is_label_name(label) {
            return Err(PromqlError::InvalidLabel(label.to_owned()));
        }
        let mut unique: Vec<String> = Vec::new();
        for address in addresses {
            let address = address.as_ref().trim();
            if address.is_empty() {
                return Err(PromqlError::EmptyAddress);
            }
            if !unique.iter().any(|seen| seen == address) {
                unique.push(address.to_owned());
            }
        }
        if unique.is_empty() {
            return Err(PromqlError::NoAddresses);
        }
        let alternatives: Vec<String> = unique.iter().map(|a| address_pattern(a)).collect();
        let value = format!("(?:{})(?::[0-9]+)?", alternatives.join("|"));
        // Compiled the way promql-parser compiles a parsed `=~`, so that a rewritten query and
        // its re-parsed form hold equal matchers.
        let regex = Regex::new(&format!("^(?:{value})$"))
            .map_err(|e| PromqlError::Syntax(format!("host matcher `{value}`: {e}")))?;
        let pattern = Matcher::new(MatchOp::Re(regex), label, &value);
        Ok(Self {
            label: label.to_owned(),
            addresses: unique,
            matcher: pattern.clone(),
            pattern,
            instances: None,
        })
    }

    /// The same scope as an alternation of exact values, `LABEL=~"a:1|a:2"`: the `values`
    /// (label values the pair has) that this scope's pattern matches, sorted and without
    /// duplicates. Prometheus looks such an alternation up in its index directly, where a
    /// pattern is tested against every value of the label in the pair (README "Host
    /// matcher"). `None` when no value matches, or more than [`MAX_INSTANCES`] do: the
    /// pattern then stays.
    pub fn with_instances<S: AsRef<str>>(&self, values: &[S]) -> Option<Self> {
        let mut kept: Vec<String> = values
            .iter()
            .map(AsRef::as_ref)
            .filter(|v| self.pattern.is_match(v))
            .map(str::to_owned)
            .collect();
        kept.sort();
        kept.dedup();
        if kept.is_empty() || kept.len() > MAX_INSTANCES {
            return None;
        }
        let value = kept
            .iter()
            .map(|v| literal(v))
            .collect::<Vec<_>>()
            .join("|");
        let regex = Regex::new(&format!("^(?:{value})$")).ok()?;
        Some(Self {
            label: self.label.clone(),
            addresses: self.addresses.clone(),
            pattern: self.pattern.clone(),
            matcher: Matcher::new(MatchOp::Re(regex), &self.label, &value),
            instances: Some(kept),
        })
    }

    /// The exact values this scope lists, when it lists them.
    pub fn instances(&self) -> Option<&[String]> {
        self.instances.as_deref()
    }

    /// This scope with its addresses' pattern, whatever values it lists.
    pub fn pattern(&self) -> Self {
        Self {
            matcher: self.pattern.clone(),
            instances: None,
            ..self.clone()
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The matcher added to every selector.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Parses `text`, adds the host matcher to every selector, and prints the result.
    pub fn rewrite(&self, text: &str) -> Result<String, PromqlError> {
        self.rewrite_expr(super::parse(text)?)
    }

    /// Adds the host matcher to every selector of `expr` and prints it. The printed query is
    /// parsed again and compared with the rewritten AST, so a printing quirk of promql-parser
    /// turns into an error instead of a query that silently means something else.
    pub fn rewrite_expr(&self, mut expr: Expr) -> Result<String, PromqlError> {
        self.scope(&mut expr)?;
        let printed = expr.to_string();
        let mut reparsed = super::parse(&printed).map_err(|e| PromqlError::RoundTrip {
            printed: printed.clone(),
            reason: e.to_string(),
        })?;
        normalize(&mut expr);
        normalize(&mut reparsed);
        if reparsed != expr {
            return Err(PromqlError::RoundTrip {
                printed,
                reason: "it parses to a different expression".into(),
            });
        }
        Ok(printed)
    }

    /// Adds the host matcher to every vector and matrix selector of `expr`, at any depth.
    ///
    /// This is our own recursion: `promql_parser::util::walk_expr` does not visit aggregation
    /// parameters, so `up` in `topk(scalar(count(up)), foo)` would stay unscoped.
    pub fn scope(&self, expr: &mut Expr) -> Result<(), PromqlError> {
        match expr {
            Expr::VectorSelector(selector) => self.scope_selector(selector),
            Expr::MatrixSelector(matrix) => self.scope_selector(&mut matrix.vs),
            Expr::Subquery(subquery) => {
                if at_before_epoch(subquery.at.as_ref()) {
                    return Err(PromqlError::AtBeforeEpoch {
                        selector: subquery.to_string(),
                    });
                }
                self.scope(&mut subquery.expr)
            }
            Expr::Extension(_) => Err(PromqlError::Extension),
            other => children_mut(other)
                .into_iter()
                .try_for_each(|child| self.scope(child)),
        }
    }

    fn scope_selector(&self, selector: &mut VectorSelector) -> Result<(), PromqlError> {
        // Display prints only the `or` groups when there are any, so a pushed matcher would
        // silently vanish from the query.
        if !selector.matchers.or_matchers.is_empty() {
            return Err(PromqlError::OrMatchers {
                selector: selector.to_string(),
            });
        }
        if at_before_epoch(selector.at.as_ref()) {
            return Err(PromqlError::AtBeforeEpoch {
                selector: selector.to_string(),
            });
        }
        // An existing matcher on the same label stays: Prometheus ANDs the two. Only an
        // identical one is not repeated, so that rewriting twice changes nothing.
        if !selector.matchers.matchers.contains(&self.matcher) {
            selector.matchers.matchers.push(self.matcher.clone());
        }
        Ok(())
    }
}

impl std::fmt::Display for HostScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.matcher)
    }
}

fn address_pattern(address: &str) -> String {
    let unbracketed = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    match unbracketed.parse::<Ipv6Addr>() {
        Ok(_) => regex::escape(&format!("[{unbracketed}]")),
        Err(_) => regex::escape(address),
    }
}

/// `value` as a regex that matches it alone, escaping only the characters Go's regexp
/// syntax gives a meaning. Prometheus recognises an alternation of such literals as a set
/// and looks its values up directly; it does not for other escapes (`regex::escape`
/// escapes `-`, common in host names).
fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Legacy Prometheus label names: the charset every Prometheus version accepts unquoted.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// promql-parser prints an @ timestamp before 1970 as `@ 0.000`.
fn at_before_epoch(at: Option<&AtModifier>) -> bool {
    matches!(at, Some(AtModifier::At(time)) if *time < SystemTime::UNIX_EPOCH)
}

fn sort_matchers(selector: &mut VectorSelector) {
    selector
        .matchers
        .matchers
        .sort_by_cached_key(|matcher| matcher.to_string());
}

pub(super) fn children_mut(expr: &mut Expr) -> Vec<&mut Expr> {
    match expr {
        Expr::Aggregate(aggregate) => {
            let mut children = Vec::with_capacity(2);
            if let Some(param) = aggregate.param.as_deref_mut() {
                children.push(param);
            }
            children.push(&mut *aggregate.expr);
            children
        }
        Expr::Unary(unary) => vec![&mut *unary.expr],
        Expr::Binary(binary) => vec![&mut *binary.lhs, &mut *binary.rhs],
        Expr::Paren(paren) => vec![&mut *paren.expr],
        Expr::Subquery(subquery) => vec![&mut *subquery.expr],
        Expr::Call(call) => call.args.args.iter_mut().map(|arg| &mut **arg).collect(),
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// Erases the differences that promql-parser's Display introduces without changing meaning:
/// matchers print sorted, `sum by () (x)` prints as `sum(x)`, and `a + ignoring () b` as `a + b`.
pub(super) fn normalize(expr: &mut Expr) {
    match expr {
        Expr::VectorSelector(selector) => sort_matchers(selector),
        Expr::MatrixSelector(matrix) => sort_matchers(&mut matrix.vs),
        Expr::Aggregate(aggregate) => {
            if matches!(&aggregate.modifier, Some(LabelModifier::Include(labels)) if labels.is_empty())
            {
                aggregate.modifier = None;
            }
        }
        Expr::Binary(binary) => {
            if let Some(modifier) = &mut binary.modifier {
                if matches!(&modifier.matching, Some(LabelModifier::Exclude(labels)) if labels.is_empty())
                {
                    modifier.matching = None;
                }
                if *modifier == Default::default() {
                    binary.modifier = None;
                }
            }
        }
        _ => {}
    }
    for child in children_mut(expr) {
        normalize(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{parse, selectors};

    fn scope(addresses: &[&str]) -> HostScope {
        match HostScope::new(HostScope::DEFAULT_LABEL, addresses) {
            Ok(scope) => scope,
            Err(e) => panic!("{e}"),
        }
    }

    fn rewrite(addresses: &[&str], text: &str) -> String {
        match scope(addresses).rewrite(text) {
            Ok(rewritten) => rewritten,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    const M: &str = r#"instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?""#;

    #[test]
    fn exact_values_keep_only_what_the_pattern_matches() {
        let host = scope(&["10.0.1.5", "tidb-1.example"]);
        let values = [
            "10.0.1.5:20180",
            "10.0.1.50:20180",
            "10.0.1.5",
            "tidb-1.example:4000",
            "10.0.1.5:20180",
            "x10.0.1.5:1",
        ];
        let exact = match host.with_instances(&values) {
            Some(exact) => exact,
            None => panic!("10.0.1.5 has values"),
        };
        assert_eq!(
            exact.instances(),
            Some(
                &[
                    "10.0.1.5".to_string(),
                    "10.0.1.5:20180".into(),
                    "tidb-1.example:4000".into()
                ][..]
            )
        );
        // Only Go's regexp metacharacters are escaped (not `-`), so Prometheus reads a set.
        assert_eq!(
            exact.to_string(),
            r#"instance=~"10\\.0\\.1\\.5|10\\.0\\.1\\.5:20180|tidb-1\\.example:4000""#
        );
        for yes in values
            .iter()
            .take(1)
            .chain(&["10.0.1.5", "tidb-1.example:4000"])
        {
            assert!(exact.matcher().is_match(yes), "{yes}");
        }
        for no in [
            "10.0.1.50:20180",
            "10.0.1.5:9100",
            "x10.0.1.5:1",
            "10.0.1.5:201800",
        ] {
            assert!(!exact.matcher().is_match(no), "{no}");
        }
        // Scoped again from the values, it still starts from the addresses.
        let again = exact.with_instances(&["10.0.1.5:9100"]);
        assert_eq!(
            again.as_ref().and_then(HostScope::instances),
            Some(&["10.0.1.5:9100".to_string()][..])
        );
        assert_eq!(exact.pattern().to_string(), host.to_string());
        let rewritten = exact.rewrite("up == 0");
        assert_eq!(
            rewritten.ok().as_deref(),
            Some(
                r#"up{instance=~"10\\.0\\.1\\.5|10\\.0\\.1\\.5:20180|tidb-1\\.example:4000"} == 0"#
            )
        );
    }

    #[test]
    fn no_value_or_too_many_keep_the_pattern() {
        let host = scope(&["10.0.1.5"]);
        assert!(host.with_instances(&["10.0.1.6:20180"]).is_none());
        assert!(host.with_instances::<&str>(&[]).is_none());
        let many: Vec<String> = (0..=MAX_INSTANCES)
            .map(|p| format!("10.0.1.5:{p}"))
            .collect();
        assert!(host.with_instances(&many).is_none());
        assert!(host.with_instances(&many[..MAX_INSTANCES]).is_some());
    }

    #[test]
    fn matcher_escapes_anchors_and_allows_a_port() {
        let host = scope(&["10.0.1.5"]);
        assert_eq!(host.to_string(), M);
        assert_eq!(host.matcher().value, r"(?:10\.0\.1\.5)(?::[0-9]+)?");
        for yes in ["10.0.1.5", "10.0.1.5:20180", "10.0.1.5:9100"] {
            assert!(host.matcher().is_match(yes), "{yes}");
        }
        for no in [
            "10.0.1.50",
            "10.0.1.50:20180",
            "110.0.1.5:1",
            "10x0x1x5",
            "10.0.1.5:",
            "10.0.1.5:abc",
            "10.0.1.5:1:2",
            "",
        ] {
            assert!(!host.matcher().is_match(no), "{no}");
        }
    }

    #[test]
    fn several_addresses_and_host_names() {
        let host = scope(&["10.0.1.1", "tikv-1.example.com", "10.0.1.1", " db+1 "]);
        assert_eq!(host.addresses(), ["10.0.1.1", "tikv-1.example.com", "db+1"]);
        assert_eq!(
            host.matcher().value,
            r"(?:10\.0\.1\.1|tikv\-1\.example\.com|db\+1)(?::[0-9]+)?"
        );
        assert!(host.matcher().is_match("tikv-1.example.com:20180"));
        assert!(host.matcher().is_match("db+1"));
        assert!(!host.matcher().is_match("10.0.1.10:20180"));
        assert!(!host.matcher().is_match("tikv-1xexample.com"));
        assert!(!host.matcher().is_match("dbb1"));
    }

    #[test]
    fn ipv6_addresses_match_their_bracketed_form() {
        let host = scope(&["fe80::1", "[::1]"]);
        assert_eq!(host.matcher().value, r"(?:\[fe80::1\]|\[::1\])(?::[0-9]+)?");
        assert!(host.matcher().is_match("[fe80::1]:9100"));
        assert!(host.matcher().is_match("[::1]"));
        assert!(!host.matcher().is_match("[fe80::10]:9100"));
        assert!(!host.matcher().is_match("::1:9100"));
    }

    #[test]
    fn bad_scopes_are_refused() {
        let none: [&str; 0] = [];
        assert_eq!(
            HostScope::new("instance", &none).err(),
            Some(PromqlError::NoAddresses)
        );
        assert_eq!(
            HostScope::new("instance", &["10.0.0.1", "  "]).err(),
            Some(PromqlError::EmptyAddress)
        );
        for label in ["", "1nstance", "in-stance", "instance name"] {
            assert_eq!(
                HostScope::new(label, &["10.0.0.1"]).err(),
                Some(PromqlError::InvalidLabel(label.into()))
            );
        }
        assert!(HostScope::new("_host", &["h"]).is_ok());
    }

    #[test]
    fn plain_and_matrix_selectors() {
        assert_eq!(rewrite(&["10.0.1.5"], "up"), format!("up{{{M}}}"));
        assert_eq!(
            rewrite(&["10.0.1.5"], r#"probe_success{group="tidb"} == 0"#),
            format!(r#"probe_success{{group="tidb",{M}}} == 0"#)
        );
        assert_eq!(
            rewrite(&["10.0.1.5"], "rate(foo[5m] offset 1h)"),
            format!("rate(foo{{{M}}}[5m] offset 1h)")
        );
        assert_eq!(
            rewrite(&["10.0.1.5"], r#"{__name__=~"tikv_.*"}"#),
            format!(r#"{{__name__=~"tikv_.*",{M}}}"#)
        );
    }

    #[test]
    fn every_depth_is_scoped() {
        let cases = [
            (
                "topk(scalar(count(up)), foo)",
                format!("topk(scalar(count(up{{{M}}})), foo{{{M}}})"),
            ),
            (
                "quantile(scalar(max(q)), foo)",
                format!("quantile(scalar(max(q{{{M}}})), foo{{{M}}})"),
            ),
            (
                "count_values(\"v\", foo)",
                format!("count_values(\"v\", foo{{{M}}})"),
            ),
            (
                "a / on (job) group_left (x) b",
                format!("a{{{M}}} / on (job) group_left (x) b{{{M}}}"),
            ),
            (
                "-(a + b) > bool 1",
                format!("-(a{{{M}}} + b{{{M}}}) > bool 1"),
            ),
            (
                "max_over_time(rate(x[1m])[10m:30s] offset 5m)",
                format!("max_over_time(rate(x{{{M}}}[1m])[10m:30s] offset 5m)"),
            ),
            (
                "max_over_time((a and b)[5m:])",
                format!("max_over_time((a{{{M}}} and b{{{M}}})[5m:])"),
            ),
            (
                "histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))",
                format!("histogram_quantile(0.99, sum by (le) (rate(x_bucket{{{M}}}[1m])))"),
            ),
            (
                r#"label_replace(up, "dst", "$1", "src", "(.*)")"#,
                format!(r#"label_replace(up{{{M}}}, "dst", "$1", "src", "(.*)")"#),
            ),
            (
                "absent(up{job=\"pd\"}) or vector(0)",
                format!("absent(up{{{M},job=\"pd\"}}) or vector(0)"),
            ),
            ("time() - 5", "time() - 5".to_owned()),
            ("vector(0) > 1", "vector(0) > 1".to_owned()),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite(&["10.0.1.5"], input), expected, "{input}");
        }
    }

    #[test]
    fn existing_matcher_on_the_same_label_is_kept() {
        assert_eq!(
            rewrite(&["10.0.1.5"], r#"up{instance=~".*pd.*"}"#),
            format!(r#"up{{{M},instance=~".*pd.*"}}"#)
        );
        assert_eq!(
            rewrite(&["10.0.1.5"], r#"up{instance="10.0.1.6:2379"}"#),
            format!(r#"up{{instance="10.0.1.6:2379",{M}}}"#)
        );
    }

    #[test]
    fn rewriting_twice_changes_nothing() {
        let once = rewrite(&["10.0.1.5"], "sum(rate(x[5m])) by (instance) > 0");
        assert_eq!(rewrite(&["10.0.1.5"], &once), once);
    }

    #[test]
    fn other_label_names_work() {
        let host = match HostScope::new("host", &["db1"]) {
            Ok(host) => host,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            host.rewrite("up"),
            Ok(r#"up{host=~"(?:db1)(?::[0-9]+)?"}"#.to_owned())
        );
    }

    #[test]
    fn modifiers_survive_the_round_trip() {
        for (input, expected) in [
            ("foo @ 1609746000", format!("foo{{{M}}} @ 1609746000.000")),
            ("foo @ start()", format!("foo{{{M}}} @ start()")),
            (
                "foo[5m] @ end() offset -1m",
                format!("foo{{{M}}}[5m] @ end() offset -1m"),
            ),
            ("rate(foo[90s])", format!("rate(foo{{{M}}}[1m30s])")),
            ("foo offset 1y", format!("foo{{{M}}} offset 1y")),
            ("sum by () (foo)", format!("sum(foo{{{M}}})")),
            ("a + ignoring () b", format!("a{{{M}}} + b{{{M}}}")),
            ("a and on () b", format!("a{{{M}}} and on () b{{{M}}}")),
            (
                "foo{a='x\"y', b=\"\\\\\", c=\"é\\n\"}",
                format!("foo{{a=\"x\\\"y\",b=\"\\\\\",c=\"é\\n\",{M}}}"),
            ),
            ("0x1F + 1e3 + Inf", "31 + 1000 + Inf".to_owned()),
        ] {
            assert_eq!(rewrite(&["10.0.1.5"], input), expected, "{input}");
        }
    }

    #[test]
    fn or_matchers_are_rejected() {
        assert_eq!(
            scope(&["10.0.1.5"]).rewrite(r#"sum(rate(foo{a="b" or c="d"}[5m]))"#),
            Err(PromqlError::OrMatchers {
                selector: r#"foo{a="b" or c="d"}"#.into()
            })
        );
    }

    #[test]
    fn at_before_1970_is_rejected_instead_of_printed_as_zero() {
        assert_eq!(
            scope(&["10.0.1.5"]).rewrite("foo @ -100"),
            Err(PromqlError::AtBeforeEpoch {
                selector: "foo @ 0.000".into()
            })
        );
        assert!(matches!(
            scope(&["10.0.1.5"]).rewrite("max_over_time(foo[5m:] @ -1)"),
            Err(PromqlError::AtBeforeEpoch { .. })
        ));
    }

    #[test]
    fn a_printing_difference_is_caught_by_the_round_trip_check() {
        // Unary minus over a literal prints as a negative literal, a different AST.
        let expr = -Expr::from(VectorSelector::from("x"));
        let Expr::Unary(mut unary) = expr else {
            panic!("not unary")
        };
        unary.expr = Box::new(Expr::from(1.0));
        let result = scope(&["h"]).rewrite_expr(Expr::Unary(unary));
        assert_eq!(
            result,
            Err(PromqlError::RoundTrip {
                printed: "-1".into(),
                reason: "it parses to a different expression".into()
            })
        );
    }

    #[test]
    fn invalid_promql_is_reported() {
        assert_eq!(
            scope(&["h"]).rewrite("max(x[10m]) by (instance) > 80"),
            Err(PromqlError::Syntax(
                "expected type vector in aggregation expression, got matrix".into()
            ))
        );
    }

    #[test]
    fn every_selector_of_the_output_carries_the_matcher() {
        let host = scope(&["10.0.1.5", "db-1"]);
        let text = "topk(scalar(count(up)), foo) / on (instance) \
                    max_over_time(rate(bar{a=\"b\"}[1m])[5m:]) and -baz offset 1m";
        let out = match host.rewrite(text) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        };
        let reparsed = match parse(&out) {
            Ok(expr) => expr,
            Err(e) => panic!("{e}"),
        };
        let found = selectors(&reparsed);
        assert_eq!(found.len(), 4);
        for selector in found {
            assert!(
                selector.matchers.matchers.contains(host.matcher()),
                "{selector}"
            );
        }
    }
}
