//! A fleet of many hosts served by one process, for the simulation of `bench/fleet/`.
//!
//! Host I of N is 127.250.(10 + I / 250).(1 + I % 250): outside the test blocks (127.N.1.x)
//! and the ping bench's targets (127.N.2.x). The Prometheus pair listens on 127.250.9.1:9090
//! (A) and 127.250.9.2:9090 (B), and each has a blackbox-style exporter on :9115 of its own
//! address, through which it sends its port probes, as TiUP's template does.
//!
//! Every host runs node_exporter (:9100), a blackbox exporter (:9115) and a TiKV (:20180);
//! the first three also run PD (:2379, the first is the leader), every fourth a TiDB
//! (:10080, SQL :4000) and every fiftieth a TiFlash (:8234, proxy :20292). Metrics ports
//! serve the sandbox's [`component_metrics`] (the real metric names, healthy values): one
//! series set per metric set serves every host, as no host is faulty. `/probe` answers
//! every probe with success, with blackbox_exporter's metric names.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::component_metrics;
use super::exposition::{Series, render};
use super::scrape_config::{COMPONENT_JOBS, TIDB_DROPPED, icmp_job, probe_relabel, quoted_list};
use super::serve;
use super::supervisor::unix_now;
use super::topology::{
    BLACKBOX_PORT, MetricSet, NODE_EXPORTER_PORT, PD_PORT, PROMETHEUS_PORT, Server, TIDB_PORT,
    TIDB_STATUS_PORT, TIFLASH_PROXY_STATUS_PORT, TIFLASH_STATUS_PORT, TIKV_STATUS_PORT,
};

/// Hosts per third octet.
const PER_OCTET: usize = 250;
/// The most hosts a fleet can have (third octets 10..=255).
pub const MAX_HOSTS: usize = PER_OCTET * 246;

/// What one listening port of a fleet host serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Port {
    Metrics(MetricSet),
    /// blackbox_exporter's `/probe`.
    Probe,
    /// Only accepts connections (TiDB's SQL port).
    Plain,
}

/// One host of the fleet.
#[derive(Clone, Debug)]
pub struct FleetHost {
    pub ip: Ipv4Addr,
    /// The agent's component names (`[host] components`).
    pub components: Vec<&'static str>,
    ports: Vec<(u16, Port)>,
}

impl FleetHost {
    fn new(index: usize) -> FleetHost {
        use Port::{Metrics, Plain, Probe};
        let mut components = vec!["node_exporter", "blackbox_exporter", "tikv"];
        let mut ports = vec![
            (NODE_EXPORTER_PORT, Metrics(MetricSet::NodeExporter)),
            (BLACKBOX_PORT, Probe),
            (TIKV_STATUS_PORT, Metrics(MetricSet::Tikv)),
        ];
        if index < 3 {
            components.push("pd");
            let set = if index == 0 {
                MetricSet::PdLeader
            } else {
                MetricSet::PdFollower
            };
            ports.push((PD_PORT, Metrics(set)));
        }
        if index % 4 == 0 {
            components.push("tidb");
            ports.push((TIDB_STATUS_PORT, Metrics(MetricSet::Tidb)));
            ports.push((TIDB_PORT, Plain));
        }
        if index % 50 == 49 {
            components.push("tiflash");
            ports.push((TIFLASH_STATUS_PORT, Metrics(MetricSet::Tiflash)));
            ports.push((TIFLASH_PROXY_STATUS_PORT, Metrics(MetricSet::TiflashProxy)));
        }
        FleetHost {
            ip: host_ip(index),
            components,
            ports,
        }
    }

    fn addr(&self, port: u16) -> String {
        SocketAddr::from((self.ip, port)).to_string()
    }

    /// Addresses the scrape job `job` scrapes on this host.
    fn job_targets(&self, job: &str) -> impl Iterator<Item = String> {
        self.ports
            .iter()
            .filter_map(move |(port, serves)| match serves {
                Port::Metrics(set) if set.job_name() == job => Some(self.addr(*port)),
                _ => None,
            })
    }

