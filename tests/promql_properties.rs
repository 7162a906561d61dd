//! Property tests of the host rewriter (SPEC §3): arbitrary text and random ASTs never make it
//! panic, whatever it prints parses again with the host matcher on every selector, and for
//! valid PromQL it only ever adds that matcher.

use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinModifier, BinaryExpr, Call, Expr, Function, FunctionArgs,
    LabelModifier, MatrixSelector, NumberLiteral, Offset, ParenExpr, StringLiteral, SubqueryExpr,
    UnaryExpr, VectorMatchCardinality, VectorMatchFillValues, VectorSelector,
};
use proptest::prelude::*;
use proptest::sample::select;
use tidb_host_agent::promql::{self, HostScope, PromqlError};

fn host() -> HostScope {
    match HostScope::new("instance", &["10.0.1.1", "db-1.example", "fe80::1"]) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    }
}

/// Whatever the rewriter returns must parse again, with the matcher on every selector.
fn assert_scoped_output(host: &HostScope, output: &str) -> Result<(), TestCaseError> {
    let reparsed = promql::parse(output)
        .map_err(|e| TestCaseError::fail(format!("output `{output}` does not parse: {e}")))?;
    for selector in promql::selectors(&reparsed) {
        prop_assert!(
            selector.matchers.matchers.contains(host.matcher()),
            "selector `{}` of `{}` lacks the host matcher",
            selector,
            output
        );
    }
    Ok(())
}

// ---------- PromQL text that is valid by construction ----------

fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn matcher_text() -> impl Strategy<Value = String> {
    let label = select(vec!["job", "instance", "type", "le", "a_b", "instance"]);
    let equality = (
        label.clone(),
        select(vec!["=", "!="]),
        "[a-zA-Z0-9 ._:\\-\"\\\\é☺\n\t]{0,8}",
    )
        .prop_map(|(l, op, v)| format!("{l}{op}{}", quoted(&v)));
    let regex = (
        label,
        select(vec!["=~", "!~"]),
        select(vec![
            ".*",
            "tikv|pd",
            r"10\.0\.1\.1(:[0-9]+)?",
            "[a-z]+",
            "(?i)abc",
            "x{2}",
            "",
            ".+",
        ]),
    )
        .prop_map(|(l, op, v)| format!("{l}{op}{}", quoted(v)));
    prop_oneof![equality, regex]
}

fn selector_body() -> impl Strategy<Value = String> {
    let names = select(vec![
        "up",
        "foo",
        "process_start_time_seconds",
        "tikv_engine_write_stall",
        "probe_success",
        "x:recorded:rate1m",
    ]);
    let named = (names, prop::collection::vec(matcher_text(), 0..3)).prop_map(|(n, ms)| {
        if ms.is_empty() {
            n.to_owned()
        } else {
            format!("{n}{{{}}}", ms.join(", "))
        }
    });
    let nameless = prop::collection::vec(matcher_text(), 0..2).prop_map(|ms| {
        format!(
            "{{__name__=\"up\"{}}}",
            ms.iter().map(|m| format!(", {m}")).collect::<String>()
        )
    });
    prop_oneof![4 => named, 1 => nameless]
}

fn modifiers() -> impl Strategy<Value = String> {
    (
        select(vec![
            "",
            " @ 1700000000",
            " @ start()",
            " @ end()",
            " @ 1700000000.25",
        ]),
        select(vec!["", " offset 5m", " offset -1h30m", " offset 1d"]),
    )
        .prop_map(|(at, offset)| format!("{at}{offset}"))
}

fn range() -> impl Strategy<Value = &'static str> {
    select(vec!["1m", "5m", "90s", "1h30m", "10m"])
}

