//! Real Alertmanagers (Debian's prometheus-alertmanager) clustered in pairs on a loopback
//! block, and alerts to post to them through the v2 API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::block::{Block, free_port};
use crate::process::ChildProcess;
use crate::wait::Wait;

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// How long an Alertmanager may take to answer `/-/ready`; generous because the machine is
/// shared.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Alertmanager's routing: every alert to a receiver that does nothing, fast grouping.
pub fn routing_to_nothing() -> String {
    "route:\n  receiver: sink\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: sink\n".into()
}

/// Routing to a webhook at `url`.
pub fn routing_to_webhook(url: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n    send_resolved: true\n"
    )
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

/// One real Alertmanager process; killed on drop.
pub struct Alertmanager {
    pub url: String,
    process: Option<ChildProcess>,
    http: reqwest::Client,
}

impl Alertmanager {
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// SIGKILL, then reap.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Posts alerts through the v2 API.
    pub async fn post(&self, alerts: &serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot post alerts to {}: {e}", self.url));
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
        let url = format!("{}/api/v2/alerts", self.url);
        match self.http.get(&url).send().await {
            Ok(response) => response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{url}: not a list of alerts: {e}")),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    pub fn log_text(&self) -> String {
        self.process
            .as_ref()
            .map(ChildProcess::log_text)
            .unwrap_or_default()
    }

    /// Waits until `/-/ready` answers 200.
    async fn wait_ready(&self) {
        let ready = format!("{}/-/ready", self.url);
        let what = format!("{} to be ready", self.url);
        let log = || self.log_text();
        Wait::new(READY_LIMIT, &what)
            .on_timeout(&log)
            .until_async(|| async {
                let response = self.http.get(&ready).send().await.ok()?;
                response.status().is_success().then_some(())
            })
            .await;
    }
}

/// Two Alertmanagers clustered with each other on the block's .1 and .2.
pub struct AlertmanagerPair {
    pub a: Alertmanager,
    pub b: Alertmanager,
    _dir: tempfile::TempDir,
}

impl AlertmanagerPair {
    pub async fn start(block: &Block, routing: &str) -> AlertmanagerPair {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, routing)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let (ip_a, ip_b) = (block.ip(1).to_string(), block.ip(2).to_string());
        let (web_a, web_b) = (free_port(block.ip(1)), free_port(block.ip(2)));
        let (gossip_a, gossip_b) = (free_port(block.ip(1)), free_port(block.ip(2)));
        let a = spawn(
            dir.path(),
            "a",
            &config,
            &format!("{ip_a}:{web_a}"),
            &format!("{ip_a}:{gossip_a}"),
            &format!("{ip_b}:{gossip_b}"),
        );
        let b = spawn(
            dir.path(),
            "b",
            &config,
            &format!("{ip_b}:{web_b}"),
            &format!("{ip_b}:{gossip_b}"),
            &format!("{ip_a}:{gossip_a}"),
        );
        a.wait_ready().await;
        b.wait_ready().await;
        AlertmanagerPair { a, b, _dir: dir }
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

fn spawn(
    dir: &Path,
    name: &str,
    config: &Path,
    web: &str,
    gossip: &str,
    peer: &str,
) -> Alertmanager {
    let storage: PathBuf = dir.join(format!("data-{name}"));
    std::fs::create_dir_all(&storage)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", storage.display()));
    let mut command = Command::new(ALERTMANAGER);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address={web}"))
        .arg(format!("--cluster.listen-address={gossip}"))
        .arg(format!("--cluster.advertise-address={gossip}"))
        .arg(format!("--cluster.peer={peer}"))
        .arg("--cluster.settle-timeout=2s");
    let log = dir.join(format!("alertmanager-{name}.log"));
    Alertmanager {
        url: format!("http://{web}"),
        process: Some(ChildProcess::spawn(
            "prometheus-alertmanager (apt-get install prometheus-alertmanager)",
            command,
            &log,
        )),
        http: crate::http::client(),
    }
}
