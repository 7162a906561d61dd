//! User rule files (SPEC §2): loading through globs, and every kind of broken file giving its
//! exact message, naming the file, the rule and the position. Each invalid fixture in
//! tests/fixtures/rules/invalid/ is paired with the message it must produce (`.expected`).

use std::path::Path;
use std::time::Duration;

use tidb_host_agent::rules::{LoadOptions, Scope, load};

/// Integration tests run from the package root, so fixture paths are relative and messages
/// do not depend on where the repository is checked out.
const FIXTURES: &str = "tests/fixtures/rules";

fn load_files(patterns: &[&str]) -> Result<tidb_host_agent::rules::RuleSet, String> {
    let options = LoadOptions {
        files: patterns.iter().map(|p| (*p).to_owned()).collect(),
        ..LoadOptions::default()
    };
    load(&options).map_err(|e| e.to_string())
}

#[test]
fn each_invalid_fixture_gives_its_exact_message() {
    let mut fixtures: Vec<_> = match std::fs::read_dir(Path::new(FIXTURES).join("invalid")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect(),
        Err(e) => panic!("{FIXTURES}/invalid: {e}"),
    };
    fixtures.sort();
    assert_eq!(fixtures.len(), 8, "{fixtures:?}");
    for fixture in fixtures {
        let expected_path = fixture.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let path = fixture.display().to_string();
        match load_files(&[&path]) {
            Ok(_) => panic!("{path} loaded without error"),
            Err(message) => assert_eq!(message, expected.trim_end(), "{path}"),
        }
    }
}

#[test]
fn a_valid_rules_directory_adds_its_alerts() {
    let rules = match load_files(&[&format!("{FIXTURES}/valid/*.yml")]) {
        Ok(rules) => rules,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rules.len(), 43);
    let user: Vec<_> = rules.rules()[41..]
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.component.as_str(),
                r.scope,
                r.for_,
                r.level.as_str(),
                r.source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        user,
        [
            (
                "TiDB.extra.NODE_disk_used_more_than_80",
                "extra",
                Scope::Host,
                Duration::from_secs(180),
                "emergency",
                "tests/fixtures/rules/valid/extra.rules.yml"
            ),
            (
                "TiDB.cluster.Region_health",
                "cluster",
                Scope::Cluster,
                Duration::from_secs(5400),
                "critical",
                "tests/fixtures/rules/valid/extra.rules.yml"
            ),
        ]
    );
}

#[test]
fn missing_files_and_bad_patterns_are_named() {
    assert_eq!(
        load_files(&[
            "tests/fixtures/rules/nope.yml",
            "tests/fixtures/rules/[",
            "tests/fixtures/rules/none/*.yml"
        ])
        .err(),
        Some(
            "[rules] files: rule file tests/fixtures/rules/nope.yml does not exist\n\
             [rules] files: `tests/fixtures/rules/[` is not a valid glob pattern: Pattern syntax \
             error near position 21: invalid range pattern"
                .to_owned()
        )
    );
}

#[test]
fn one_file_matched_twice_is_loaded_once() {
    let rules = load_files(&[
        "tests/fixtures/rules/valid/extra.rules.yml",
        "tests/fixtures/rules/valid/*.yml",
    ]);
    assert_eq!(rules.map(|r| r.len()), Ok(43));
}

/// Operators may drop in the rule files TiUP deploys: they load, each alert keyed after the
/// file's stem, and those that share a key with a built-in rule replace it.
#[test]
fn tiup_rule_files_load_as_user_rules() {
    let upstream = harness::rule_file::upstream_dir();
    let pattern = format!("{}/*.rules.yml", upstream.display());
    let rules = match load_files(&[&pattern]) {
        Ok(rules) => rules,
        Err(e) => panic!("{e}"),
    };
    // 90 upstream alerts; 21 of them have the key of a built-in rule and take its place
    // (pd.rules.yml 1, tidb.rules.yml 6, tikv.rules.yml 13, tiflash.rules.yml 1).
    let from_files = rules
        .rules()
        .iter()
        .filter(|r| r.source.starts_with(&upstream.display().to_string()))
        .count();
    assert_eq!(from_files, 90);
    assert_eq!(rules.len(), 41 + 90 - 21);
    let Some(restart) = rules.get("TiDB.tikv.TiKV_node_restart") else {
        panic!("TiKV_node_restart missing");
    };
    assert!(
        restart.source.ends_with("tikv.rules.yml"),
        "{}",
        restart.source
    );
    // bypass.rules.yml says `level: 1`, which Prometheus reads as the string "1".
    let bypass = rules.get("TiDB.bypass.tidb_alive_check_down_and_restart");
    assert_eq!(bypass.map(|r| r.level.as_str()), Some("1"));
}