fn vector_text() -> impl Strategy<Value = String> {
    let leaf = (selector_body(), modifiers()).prop_map(|(s, m)| format!("{s}{m}"));
    let matrix_fn = (
        select(vec![
            "rate",
            "increase",
            "changes",
            "delta",
            "max_over_time",
            "absent_over_time",
        ]),
        selector_body(),
        range(),
        modifiers(),
    )
        .prop_map(|(f, s, r, m)| format!("{f}({s}[{r}]{m})"));
    let leaf = prop_oneof![leaf, matrix_fn];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let arith = select(vec!["+", "-", "*", "/", "%", "^", "atan2"]);
        let arith_mod = select(vec![
            "",
            " on (instance)",
            " ignoring (job)",
            " on (instance) group_left (job)",
            " ignoring (le) group_right ()",
        ]);
        let compare = select(vec!["==", "!=", ">", "<", ">=", "<="]);
        let compare_mod = select(vec!["", " bool", " bool on (instance)", " ignoring (job)"]);
        let set = select(vec!["and", "or", "unless"]);
        let set_mod = select(vec!["", " on (instance)", " ignoring (job)", " on ()"]);
        let scalar = prop_oneof![
            select(vec!["3", "0.5", "1e3", "Inf", "-2"]).prop_map(str::to_owned),
            inner.clone().prop_map(|v| format!("scalar({v})")),
            Just("time()".to_owned()),
        ];
        prop_oneof![
            (inner.clone(), arith, arith_mod, inner.clone())
                .prop_map(|(a, op, m, b)| format!("({a}) {op}{m} ({b})")),
            (inner.clone(), compare, compare_mod, inner.clone())
                .prop_map(|(a, op, m, b)| format!("{a} {op}{m} {b}")),
            (inner.clone(), set, set_mod, inner.clone())
                .prop_map(|(a, op, m, b)| format!("({a}) {op}{m} {b}")),
            (
                inner.clone(),
                select(vec![">", "<", "+", "*"]),
                scalar.clone()
            )
                .prop_map(|(a, op, s)| format!("{a} {op} {s}")),
            (
                select(vec!["sum", "max", "count", "avg", "group", "stddev"]),
                select(vec![
                    "",
                    " by (instance)",
                    " without (job)",
                    " by ()",
                    " by (le, type)"
                ]),
                inner.clone(),
            )
                .prop_map(|(op, m, v)| format!("{op}{m} ({v})")),
            (inner.clone(), select(vec!["by", "without"]))
                .prop_map(|(v, m)| format!("sum({v}) {m} (instance)")),
            (
                select(vec!["topk", "bottomk", "limitk"]),
                scalar.clone(),
                inner.clone()
            )
                .prop_map(|(op, s, v)| format!("{op}({s}, {v})")),
            (scalar, inner.clone()).prop_map(|(s, v)| format!("quantile({s}, {v})")),
            inner
                .clone()
                .prop_map(|v| format!("count_values(\"value\", {v})")),
            inner.clone().prop_map(|v| format!("-{v}")),
            inner.clone().prop_map(|v| format!("({v})")),
            inner.clone().prop_map(|v| format!("abs({v})")),
            inner
                .clone()
                .prop_map(|v| format!("histogram_quantile(0.99, {v})")),
            inner.clone().prop_map(|v| format!("absent({v})")),
            inner
                .clone()
                .prop_map(|v| format!("label_replace({v}, \"dst\", \"$1\", \"src\", \"(.*)\")")),
            (
                inner.clone(),
                range(),
                select(vec!["", "1m", "30s"]),
                modifiers()
            )
                .prop_map(|(v, r, step, m)| format!("max_over_time(({v})[{r}:{step}]{m})")),
            (inner, range()).prop_map(|(v, r)| format!("rate(({v})[{r}:])")),
        ]
    })
}

// ---------- random ASTs, typed or not ----------

fn regex_matcher(op: &str, name: &str, value: &str) -> Option<Matcher> {
    let regex = regex::Regex::new(&format!("^(?:{value})$")).ok()?;
    let op = if op == "=~" {
        MatchOp::Re(regex)
    } else {
        MatchOp::NotRe(regex)
    };
    Some(Matcher::new(op, name, value))
}

fn arb_matcher() -> impl Strategy<Value = Matcher> {
    let name = select(vec!["job", "instance", "__name__", "utf8.label", "le", ""]);
    let value = "[a-z.*|()\\\\\"\n]{0,6}";
    (name, select(vec!["=", "!=", "=~", "!~"]), value).prop_map(|(n, op, v)| match op {
        "=" => Matcher::new(MatchOp::Equal, n, &v),
        "!=" => Matcher::new(MatchOp::NotEqual, n, &v),
        _ => regex_matcher(op, n, &v).unwrap_or_else(|| Matcher::new(MatchOp::Equal, n, &v)),
    })
}

fn arb_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (1u64..100_000_000).prop_map(Duration::from_millis),
        (1u64..1000).prop_map(|m| Duration::from_secs(60 * m)),
    ]
}

