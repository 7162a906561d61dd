//! The agent under test, one process per sandbox host: its config, its snapshots (the json
//! file sink), its self-metrics and restarts, and the bounded waits on what they show.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use harness::agent::Agent;
use harness::block::free_port;
use harness::catalog;
use harness::http::http_get;
use harness::process::Signal;
use harness::sandbox::{Host, Sandbox, Server, WAIT_LIMIT};
use harness::wait::Wait;
use serde::Deserialize;

use crate::expect::{self, Expected, Reading, State, diff};

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

const POLL: Duration = Duration::from_millis(50);
/// After a match, this many further snapshots of every agent must carry the same values.
const STABLE_SNAPSHOTS: usize = 2;
/// SPEC §12: SIGTERM to exit within 5 s.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// How one agent is configured. Defaults: both servers, `failover`, `hold`, a 1 s cycle,
/// a 2 s query timeout, and `for = "0s"` on every rule so values follow the servers at once.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    host: Host,
    ip: Ipv4Addr,
    name: String,
    servers: Vec<String>,
    mode: &'static str,
    on_no_data: &'static str,
    timeout: &'static str,
    fors: BTreeMap<String, String>,
    components: Option<Vec<String>>,
    cluster_reporter: Option<bool>,
    max_response_bytes: Option<u64>,
    rules_per_query: Option<usize>,
    /// A user rule file's text, loaded beside the catalog.
    rules_file: Option<String>,
    /// `[rules] source`, when set.
    source: Option<&'static str>,
    /// `[host] matcher`, when set.
    matcher: Option<&'static str>,
}

impl AgentSpec {
    pub fn new(sb: &Sandbox, host: Host) -> AgentSpec {
        AgentSpec {
            host,
            ip: sb.ip(host),
            name: format!("host-{}", host.last_octet()),
            servers: Server::ALL.iter().map(|s| sb.server(*s).url()).collect(),
            mode: "failover",
            on_no_data: "hold",
            timeout: "2s",
            fors: catalog::promql_rules()
                .map(|r| (r.key.clone(), "0s".to_string()))
                .collect(),
            components: None,
            cluster_reporter: None,
            max_response_bytes: None,
            rules_per_query: None,
            rules_file: None,
            source: None,
            matcher: None,
        }
    }

    /// `[rules] source`: `evaluate`, `alerts` or `auto`.
    pub fn source(mut self, source: &'static str) -> AgentSpec {
        self.source = Some(source);
        self
    }

    /// The name in failure messages and in the snapshot's `host`.
    /// `[host] matcher`: `pattern` or `instances`.
    pub fn matcher(mut self, matcher: &'static str) -> AgentSpec {
        self.matcher = Some(matcher);
        self
    }

    pub fn named(mut self, name: &str) -> AgentSpec {
        self.name = format!("host-{}-{name}", self.host.last_octet());
        self
    }

    pub fn servers(mut self, urls: Vec<String>) -> AgentSpec {
        self.servers = urls;
        self
    }

    pub fn mode(mut self, mode: &'static str) -> AgentSpec {
        self.mode = mode;
        self
    }

    pub fn on_no_data(mut self, on_no_data: &'static str) -> AgentSpec {
        self.on_no_data = on_no_data;
        self
    }

    pub fn rule_for(mut self, key: &str, duration: &str) -> AgentSpec {
        assert!(self.fors.contains_key(key), "no rule {key}");
        self.fors.insert(key.to_string(), duration.to_string());
        self
    }

    pub fn components(mut self, components: &[&str]) -> AgentSpec {
        self.components = Some(components.iter().map(|c| c.to_string()).collect());
        self
    }

    pub fn cluster_reporter(mut self, reporter: bool) -> AgentSpec {
        self.cluster_reporter = Some(reporter);
        self
    }

    pub fn max_response_bytes(mut self, bytes: u64) -> AgentSpec {
        self.max_response_bytes = Some(bytes);
        self
    }

    pub fn rules_per_query(mut self, rules: usize) -> AgentSpec {
        self.rules_per_query = Some(rules);
        self
    }

    pub fn rules_file(mut self, yaml: &str) -> AgentSpec {
        self.rules_file = Some(yaml.to_string());
        self
    }

