//! The configuration: a serde tree with a default for every key, parse-checked newtypes
//! and cross-field validation. Loading reports every problem at once ([`load`]).
//!
//! `config.example.toml` at the repository root documents every key; keep the two in step.

mod duration;
mod key_template;
mod load;
mod scope;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

pub use duration::Duration;
pub use key_template::{DEFAULT_KEY_TEMPLATE, KeyTemplate, key_part};
pub use load::{Problem, Problems, Purpose, load, load_for, load_str, load_str_for};
pub use scope::Scope;

/// Where the daemon looks for its config unless `-c` or `$TIDB_HOST_AGENT_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/tidb-host-agent/config.toml";

/// Where the packaged daemon publishes its snapshot, and where `status` reads it unless
/// `--snapshot` says otherwise.
pub const DEFAULT_SNAPSHOT_PATH: &str = "/run/tidb-host-agent/snapshot.json";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentConfig,
    pub log: LogConfig,
    pub host: HostConfig,
    pub prometheus: PrometheusConfig,
    pub rules: RulesConfig,
    pub ping: PingConfig,
    #[serde(rename = "output")]
    pub outputs: Vec<OutputConfig>,
    pub alertmanager: AlertmanagerConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// First part of every key.
    pub product: String,
    /// How keys are built from `{product}`, `{component}` and `{alert}`.
    pub key_template: KeyTemplate,
    /// Cycle period.
    pub interval: Duration,
    /// Rules evaluated at once.
    pub max_concurrency: usize,
    /// Persistent state: `for` timers, detected components, the forward spool.
    pub state_dir: PathBuf,
    /// Saved `for` state older than this is ignored at start.
    pub state_max_age: Duration,
    /// Host name used in outputs; empty means the system host name.
    pub hostname: String,
    /// Where the daemon publishes each snapshot (json, mode 0644) for `status` and the
    /// Zabbix include; empty means `snapshot.json` in systemd's runtime directory
    /// (`$RUNTIME_DIRECTORY`, [`DEFAULT_SNAPSHOT_PATH`] with the packaged unit), and none
    /// outside systemd.
    pub snapshot_file: PathBuf,
}

impl AgentConfig {
    /// The published snapshot's path ([`AgentConfig::snapshot_file`]), if any.
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        if !self.snapshot_file.as_os_str().is_empty() {
            return Some(self.snapshot_file.clone());
        }
        // systemd sets it from RuntimeDirectory= (one directory, in the packaged unit).
        let runtime = std::env::var_os("RUNTIME_DIRECTORY")?;
        let first = std::env::split_paths(&runtime).next()?;
        (!first.as_os_str().is_empty()).then(|| first.join("snapshot.json"))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            product: "TiDB".into(),
            key_template: KeyTemplate::default(),
            interval: Duration::from_secs(15),
            max_concurrency: 16,
            state_dir: PathBuf::from("/var/lib/tidb-host-agent"),
            state_max_age: Duration::from_secs(3600),
            hostname: String::new(),
            snapshot_file: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter directive, e.g. `info` or `tidb_host_agent=debug`.
    pub level: String,
    /// Directory for a daily-rotated log file; unset means stderr (journald).
    pub directory: Option<PathBuf>,
    /// File name prefix inside `directory`.
    pub file_prefix: String,
    /// Daily files kept in `directory`, today's included; older ones are deleted.
    pub keep: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            directory: None,
            file_prefix: "tidb-host-agent.log".into(),
            keep: 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// This host's addresses as Prometheus sees them; empty means every non-loopback
    /// interface address plus the host name.
    pub addresses: Vec<String>,
    /// The label that carries `host:port`.
    pub label: String,
    /// How the host matcher selects this host's series.
    pub matcher: HostMatcher,
    /// Components on this host; empty means detect them.
    pub components: Vec<String>,
    /// A detected component stays present this long after it was last seen.
    pub component_ttl: Duration,
    /// How often detection reruns.
    pub detect_every: Duration,
    pub cluster_reporter: ClusterReporter,
    /// component → the probe `group` and scrape `job` values that reveal it.
    pub component_map: BTreeMap<String, ComponentMatch>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            label: "instance".into(),
            matcher: HostMatcher::Pattern,
            components: Vec::new(),
            component_ttl: Duration::from_secs(24 * 3600),
            detect_every: Duration::from_secs(300),
            cluster_reporter: ClusterReporter::Auto,
            component_map: default_component_map(),
        }
    }
}

