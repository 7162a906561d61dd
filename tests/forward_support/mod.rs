//! Shared by the forward tests: an exclusive loopback block, a real Alertmanager pair
//! clustered on it, the in-process forwarder, the recording exec target and bounded
//! waits. Every process started here is killed on drop, also when a test panics.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidb_host_agent::config::{self, AlertmanagerConfig, ExecForward, ForwardConfig, ServerConfig};
use tidb_host_agent::forward::{self, ForwardError};
use tokio_util::sync::CancellationToken;

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Upper bound of every wait; generous because the machine is shared.
pub const LIMIT: Duration = Duration::from_secs(60);
/// How long a test watches for events that must not come.
pub const QUIET: Duration = Duration::from_secs(3);

/// The poll interval of the forwarders under test; `QUIET` spans many polls.
pub const POLL: config::Duration = config::Duration::from_millis(150);

/// A /24 of loopback addresses (127.79.N.0) that only this test uses, held by listening
/// on its .254 address: the kernel frees it when the process dies, however it dies.
pub struct Block {
    pub octet: u8,
    _lock: TcpListener,
}

const BLOCK_LOCK_PORT: u16 = 47_979;

impl Block {
    pub fn take() -> Block {
        let start = (std::process::id() % 250) as u8;
        for i in 0..250u16 {
            let octet = 1 + ((u16::from(start) + i) % 250) as u8;
            if let Ok(lock) =
                TcpListener::bind((format!("127.79.{octet}.254").as_str(), BLOCK_LOCK_PORT))
            {
                return Block { octet, _lock: lock };
            }
        }
        panic!("no free 127.79.N.0/24 loopback block");
    }

    pub fn ip(&self, host: u8) -> String {
        format!("127.79.{}.{host}", self.octet)
    }
}

pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Alertmanager's routing: every alert to `receiver`, fast grouping.
pub fn am_config_null() -> String {
    "route:\n  receiver: sink\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: sink\n".into()
}

/// Routing to a webhook at `url`.
pub fn am_config_webhook(url: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n    send_resolved: true\n"
    )
}

/// One real Alertmanager process; killed on drop.
pub struct Alertmanager {
    pub url: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Alertmanager {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reap.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Posts alerts through the v2 API.
    pub async fn post(&self, alerts: &serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await
            .expect("post alerts");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{} refused the alerts: {status} {text}",
            self.url
        );
    }

    /// The server's own view of its alerts.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .expect("get alerts")
            .json()
            .await
            .expect("alerts JSON")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two Alertmanagers clustered with each other on the block's .1 and .2.
pub struct Pair {
    pub a: Alertmanager,
    pub b: Alertmanager,
    _dir: tempfile::TempDir,
}

impl Pair {
    pub async fn start(block: &Block, routing: &str) -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, routing).expect("write alertmanager.yml");
        let (ip_a, ip_b) = (block.ip(1), block.ip(2));
        let (web_a, web_b) = (free_port(&ip_a), free_port(&ip_b));
        let (gossip_a, gossip_b) = (free_port(&ip_a), free_port(&ip_b));
        let a = spawn_alertmanager(
            dir.path(),
            "a",
            &config,
            &ip_a,
            web_a,
            gossip_a,
            &format!("{ip_b}:{gossip_b}"),
        );
        let b = spawn_alertmanager(
            dir.path(),
            "b",
            &config,
            &ip_b,
            web_b,
            gossip_b,
            &format!("{ip_a}:{gossip_a}"),
        );
        for am in [&a, &b] {
            let ready = format!("{}/-/ready", am.url);
            wait_for_async(LIMIT, &format!("{} to be ready", am.url), || async {
                let response = reqwest::get(&ready).await.ok()?;
                response.status().is_success().then_some(())
            })
            .await;
        }
        Pair { a, b, _dir: dir }
    }

    pub fn urls(&self) -> Vec<String> {
        vec![self.a.url.clone(), self.b.url.clone()]
    }

    /// Posts to both servers, one after the other, as Prometheus does.
    pub async fn post_both(&self, alerts: &serde_json::Value) {
        self.a.post(alerts).await;
        self.b.post(alerts).await;
    }
}

fn spawn_alertmanager(
    dir: &Path,
    name: &str,
    config: &Path,
    ip: &str,
    web: u16,
    gossip: u16,
    peer: &str,
) -> Alertmanager {
    let storage = dir.join(format!("data-{name}"));
    std::fs::create_dir_all(&storage).expect("storage dir");
    let log = dir.join(format!("alertmanager-{name}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address={ip}:{web}"))
        .arg(format!("--cluster.listen-address={ip}:{gossip}"))
        .arg(format!("--cluster.advertise-address={ip}:{gossip}"))
        .arg(format!("--cluster.peer={peer}"))
        .arg("--cluster.settle-timeout=2s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    Alertmanager {
        url: format!("http://{ip}:{web}"),
        log,
        child: Some(child),
    }
}

/// `forward::run` in this process, stopped through its shutdown token.
pub struct Forwarder {
    pub metrics: std::sync::Arc<tidb_host_agent::metrics::Metrics>,
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), ForwardError>>>,
}

impl Forwarder {
    pub fn start(config: AlertmanagerConfig, state_dir: &Path) -> Forwarder {
        init_logging();
        let token = CancellationToken::new();
        let metrics = std::sync::Arc::new(tidb_host_agent::metrics::Metrics::new());
        let handle = tokio::spawn(forward::run(
            config,
            state_dir.to_owned(),
            std::sync::Arc::clone(&metrics),
            token.clone(),
        ));
        Forwarder {
            metrics,
            token,
            handle: Some(handle),
        }
    }