    /// The config file; `{dir}` is the agent's own temp dir.
    fn config(&self, metrics_listen: &str, rules_file: Option<&std::path::Path>) -> String {
        let quoted = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!(
            "[agent]
interval = \"1s\"
state_dir = \"{{dir}}/state\"
hostname = \"{name}\"
snapshot_file = \"{{dir}}/published.json\"

[host]
addresses = [\"{ip}\"]
",
            name = self.name,
            ip = self.ip,
        );
        if let Some(components) = &self.components {
            let _ = writeln!(out, "components = [{}]", quoted(components));
        }
        if let Some(reporter) = self.cluster_reporter {
            let _ = writeln!(out, "cluster_reporter = {reporter}");
        }
        if let Some(matcher) = self.matcher {
            let _ = writeln!(out, "matcher = \"{matcher}\"");
        }
        let _ = write!(
            out,
            "
[prometheus]
servers = [{servers}]
mode = \"{mode}\"
timeout = \"{timeout}\"
probe_timeout = \"1s\"
down_after = 2
on_no_data = \"{on_no_data}\"
",
            servers = quoted(&self.servers),
            mode = self.mode,
            timeout = self.timeout,
            on_no_data = self.on_no_data,
        );
        if let Some(bytes) = self.max_response_bytes {
            let _ = writeln!(out, "max_response_bytes = {bytes}");
        }
        if let Some(rules) = self.rules_per_query {
            let _ = writeln!(out, "rules_per_query = {rules}");
        }
        let _ = write!(
            out,
            "
[[output]]
kind = \"file\"
format = \"json\"
path = \"{{dir}}/snapshot.json\"

[metrics]
listen = \"{metrics_listen}\"
"
        );
        if rules_file.is_some() || self.source.is_some() {
            out.push_str("\n[rules]\n");
        }
        if let Some(path) = rules_file {
            let _ = writeln!(out, "files = [{:?}]", path.display().to_string());
        }
        if let Some(source) = self.source {
            let _ = writeln!(out, "source = \"{source}\"");
        }
        for (key, duration) in &self.fors {
            let _ = write!(out, "\n[rules.override.{key:?}]\nfor = \"{duration}\"\n");
        }
        out
    }

    pub fn start(self) -> HostAgent {
        let ip = self.ip.to_string();
        let metrics_addr = format!("{ip}:{}", free_port(self.ip));
        let rules_dir = self.rules_file.as_ref().map(|yaml| {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join("user.rules.yml"), yaml).expect("write the rule file");
            dir
        });
        let rules_path = rules_dir.as_ref().map(|d| d.path().join("user.rules.yml"));
        let agent = Agent::start(AGENT, &self.config(&metrics_addr, rules_path.as_deref()));
        HostAgent {
            host: self.host,
            name: self.name,
            agent,
            metrics_addr,
            _rules_dir: rules_dir,
        }
    }
}

/// The default agent of each sandbox host.
pub fn start_per_host(sb: &Sandbox, spec: impl Fn(AgentSpec) -> AgentSpec) -> Vec<HostAgent> {
    Host::ALL
        .iter()
        .map(|host| spec(AgentSpec::new(sb, *host)).start())
        .collect()
}

/// Which version of the snapshot file: each write renames a new file into place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    mtime_ns: i64,
    mtime: i64,
}

/// One snapshot as the json sink wrote it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub stamp: Stamp,
    pub timestamp: String,
    pub readings: BTreeMap<String, Reading>,
    pub since: BTreeMap<String, Option<String>>,
}

impl Snapshot {
    pub fn reading(&self, key: &str) -> Option<Reading> {
        self.readings.get(key).copied()
    }

    pub fn values(&self) -> BTreeMap<&str, u8> {
        self.readings
            .iter()
            .map(|(k, r)| (k.as_str(), r.value))
            .collect()
    }
}

#[derive(Deserialize)]
struct Document {
    host: String,
    timestamp: String,
    values: Vec<DocumentValue>,
}

#[derive(Deserialize)]
struct DocumentValue {
    key: String,
    value: u8,
    state: String,
    since: Option<String>,
}

