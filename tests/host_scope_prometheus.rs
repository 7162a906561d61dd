//! The host rewriter against a real Prometheus (SPEC §3), in the harness's sandbox:
//! Debian's Prometheus scraping fake TiDB components and blackbox probes on hosts .1, .2 and
//! .10 of a 127.N.1.0/24 block.
//!
//! For every selector-level catalog rule (one whose result series keep the `instance` of
//! their inputs), the query rewritten for host .1 returns exactly the series of the unscoped
//! query whose `instance` is on .1: never one of .10, whose address has .1 as a prefix. Both
//! queries are evaluated at the same instant, so values must match too. Component
//! detection's query, scoped the same way, finds exactly the components of its host.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use harness::sandbox::{Host, Sandbox, Server, WAIT_LIMIT};
use harness::wait::Wait;
use promql_parser::parser::token;
use promql_parser::parser::{Expr, LabelModifier};
use serde_json::Value;
use tidb_host_agent::config::default_component_map;
use tidb_host_agent::discovery::components;
use tidb_host_agent::plan::Plan;
use tidb_host_agent::prometheus::QueryAnswer;
use tidb_host_agent::promql::{self, HostScope};
use tidb_host_agent::rules::{LoadOptions, Rule, Scope, assemble};

/// How far behind now queries are evaluated, in seconds (the sandbox scrapes every second).
const LAG: f64 = 2.0;

/// One series of an instant-query answer: its labels and its value as Prometheus wrote it
/// (a string, so that NaN compares equal to NaN).
type Series = (BTreeMap<String, String>, String);

fn http() -> reqwest::Client {
    match reqwest::Client::builder().no_proxy().build() {
        Ok(client) => client,
        Err(e) => panic!("{e}"),
    }
}

/// An instant query evaluated at `time`, so that two queries see the same data.
async fn query_at(http: &reqwest::Client, base: &str, promql: &str, time: f64) -> Vec<Series> {
    let time = format!("{time:.3}");
    let response = http
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", promql), ("time", time.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{base}: {e}"));
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{base}: `{promql}`: {e}"));
    assert_eq!(body["status"], "success", "`{promql}`: {body}");
    assert_eq!(body["data"]["resultType"], "vector", "`{promql}`: {body}");
    let mut series: Vec<Series> = body["data"]["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| {
            let labels = item["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            (
                labels,
                item["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    series.sort();
    series
}

/// The host part of an `instance` label (`127.1.1.10:20180` → `127.1.1.10`).
fn instance_host(series: &Series) -> &str {
    let instance = series.0.get("instance").map(String::as_str).unwrap_or("");
    instance.rsplit_once(':').map_or(instance, |(host, _)| host)
}

/// Whether every result series of `expr` keeps the `instance` label of its inputs, so that
/// scoping the inputs to a host equals keeping the outputs of that host.
fn selector_level(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::NumberLiteral(_) => true,
        Expr::StringLiteral(_) | Expr::Extension(_) => false,
        Expr::Paren(paren) => selector_level(&paren.expr),
        Expr::Unary(unary) => selector_level(&unary.expr),
        Expr::Subquery(subquery) => selector_level(&subquery.expr),
        Expr::Call(call) => {
            ![
                "absent",
                "absent_over_time",
                "scalar",
                "vector",
                "label_replace",
                "label_join",
            ]
            .contains(&call.func.name)
                && call.args.args.iter().all(|arg| selector_level(arg))
        }
        Expr::Aggregate(aggregate) => {
            matches!(&aggregate.modifier, Some(LabelModifier::Include(labels))
                if labels.labels.iter().any(|l| l == "instance"))
                && aggregate
                    .param
                    .as_deref()
                    .is_none_or(|p| promql::selectors(p).is_empty())
                && selector_level(&aggregate.expr)
        }
        Expr::Binary(binary) => {
            let scalar_side = promql::selectors(&binary.lhs).is_empty()
                || promql::selectors(&binary.rhs).is_empty();
            let matches_on_instance =
                match binary.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    None => true,
                    Some(LabelModifier::Include(on)) => on.labels.iter().any(|l| l == "instance"),
                    Some(LabelModifier::Exclude(ignoring)) => {
                        !ignoring.labels.iter().any(|l| l == "instance")
                    }
                };
            (scalar_side || matches_on_instance)
                && selector_level(&binary.lhs)
                && selector_level(&binary.rhs)
        }
    }
}