/// `[host] matcher`: how a query selects this host's series (SPEC §3 and README "Host
/// matcher").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HostMatcher {
    /// The anchored pattern on the addresses, any port: `LABEL=~"(?:a|b)(?::[0-9]+)?"`.
    #[default]
    Pattern,
    /// The exact values of the label that the pair has for the pattern, read every few
    /// minutes; the pattern until the first read, and whenever a read finds none.
    Instances,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentMatch {
    pub groups: Vec<String>,
    pub jobs: Vec<String>,
}

/// The table of SPEC §3, matching TiUP's scrape jobs and blackbox groups.
pub fn default_component_map() -> BTreeMap<String, ComponentMatch> {
    let entry = |groups: &[&str], jobs: &[&str]| ComponentMatch {
        groups: groups.iter().map(|s| s.to_string()).collect(),
        jobs: jobs.iter().map(|s| s.to_string()).collect(),
    };
    BTreeMap::from([
        ("pd".into(), entry(&["pd"], &["pd"])),
        ("tidb".into(), entry(&["tidb"], &["tidb"])),
        ("tikv".into(), entry(&["tikv"], &["tikv"])),
        ("tiflash".into(), entry(&["tiflash"], &["tiflash"])),
        (
            "node_exporter".into(),
            entry(&["node_exporter"], &["overwritten-nodes"]),
        ),
        (
            "blackbox_exporter".into(),
            entry(&["blackbox_exporter"], &[]),
        ),
        ("grafana".into(), entry(&["grafana"], &[])),
    ])
}

/// `auto`, `true` or `false` (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterReporter {
    #[default]
    Auto,
    Always,
    Never,
}

