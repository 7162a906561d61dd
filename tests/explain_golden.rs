//! `explain` over the built-in catalog for host 10.0.1.5 matches the checked-in golden file,
//! both the pure function and `tidb-host-agent explain --address 10.0.1.5`.
//! Regenerate it with `UPDATE_GOLDEN=1 cargo test --test explain_golden`, then review the diff.

use std::path::Path;
use std::process::Command;

use tidb_host_agent::commands::explain::render;
use tidb_host_agent::plan::Plan;
use tidb_host_agent::promql::HostScope;
use tidb_host_agent::rules::{LoadOptions, assemble};

const GOLDEN: &str = "tests/fixtures/explain-10.0.1.5.golden";

#[test]
fn explain_for_10_0_1_5_matches_the_golden_file() {
    let rules = match assemble(&LoadOptions::default(), &[]) {
        Ok(rules) => rules,
        Err(e) => panic!("{e}"),
    };
    let host = match HostScope::new(HostScope::DEFAULT_LABEL, &["10.0.1.5"]) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    };
    let plan = match Plan::new(&rules, host) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    };
    let actual = render(&plan);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(&path, &actual) {
            panic!("cannot write {}: {e}", path.display());
        }
        eprintln!("rewrote {GOLDEN}");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    assert!(
        actual == expected,
        "explain output differs from {GOLDEN} (UPDATE_GOLDEN=1 rewrites it):\n{}",
        first_difference(&expected, &actual)
    );
}

/// The command line gives the same text, for a config without rule files.
#[test]
fn explain_command_with_an_address_prints_the_golden_text() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let config = dir.path().join("config.toml");
    let minimal =
        "[prometheus]\nservers = [\"http://127.0.0.1:9090\"]\n\n[[output]]\nkind = \"stdout\"\n";
    if let Err(e) = std::fs::write(&config, minimal) {
        panic!("{e}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_tidb-host-agent"))
        .env_remove("TIDB_HOST_AGENT_CONFIG")
        .arg("-c")
        .arg(&config)
        .args(["explain", "--address", "10.0.1.5"])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => panic!("cannot run the agent: {e}"),
    };
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let actual = String::from_utf8_lossy(&output.stdout);
    assert!(
        actual == expected,
        "`explain --address 10.0.1.5` differs from {GOLDEN}:\n{}",
        first_difference(&expected, &actual)
    );

    // `-c` after the subcommand works too.
    let bad = Command::new(env!("CARGO_BIN_EXE_tidb-host-agent"))
        .env_remove("TIDB_HOST_AGENT_CONFIG")
        .args(["explain", "-c"])
        .arg(&config)
        .args(["--address", " "])
        .output();
    let bad = match bad {
        Ok(output) => output,
        Err(e) => panic!("cannot run the agent: {e}"),
    };
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "--address: a host address is empty\n"
    );
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    for line in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => return "only line endings differ".to_owned(),
            (e, a) if e != a => {
                return format!("line {line}:\n  expected: {e:?}\n  actual:   {a:?}");
            }
            _ => {}
        }
    }
    String::new()
}
