//! Cross-field checks that serde cannot express. Each problem carries the key path
//! it is about, so the loader can point at the line.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::load::Segment;
use super::{Config, ForwardConfig, OutputConfig, ServerConfig};

type Found = Vec<(Vec<Segment>, String)>;

fn path(keys: &[&str]) -> Vec<Segment> {
    keys.iter().map(|k| Segment::key(k)).collect()
}

fn indexed(table: &str, i: usize, key: &str) -> Vec<Segment> {
    vec![Segment::key(table), Segment::Index(i), Segment::key(key)]
}

pub(super) fn validate(config: &Config) -> Found {
    let mut found = Found::new();
    agent(config, &mut found);
    host(config, &mut found);
    prometheus(config, &mut found);
    ping(config, &mut found);
    outputs(config, &mut found);
    alertmanager(config, &mut found);
    if let Some(listen) = &config.metrics.listen {
        check_listen(listen, path(&["metrics", "listen"]), &mut found);
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        found.push((
            path(&["log", "level"]),
            format!(
                "invalid log level `{}`: {e}; expected e.g. \"info\" or \"tidb_host_agent=debug\"",
                config.log.level
            ),
        ));
    }
    if config.log.keep == 0 {
        found.push((
            path(&["log", "keep"]),
            "must be at least 1 (today's file counts); e.g. keep = 7 keeps a week".into(),
        ));
    }
    found
}

fn agent(config: &Config, found: &mut Found) {
    let a = &config.agent;
    if a.interval.is_zero() {
        found.push((
            path(&["agent", "interval"]),
            "must be longer than 0s".into(),
        ));
    }
    if a.max_concurrency == 0 {
        found.push((
            path(&["agent", "max_concurrency"]),
            "must be at least 1".into(),
        ));
    }
    if a.product.is_empty() {
        found.push((path(&["agent", "product"]), "must not be empty".into()));
    }
}