/// A running agent for one host.
pub struct HostAgent {
    pub host: Host,
    pub name: String,
    agent: Agent,
    metrics_addr: String,
    /// Holds the user rule file, if any, for the agent's life.
    _rules_dir: Option<tempfile::TempDir>,
}

impl HostAgent {
    /// The snapshot file now, if one was written.
    pub fn latest(&self) -> Option<Snapshot> {
        let path = self.agent.path("snapshot.json");
        let file = std::fs::File::open(&path).ok()?;
        // Metadata and content of the same file, even if a new one is renamed in meanwhile.
        let meta = file.metadata().ok()?;
        let text = std::io::read_to_string(file).ok()?;
        let doc: Document = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{}: the snapshot file is not a whole json document ({e}): {text:?}",
                self.name
            )
        });
        assert_eq!(
            doc.host, self.name,
            "the snapshot's host is the configured one"
        );
        let mut readings = BTreeMap::new();
        let mut since = BTreeMap::new();
        for v in doc.values {
            let state = State::parse(&v.state)
                .unwrap_or_else(|| panic!("{}: unknown state {:?}", self.name, v.state));
            assert!(
                v.value <= 1,
                "{}: {} has value {}",
                self.name,
                v.key,
                v.value
            );
            let previous = readings.insert(
                v.key.clone(),
                Reading {
                    value: v.value,
                    state,
                },
            );
            assert!(previous.is_none(), "{}: {} twice", self.name, v.key);
            since.insert(v.key, v.since);
        }
        Some(Snapshot {
            stamp: Stamp {
                ino: meta.ino(),
                mtime_ns: meta.mtime_nsec(),
                mtime: meta.mtime(),
            },
            timestamp: doc.timestamp,
            readings,
            since,
        })
    }

    pub fn stamp(&self) -> Option<Stamp> {
        self.latest().map(|s| s.stamp)
    }

    /// The first snapshot written after `after` (any snapshot if `None`).
    pub async fn next_after(&self, after: Option<Stamp>) -> Snapshot {
        let what = format!("{}: a new snapshot", self.name);
        let log = || format!("agent log tail:\n{}", self.log_tail());
        Wait::new(WAIT_LIMIT, &what)
            .every(POLL)
            .on_timeout(&log)
            .until(|| self.latest().filter(|s| Some(s.stamp) != after))
            .await
    }

    /// The next `n` snapshots after the current one.
    pub async fn next_snapshots(&self, n: usize) -> Vec<Snapshot> {
        let mut stamp = self.stamp();
        let mut out = Vec::new();
        for _ in 0..n {
            let snapshot = self.next_after(stamp).await;
            stamp = Some(snapshot.stamp);
            out.push(snapshot);
        }
        out
    }

    /// SIGTERM, a clean exit within 5 s, and a new process on the same config and state.
    pub fn restart(&mut self) {
        self.agent.signal(Signal::TERM);
        match self.agent.wait_exit(EXIT_LIMIT) {
            Some(status) => assert!(status.success(), "{}: exited with {status}", self.name),
            None => panic!("{}: still running {EXIT_LIMIT:?} after SIGTERM", self.name),
        }
        self.agent.spawn(false);
    }

    /// Still running: never crashed, never panicked.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.agent.try_exit() {
            panic!(
                "{}: exited with {status}\nlog tail:\n{}",
                self.name,
                self.log_tail()
            );
        }
        assert!(
            !self.log().contains("panicked"),
            "{}: panicked\n{}",
            self.name,
            self.log_tail()
        );
    }

    pub fn log(&self) -> String {
        self.agent.log_text()
    }

    /// The snapshot the daemon publishes for `status` and `zabbix` (`[agent] snapshot_file`).
    pub fn published(&self) -> std::path::PathBuf {
        self.agent.path("published.json")
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.agent.config.clone()
    }

    /// The agent's last log lines, without the HTTP libraries' debug lines.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains(" DEBUG ") || l.contains("tidb_host_agent"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The self-metrics text (OpenMetrics), once the agent serves it.
    pub fn pid(&self) -> u32 {
        self.agent.pid()
    }

    /// The self-metrics text (OpenMetrics), once the agent serves it.
    pub async fn metrics(&self) -> String {
        let what = format!("{}: self-metrics on {}", self.name, self.metrics_addr);
        let log = || format!("log tail:\n{}", self.log_tail());
        Wait::new(WAIT_LIMIT, &what)
            .every(POLL)
            .on_timeout(&log)
            .until(|| http_get(&self.metrics_addr, "/metrics"))
            .await
    }

    /// Queries sent to `server` (its URL) so far.
    pub async fn queries_to(&self, server_url: &str) -> f64 {
        sample(
            &self.metrics().await,
            "tidb_host_agent_query_duration_seconds_count",
            &[("server", server_url)],
        )
        .unwrap_or(0.0)
    }
}

