//! The sandbox's prometheus.yml and blackbox.yml, modelled on TiUP's templates
//! (tests/data/upstream/prometheus.yml.tpl and blackbox.yml.tpl): the same jobs, groups and
//! relabelling, with 1 s intervals, no TLS, and a `view` parameter on component jobs.
//!
//! As in TiUP (`pkg/cluster/spec/monitoring.go`), the port probes target each component's
//! *status* address (TiDB 10080, TiKV 20180, PD 2379, TiFlash 8234), TiFlash's proxy status
//! port is scraped but not probed, and every host gets a node_exporter, a blackbox_exporter
//! and ICMP pings. Each Prometheus probes through the blackbox exporter on its own host.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::topology::{BLACKBOX_PORT, Component, Endpoint, FakeSpec, Host, ProbeJob, Server};

/// The metrics server flavour, which decides the config keys that are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Prometheus,
    VictoriaMetrics,
}

/// Component scrape jobs, in TiUP's order.
pub(super) const COMPONENT_JOBS: [&str; 5] = ["overwritten-nodes", "tidb", "tikv", "pd", "tiflash"];

/// Metric names TiUP drops from the tidb job.
pub(super) const TIDB_DROPPED: &str = "tidb_tikvclient_source_request_seconds_count|tidb_tikvclient_batch_requests_sum|tidb_tikvclient_batch_requests_count|tidb_tikvclient_batch_pending_requests_sum|tidb_tikvclient_batch_pending_requests_count";

pub(super) fn quoted_list(addrs: &[String]) -> String {
    let mut out = String::new();
    for a in addrs {
        let _ = writeln!(out, "      - '{a}'");
    }
    out
}

pub(super) fn probe_relabel(blackbox: SocketAddr) -> String {
    format!(
        "    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: '{blackbox}'
"
    )
}

/// Addresses scraped by a component job.
fn job_targets(fakes: &[FakeSpec], block: u8, job: &str) -> Vec<String> {
    fakes
        .iter()
        .flat_map(|f| {
            f.ports
                .iter()
                .filter_map(move |(port, endpoint)| match endpoint {
                    Endpoint::Metrics(e) if e.job_name() == job => {
                        Some(f.host.addr(block, *port).to_string())
                    }
                    _ => None,
                })
        })
        .collect()
}

/// Probe groups of a probe job: (group, targets), in TiUP's order.
fn probe_groups(fakes: &[FakeSpec], block: u8, job: ProbeJob) -> Vec<(String, Vec<String>)> {
    let order: &[Component] = match job {
        ProbeJob::TidbPortProbe => &[
            Component::Tidb,
            Component::Tikv,
            Component::Pd,
            Component::Tiflash,
        ],
        ProbeJob::MonitorPortProbe => &[Component::Grafana, Component::NodeExporter],
    };
    let mut groups: Vec<(String, Vec<String>)> = order
        .iter()
        .map(|c| {
            let targets = fakes
                .iter()
                .filter(|f| f.component == *c)
                .map(|f| f.host.addr(block, f.status_port()).to_string())
                .collect();
            (c.name().to_string(), targets)
        })
        .collect();
    if job == ProbeJob::MonitorPortProbe {
        let blackboxes = Host::ALL
            .iter()
            .map(|h| h.addr(block, BLACKBOX_PORT).to_string())
            .collect();
        groups.push(("blackbox_exporter".to_string(), blackboxes));
    }
    groups.retain(|(_, targets)| !targets.is_empty());
    groups
}

pub fn icmp_job_name(blackbox: impl std::fmt::Display) -> String {
    format!("blackbox_exporter_{blackbox}_icmp")
}

/// TiUP's ICMP job of the blackbox exporter at `blackbox`: every `interval`, a ping of
/// each of `monitored`, the target kept in the `ping` label.
pub(super) fn icmp_job(blackbox: &str, interval: &str, monitored: &[String]) -> String {
    format!(
        "  - job_name: \"{}\"
    scrape_interval: {interval}
    metrics_path: /probe
    params:
      module: [icmp]
    static_configs:
    - targets:
{}    relabel_configs:
      - source_labels: [__address__]
        regex: (.*)(:80)?
        target_label: __param_target
        replacement: ${{1}}
      - source_labels: [__param_target]
        regex: (.*)
        target_label: ping
        replacement: ${{1}}
      - source_labels: []
        regex: .*
        target_label: __address__
        replacement: '{blackbox}'
",
        icmp_job_name(blackbox),
        quoted_list(monitored)
    )
}

/// The scrape config of `server` in block `block`.
pub fn scrape_config(fakes: &[FakeSpec], block: u8, server: Server, kind: ServerKind) -> String {
    let own_blackbox = server.host().addr(block, BLACKBOX_PORT);
    let view = server.view();
    let mut out = String::from(
        "---
global:
  scrape_interval: 1s
  scrape_timeout: 1s
",
    );
    if kind == ServerKind::Prometheus {
        // VictoriaMetrics rejects the keys it does not implement.
        out.push_str(
            "  evaluation_interval: 1s
  external_labels:
    cluster: 'sandbox'
    monitor: \"prometheus\"
",
        );
    }
    out.push_str("\nscrape_configs:\n");
    for job in COMPONENT_JOBS {
        let targets = job_targets(fakes, block, job);
        if targets.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "  - job_name: \"{job}\"
    honor_labels: true # don't overwrite job & instance labels
    params:
      view: ['{view}']
"
        );
        if job == "tidb" {
            let _ = write!(
                out,
                "    metric_relabel_configs:
      - action: drop
        regex: {TIDB_DROPPED}
        source_labels:
        - __name__
"
            );
        }
        let _ = write!(
            out,
            "    static_configs:
    - targets:
{}",
            quoted_list(&targets)
        );
    }
    for job in [ProbeJob::TidbPortProbe, ProbeJob::MonitorPortProbe] {
        let _ = write!(
            out,
            "  - job_name: \"{}\"
    scrape_interval: 1s
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
",
            job.job_name()
        );
        for (group, targets) in probe_groups(fakes, block, job) {
            let _ = write!(
                out,
                "    - targets:
{}      labels:
        group: '{group}'
",
                quoted_list(&targets)
            );
        }
        out.push_str(&probe_relabel(own_blackbox));
    }
    let monitored: Vec<String> = Host::ALL.iter().map(|h| h.ip(block).to_string()).collect();
    for host in Host::ALL {
        out.push_str(&icmp_job(
            &host.addr(block, BLACKBOX_PORT).to_string(),
            "1s",
            &monitored,
        ));
    }
    out
}

/// blackbox.yml: TiUP's modules without TLS.
pub fn blackbox_config() -> String {
    "modules:
  http_2xx:
    prober: http
    http:
      method: GET
  http_post_2xx:
    prober: http
    http:
      method: POST
  tcp_connect:
    prober: tcp
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
        - expect: '^+OK'
      tls: true
      tls_config:
        insecure_skip_verify: false
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
        - expect: '^SSH-2.0-'
  irc_banner:
    prober: tcp
    tcp:
      query_response:
        - send: 'NICK prober'
        - send: 'USER prober prober prober :prober'
        - expect: 'PING :([^ ]+)'
          send: 'PONG ${1}'
        - expect: '^:[^ ]+ 001'
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: 'ip4'
"
    .to_string()
}