/// The rule without its final threshold (`changes(x[5m]) > 0` → `changes(x[5m])`): in a
/// healthy cluster it returns a series per target, where the rule itself returns none.
fn value_expression(expr: &Expr) -> Option<String> {
    let comparisons = [
        token::T_EQLC,
        token::T_NEQ,
        token::T_LSS,
        token::T_GTR,
        token::T_LTE,
        token::T_GTE,
    ];
    match expr {
        Expr::Paren(paren) => value_expression(&paren.expr),
        Expr::Binary(binary)
            if comparisons.contains(&binary.op.id())
                && promql::selectors(&binary.rhs).is_empty() =>
        {
            Some(binary.lhs.to_string())
        }
        _ => None,
    }
}

fn catalog_host_rules() -> Vec<Rule> {
    let rules = match assemble(&LoadOptions::default(), &[]) {
        Ok(rules) => rules,
        Err(e) => panic!("{e}"),
    };
    rules
        .rules()
        .iter()
        .filter(|r| r.scope == Scope::Host)
        .cloned()
        .collect()
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The components running on `host`: its fakes, plus the blackbox exporter every host has.
fn components_on(sb: &Sandbox, host: Host) -> BTreeSet<&'static str> {
    let mut components: BTreeSet<&str> = sb
        .fakes()
        .iter()
        .filter(|fake| fake.host() == host)
        .map(|fake| fake.component().name())
        .collect();
    components.insert("blackbox_exporter");
    components
}