/// The value of one series in an OpenMetrics text, selected by name and labels.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let has = |k: &str, v: &str| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            };
            (series_name == name && labels.iter().all(|(k, v)| has(k, v)))
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// A histogram of the self-metrics: cumulative buckets, sum and count.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    pub fn read(text: &str, name: &str, labels: &[(&str, &str)]) -> Histogram {
        let mut buckets = Vec::new();
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "+Inf",
        ] {
            let mut with_le = labels.to_vec();
            with_le.push(("le", le));
            if let Some(count) = sample(text, &format!("{name}_bucket"), &with_le) {
                buckets.push((le.parse().unwrap_or(f64::INFINITY), count));
            }
        }
        Histogram {
            buckets,
            sum: sample(text, &format!("{name}_sum"), labels).unwrap_or(0.0),
            count: sample(text, &format!("{name}_count"), labels).unwrap_or(0.0),
        }
    }

    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, b)| *b);
                    (*le, n - before)
                })
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The smallest bucket bound that holds every observation.
    pub fn max_bound(&self) -> f64 {
        self.buckets
            .iter()
            .find(|(_, n)| *n >= self.count)
            .map_or(f64::INFINITY, |(le, _)| *le)
    }

    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }
}

/// Waits until every agent's latest snapshot reads exactly as expected (keys, values and
/// states), then checks that each agent's next snapshots keep the same values.
pub async fn wait_until(expectations: &[(&HostAgent, Expected)], what: &str) {
    let logs = || {
        let logs: Vec<String> = expectations
            .iter()
            .map(|(a, _)| format!("--- {} log tail:\n{}", a.name, a.log_tail()))
            .collect();
        logs.join("\n")
    };
    Wait::new(WAIT_LIMIT, what)
        .every(POLL)
        .on_timeout(&logs)
        .until(|| {
            let mut mismatches = Vec::new();
            for (agent, expected) in expectations {
                match agent.latest() {
                    Some(snapshot) if snapshot.readings == expected.0 => {}
                    Some(snapshot) => mismatches.push(format!(
                        "{} (snapshot {}): {}",
                        agent.name,
                        snapshot.timestamp,
                        diff(expected, &snapshot.readings)
                    )),
                    None => mismatches.push(format!("{}: no snapshot yet", agent.name)),
                }
            }
            if mismatches.is_empty() {
                Ok(())
            } else {
                Err(format!("still:\n{}", mismatches.join("\n")))
            }
        })
        .await;
    // Every agent writes its next snapshots at the same time: wait for them together.
    let next = futures::future::join_all(
        expectations
            .iter()
            .map(|(agent, _)| agent.next_snapshots(STABLE_SNAPSHOTS)),
    )
    .await;
    for ((agent, expected), snapshots) in expectations.iter().zip(next) {
        for snapshot in snapshots {
            assert_eq!(
                snapshot.values(),
                expected.values(),
                "{what}: {} matched, then snapshot {} changed: {}\n--- {} log tail:\n{}",
                agent.name,
                snapshot.timestamp,
                diff(expected, &snapshot.readings),
                agent.name,
                agent.log_tail()
            );
        }
    }
}

/// `wait_until` with every per-host agent expected to be healthy except as `adjust` says.
pub async fn wait_for_hosts(
    sb: &Sandbox,
    agents: &[HostAgent],
    adjust: impl Fn(Host, Expected) -> Expected,
    what: &str,
) {
    let expectations: Vec<(&HostAgent, Expected)> = agents
        .iter()
        .map(|a| (a, adjust(a.host, expect::healthy(sb, a.host))))
        .collect();
    wait_until(&expectations, what).await;
}
