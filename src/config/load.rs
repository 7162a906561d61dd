//! Reading a config file and reporting every problem in it at once.
//!
//! serde stops at the first error, so loading iterates: deserialize, note the error with
//! its position, remove the offending key, and try again. Once the typed tree builds,
//! cross-field validation adds its own problems, positioned by key path.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Document, DocumentMut, Item, TableLike};

use super::Config;
use super::validate;

/// At most this many deserialization passes; a config with more broken keys than
/// this still reports the first ones.
const MAX_PASSES: usize = 64;

/// One problem in a config file, positioned for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `output[1].format`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid configuration: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `run` and `check`: the daemon hands its snapshots to sinks, so it needs one.
    Daemon,
    /// `once`, `explain` and `alerts` print to stdout, and need no `[[output]]`.
    OneShot,
}

/// Reads and validates the config at `path` for the daemon.
pub fn load(path: &Path) -> Result<Config, Problems> {
    load_for(path, Purpose::Daemon)
}

/// Reads and validates the config at `path` for `purpose`.
pub fn load_for(path: &Path, purpose: Purpose) -> Result<Config, Problems> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str_for(&text, &name, purpose),
        Err(e) => Err(Problems(vec![Problem {
            file: name,
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])),
    }
}

/// Validates `text` as a config for the daemon; `file` names it in problems.
pub fn load_str(text: &str, file: &str) -> Result<Config, Problems> {
    load_str_for(text, file, Purpose::Daemon)
}

/// Validates `text` as a config for `purpose`; `file` names it in problems.
pub fn load_str_for(text: &str, file: &str, purpose: Purpose) -> Result<Config, Problems> {
    let original = match Document::parse(text.to_owned()) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            return Err(Problems(vec![Problem {
                file: file.to_owned(),
                line,
                column,
                key: String::new(),
                message: format!("not valid TOML: {}", e.message().trim()),
            }]));
        }
    };

    let mut problems = Vec::new();
    let mut removed: Vec<Vec<Segment>> = Vec::new();
    let mut current = text.to_owned();
    let mut config = None;
    for _ in 0..MAX_PASSES {
        let doc = match Document::parse(current.clone()) {
            Ok(doc) => doc,
            Err(_) => break, // cannot happen: we only ever remove whole keys
        };
        match toml_edit::de::from_document::<Config>(doc.clone()) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let path = e.span().and_then(|span| {
                    deepest_key_at(doc.as_table(), span.start, &mut Vec::new())
                        .map(|path| within_tagged_table(doc.as_table(), path, e.message()))
                });
                // An error on a table whose key we removed earlier ("missing field")
                // is a consequence of that problem, not a new one: drop the table too.
                if let Some(p) = &path
                    && removed.iter().any(|r| r.starts_with(p))
                {
                    let mut editable: DocumentMut = doc.into_mut();
                    if !remove_path(editable.as_table_mut(), p) {
                        break;
                    }
                    removed.push(p.clone());
                    current = editable.to_string();
                    continue;
                }
                let (line, column, key) = match &path {
                    Some(path) => {
                        let (line, column) = span_of(&original, path)
                            .map(|s| line_column(text, s.start))
                            .unwrap_or((1, 1));
                        (line, column, display_path(path))
                    }
                    None => {
                        let (line, column) = e
                            .span()
                            .map(|s| line_column(&current, s.start))
                            .unwrap_or((1, 1));
                        (line, column, String::new())
                    }
                };
                problems.push(Problem {
                    file: file.to_owned(),
                    line,
                    column,
                    key,
                    message: e.message().trim().to_owned(),
                });
                // Without a key to remove, another pass would find the same error.
                let Some(path) = path else { break };
                let mut editable: DocumentMut = doc.into_mut();
                if !remove_path(editable.as_table_mut(), &path) {
                    break;
                }
                removed.push(path);
                current = editable.to_string();
            }
        }
    }

    if let Some(config) = &config {
        // An `[[output]]` that failed to deserialize was removed: it is not missing.
        let output_removed = removed
            .iter()
            .any(|r| r.first() == Some(&Segment::key("output")));
        if purpose == Purpose::Daemon && config.outputs.is_empty() && !output_removed {
            problems.push(Problem {
                file: file.to_owned(),
                line: 1,
                column: 1,
                key: String::new(),
                message: "no [[output]] section: add at least one sink, e.g. [[output]] kind = \"stdout\"".into(),
            });
        }
        for (path, message) in validate::validate(config) {
            // A key that failed to deserialize was replaced by its default; checking
            // the default would only add noise.
            if removed
                .iter()
                .any(|r| path.starts_with(r) || r.starts_with(&path))
            {
                continue;
            }
            let (line, column) = span_of(&original, &path)
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            problems.push(Problem {
                file: file.to_owned(),
                line,
                column,
                key: display_path(&path),
                message,
            });
        }
    }

    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            Err(Problems(problems))
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    pub fn key(k: &str) -> Self {
        Segment::Key(k.to_owned())
    }
}

fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn contains(span: &Option<Range<usize>>, offset: usize) -> bool {
    span.as_ref()
        .is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

/// An error inside an `[[output]]` or `[[alertmanager.forward]]` table, whose `kind`
/// selects its fields, is reported by serde at the table's header: point at the element
/// and, where the message names one, at the key (an unknown field, a bad value) or at
/// `kind` (a field that kind needs is missing).
fn within_tagged_table(
    root: &dyn TableLike,
    mut path: Vec<Segment>,
    message: &str,
) -> Vec<Segment> {
    let mut item = None;
    let mut table = root;
    for seg in &path {
        let Segment::Key(k) = seg else { return path };
        match table.get(k) {
            Some(Item::Table(t)) => {
                table = t;
                item = None;
            }
            Some(other) => item = Some(other),
            None => return path,
        }
    }
    let Some(Item::ArrayOfTables(tables)) = item else {
        return path;
    };
    // serde points at the array, not the element: find the element that fails alone
    // with the same message.
    let fails = |element: &toml_edit::Table| {
        let mut alone = DocumentMut::new();
        for (key, value) in element.iter() {
            alone.insert(key, value.clone());
        }
        let text = alone.to_string();
        let error = match display_path(&path).as_str() {
            "output" => toml_edit::de::from_str::<super::OutputConfig>(&text).err(),
            "alertmanager.forward" => toml_edit::de::from_str::<super::ForwardConfig>(&text).err(),
            _ => None,
        };
        error.is_some_and(|e| e.message() == message)
    };
    let Some((index, element)) = tables.iter().enumerate().find(|(_, t)| fails(t)) else {
        return path;
    };
    path.push(Segment::Index(index));
    let quoted = |prefix: &str| {
        let rest = message.strip_prefix(prefix)?;
        Some(rest.split('`').next().unwrap_or_default().to_owned())
    };
    let key = if let Some(field) = quoted("unknown field `") {
        element.contains_key(&field).then_some(field)
    } else if let Some(value) = quoted("unknown variant `") {
        element
            .iter()
            .find(|(_, v)| v.as_str() == Some(value.as_str()))
            .map(|(k, _)| k.to_owned())
    } else if message.starts_with("missing field") {
        element.contains_key("kind").then(|| "kind".to_owned())
    } else {
        None
    };
    path.extend(key.map(|k| Segment::key(&k)));
    path
}

/// The path of the innermost key whose key or value holds `offset`.
fn deepest_key_at(
    table: &dyn TableLike,
    offset: usize,
    prefix: &mut Vec<Segment>,
) -> Option<Vec<Segment>> {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(|k| k.span());
        prefix.push(Segment::key(key));
        if let Some(inner) = deepest_in_item(item, offset, prefix) {
            return Some(inner);
        }
        if contains(&key_span, offset) || contains(&item.span(), offset) {
            let found = prefix.clone();
            prefix.pop();
            return Some(found);
        }
        prefix.pop();
    }
    None
}

