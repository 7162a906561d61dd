//! PromQL on top of `promql-parser`: one guarded parse entry point, a selector walk, and the
//! host-scoping rewriter ([`HostScope`], SPEC §3). Pure code, no I/O.

mod equivalence;
mod host_scope;
mod output_labels;

pub use equivalence::{canonical, same};
pub use host_scope::{HostScope, MAX_INSTANCES};
pub use output_labels::keeps_label;

use promql_parser::parser::{Expr, VectorSelector};

/// Most nesting (brackets plus operators) an expression may have.
///
/// promql-parser builds, prints, compares and drops the AST recursively, so a pathological
/// expression (thousands of nested parentheses or chained `+`) overflows the stack and aborts
/// the process. 500 leaves ample room on a 2 MiB thread stack even in debug builds, while the
/// most complex upstream TiDB rule uses fewer than 30.
pub const MAX_NESTING: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromqlError {
    #[error("invalid PromQL: {0}")]
    Syntax(String),
    #[error(
        "the expression nests too deeply ({weight} brackets and operators, at most {MAX_NESTING} \
         are accepted); split it with recording rules"
    )]
    TooComplex { weight: usize },
    #[error(
        "the selector `{selector}` uses `or` inside braces, a GreptimeDB extension that \
         Prometheus does not accept; write two selectors joined by the `or` operator instead"
    )]
    OrMatchers { selector: String },
    #[error(
        "the selector `{selector}` has an @ timestamp before 1970, which promql-parser cannot \
         print back faithfully; use a timestamp after 1970"
    )]
    AtBeforeEpoch { selector: String },
    #[error("the expression holds a promql-parser extension node, which is not PromQL")]
    Extension,
    #[error(
        "the host-scoped query `{printed}` does not parse back to the expression it was printed \
         from ({reason}); this is a bug in tidb-host-agent or promql-parser, please report it \
         with the rule"
    )]
    RoundTrip { printed: String, reason: String },
    #[error("no host address given; the host matcher needs at least one address")]
    NoAddresses,
    #[error("a host address is empty")]
    EmptyAddress,
    #[error(
        "`{0}` is not a usable label name for the host matcher; use letters, digits and \
         underscores, not starting with a digit (for example `instance`)"
    )]
    InvalidLabel(String),
}

/// Parses one PromQL expression, after checking that it cannot exhaust the stack.
pub fn parse(text: &str) -> Result<Expr, PromqlError> {
    let weight = nesting_weight(text);
    if weight > MAX_NESTING {
        return Err(PromqlError::TooComplex { weight });
    }
    promql_parser::parser::parse(text).map_err(PromqlError::Syntax)
}

/// Every vector selector in `expr`, including those inside matrix selectors, at any depth
/// (aggregation parameters included, which `promql_parser::util::walk_expr` skips).
pub fn selectors(expr: &Expr) -> Vec<&VectorSelector> {
    let mut found = Vec::new();
    collect_selectors(expr, &mut found);
    found
}

fn collect_selectors<'a>(expr: &'a Expr, found: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::Aggregate(aggregate) => {
            if let Some(param) = &aggregate.param {
                collect_selectors(param, found);
            }
            collect_selectors(&aggregate.expr, found);
        }
        Expr::Unary(unary) => collect_selectors(&unary.expr, found),
        Expr::Binary(binary) => {
            collect_selectors(&binary.lhs, found);
            collect_selectors(&binary.rhs, found);
        }
        Expr::Paren(paren) => collect_selectors(&paren.expr, found),
        Expr::Subquery(subquery) => collect_selectors(&subquery.expr, found),
        Expr::VectorSelector(selector) => found.push(selector),
        Expr::MatrixSelector(matrix) => found.push(&matrix.vs),
        Expr::Call(call) => {
            for arg in &call.args.args {
                collect_selectors(arg, found);
            }
        }
        Expr::Extension(extension) => {
            for child in extension.expr.children() {
                collect_selectors(child, found);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

/// Rejects syntax that promql-parser accepts but Prometheus does not: `or` inside braces.
pub fn check_prometheus_only(expr: &Expr) -> Result<(), PromqlError> {
    if matches!(expr, Expr::Extension(_)) {
        return Err(PromqlError::Extension);
    }
    match selectors(expr)
        .into_iter()
        .find(|selector| !selector.matchers.or_matchers.is_empty())
    {
        Some(selector) => Err(PromqlError::OrMatchers {
            selector: selector.to_string(),
        }),
        None => Ok(()),
    }
}

/// An upper bound on the depth of the AST that `text` parses to: every AST level consumes an
/// opening bracket or an operator, so counting both (outside string literals) bounds it.
/// Operators inside braces are matchers, not AST levels. Overcounting (the `-` of
/// `offset -5m`) only makes the bound looser.
fn nesting_weight(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut max_depth = 0;
    let mut in_braces = false;
    let mut operators = 0;
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        operators += usize::from(!in_braces && is_keyword_operator(&word));
        word.clear();
        match c {
            '"' | '\'' | '`' => skip_string(c, &mut chars),
            '{' => in_braces = true,
            '}' => in_braces = false,
            '(' | '[' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' if !in_braces => {
                operators += 1
            }
            _ => {}
        }
    }
    operators += usize::from(is_keyword_operator(&word));
    max_depth + operators
}

