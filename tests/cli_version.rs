//! `--version` (and `-V`) print the program's name and version, and `--help` lists the
//! flag: operators and the package checks rely on both.

use std::process::{Command, Output};

fn agent(arg: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidb-host-agent"))
        .arg(arg)
        .env_remove("TIDB_HOST_AGENT_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running tidb-host-agent {arg}: {e}"))
}

#[test]
fn version_prints_name_and_version_and_exits_0() {
    let want = format!("tidb-host-agent {}\n", env!("CARGO_PKG_VERSION"));
    for arg in ["--version", "-V"] {
        let out = agent(arg);
        assert_eq!(out.status.code(), Some(0), "{arg}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{arg}");
        assert!(out.stderr.is_empty(), "{arg}: {out:?}");
    }
}

#[test]
fn help_lists_the_version_flag() {
    let out = agent("--help");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("-V, --version"))
        .unwrap_or_else(|| panic!("no -V, --version line in:\n{help}"));
    assert!(line.contains("Print version"), "{line}");
}