    /// Cancels and checks that the task confirms its shutdown, cleanly.
    pub async fn stop(mut self) {
        self.token.cancel();
        let handle = self.handle.take().expect("running");
        let result = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the forwarder stops within 10 s of its shutdown signal")
            .expect("the forwarder task did not panic");
        result.expect("the forwarder ends without error");
    }

    /// Ends the task at its next await point, with no shutdown path at all.
    pub async fn abort(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Whether the task ended on its own (an error at start).
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("tidb_host_agent=debug")),
        )
        .with_test_writer()
        .try_init();
}

/// A forwarding config with fast polls and retries.
pub fn forward_config(servers: &[String], forwards: Vec<ForwardConfig>) -> AlertmanagerConfig {
    AlertmanagerConfig {
        servers: servers.iter().map(ServerConfig::from_url).collect(),
        poll_interval: POLL,
        timeout: config::Duration::from_secs(2),
        retry_initial: config::Duration::from_millis(100),
        retry_max: config::Duration::from_millis(400),
        forwards,
        ..AlertmanagerConfig::default()
    }
}

pub fn exec_target(name: &str, command: &[&str]) -> ForwardConfig {
    ForwardConfig::Exec(ExecForward {
        name: Some(name.into()),
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout: config::Duration::from_secs(10),
    })
}

pub fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/forward/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// An exec target that records each delivery under `out` with `record.sh`; the
/// recorded arguments are the status, the alert name and the startsAt.
pub fn recording_target(name: &str, out: &Path) -> ForwardConfig {
    std::fs::create_dir_all(out).expect("recorder dir");
    exec_target(
        name,
        &[
            "/bin/sh",
            &fixture("record.sh"),
            &out.display().to_string(),
            "{{ status }}",
            "{{ alertname }}",
            "{{ startsAt }}",
        ],
    )
}

/// One delivery recorded by `record.sh`.
#[derive(Debug, Clone)]
pub struct Call {
    pub args: Vec<Vec<u8>>,
    pub stdin: Vec<u8>,
    pub env: BTreeMap<String, Vec<u8>>,
}

impl Call {
    pub fn arg(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.args[i]).into_owned()
    }

    pub fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdin).expect("stdin is the event JSON")
    }

    /// An `ALERT_*` variable without the newline printenv adds.
    pub fn env_var(&self, name: &str) -> Vec<u8> {
        let mut value = self.env.get(name).cloned().unwrap_or_default();
        if value.last() == Some(&b'\n') {
            value.pop();
        }
        value
    }
}

/// Every complete delivery recorded under `out`.
pub fn calls(out: &Path) -> Vec<Call> {
    let mut calls = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return calls;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join("complete").exists() {
            continue;
        }
        let mut args = Vec::new();
        while let Ok(arg) = std::fs::read(dir.join(format!("arg{}", args.len()))) {
            args.push(arg);
        }
        let mut env = BTreeMap::new();
        for file in std::fs::read_dir(&dir).expect("call dir").flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if let Some(var) = name.strip_prefix("env_") {
                env.insert(
                    var.to_owned(),
                    std::fs::read(file.path()).expect("env file"),
                );
            }
        }
        calls.push(Call {
            args,
            stdin: std::fs::read(dir.join("stdin")).expect("stdin file"),
            env,
        });
    }
    calls
}

/// (status, alertname) of every recorded call, sorted.
pub fn statuses(out: &Path) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = calls(out).iter().map(|c| (c.arg(0), c.arg(1))).collect();
    all.sort();
    all
}

/// Waits until `f` gives `Some`, at most `limit`; panics naming `what`.
pub async fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_async<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An alert for the v2 API; `extra` labels are added.
pub fn alert(name: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), name.into());
    labels.insert("level".into(), "critical".into());
    for (k, v) in extra {
        labels.insert((*k).into(), (*v).into());
    }
    serde_json::json!({
        "labels": labels,
        "annotations": {"summary": format!("{name} is happening")},
        "generatorURL": "http://prometheus.example/graph",
    })
}

pub const BIN: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

/// A config file for the real binary: Prometheus refuses at once (the subject is the
/// forwarding), a stdout sink, and `alertmanager` as given (TOML).
pub fn daemon_config(dir: &Path, block: &Block, alertmanager: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        r#"
[agent]
interval = "1s"
state_dir = "{state}"

[host]
addresses = ["{host}"]
components = ["tikv"]
cluster_reporter = false

[prometheus]
# Nothing listens here.
servers = ["http://{host}:1"]
on_no_data = "zero"

[[output]]
kind = "file"
path = "{state}/snapshot.txt"

{alertmanager}
"#,
        state = dir.join("state").display(),
        host = block.ip(9),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The real daemon; SIGKILLed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(BIN)
            .arg("-c")
            .arg(config)
            .arg("run")
            .env_remove("TIDB_HOST_AGENT_CONFIG")
            .env("TIDB_HOST_AGENT_LOG", "tidb_host_agent=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start the agent");
        Daemon {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the agent");
            let status = child.wait().expect("reap the agent");
            assert!(!status.success(), "killed, not exited: {status:?}");
        }
    }

    /// SIGTERM, then the exit status; `None` when it did not exit within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// TOML for an array of strings.
pub fn toml_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Whether process `pid` is gone (or a zombie nobody needs to reap any more).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// The pids `hang.sh` noted under `dir`.
pub fn hang_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The value of the self-metric sample starting with `prefix` (name and labels).
pub fn metric(metrics: &tidb_host_agent::metrics::Metrics, prefix: &str) -> Option<f64> {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
