//! Prometheus rule files read generically, as YAML values, so that odd structure
//! (re-serialised files with sorted keys, other indentation) cannot hide a rule: the
//! catalog, TiDB's upstream files in `tests/data/upstream`, and the fixtures.

use std::path::{Path, PathBuf};

use yaml_serde::Value;

/// TiDB's upstream rule files: copies kept in the repository with their sources in
/// `SOURCES.md` there, so that a clone tests itself.
pub fn upstream_dir() -> PathBuf {
    crate::repository().join("tests/data/upstream")
}

/// Every `.yml` file under `dir`, at any depth, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|x| x == "yml") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort();
    found
}

/// Every rule (alerting and recording) of a rule file's text, group after group.
pub fn rules(text: &str) -> Result<Vec<Value>, yaml_serde::Error> {
    let file: Value = yaml_serde::from_str(text)?;
    let sequence = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    };
    Ok(sequence(&file, "groups")
        .iter()
        .flat_map(|group| sequence(group, "rules"))
        .collect())
}

/// Every alerting rule of a rule file's text.
pub fn alerts(text: &str) -> Result<Vec<Value>, yaml_serde::Error> {
    let mut rules = rules(text)?;
    rules.retain(|rule| rule.get("alert").is_some());
    Ok(rules)
}

/// Every alerting rule of the file at `path`; panics naming the file if it cannot be read.
pub fn read_alerts(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    alerts(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A string field of a rule (`alert`, `expr`, `for`…) or of its `labels`/`annotations`.
pub fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