fn deepest_in_item(item: &Item, offset: usize, prefix: &mut Vec<Segment>) -> Option<Vec<Segment>> {
    match item {
        Item::Table(t) => deepest_key_at(t, offset, prefix),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                prefix.push(Segment::Index(i));
                let found = deepest_key_at(t, offset, prefix);
                prefix.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Item::Value(toml_edit::Value::InlineTable(t)) => deepest_key_at(t, offset, prefix),
        Item::Value(toml_edit::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                if let toml_edit::Value::InlineTable(t) = v {
                    prefix.push(Segment::Index(i));
                    let found = deepest_key_at(t, offset, prefix);
                    prefix.pop();
                    if found.is_some() {
                        return found;
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// The span of the key at `path` in a parsed document (the key itself, for a caret
/// that points where the operator has to look).
fn span_of<S>(doc: &Document<S>, path: &[Segment]) -> Option<Range<usize>> {
    let mut table: &dyn TableLike = doc.as_table();
    let mut item: Option<&Item> = None;
    let mut span = None;
    for seg in path {
        match seg {
            Segment::Key(k) => {
                let t: &dyn TableLike = match item {
                    None => table,
                    Some(Item::Table(t)) => t,
                    Some(Item::Value(toml_edit::Value::InlineTable(t))) => t,
                    Some(_) => return span,
                };
                table = t;
                let (key, next) = table.get_key_value(k)?;
                span = key.span().or_else(|| next.span()).or(span);
                item = Some(next);
            }
            Segment::Index(i) => match item {
                Some(Item::ArrayOfTables(a)) => {
                    let t = a.get(*i)?;
                    span = t.span().or(span);
                    table = t;
                    item = None;
                }
                Some(Item::Value(toml_edit::Value::Array(a))) => {
                    let v = a.get(*i)?;
                    span = v.span().or(span);
                    match v {
                        toml_edit::Value::InlineTable(t) => {
                            table = t;
                            item = None;
                        }
                        _ => return span,
                    }
                }
                _ => return span,
            },
        }
    }
    span
}

fn remove_path(table: &mut dyn TableLike, path: &[Segment]) -> bool {
    match path {
        [] => false,
        [Segment::Key(k)] => table.remove(k).is_some(),
        [Segment::Key(k), rest @ ..] => match table.get_mut(k) {
            Some(item) => remove_in_item(item, rest),
            None => false,
        },
        [Segment::Index(_), ..] => false,
    }
}

fn remove_in_item(item: &mut Item, path: &[Segment]) -> bool {
    match (item, path) {
        (Item::Table(t), _) => remove_path(t, path),
        (Item::Value(toml_edit::Value::InlineTable(t)), _) => remove_path(t, path),
        // A whole `[[…]]` element (one whose `kind` was removed).
        (Item::ArrayOfTables(a), [Segment::Index(i)]) if *i < a.len() => {
            a.remove(*i);
            true
        }
        (Item::ArrayOfTables(a), [Segment::Index(i), rest @ ..]) => match a.get_mut(*i) {
            Some(t) => remove_path(t, rest),
            None => false,
        },
        (Item::Value(toml_edit::Value::Array(a)), [Segment::Index(i), rest @ ..]) => {
            match a.get_mut(*i) {
                Some(toml_edit::Value::InlineTable(t)) => remove_path(t, rest),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "[prometheus]\nservers = [\"http://127.0.0.1:9090\"]\n\n[[output]]\nkind = \"stdout\"\n";

    #[test]
    fn a_valid_config_loads() {
        let c = load_str(BASE, "c.toml").unwrap();
        assert_eq!(c.prometheus.servers[0].url, "http://127.0.0.1:9090");
        assert_eq!(c.agent.interval.get().as_secs(), 15);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_positions() {
        let text =
            format!("[agent]\ninterval = \"soon\"\nmax_concurrency = 0\nbogus = 1\n\n{BASE}");
        let problems = load_str(&text, "c.toml").unwrap_err().0;
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("c.toml:2:1: agent.interval: invalid duration `soon`"),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("c.toml:3:1: agent.max_concurrency: must be at least 1"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with("c.toml:4:1: agent.bogus: unknown field `bogus`"),
            "{lines:#?}"
        );
    }

    #[test]
    fn syntax_errors_stop_early() {
        let problems = load_str("[agent\n", "c.toml").unwrap_err().0;
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .starts_with("c.toml:1:7: not valid TOML"),
            "{}",
            problems[0]
        );
    }
}
