//! `tidb-host-agent zabbix …`: what the Zabbix agent 2 include
//! (`packaging/zabbix/tidb-host-agent.conf`) calls, one value per call, read from the
//! published snapshot.
//!
//! Zabbix agent 2 (6.0) ignores a user parameter's exit status and returns whatever the
//! command printed, stderr included, so an error is printed as `ZBX_NOTSUPPORTED: why`:
//! never a number, so a numeric item cannot take it for a value, and the template's
//! preprocessing turns it into "not supported" with that message.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use serde::Serialize;

use super::published::{self, PublishedError};
use super::{EXIT_RUNTIME, print};
use crate::evaluation::degraded;
use crate::lifecycle::exit::EXIT_NO_SNAPSHOT;
use crate::output::format::json::Document;

/// The prefix of every error this command prints.
pub const NOT_SUPPORTED: &str = "ZBX_NOTSUPPORTED";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ZabbixQuery {
    /// Low-level discovery (`tidb.alert.discovery`): `{#KEY}`, `{#COMPONENT}` and `{#LEVEL}`
    /// of every key, except the agent's own (`Agent_degraded`, see `degraded`).
    Discovery,
    /// One key's value, 0 or 1 (`tidb.alert[KEY]`); an unknown key is an error.
    Get {
        /// The key, as in the snapshot.
        key: String,
    },
    /// 1 when the agent is degraded (`Agent_degraded`), else 0 (`tidb.agent.degraded`).
    Degraded,
    /// 1 when the snapshot is missing, unreadable or stale, else 0 (`tidb.agent.stale`);
    /// never an error, so that its trigger fires when the daemon is down.
    Stale,
}

/// One discovered key, as Zabbix LLD macros.
#[derive(Serialize)]
struct Discovered<'a> {
    #[serde(rename = "{#KEY}")]
    key: &'a str,
    #[serde(rename = "{#COMPONENT}")]
    component: &'a str,
    #[serde(rename = "{#LEVEL}")]
    level: &'a str,
}

pub fn run(path: &Path, query: &ZabbixQuery) -> ExitCode {
    let read = published::read(path, Timestamp::now());
    match (query, read) {
        (ZabbixQuery::Stale, read) => print(if read.is_ok() { b"0\n" } else { b"1\n" }),
        (_, Err(e)) => not_supported(&no_snapshot(&e), EXIT_NO_SNAPSHOT),
        (ZabbixQuery::Discovery, Ok(doc)) => print(&discovery(&doc)),
        (ZabbixQuery::Get { key }, Ok(doc)) => {
            match doc.values.iter().find(|v| v.key == key.as_str()) {
                Some(v) => print(format!("{}\n", v.value).as_bytes()),
                None => not_supported(
                    &format!(
                        "no key {key:?} in the snapshot {} (see `tidb-host-agent status`)",
                        path.display()
                    ),
                    EXIT_RUNTIME,
                ),
            }
        }
        (ZabbixQuery::Degraded, Ok(doc)) => print(if doc.degraded.is_degraded() {
            b"1\n"
        } else {
            b"0\n"
        }),
    }
}

fn no_snapshot(e: &PublishedError) -> String {
    crate::error::chain(e)
}

/// `ZBX_NOTSUPPORTED: why` on stdout (what Zabbix reads) and the exit code for a shell.
fn not_supported(why: &str, code: u8) -> ExitCode {
    let _ = print(format!("{NOT_SUPPORTED}: {why}\n").as_bytes());
    ExitCode::from(code)
}

/// The LLD array: one object per key of the snapshot, but the agent's own.
fn discovery(doc: &Document<'_>) -> Vec<u8> {
    let keys: Vec<Discovered<'_>> = doc
        .values
        .iter()
        .filter(|v| v.component != degraded::COMPONENT)
        .map(|v| Discovered {
            key: &v.key,
            component: &v.component,
            level: &v.level,
        })
        .collect();
    let mut out = serde_json::to_vec(&keys).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format;

    #[test]
    fn discovery_names_every_key_with_its_component_and_level() {
        let bytes = format::render(
            crate::config::FormatKind::Json,
            &format::fixture::snapshot(),
            &Default::default(),
        );
        let doc = Document::parse(&bytes).unwrap();
        assert_eq!(
            String::from_utf8(discovery(&doc)).unwrap(),
            concat!(
                r#"[{"{#KEY}":"TiDB.pd.PD_server_is_down","{#COMPONENT}":"pd","{#LEVEL}":"emergency"},"#,
                r#"{"{#KEY}":"TiDB.tikv.TiKV_server_is_down","{#COMPONENT}":"tikv","{#LEVEL}":"emergency"}]"#,
                "\n"
            )
        );
    }
}