impl<'de> Deserialize<'de> for ClusterReporter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReporterVisitor;
        impl Visitor<'_> for ReporterVisitor {
            type Value = ClusterReporter;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ClusterReporter, E> {
                Ok(if v {
                    ClusterReporter::Always
                } else {
                    ClusterReporter::Never
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClusterReporter, E> {
                match v {
                    "auto" => Ok(ClusterReporter::Auto),
                    _ => Err(E::custom(format!(
                        "invalid cluster_reporter `{v}`: expected \"auto\", true or false"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(ReporterVisitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    pub servers: Vec<ServerConfig>,
    pub mode: QueryMode,
    /// Per-query timeout, also sent as the `timeout` parameter.
    pub timeout: Duration,
    /// Timeout of the `/-/ready` liveness probe.
    pub probe_timeout: Duration,
    /// Consecutive failed probes before a server counts as down.
    pub down_after: u32,
    pub on_no_data: OnNoData,
    /// Larger response bodies are a failure of that server.
    pub max_response_bytes: u64,
    /// Rules sent together in one query; 1 sends every rule on its own.
    pub rules_per_query: usize,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            mode: QueryMode::Failover,
            timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            down_after: 2,
            on_no_data: OnNoData::Hold,
            max_response_bytes: 4 * 1024 * 1024,
            rules_per_query: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    #[default]
    Failover,
    Any,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnNoData {
    #[default]
    Hold,
    Zero,
    One,
}

/// One HTTP server (Prometheus or Alertmanager): a URL string, or a table with
/// authentication and TLS options. `Debug` shows neither the URL's secrets nor header
/// values.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub url: String,
    pub basic_auth_user: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub headers: BTreeMap<String, String>,
}

impl ServerConfig {
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            basic_auth_user: None,
            basic_auth_password_file: None,
            bearer_token_file: None,
            ca_file: None,
            headers: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    url: String,
    basic_auth_user: Option<String>,
    basic_auth_password_file: Option<PathBuf>,
    bearer_token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for ServerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ServerVisitor;
        impl<'de> Visitor<'de> for ServerVisitor {
            type Value = ServerConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL string or a table with `url` and optional auth/TLS keys")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ServerConfig, E> {
                Ok(ServerConfig::from_url(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServerConfig, A::Error> {
                let t = ServerTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ServerConfig {
                    url: t.url,
                    basic_auth_user: t.basic_auth_user,
                    basic_auth_password_file: t.basic_auth_password_file,
                    bearer_token_file: t.bearer_token_file,
                    ca_file: t.ca_file,
                    headers: t.headers,
                })
            }
        }
        deserializer.deserialize_any(ServerVisitor)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Extra rule files in Prometheus' format (globs).
    pub files: Vec<String>,
    /// Keys whose rules are turned off.
    pub disable: Vec<String>,
    /// Where each key's value comes from, unless its override says otherwise.
    pub source: RuleSource,
    /// Per-key overrides of `for`, `level`, `scope` and `source`.
    #[serde(rename = "override")]
    pub overrides: BTreeMap<String, RuleOverrideConfig>,
}

/// Where a key's value comes from (SPEC §15 "Sources").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// The agent asks the pair to evaluate the rule for this host.
    #[default]
    Evaluate,
    /// The pair's own `ALERTS` series for the rule's alertname and this host.
    Alerts,
    /// `alerts` when the pair loads the same rule, else `evaluate`.
    Auto,
}

impl RuleSource {
    pub fn name(self) -> &'static str {
        match self {
            RuleSource::Evaluate => "evaluate",
            RuleSource::Alerts => "alerts",
            RuleSource::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleOverrideConfig {
    #[serde(rename = "for")]
    pub for_: Option<Duration>,
    pub level: Option<String>,
    pub scope: Option<Scope>,
    pub source: Option<RuleSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PingConfig {
    pub enabled: bool,
    pub targets: Vec<String>,
    /// Add every host address seen in `instance` labels.
    pub targets_from_prometheus: bool,
    /// Period between rounds.
    pub every: Duration,
    /// Echoes per target per round.
    pub count: u16,
    /// Spacing between one target's echoes.
    pub interval: Duration,
    pub payload_bytes: usize,
    /// An echo not answered within this is lost.
    pub timeout: Duration,
    /// Targets pinged at once.
    pub concurrency: usize,
    pub latency_threshold: Duration,
    pub loss_threshold_percent: f64,
    pub per_target_keys: bool,
    /// JSON lines of slow and lost echoes.
    pub record_file: PathBuf,
    /// The record is rotated when it grows past this.
    pub record_max_bytes: u64,
    /// Rotated records kept (`record_file.1` …).
    pub record_keep: u32,
    /// Socket receive buffer, so that thousands of replies at once are not dropped.
    pub receive_buffer_bytes: usize,
}

impl Default for PingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            targets: Vec::new(),
            targets_from_prometheus: false,
            every: Duration::from_secs(15),
            count: 10,
            interval: Duration::from_millis(40),
            payload_bytes: 16,
            timeout: Duration::from_secs(1),
            concurrency: 256,
            latency_threshold: Duration::from_secs(1),
            loss_threshold_percent: 0.0,
            per_target_keys: false,
            record_file: PathBuf::from("/var/lib/tidb-host-agent/slow-ping.jsonl"),
            record_max_bytes: 10 * 1024 * 1024,
            record_keep: 3,
            receive_buffer_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    Agent,
    Plain,
    Json,
    Prometheus,
    Falcon,
}

/// One `[[output]]`: a sink, with the fields of its `kind` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OutputConfig {
    File(FileOutput),
    Unix(UnixOutput),
    Http(HttpOutput),
    Stdout(StdoutOutput),
}

/// `kind = "file"`: the snapshot replaces the file atomically after every cycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutput {
    pub path: PathBuf,
    /// The file's permissions.
    #[serde(default = "mode_0644")]
    pub mode: u32,
    pub format: Option<FormatKind>,
    pub endpoint: Option<String>,
}

/// `kind = "unix"`: every connection gets the whole snapshot, then EOF.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixOutput {
    pub path: PathBuf,
    /// The socket's permissions.
    #[serde(default = "mode_0660")]
    pub mode: u32,
    /// How long a client may stall before it is cut off.
    #[serde(default = "one_second")]
    pub timeout: Duration,
    /// Clients served at once; more are turned away.
    #[serde(default = "max_clients")]
    pub max_clients: usize,
    pub format: Option<FormatKind>,
    pub endpoint: Option<String>,
}

/// `kind = "http"`: the snapshot is POSTed after every cycle. `Debug` shows neither the
/// URL's secrets nor header values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOutput {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
    pub format: Option<FormatKind>,
    pub endpoint: Option<String>,
}

/// `kind = "stdout"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutOutput {
    pub format: Option<FormatKind>,
    pub endpoint: Option<String>,
}

fn mode_0644() -> u32 {
    0o644
}

fn mode_0660() -> u32 {
    0o660
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

fn max_clients() -> usize {
    256
}

impl OutputConfig {
    /// The format, defaulting to `falcon` for `http` and `agent` otherwise.
    pub fn format(&self) -> FormatKind {
        let (format, default) = match self {
            OutputConfig::File(o) => (o.format, FormatKind::Agent),
            OutputConfig::Unix(o) => (o.format, FormatKind::Agent),
            OutputConfig::Http(o) => (o.format, FormatKind::Falcon),
            OutputConfig::Stdout(o) => (o.format, FormatKind::Agent),
        };
        format.unwrap_or(default)
    }

    /// The falcon `endpoint`, when set.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            OutputConfig::File(o) => o.endpoint.as_deref(),
            OutputConfig::Unix(o) => o.endpoint.as_deref(),
            OutputConfig::Http(o) => o.endpoint.as_deref(),
            OutputConfig::Stdout(o) => o.endpoint.as_deref(),
        }
    }

    /// The file or socket path, for the kinds that have one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            OutputConfig::File(o) => Some(&o.path),
            OutputConfig::Unix(o) => Some(&o.path),
            OutputConfig::Http(_) | OutputConfig::Stdout(_) => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Empty means forwarding is off.
    pub servers: Vec<ServerConfig>,
    pub poll_interval: Duration,
    /// Request timeout per server.
    pub timeout: Duration,
    /// Alertmanager matchers, e.g. `severity="critical"`.
    pub filter: Vec<String>,
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    /// Events wait here until every target took them; empty means `<state_dir>/spool`.
    pub spool_dir: Option<PathBuf>,
    /// An event still undelivered after this is dropped, with an error log.
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Spooled events kept at most; past it the oldest events are dropped first.
    pub max_events: usize,
    /// Bytes of spooled events kept at most; past it the oldest events are dropped first.
    pub max_bytes: u64,
    /// Alerts taken from one server's answer at most, the earliest started first; the
    /// rest wait until there is room.
    pub max_alerts: usize,
    /// Optional webhook receiver, e.g. "127.0.0.1:9096".
    pub listen: Option<String>,
    /// A file holding the bearer token every webhook request must carry.
    pub listen_token_file: Option<PathBuf>,
    /// Webhook connections served at once; more are closed at once.
    pub listen_max_clients: usize,
    #[serde(rename = "forward")]
    pub forwards: Vec<ForwardConfig>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            poll_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            filter: Vec::new(),
            active: true,
            silenced: false,
            inhibited: false,
            spool_dir: None,
            max_age: Duration::from_secs(24 * 3600),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            max_events: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_alerts: 2_000,
            listen: None,
            listen_token_file: None,
            listen_max_clients: 128,
            forwards: Vec::new(),
        }
    }
}

/// One `[[alertmanager.forward]]` target, with the fields of its `kind` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ForwardConfig {
    Exec(ExecForward),
    Http(HttpForward),
}

/// `kind = "exec"`: a program run for every event, never through a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecForward {
    /// Stable name used in the spool and logs; defaults to `exec-<index>`.
    pub name: Option<String>,
    /// argv, each element a template.
    pub command: Vec<String>,
    #[serde(default = "default_forward_timeout")]
    pub timeout: Duration,
}

