//! TiDB's own alert rule files (tests/data/upstream/*.rules.yml, as TiUP deploys them) for
//! the sandbox Prometheus, opt-in ([`super::SandboxOptions::upstream_rules`]). The copies
//! keep every expression as published; only `for:` is shortened to `0s`, so that alerts
//! follow a fault at once, as the agents' `for = "0s"` overrides do.

use std::path::{Path, PathBuf};

/// Writes the shortened copies into `dir` and returns their paths.
pub fn write_copies(dir: &Path) -> Vec<PathBuf> {
    let upstream = crate::repository().join("tests/data/upstream");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&upstream)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", upstream.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    sources.sort();
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    sources
        .iter()
        .map(|source| {
            let text = std::fs::read_to_string(source)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
            let copy = dir.join(source.file_name().unwrap_or_default());
            std::fs::write(&copy, without_for(&text))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
            copy
        })
        .collect()
}

/// `text` with every rule's `for:` set to `0s`.
fn without_for(text: &str) -> String {
    text.lines()
        .map(|line| match line.trim_start().strip_prefix("for:") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: 0s")
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The `rule_files:` section that loads `files`.
pub fn section(files: &[PathBuf]) -> String {
    let mut out = String::from("\nrule_files:\n");
    for f in files {
        out.push_str(&format!("  - '{}'\n", f.display()));
    }
    out
}