/// Waits (bounded) until `promql`, evaluated [`LAG`] seconds back, returns `count` series.
async fn wait_visible(http: &reqwest::Client, base: &str, promql: &str, count: usize) {
    let what = format!("`{promql}` evaluated {LAG}s back to give {count} series");
    Wait::new(WAIT_LIMIT, &what)
        .every(std::time::Duration::from_millis(200))
        .until_async(|| async {
            let found = query_at(http, base, promql, now_seconds() - LAG).await;
            if found.len() == count {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        })
        .await;
}

#[tokio::test]
async fn rewritten_rules_see_exactly_the_series_of_their_host() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let one = sb.ip(Host::One).to_string();
    let ten = sb.ip(Host::Ten).to_string();
    let http = http();
    let base = sb.server(Server::A).url();

    // Make two rules fire on .1 and on .10 at once, leaving the other metrics in place:
    // Node_exporter_server_is_down and TiDB_node_restart.
    for host in [Host::One, Host::Ten] {
        sb.fake(sb.addr(host, 9100)).stop().await;
        sb.fake(sb.addr(host, 10080)).restart().await;
    }
    let node_down = r#"probe_success{group="node_exporter"} == 0"#;
    let tidb_restarted = r#"changes(process_start_time_seconds{job="tidb"}[5m]) > 0"#;
    wait_visible(&http, &base, node_down, 2).await;
    wait_visible(&http, &base, tidb_restarted, 2).await;
    // `increase`, `rate` and `changes` need two samples in their window: wait until every
    // target has been scraped three times by the instant the comparisons look at.
    let (targets, _, _) = sb.expected_counts(Server::A);
    wait_visible(&http, &base, "count_over_time(up[10m]) >= 3", targets).await;

    let host = match HostScope::new("instance", &[one.as_str()]) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    };
    let (on_one, on_ten) = (components_on(&sb, Host::One), components_on(&sb, Host::Ten));
    let rules = catalog_host_rules();
    let mut not_selector_level = Vec::new();
    let mut compared = 0;
    for rule in &rules {
        let expr = match promql::parse(&rule.expr) {
            Ok(expr) => expr,
            Err(e) => panic!("{}: {e}", rule.key),
        };
        if !selector_level(&expr) {
            not_selector_level.push(rule.key.as_str());
            continue;
        }
        let value = value_expression(&expr)
            .unwrap_or_else(|| panic!("{}: no threshold to take off", rule.key));
        for (query, is_value) in [(rule.expr.clone(), false), (value, true)] {
            let rewritten = host
                .rewrite(&query)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.key));
            // Both at one instant: the same samples, so the same values.
            let time = now_seconds() - LAG;
            let unscoped = query_at(&http, &base, &query, time).await;
            let scoped = query_at(&http, &base, &rewritten, time).await;
            let expected: Vec<Series> = unscoped
                .iter()
                .filter(|s| instance_host(s) == one)
                .cloned()
                .collect();
            assert_eq!(
                scoped, expected,
                "{}: `{rewritten}` is not the .1 part of `{query}`",
                rule.key
            );
            assert!(
                !scoped.iter().any(|s| instance_host(s) == ten),
                "{}: `{rewritten}` returned a series of {ten}",
                rule.key
            );
            // Not vacuous: without its threshold a rule returns a series per target, so
            // the query sees .1 and .10 wherever their components run.
            if is_value && on_one.contains(rule.component.as_str()) {
                assert!(
                    !scoped.is_empty(),
                    "{}: `{rewritten}` gave nothing",
                    rule.key
                );
            }
            if is_value && on_ten.contains(rule.component.as_str()) {
                assert!(
                    unscoped.iter().any(|s| instance_host(s) == ten),
                    "{}: `{query}` has no series of {ten} to leave out: {unscoped:?}",
                    rule.key
                );
            }
            compared += 1;
        }
    }
    // Aggregations that drop `instance` cannot be compared series by series.
    assert_eq!(
        not_selector_level,
        [
            "TiDB.tidb.TiDB_ddl_waiting_jobs",
            "TiDB.tikv.TiKV_GC_can_not_work",
            "TiDB.tikv.TiKV_approximate_region_size",
        ]
    );
    assert_eq!(compared, 2 * (rules.len() - 3));

    // The two firing rules, spelled out: only .1's instance, never .10's.
    for (rule, port) in [(node_down, 9100), (tidb_restarted, 10080)] {
        let rewritten = host.rewrite(rule).unwrap_or_else(|e| panic!("{e}"));
        let time = now_seconds() - LAG;
        let instances = |series: Vec<Series>| -> Vec<String> {
            series
                .iter()
                .map(|s| s.0.get("instance").cloned().unwrap_or_default())
                .collect()
        };
        assert_eq!(
            instances(query_at(&http, &base, rule, time).await),
            [format!("{ten}:{port}"), format!("{one}:{port}")]
        );
        assert_eq!(
            instances(query_at(&http, &base, &rewritten, time).await),
            [format!("{one}:{port}")]
        );
    }
}

/// Component detection's one query (SPEC §3), as the plan builds it for host .10, against
/// the sandbox's Prometheus: both its halves answer (the `group`s of the host's probes and
/// the `job`s of its targets), and they map to exactly the components running on .10, none
/// of .1's, whose address is a prefix of .10's.
#[tokio::test]
async fn detection_finds_its_host_components_in_one_query() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let ten = sb.ip(Host::Ten).to_string();
    let host = match HostScope::new("instance", &[ten.as_str()]) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    };
    let set = match assemble(&LoadOptions::default(), &[]) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    };
    let plan = match Plan::new(&set, host) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    };
    let answer = QueryAnswer {
        series: sb
            .query(Server::A, &plan.detect)
            .await
            .into_iter()
            .map(|sample| sample.labels)
            .collect(),
        values: Vec::new(),
    };
    for label in ["group", "job"] {
        assert!(
            answer.series.iter().any(|s| s.contains_key(label)),
            "`{}` gave no series with a {label}: {:?}",
            plan.detect,
            answer.series
        );
    }
    let found = components::from_answer(&default_component_map(), &answer);
    let expected: BTreeSet<String> = components_on(&sb, Host::Ten)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected, "`{}`: {:?}", plan.detect, answer.series);
}