fn host(config: &Config, found: &mut Found) {
    let h = &config.host;
    if !is_label_name(&h.label) {
        found.push((
            path(&["host", "label"]),
            format!(
                "`{}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                h.label
            ),
        ));
    }
    for (i, a) in h.addresses.iter().enumerate() {
        if a.trim().is_empty() || a.contains(char::is_whitespace) {
            found.push((
                indexed("host", i, "addresses"),
                format!("`{a}` is not a host address; expected an IP or a host name"),
            ));
        }
    }
    for (i, c) in h.components.iter().enumerate() {
        if !is_label_name(c) {
            found.push((
                vec![
                    Segment::key("host"),
                    Segment::key("components"),
                    Segment::Index(i),
                ],
                format!("`{c}` is not a component name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        }
    }
    if h.detect_every.is_zero() {
        found.push((
            path(&["host", "detect_every"]),
            "must be longer than 0s".into(),
        ));
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn prometheus(config: &Config, found: &mut Found) {
    let p = &config.prometheus;
    if p.servers.is_empty() {
        found.push((
            path(&["prometheus", "servers"]),
            "at least one server is required, e.g. servers = [\"http://127.0.0.1:9090\"]".into(),
        ));
    }
    check_servers(&p.servers, "prometheus", found);
    if p.timeout.is_zero() {
        found.push((
            path(&["prometheus", "timeout"]),
            "must be longer than 0s".into(),
        ));
    }
    if p.probe_timeout.is_zero() {
        found.push((
            path(&["prometheus", "probe_timeout"]),
            "must be longer than 0s".into(),
        ));
    }
    if p.down_after == 0 {
        found.push((
            path(&["prometheus", "down_after"]),
            "must be at least 1".into(),
        ));
    }
    if p.max_response_bytes < 1024 {
        found.push((
            path(&["prometheus", "max_response_bytes"]),
            "must be at least 1024".into(),
        ));
    }
    if p.rules_per_query == 0 {
        found.push((
            path(&["prometheus", "rules_per_query"]),
            "must be at least 1".into(),
        ));
    }
}

fn check_servers(servers: &[ServerConfig], section: &str, found: &mut Found) {
    let mut seen = BTreeMap::new();
    for (i, s) in servers.iter().enumerate() {
        let at = vec![
            Segment::key(section),
            Segment::key("servers"),
            Segment::Index(i),
        ];
        if let Err(why) = check_url(&s.url) {
            found.push((at.clone(), why));
        }
        if let Some(first) = seen.insert(s.url.trim_end_matches('/'), i) {
            found.push((
                at.clone(),
                format!("duplicate server `{}`, also servers[{first}]", s.url),
            ));
        }
        if s.basic_auth_password_file.is_some() && s.basic_auth_user.is_none() {
            found.push((
                at.clone(),
                "basic_auth_password_file needs basic_auth_user".into(),
            ));
        }
        if s.bearer_token_file.is_some() && s.basic_auth_user.is_some() {
            found.push((at, "use basic auth or a bearer token, not both".into()));
        }
    }
}

/// Checks an http(s) URL the way operators write them: scheme, host, optional port
/// and path prefix.
pub fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Err(format!("invalid URL `{url}`: scheme must be http or https"))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err(format!("invalid URL `{url}`: no host"))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "invalid URL `{url}`: {e}; expected e.g. \"http://10.0.1.5:9090\""
        )),
    }
}

fn check_listen(listen: &str, at: Vec<Segment>, found: &mut Found) {
    if listen.parse::<SocketAddr>().is_err() {
        found.push((
            at,
            format!("invalid listen address `{listen}`: expected IP:PORT, e.g. \"127.0.0.1:9555\""),
        ));
    }
}

fn ping(config: &Config, found: &mut Found) {
    let p = &config.ping;
    let at = |k: &str| path(&["ping", k]);
    if p.count == 0 {
        found.push((at("count"), "must be at least 1".into()));
    }
    if p.concurrency == 0 {
        found.push((at("concurrency"), "must be at least 1".into()));
    }
    if p.payload_bytes > 65_000 {
        found.push((at("payload_bytes"), "must be at most 65000".into()));
    }
    if p.timeout.is_zero() {
        found.push((at("timeout"), "must be longer than 0s".into()));
    }
    if p.every.is_zero() {
        found.push((at("every"), "must be longer than 0s".into()));
    }
    if !(0.0..=100.0).contains(&p.loss_threshold_percent) {
        found.push((
            at("loss_threshold_percent"),
            "must be between 0 and 100".into(),
        ));
    }
    if p.enabled && p.targets.is_empty() && !p.targets_from_prometheus {
        found.push((
            at("enabled"),
            "ping is enabled but has no targets: set targets or targets_from_prometheus = true"
                .into(),
        ));
    }
}

fn outputs(config: &Config, found: &mut Found) {
    let mut paths = BTreeMap::new();
    for (i, o) in config.outputs.iter().enumerate() {
        let at = |k: &str| indexed("output", i, k);
        if let Some(p) = o.path()
            && let Some(first) = paths.insert(p.to_path_buf(), i)
        {
            found.push((
                at("path"),
                format!(
                    "duplicate output path `{}`, also used by output[{first}]",
                    p.display()
                ),
            ));
        }
        let (mode, timeout) = match o {
            OutputConfig::File(f) => (Some(f.mode), None),
            OutputConfig::Unix(u) => {
                if u.max_clients == 0 {
                    found.push((at("max_clients"), "must be at least 1".into()));
                }
                (Some(u.mode), Some(u.timeout))
            }
            OutputConfig::Http(h) => {
                if let Err(why) = check_url(&h.url) {
                    found.push((at("url"), why));
                }
                (None, Some(h.timeout))
            }
            OutputConfig::Stdout(_) => (None, None),
        };
        if let Some(mode) = mode
            && mode > 0o777
        {
            found.push((
                at("mode"),
                format!("mode {mode:#o} is not a permission mode; expected e.g. 0o644"),
            ));
        }
        if timeout.is_some_and(|t| t.is_zero()) {
            found.push((at("timeout"), "must be longer than 0s".into()));
        }
    }
}

fn alertmanager(config: &Config, found: &mut Found) {
    let am = &config.alertmanager;
    check_servers(&am.servers, "alertmanager", found);
    if let Some(listen) = &am.listen {
        check_listen(listen, path(&["alertmanager", "listen"]), found);
    }
    if am.listen_token_file.is_some() && am.listen.is_none() {
        found.push((
            path(&["alertmanager", "listen_token_file"]),
            "a token for the webhook receiver needs alertmanager.listen".into(),
        ));
    }
    if am.listen_max_clients == 0 {
        found.push((
            path(&["alertmanager", "listen_max_clients"]),
            "must be at least 1".into(),
        ));
    }
    let has_source = !am.servers.is_empty() || am.listen.is_some();
    if has_source && am.forwards.is_empty() {
        found.push((
            path(&["alertmanager"]),
            "alerts are polled or received but there is no [[alertmanager.forward]] target".into(),
        ));
    }
    if !has_source && !am.forwards.is_empty() {
        found.push((
            path(&["alertmanager"]),
            "[[alertmanager.forward]] targets need alertmanager.servers or alertmanager.listen"
                .into(),
        ));
    }
    if am.poll_interval.is_zero() {
        found.push((
            path(&["alertmanager", "poll_interval"]),
            "must be longer than 0s".into(),
        ));
    }
    for (key, value) in [
        ("max_events", am.max_events as u64),
        ("max_bytes", am.max_bytes),
        ("max_alerts", am.max_alerts as u64),
    ] {
        if value == 0 {
            found.push((path(&["alertmanager", key]), "must be at least 1".into()));
        }
    }
    if am.retry_initial > am.retry_max {
        found.push((
            path(&["alertmanager", "retry_initial"]),
            "must not be longer than retry_max".into(),
        ));
    }
    let mut names = BTreeMap::new();
    for (i, f) in am.forwards.iter().enumerate() {
        let at = |k: &str| {
            vec![
                Segment::key("alertmanager"),
                Segment::key("forward"),
                Segment::Index(i),
                Segment::key(k),
            ]
        };
        if let ForwardConfig::Exec(exec) = f
            && exec.command.is_empty()
        {
            found.push((
                at("command"),
                "an exec target needs a program: `command` is an argv list".into(),
            ));
        }
        let name = f.name(i);
        if let Some(first) = names.insert(name.clone(), i) {
            found.push((
                at("name"),
                format!("duplicate forward name `{name}`, also forward[{first}]"),
            ));
        }
        if f.timeout().is_zero() {
            found.push((at("timeout"), "must be longer than 0s".into()));
        }
        forward_templates(f, at("kind"), found);
    }
}

/// Every template of a forward target must compile, and an HTTP method be a token.
fn forward_templates(f: &ForwardConfig, at_kind: Vec<Segment>, found: &mut Found) {
    let base = &at_kind[..at_kind.len() - 1];
    let at = |tail: &[Segment]| [base, tail].concat();
    let mut templates: Vec<(Vec<Segment>, &str)> = Vec::new();
    match f {
        ForwardConfig::Exec(exec) => {
            templates.extend(exec.command.iter().enumerate().map(|(j, t)| {
                (
                    at(&[Segment::key("command"), Segment::Index(j)]),
                    t.as_str(),
                )
            }));
        }
        ForwardConfig::Http(http) => {
            templates.push((at(&[Segment::key("url")]), http.url.as_str()));
            templates.extend(
                http.body
                    .as_deref()
                    .map(|t| (at(&[Segment::key("body")]), t)),
            );
            templates.extend(
                http.headers
                    .iter()
                    .map(|(h, t)| (at(&[Segment::key("headers"), Segment::key(h)]), t.as_str())),
            );
            if reqwest::Method::from_bytes(http.method.to_ascii_uppercase().as_bytes()).is_err() {
                found.push((
                    at(&[Segment::key("method")]),
                    format!(
                        "`{}` is not an HTTP method; expected e.g. \"POST\"",
                        http.method
                    ),
                ));
            }
        }
    }
    for (path, template) in templates {
        if let Err(why) = crate::forward::template::check(template) {
            found.push((path, format!("template does not compile: {why}")));
        }
    }
}