/// `kind = "http"`: a request for every event. `Debug` shows neither the URL's secrets
/// nor header values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpForward {
    /// Stable name used in the spool and logs; defaults to `http-<index>`.
    pub name: Option<String>,
    /// The target URL (a template).
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Header values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template; default is the event JSON.
    pub body: Option<String>,
    #[serde(default = "default_forward_timeout")]
    pub timeout: Duration,
}

impl ForwardConfig {
    /// The configured name, or `<kind>-<index>`.
    pub fn name(&self, index: usize) -> String {
        match self {
            ForwardConfig::Exec(f) => f.name.clone().unwrap_or_else(|| format!("exec-{index}")),
            ForwardConfig::Http(f) => f.name.clone().unwrap_or_else(|| format!("http-{index}")),
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            ForwardConfig::Exec(f) => f.timeout,
            ForwardConfig::Http(f) => f.timeout,
        }
    }
}

fn default_method() -> String {
    "POST".into()
}

fn default_forward_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// e.g. "127.0.0.1:9555"; unset means no self-metrics endpoint.
    pub listen: Option<String>,
}

/// Header names with their values hidden, for `Debug`.
fn hidden_values(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    headers.keys().map(|k| (k.as_str(), "<hidden>")).collect()
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("url", &redacted_url(&self.url))
            .field("basic_auth_user", &self.basic_auth_user)
            .field("basic_auth_password_file", &self.basic_auth_password_file)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("ca_file", &self.ca_file)
            .field("headers", &hidden_values(&self.headers))
            .finish()
    }
}