fn arb_at() -> impl Strategy<Value = AtModifier> {
    prop_oneof![
        Just(AtModifier::Start),
        Just(AtModifier::End),
        (0u64..4_000_000_000_000)
            .prop_map(|ms| AtModifier::At(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))),
        (1u64..1_000_000)
            .prop_map(|s| AtModifier::At(SystemTime::UNIX_EPOCH - Duration::from_secs(s))),
    ]
}

fn arb_offset() -> impl Strategy<Value = Offset> {
    (any::<bool>(), arb_duration())
        .prop_map(|(neg, d)| if neg { Offset::Neg(d) } else { Offset::Pos(d) })
}

fn arb_selector() -> impl Strategy<Value = VectorSelector> {
    (
        prop::option::of(select(vec!["up", "foo", "a:b", "utf8.name", "9bad"])),
        prop::collection::vec(arb_matcher(), 0..3),
        prop_oneof![
            19 => Just(Vec::new()),
            1 => prop::collection::vec(prop::collection::vec(arb_matcher(), 1..3), 1..3),
        ],
        prop::option::of(arb_offset()),
        prop::option::of(arb_at()),
    )
        .prop_map(|(name, matchers, or_matchers, offset, at)| VectorSelector {
            name: name.map(str::to_owned),
            matchers: Matchers::new(matchers).with_or_matchers(or_matchers),
            offset,
            at,
        })
}

/// Real `Function` values, taken from the parser so that a well-formed call round-trips.
fn functions() -> Vec<Function> {
    [
        "abs(x)",
        "rate(x[5m])",
        "histogram_quantile(0.9, x)",
        "label_replace(x, \"a\", \"b\", \"c\", \"d\")",
        "vector(1)",
        "time()",
        "scalar(x)",
        "clamp(x, 1, 2)",
        "round(x)",
        "max_over_time(x[5m])",
    ]
    .iter()
    .filter_map(|text| match promql::parse(text) {
        Ok(Expr::Call(call)) => Some(call.func),
        _ => None,
    })
    .collect()
}

const AGGREGATIONS: [TokenId; 8] = [
    token::T_SUM,
    token::T_COUNT,
    token::T_MAX,
    token::T_TOPK,
    token::T_QUANTILE,
    token::T_COUNT_VALUES,
    token::T_GROUP,
    token::T_LIMITK,
];

const BINARY_OPERATORS: [TokenId; 16] = [
    token::T_ADD,
    token::T_SUB,
    token::T_MUL,
    token::T_DIV,
    token::T_MOD,
    token::T_POW,
    token::T_EQLC,
    token::T_NEQ,
    token::T_LSS,
    token::T_GTR,
    token::T_LTE,
    token::T_GTE,
    token::T_LAND,
    token::T_LOR,
    token::T_LUNLESS,
    token::T_ATAN2,
];

fn arb_labels() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(select(vec!["instance", "job", "le", "utf8.x"]), 0..3)
}

fn arb_label_modifier() -> impl Strategy<Value = Option<LabelModifier>> {
    prop::option::of(prop_oneof![
        arb_labels().prop_map(LabelModifier::include),
        arb_labels().prop_map(LabelModifier::exclude),
    ])
}

