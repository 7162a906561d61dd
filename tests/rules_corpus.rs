//! Every alert and recording expression of every upstream rule file in tests/data/upstream
//! goes through the host rewriter (SPEC §3). Each output parses again, with the host matcher
//! on every selector; promtool accepts a rule file of all the outputs. The upstream
//! expressions that are not valid PromQL are listed below with their exact error.

use std::process::Command;

use harness::rule_file::{self, text};
use tidb_host_agent::promql::{self, HostScope};

/// Upstream expressions that are not valid PromQL: (file, alert, error).
const INVALID_UPSTREAM: [(&str, &str, &str); 1] = [(
    "variants/ti-chi-bot-tikv@0c47a1d/tikv.rules.yml",
    "TiKV_maybe_write_stall",
    "invalid PromQL: expected type vector in aggregation expression, got matrix",
)];

struct UpstreamRule {
    file: String,
    name: String,
    is_alert: bool,
    expr: String,
}

/// Every rule of every upstream file, read generically so that odd structure (re-serialised
/// files with sorted keys, other indentation) cannot hide a rule.
fn upstream_rules() -> Vec<UpstreamRule> {
    let dir = rule_file::upstream_dir();
    let mut rules = Vec::new();
    for path in rule_file::files_under(&dir) {
        let relative = path
            .strip_prefix(&dir)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let file_rules = rule_file::rules(&source).unwrap_or_else(|e| panic!("{relative}: {e}"));
        for rule in &file_rules {
            let text_of = |key: &str| text(rule, key).map(str::to_owned);
            let (name, is_alert) = match (text_of("alert"), text_of("record")) {
                (Some(alert), None) => (alert, true),
                (None, Some(record)) => (record, false),
                other => panic!("{relative}: a rule with alert/record {other:?}"),
            };
            let expr = text_of("expr").unwrap_or_else(|| panic!("{relative} {name}: no expr"));
            rules.push(UpstreamRule {
                file: relative.clone(),
                name,
                is_alert,
                expr,
            });
        }
    }
    rules
}

fn host() -> HostScope {
    match HostScope::new(HostScope::DEFAULT_LABEL, &["10.0.1.5", "tikv-1.example"]) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_upstream_expression_is_scoped_on_every_selector() {
    let rules = upstream_rules();
    assert_eq!(rules.iter().filter(|r| r.is_alert).count(), 172);
    assert_eq!(rules.iter().filter(|r| !r.is_alert).count(), 26);
    let host = host();
    let mut invalid = Vec::new();
    let mut scoped = 0;
    for rule in &rules {
        let output = match host.rewrite(&rule.expr) {
            Ok(output) => output,
            Err(e) => {
                invalid.push((rule.file.as_str(), rule.name.as_str(), e.to_string()));
                continue;
            }
        };
        let original = match promql::parse(&rule.expr) {
            Ok(expr) => expr,
            Err(e) => panic!("{} {}: rewritten but not parsed: {e}", rule.file, rule.name),
        };
        let reparsed = promql::parse(&output)
            .unwrap_or_else(|e| panic!("{} {}: output `{output}`: {e}", rule.file, rule.name));
        let selectors = promql::selectors(&reparsed);
        assert_eq!(
            selectors.len(),
            promql::selectors(&original).len(),
            "{} {}",
            rule.file,
            rule.name
        );
        assert!(
            !selectors.is_empty(),
            "{} {} has no selector",
            rule.file,
            rule.name
        );
        for selector in selectors {
            assert!(
                selector.matchers.matchers.contains(host.matcher()),
                "{} {}: `{selector}` in `{output}` lacks the host matcher",
                rule.file,
                rule.name
            );
        }
        scoped += 1;
    }
    let expected: Vec<(&str, &str, String)> = INVALID_UPSTREAM
        .iter()
        .map(|(file, name, error)| (*file, *name, (*error).to_owned()))
        .collect();
    assert_eq!(invalid, expected);
    assert_eq!(scoped, 172 + 26 - INVALID_UPSTREAM.len());
}

#[test]
fn promtool_accepts_every_rewritten_expression() {
    let host = host();
    let mut groups = String::from("groups:\n");
    let mut count = 0;
    let mut current_file = String::new();
    for rule in upstream_rules() {
        let Ok(output) = host.rewrite(&rule.expr) else {
            continue;
        };
        if rule.file != current_file {
            current_file = rule.file.clone();
            groups.push_str(&format!("- name: {}\n  rules:\n", quote(&rule.file)));
        }
        let kind = if rule.is_alert { "alert" } else { "record" };
        // The label keeps promtool's duplicate-rule lint quiet: variants repeat alert names.
        groups.push_str(&format!(
            "  - {kind}: {}\n    expr: {}\n    labels:\n      upstream_file: {}\n",
            quote(&rule.name),
            quote(&output),
            quote(&rule.file)
        ));
        count += 1;
    }
    let dir = match tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("KEEP_CORPUS").is_some())
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("rewritten.rules.yml");
    if let Err(e) = std::fs::write(&path, &groups) {
        panic!("{e}");
    }
    let output = match Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "promtool rejected the rewritten rules:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("SUCCESS: {count} rules found")),
        "{stdout}"
    );
}

/// A single-quoted YAML scalar.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