impl fmt::Debug for HttpOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOutput")
            .field("url", &redacted_url(&self.url))
            .field("headers", &hidden_values(&self.headers))
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl fmt::Debug for HttpForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpForward")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("method", &self.method)
            .field("headers", &hidden_values(&self.headers))
            .field("body", &self.body.as_ref().map(|_| "<template>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` as logs, metric labels and error messages may show it: without user info, and
/// with any query string (which often carries a token) replaced by `?…`. Not a URL at
/// all: `<invalid URL>`, since the text itself may hold a secret.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let had_query = parsed.query().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            let mut shown = parsed.as_str().trim_end_matches('/').to_owned();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        Err(_) => "<invalid URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn debug_output_holds_no_secret() {
        let config = super::load_str(
            "[prometheus]\nservers = [{ url = \"https://u:pw@p:9090/?token=t0k\", headers = { X-Token = \"s3cret\" } }]\n\
             [[output]]\nkind = \"http\"\nurl = \"http://h/push?key=k3y\"\nheaders = { Auth = \"h3ader\" }\n\
             [alertmanager]\nservers = [\"http://a:9093\"]\n[[alertmanager.forward]]\nkind = \"http\"\n\
             url = \"http://x:y@h/hook?t=f0rward\"\nheaders = { Auth = \"f0rwardh\" }\n",
            "c.toml",
        )
        .expect("a valid config");
        let shown = format!("{config:?}");
        for secret in [
            "pw", "t0k", "s3cret", "k3y", "h3ader", "x:y", "f0rward", "f0rwardh",
        ] {
            assert!(!shown.contains(secret), "`{secret}` in {shown}");
        }
        assert!(
            shown.contains("X-Token") && shown.contains("<hidden>"),
            "{shown}"
        );
    }

    #[test]
    fn urls_lose_their_secrets_for_display() {
        assert_eq!(
            redacted_url("https://user:pw@prom.example:9090/prefix/"),
            "https://prom.example:9090/prefix"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:1988/v1/push?token=s3cret#x"),
            "http://127.0.0.1:1988/v1/push?…"
        );
        assert_eq!(redacted_url("not a url with s3cret"), "<invalid URL>");
    }
}