    /// The status address of `component` here, which TiUP's port probes target.
    fn status_addr(&self, component: &str) -> Option<String> {
        let port = match component {
            "tidb" => TIDB_STATUS_PORT,
            "tikv" => TIKV_STATUS_PORT,
            "pd" => PD_PORT,
            "tiflash" => TIFLASH_STATUS_PORT,
            "node_exporter" => NODE_EXPORTER_PORT,
            "blackbox_exporter" => BLACKBOX_PORT,
            _ => return None,
        };
        self.components
            .contains(&component)
            .then(|| self.addr(port))
    }
}

/// Host `index`'s address.
pub fn host_ip(index: usize) -> Ipv4Addr {
    let octet = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    Ipv4Addr::new(
        127,
        250,
        octet(10 + index / PER_OCTET),
        octet(1 + index % PER_OCTET),
    )
}

/// The address of a server of the pair.
pub fn server_addr(server: Server) -> SocketAddr {
    let last = match server {
        Server::A => 1,
        Server::B => 2,
    };
    SocketAddr::from((Ipv4Addr::new(127, 250, 9, last), PROMETHEUS_PORT))
}

/// The blackbox exporter beside a server, through which it probes ports.
fn server_blackbox(server: Server) -> SocketAddr {
    SocketAddr::new(server_addr(server).ip(), BLACKBOX_PORT)
}

/// The hosts of a fleet of `count`.
pub fn hosts(count: usize) -> Vec<FleetHost> {
    (0..count.min(MAX_HOSTS)).map(FleetHost::new).collect()
}

/// How the pair is configured.
pub struct PairConfig {
    /// Rule files every server loads (`rule_files`).
    pub rule_files: Vec<PathBuf>,
    /// Blackbox exporters that get TiUP's ICMP job. TiUP gives every one of them a job
    /// pinging every host, N² probes; the fleet gives it to the first hosts only.
    pub icmp_exporters: usize,
}

/// The prometheus.yml of `server` for `hosts`: TiUP's jobs, groups, relabelling and
/// intervals (15 s, port probes 30 s, ICMP 6 s), without TLS.
pub fn scrape_config(hosts: &[FleetHost], server: Server, pair: &PairConfig) -> String {
    let mut out = String::from(
        "---
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    cluster: 'fleet'
    monitor: \"prometheus\"

rule_files:
",
    );
    for file in &pair.rule_files {
        let _ = writeln!(out, "  - '{}'", file.display());
    }
    out.push_str("\nscrape_configs:\n");
    for job in COMPONENT_JOBS {
        let targets: Vec<String> = hosts.iter().flat_map(|h| h.job_targets(job)).collect();
        if targets.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  - job_name: \"{job}\"\n    honor_labels: true # don't overwrite job & instance labels"
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
            "    static_configs:\n    - targets:\n{}",
            quoted_list(&targets)
        );
    }
    let probe_jobs: [(&str, &[&str]); 2] = [
        ("tidb_port_probe", &["tidb", "tikv", "pd", "tiflash"]),
        (
            "monitor_port_probe",
            &["node_exporter", "blackbox_exporter"],
        ),
    ];
    for (job, groups) in probe_jobs {
        let _ = write!(
            out,
            "  - job_name: \"{job}\"
    scrape_interval: 30s
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
"
        );
        for group in groups {
            let targets: Vec<String> = hosts.iter().filter_map(|h| h.status_addr(group)).collect();
            if !targets.is_empty() {
                let _ = write!(
                    out,
                    "    - targets:\n{}      labels:\n        group: '{group}'\n",
                    quoted_list(&targets)
                );
            }
        }
        out.push_str(&probe_relabel(server_blackbox(server)));
    }
    let monitored: Vec<String> = hosts.iter().map(|h| h.ip.to_string()).collect();
    for host in hosts.iter().take(pair.icmp_exporters) {
        out.push_str(&icmp_job(&host.addr(BLACKBOX_PORT), "6s", &monitored));
    }
    out
}

/// What the fleet serves: one series set per metric set, shared by every host.
struct Exposition {
    sets: HashMap<MetricSet, Vec<Series>>,
    start_time: f64,
    tcp_probe: Vec<Series>,
    icmp_probe: Vec<Series>,
}

