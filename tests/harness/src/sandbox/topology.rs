//! The sandbox cluster as data: which fake component listens where, and what each
//! Prometheus scrapes and probes. Pure code; everything else is derived from [`fakes`].

use std::net::{Ipv4Addr, SocketAddr};

/// TiUP's default ports.
pub const PROMETHEUS_PORT: u16 = 9090;
pub const BLACKBOX_PORT: u16 = 9115;
pub const NODE_EXPORTER_PORT: u16 = 9100;
pub const GRAFANA_PORT: u16 = 3000;
pub const PD_PORT: u16 = 2379;
pub const TIKV_STATUS_PORT: u16 = 20180;
pub const TIDB_STATUS_PORT: u16 = 10080;
pub const TIDB_PORT: u16 = 4000;
pub const TIFLASH_STATUS_PORT: u16 = 8234;
pub const TIFLASH_PROXY_STATUS_PORT: u16 = 20292;
pub const TIFLASH_TCP_PORT: u16 = 9000;

/// One of the three sandbox hosts: 127.N.1.1, 127.N.1.2 and 127.N.1.10 for block N.
/// `.1` is a string prefix of `.10` on purpose (the prefix trap of the old script).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    One,
    Two,
    Ten,
}

impl Host {
    pub const ALL: [Host; 3] = [Host::One, Host::Two, Host::Ten];

    pub fn last_octet(self) -> u8 {
        match self {
            Host::One => 1,
            Host::Two => 2,
            Host::Ten => 10,
        }
    }

    pub fn ip(self, block: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, block, 1, self.last_octet())
    }

    pub fn addr(self, block: u8, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip(block), port))
    }
}

/// One of the two metrics servers of the HA pair. A runs on [`Host::One`], B on [`Host::Two`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Server {
    A,
    B,
}

impl Server {
    pub const ALL: [Server; 2] = [Server::A, Server::B];

    pub fn host(self) -> Host {
        match self {
            Server::A => Host::One,
            Server::B => Host::Two,
        }
    }

    /// The `view` scrape parameter this server sends to every component job, so that a
    /// test can make the two servers see different values of one target.
    pub fn view(self) -> &'static str {
        match self {
            Server::A => "a",
            Server::B => "b",
        }
    }

    pub fn parse(text: &str) -> Option<Server> {
        match text.to_ascii_lowercase().as_str() {
            "a" => Some(Server::A),
            "b" => Some(Server::B),
            _ => None,
        }
    }
}

/// A TiDB cluster component faked by the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    Pd,
    Tidb,
    Tikv,
    Tiflash,
    NodeExporter,
    Grafana,
}

impl Component {
    /// The component name used in keys and in the blackbox `group` label.
    pub fn name(self) -> &'static str {
        match self {
            Component::Pd => "pd",
            Component::Tidb => "tidb",
            Component::Tikv => "tikv",
            Component::Tiflash => "tiflash",
            Component::NodeExporter => "node_exporter",
            Component::Grafana => "grafana",
        }
    }

    /// The TiUP job that probes this component's status port, if any.
    pub fn probe_job(self) -> ProbeJob {
        match self {
            Component::Pd | Component::Tidb | Component::Tikv | Component::Tiflash => {
                ProbeJob::TidbPortProbe
            }
            Component::NodeExporter | Component::Grafana => ProbeJob::MonitorPortProbe,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeJob {
    TidbPortProbe,
    MonitorPortProbe,
}

impl ProbeJob {
    pub fn job_name(self) -> &'static str {
        match self {
            ProbeJob::TidbPortProbe => "tidb_port_probe",
            ProbeJob::MonitorPortProbe => "monitor_port_probe",
        }
    }
}

/// The metric set an HTTP port serves on `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricSet {
    PdLeader,
    PdFollower,
    Tidb,
    Tikv,
    Tiflash,
    TiflashProxy,
    NodeExporter,
}

impl MetricSet {
    /// The scrape job of TiUP's prometheus.yml.tpl that scrapes this exporter.
    pub fn job_name(self) -> &'static str {
        match self {
            MetricSet::PdLeader | MetricSet::PdFollower => "pd",
            MetricSet::Tidb => "tidb",
            MetricSet::Tikv => "tikv",
            MetricSet::Tiflash | MetricSet::TiflashProxy => "tiflash",
            MetricSet::NodeExporter => "overwritten-nodes",
        }
    }
}

/// What one listening port of a fake component does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Serves `/metrics` and is a scrape target.
    Metrics(MetricSet),
    /// Only accepts connections (the SQL port, TiFlash's TCP port, Grafana's UI).
    Plain,
}

/// One fake component process: all its ports open and close together.
/// `ports[0]` is the status port, the one TiUP's blackbox jobs probe.
#[derive(Clone, Debug)]
pub struct FakeSpec {
    pub component: Component,
    pub host: Host,
    pub ports: Vec<(u16, Endpoint)>,
}

impl FakeSpec {
    pub fn status_port(&self) -> u16 {
        self.ports[0].0
    }
}

/// The sandbox cluster of issue 4: every fake component, host by host.
pub fn fakes() -> Vec<FakeSpec> {
    use Endpoint::{Metrics, Plain};
    let spec = |component, host, ports: &[(u16, Endpoint)]| FakeSpec {
        component,
        host,
        ports: ports.to_vec(),
    };
    let tidb = [
        (TIDB_STATUS_PORT, Metrics(MetricSet::Tidb)),
        (TIDB_PORT, Plain),
    ];
    let tikv = |port| [(port, Metrics(MetricSet::Tikv))];
    let node = [(NODE_EXPORTER_PORT, Metrics(MetricSet::NodeExporter))];
    vec![
        spec(
            Component::Pd,
            Host::One,
            &[(PD_PORT, Metrics(MetricSet::PdLeader))],
        ),
        spec(Component::Tikv, Host::One, &tikv(TIKV_STATUS_PORT)),
        spec(Component::Tidb, Host::One, &tidb),
        spec(Component::NodeExporter, Host::One, &node),
        spec(
            Component::Pd,
            Host::Two,
            &[(PD_PORT, Metrics(MetricSet::PdFollower))],
        ),
        spec(Component::Tikv, Host::Two, &tikv(TIKV_STATUS_PORT)),
        spec(
            Component::Tiflash,
            Host::Two,
            &[
                (TIFLASH_STATUS_PORT, Metrics(MetricSet::Tiflash)),
                (TIFLASH_PROXY_STATUS_PORT, Metrics(MetricSet::TiflashProxy)),
                (TIFLASH_TCP_PORT, Plain),
            ],
        ),
        spec(Component::Grafana, Host::Two, &[(GRAFANA_PORT, Plain)]),
        spec(Component::NodeExporter, Host::Two, &node),
        spec(Component::Tikv, Host::Ten, &tikv(TIKV_STATUS_PORT)),
        spec(Component::Tikv, Host::Ten, &tikv(TIKV_STATUS_PORT + 1)),
        spec(Component::Tidb, Host::Ten, &tidb),
        spec(Component::NodeExporter, Host::Ten, &node),
    ]
}

/// Every address the sandbox of one block listens on, for the "is the block free" check.
pub fn all_listen_addrs(block: u8) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = fakes()
        .iter()
        .flat_map(|f| {
            f.ports
                .iter()
                .map(move |(port, _)| f.host.addr(block, *port))
        })
        .collect();
    addrs.extend(Host::ALL.iter().map(|h| h.addr(block, BLACKBOX_PORT)));
    addrs.extend(
        Server::ALL
            .iter()
            .map(|s| s.host().addr(block, PROMETHEUS_PORT)),
    );
    addrs
}