fn is_keyword_operator(word: &str) -> bool {
    ["and", "or", "unless", "atan2"]
        .iter()
        .any(|keyword| word.eq_ignore_ascii_case(keyword))
}

fn skip_string(quote: char, chars: &mut std::str::Chars<'_>) {
    while let Some(c) = chars.next() {
        if c == '\\' && quote != '`' {
            chars.next();
        } else if c == quote {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_the_parser_message() {
        assert_eq!(
            parse("max(x[10m]) by (instance) > 80"),
            Err(PromqlError::Syntax(
                "expected type vector in aggregation expression, got matrix".into()
            ))
        );
        assert_eq!(
            parse("sum(rate(x[5m])").map_err(|e| e.to_string()),
            Err("invalid PromQL: unclosed left parenthesis".into())
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_it_reaches_the_parser() {
        let parens = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(matches!(
            parse(&parens),
            Err(PromqlError::TooComplex { weight: 100_000 })
        ));
        let chain = vec!["a"; 50_000].join(" + ");
        assert!(matches!(parse(&chain), Err(PromqlError::TooComplex { .. })));
        let set_chain = vec!["a"; 50_000].join(" and ");
        assert!(matches!(
            parse(&set_chain),
            Err(PromqlError::TooComplex { .. })
        ));
        let negations = format!("{}a", "-".repeat(50_000));
        assert!(matches!(
            parse(&negations),
            Err(PromqlError::TooComplex { .. })
        ));
    }

    #[test]
    fn nesting_at_the_limit_parses_prints_and_drops_without_overflow() {
        // Run on a 2 MiB stack, the size tokio gives its worker threads.
        let worst_cases = [
            format!("{}a{}", "abs(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}a{}", "sum(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}a", "-".repeat(MAX_NESTING - 1)),
            vec!["a"; MAX_NESTING].join("^"),
            format!(
                "{}a{}",
                "(".repeat(MAX_NESTING - 1),
                ")".repeat(MAX_NESTING - 1)
            ),
        ];
        for text in worst_cases {
            let handle = std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || {
                    let parsed = parse(&text);
                    if let Ok(expr) = &parsed {
                        let printed = expr.to_string();
                        let _ = parse(&printed);
                    }
                    parsed.is_ok()
                });
            let parsed = handle.map(|h| h.join());
            assert!(matches!(parsed, Ok(Ok(true))), "{parsed:?}");
        }
    }

    #[test]
    fn string_contents_do_not_count_towards_nesting() {
        let long_label = format!("x{{a=\"{}\"}}", "((((-+".repeat(1000));
        assert!(parse(&long_label).is_ok());
        assert_eq!(nesting_weight(r#"x{a="\"(((", b!~"-"}"#), 0);
        assert_eq!(nesting_weight("sum(rate(x[5m])) > 1"), 4);
        assert_eq!(nesting_weight("a and b or c unless d atan2 e"), 4);
    }

    #[test]
    fn selectors_include_aggregation_parameters() {
        let expr = parse("topk(scalar(count(up)), foo) + rate(bar[5m])");
        let names: Vec<_> = expr
            .iter()
            .flat_map(|e| selectors(e))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, ["up", "foo", "bar"]);
    }

    #[test]
    fn or_inside_braces_is_rejected() {
        let expr = parse(r#"rate(foo{a="b" or c="d"}[5m])"#);
        assert_eq!(
            expr.and_then(|e| check_prometheus_only(&e)),
            Err(PromqlError::OrMatchers {
                selector: r#"foo{a="b" or c="d"}"#.into()
            })
        );
        let plain = parse(r#"foo{a="b"} or bar"#);
        assert_eq!(plain.and_then(|e| check_prometheus_only(&e)), Ok(()));
    }
}