impl Exposition {
    fn new(hosts: &[FleetHost]) -> Exposition {
        let mut sets = HashMap::new();
        for (_, serves) in hosts.iter().flat_map(|h| &h.ports) {
            if let Port::Metrics(set) = serves {
                sets.entry(*set)
                    .or_insert_with(|| component_metrics::series(*set));
            }
        }
        let probe = |extra: Vec<Series>| {
            let mut series = vec![
                Series::gauge("probe_success", &[], 1.0),
                Series::gauge("probe_duration_seconds", &[], 0.0004),
                Series::gauge("probe_ip_protocol", &[], 4.0),
                Series::gauge("probe_dns_lookup_time_seconds", &[], 0.000_01),
            ];
            series.extend(extra);
            series
        };
        let icmp = ["resolve", "setup", "rtt"]
            .iter()
            .map(|phase| {
                Series::gauge("probe_icmp_duration_seconds", &[("phase", phase)], 0.000_05)
            })
            .collect();
        Exposition {
            sets,
            start_time: unix_now(),
            tcp_probe: probe(Vec::new()),
            icmp_probe: probe(icmp),
        }
    }

    fn respond(&self, serves: Port, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let body = match serves {
            Port::Metrics(set) if path == "/metrics" => self
                .sets
                .get(&set)
                .map(|series| render(series, None, self.start_time, Instant::now())),
            Port::Probe if path == "/probe" => {
                let icmp = request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|pair| pair == "module=icmp"));
                let series = if icmp {
                    &self.icmp_probe
                } else {
                    &self.tcp_probe
                };
                Some(render(series, None, self.start_time, Instant::now()))
            }
            _ => None,
        };
        let Some(body) = body else {
            return Response::new(Full::new(Bytes::from_static(b"fleet host\n")));
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

/// A running fleet: every port of every host, and the pair's blackbox exporters.
pub struct Fleet {
    listeners: usize,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Fleet {
    /// Binds every port of `hosts` and serves them on the current runtime, or says which
    /// address cannot be bound.
    pub fn start(hosts: &[FleetHost]) -> Result<Fleet, String> {
        let exposition = Arc::new(Exposition::new(hosts));
        let mut addrs: Vec<(SocketAddr, Port)> = hosts
            .iter()
            .flat_map(|h| {
                h.ports
                    .iter()
                    .map(|(port, serves)| (SocketAddr::from((h.ip, *port)), *serves))
            })
            .collect();
        addrs.extend(
            Server::ALL
                .iter()
                .map(|s| (server_blackbox(*s), Port::Probe)),
        );
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        for (addr, serves) in &addrs {
            let listener =
                serve::listen(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let (exposition, serves) = (exposition.clone(), *serves);
            tracker.spawn(serve::accept_loop(
                listener,
                Arc::new(move |request| exposition.respond(serves, request)),
                cancel.clone(),
                tracker.clone(),
            ));
        }
        Ok(Fleet {
            listeners: addrs.len(),
            cancel,
            tracker,
        })
    }

    pub fn listeners(&self) -> usize {
        self.listeners
    }

    /// Closes every port and connection.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_avoid_the_test_blocks_and_are_distinct() {
        let fleet = hosts(1000);
        let ips: std::collections::HashSet<Ipv4Addr> = fleet.iter().map(|h| h.ip).collect();
        assert_eq!(ips.len(), 1000);
        assert!(fleet.iter().all(|h| h.ip.octets()[2] >= 10));
        assert_eq!(fleet[0].ip, Ipv4Addr::new(127, 250, 10, 1));
        assert_eq!(fleet[250].ip, Ipv4Addr::new(127, 250, 11, 1));
    }

    #[test]
    fn every_component_is_scraped_and_probed() {
        let fleet = hosts(100);
        let pair = PairConfig {
            rule_files: vec![PathBuf::from("/x/tikv.rules.yml")],
            icmp_exporters: 1,
        };
        let config = scrape_config(&fleet, Server::B, &pair);
        assert!(config.contains("  - '/x/tikv.rules.yml'"));
        assert!(config.contains("'127.250.10.100:20180'"));
        assert!(config.contains("'127.250.10.1:2379'"));
        assert!(config.contains("'127.250.10.50:8234'"));
        assert!(config.contains("replacement: '127.250.9.2:9115'"));
        assert_eq!(config.matches("_icmp\"").count(), 1);
        assert_eq!(fleet[0].components.len(), 5);
    }
}