fn arb_bin_modifier() -> impl Strategy<Value = BinModifier> {
    let card = prop_oneof![
        Just(VectorMatchCardinality::OneToOne),
        Just(VectorMatchCardinality::ManyToMany),
        arb_labels().prop_map(VectorMatchCardinality::many_to_one),
        arb_labels().prop_map(VectorMatchCardinality::one_to_many),
    ];
    let fill = (
        prop::option::of(prop_oneof![Just(0.0), Just(f64::NAN), Just(-1.5)]),
        prop::option::of(prop_oneof![Just(0.0), Just(2.0)]),
    )
        .prop_map(|(lhs, rhs)| VectorMatchFillValues { lhs, rhs });
    (card, arb_label_modifier(), any::<bool>(), fill).prop_map(
        |(card, matching, return_bool, fill)| {
            BinModifier::default()
                .with_card(card)
                .with_matching(matching)
                .with_return_bool(return_bool)
                .with_fill_values(fill)
        },
    )
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        arb_selector().prop_map(Expr::VectorSelector),
        (arb_selector(), arb_duration())
            .prop_map(|(vs, range)| Expr::MatrixSelector(MatrixSelector { vs, range })),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0)
        ]
        .prop_map(|v| Expr::NumberLiteral(NumberLiteral::new(v))),
        ".{0,6}".prop_map(|val| Expr::StringLiteral(StringLiteral { val })),
    ];
    let functions = functions();
    leaf.prop_recursive(5, 48, 4, move |inner| {
        prop_oneof![
            (
                select(AGGREGATIONS.to_vec()),
                inner.clone(),
                prop::option::of(inner.clone()),
                arb_label_modifier()
            )
                .prop_map(|(op, expr, param, modifier)| Expr::Aggregate(
                    AggregateExpr {
                        op: token::TokenType::new(op),
                        expr: Box::new(expr),
                        param: param.map(Box::new),
                        modifier,
                    }
                )),
            inner.clone().prop_map(|expr| Expr::Unary(UnaryExpr {
                expr: Box::new(expr)
            })),
            (
                select(BINARY_OPERATORS.to_vec()),
                inner.clone(),
                inner.clone(),
                prop::option::of(arb_bin_modifier())
            )
                .prop_map(|(op, lhs, rhs, modifier)| Expr::Binary(BinaryExpr {
                    op: token::TokenType::new(op),
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    modifier,
                })),
            inner.clone().prop_map(|expr| Expr::Paren(ParenExpr {
                expr: Box::new(expr)
            })),
            (
                inner.clone(),
                arb_duration(),
                prop::option::of(arb_duration()),
                prop::option::of(arb_offset()),
                prop::option::of(arb_at())
            )
                .prop_map(|(expr, range, step, offset, at)| Expr::Subquery(
                    SubqueryExpr {
                        expr: Box::new(expr),
                        offset,
                        at,
                        range,
                        step,
                    }
                )),
            (
                select(functions.clone()),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(func, args)| Expr::Call(Call {
                    func,
                    args: FunctionArgs {
                        args: args.into_iter().map(Box::new).collect()
                    },
                })),
        ]
    })
}

/// The printed form of `expr` with the host matcher taken out of every selector.
fn without_host_matcher(host: &HostScope, expr: &Expr) -> String {
    let printed = expr.to_string();
    let needle = format!(",{}", host.matcher());
    let alone = format!("{{{}}}", host.matcher());
    let first = format!("{{{},", host.matcher());
    printed
        .replace(&needle, "")
        .replace(&alone, "")
        .replace(&first, "{")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let host = host();
        if let Ok(output) = host.rewrite(&text) {
            assert_scoped_output(&host, &output)?;
        }
    }

    #[test]
    fn promql_like_text_never_panics(
        text in "[a-z_(){}\\[\\]=~!\"'`,:+*/^%<>0-9 .@\\-\\\\]{0,60}"
    ) {
        let host = host();
        if let Ok(output) = host.rewrite(&text) {
            assert_scoped_output(&host, &output)?;
        }
    }

    #[test]
    fn valid_promql_is_scoped_and_otherwise_unchanged(text in vector_text()) {
        let host = host();
        let original = promql::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("generator made invalid `{text}`: {e}")))?;
        let output = host
            .rewrite(&text)
            .map_err(|e| TestCaseError::fail(format!("`{text}`: {e}")))?;
        assert_scoped_output(&host, &output)?;
        let reparsed = promql::parse(&output)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            promql::selectors(&reparsed).len(),
            promql::selectors(&original).len()
        );
        // Taking the matcher out again gives back the original expression.
        prop_assert_eq!(without_host_matcher(&host, &reparsed), original.to_string());
        // Rewriting is idempotent.
        prop_assert_eq!(host.rewrite(&output), Ok(output.clone()));
    }

    #[test]
    fn random_asts_never_panic_and_any_output_reparses(expr in arb_expr()) {
        let host = host();
        let has_or = promql::selectors(&expr)
            .iter()
            .any(|s| !s.matchers.or_matchers.is_empty());
        match host.rewrite_expr(expr) {
            Ok(output) => {
                prop_assert!(!has_or, "`or` matchers were accepted: {}", output);
                assert_scoped_output(&host, &output)?;
            }
            Err(PromqlError::OrMatchers { .. }) => prop_assert!(has_or),
            Err(_) => {}
        }
    }
}
