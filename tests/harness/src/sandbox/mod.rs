//! The end-to-end sandbox of issue 4, used by the integration tests and by
//! `examples/sandbox.rs` (the demo): a small TiDB cluster on loopback with real monitoring.
//!
//! - Hosts 127.N.1.1, 127.N.1.2 and 127.N.1.10 ([`Host`]) of a loopback [`Block`] N
//!   (tests: 1..=60; the demo: 0).
//! - Two metrics servers on :9090: A on .1 (Prometheus), B on .2 (Prometheus, or
//!   VictoriaMetrics single-node), scraping and probing every second with a config modelled on
//!   TiUP's prometheus.yml.tpl. Each probes through the real blackbox_exporter on its own host.
//! - Fake components serving the real metric names, healthy by default (every catalog rule
//!   false): .1 pd (leader), tikv, tidb; .2 pd, tikv, tiflash, grafana; .10 tikv:20180,
//!   tikv:20181, tidb; node_exporter on every host. Real blackbox_exporter on every host.
//!
//! # API
//! ```ignore
//! let sb = Sandbox::start().await;               // or start_with(SandboxOptions { server_b,
//!                                                //   start_servers, block })
//! sb.wait_until_ready().await;                   // every running server scraped every target
//! let tikv = sb.fake(sb.addr(Host::Ten, 20180)); // FakeProcess, found by any of its ports
//! tikv.stop().await;                             // ports and connections close; start().await,
//!                                                //   restart().await (new start time)
//! tikv.set(r#"tikv_engine_write_stall{db="kv"}"#, 1.0); // selector: name{label="v",…}
//! tikv.add("…", 1.0); tikv.set_rate("…", 0.0);   // counters; set_histogram("family", 2.0)
//! tikv.set_for_view(Server::A, "…", 9.0);        // only A sees it (any/all modes); clear_views()
//! let a = sb.server(Server::A);                  // MetricsServer: url(), addr(), kind(),
//! a.stop().await; a.start().await;               //   pause() = SIGSTOP, resume() = SIGCONT
//! let up: Vec<Sample> = sb.query(Server::B, "up").await;   // Sample { labels, value }, label()
//! sb.wait_for(Server::B, "probe_success == 0", "a probe to fail", |s| !s.is_empty()).await;
//! sb.blackbox(Host::Ten).stop().await;           // the real blackbox_exporter of a host
//! ```
//! Also [`Sandbox::block`], [`Sandbox::ip`], [`Sandbox::addr`], [`Sandbox::fakes`],
//! [`Sandbox::find_fake`], and [`Sandbox::dir`]: the sandbox's temp dir, free for the test's
//! agent config and state. `tests/sandbox.rs` has, in `FAULTS`, the fault that turns each
//! catalog rule true; `BLACKER_ping_latency_more_than_1s` has none (loopback pings are fast).
//!
//! Every wait is bounded ([`WAIT_LIMIT`]) and panics with what it saw and the server's log
//! tail. Dropping the sandbox (also during a panic) kills every process, closes every port,
//! removes the temp dir (kept when `TIDB_SANDBOX_KEEP` is set) and frees the block. The
//! harness runs on its own runtime thread, so a test may block or pause tokio time.
//!
//! A VictoriaMetrics server gets 20 minutes of the fakes' history at its first start:
//! VictoriaMetrics counts the first sample of a series as a change, and `changes()` rules
//! would otherwise be true on a fresh sandbox.

mod component_metrics;
mod exposition;
mod fake;
pub mod fleet;
mod query;
mod scrape_config;
mod serve;
mod supervisor;
mod topology;
mod upstream_rules;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::block::{self, Block};
use crate::io_thread::{IoThread, run_on};
use crate::wait::Wait;
use supervisor::ManagedProcess;
use topology::{BLACKBOX_PORT, PROMETHEUS_PORT};

pub use crate::block::DEMO_BLOCK;
pub use fake::FakeProcess;
pub use query::Sample;
pub use scrape_config::ServerKind;
pub use topology::{Component, Host, Server};

/// The bound of every wait of the sandbox.
pub const WAIT_LIMIT: Duration = crate::wait::LIMIT;
const POLL: Duration = Duration::from_millis(200);
/// The past imported into VictoriaMetrics: more than the longest window of the catalog's
/// `changes()` and `delta()` rules (15m), at the scrape interval.
const HISTORY_SPAN: Duration = Duration::from_secs(20 * 60);
const HISTORY_STEP: Duration = Duration::from_secs(1);

/// How to build a sandbox; `Default` is two Prometheus servers on a free test block.
#[derive(Clone, Copy, Debug)]
pub struct SandboxOptions {
    /// What server B is.
    pub server_b: ServerKind,
    /// Start both servers (the default). Without, the test can set faults that must hold
    /// from the very first scrape (e.g. a counter that never grew), then start them with
    /// [`MetricsServer::start`].
    pub start_servers: bool,
    /// A fixed block (`Some(DEMO_BLOCK)` for the demo), or the first free test block.
    pub block: Option<u8>,
    /// Load TiDB's own rule files (tests/data/upstream, `for:` shortened to 0s) into the
    /// Prometheus servers, as TiUP does, so that they write `ALERTS`. Off by default.
    pub upstream_rules: bool,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            server_b: ServerKind::Prometheus,
            start_servers: true,
            block: None,
            upstream_rules: false,
        }
    }
}

/// One of the two metrics servers (cheap to clone).
#[derive(Clone)]
pub struct MetricsServer {
    server: Server,
    kind: ServerKind,
    addr: SocketAddr,
    process: Arc<ManagedProcess>,
    http: reqwest::Client,
    io: Handle,
    /// For the history a VictoriaMetrics server gets at its first start.
    fakes: Arc<Vec<FakeProcess>>,
    seeded: Arc<AtomicBool>,
}

impl MetricsServer {
    pub fn server(&self) -> Server {
        self.server
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.N.1.x:9090`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Started and not paused.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// SIGTERM and wait for the exit; afterwards the address refuses connections.
    pub async fn stop(&self) {
        supervisor::stop_on(&self.io, &self.process).await;
    }

    /// Starts (again) on the same address and data directory, and waits until it is ready
    /// (`/-/ready`); [`Sandbox::wait_until_ready`] then waits for fresh scrapes. Resumes a
    /// paused server.
    pub async fn start(&self) {
        supervisor::start_on(&self.io, &self.process, &self.http).await;
        let first_start = !self.seeded.swap(true, Ordering::SeqCst);
        if self.kind == ServerKind::VictoriaMetrics && first_start {
            let (http, url) = (self.http.clone(), self.url());
            let body = history_import(&self.fakes);
            run_on(&self.io, seed_history(http, url, body)).await;
        }
    }

    /// SIGSTOP: the server hangs, its socket accepts but nothing answers.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.process.resume();
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// An instant query; panics if the server does not answer with a result.
    pub async fn query(&self, promql: &str) -> Vec<Sample> {
        match self.try_query(promql).await {
            Ok(samples) => samples,
            Err(why) => panic!("query to server {:?} failed: {why}", self.server),
        }
    }

    pub async fn try_query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let (http, url, promql) = (self.http.clone(), self.url(), promql.to_string());
        run_on(&self.io, async move {
            query::instant_query(&http, &url, &promql).await
        })
        .await
    }
}

/// A blackbox_exporter of one host (cheap to clone).
#[derive(Clone)]
pub struct Blackbox {
    host: Host,
    addr: SocketAddr,
    process: Arc<ManagedProcess>,
    http: reqwest::Client,
    io: Handle,
}

impl Blackbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    pub async fn stop(&self) {
        supervisor::stop_on(&self.io, &self.process).await;
    }

    pub async fn start(&self) {
        supervisor::start_on(&self.io, &self.process, &self.http).await;
    }
}

pub struct Sandbox {
    io: IoThread,
    http: reqwest::Client,
    fakes: Arc<Vec<FakeProcess>>,
    blackboxes: Vec<Blackbox>,
    servers: Vec<MetricsServer>,
    dir: Option<tempfile::TempDir>,
    /// Released last, once every port is closed.
    block: Block,
}

impl Sandbox {
    /// Two Prometheus servers on a free test block; returns once every process is ready.
    pub async fn start() -> Sandbox {
        Sandbox::start_with(SandboxOptions::default()).await
    }

    pub async fn start_with(options: SandboxOptions) -> Sandbox {
        let lock = Block::acquire(options.block, topology::all_listen_addrs);
        let block = lock.number();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{block}-", block::DIR_PREFIX))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the sandbox temp dir: {e}"));
        let io = IoThread::spawn("sandbox-io");
        let http = crate::http::client();
        let specs = topology::fakes();
        let fakes = Arc::new(
            specs
                .iter()
                .map(|spec| FakeProcess::new(spec.clone(), block, io.handle()))
                .collect(),
        );
        // The sandbox exists before anything starts, so that a failure below (a panic)
        // drops it and cleans up what was already started.
        let mut sandbox = Sandbox {
            io,
            http,
            fakes,
            blackboxes: Vec::new(),
            servers: Vec::new(),
            dir: Some(dir),
            block: lock,
        };
        for fake in sandbox.fakes.iter() {
            fake.start().await;
        }
        let root = sandbox.dir().to_path_buf();
        let blackbox_yml = write(
            &root.join("blackbox.yml"),
            &scrape_config::blackbox_config(),
        );
        for host in Host::ALL {
            let addr = host.addr(block, BLACKBOX_PORT);
            let process = ManagedProcess::new(
                &format!("blackbox_exporter on {addr}"),
                "/usr/bin/prometheus-blackbox-exporter",
                vec![
                    format!("--config.file={}", blackbox_yml.display()),
                    format!("--web.listen-address={addr}"),
                ],
                root.join(format!("blackbox-{}.log", host.last_octet())),
                format!("http://{addr}/metrics"),
            );
            sandbox.blackboxes.push(Blackbox {
                host,
                addr,
                process: Arc::new(process),
                http: sandbox.http.clone(),
                io: sandbox.io.handle(),
            });
        }
        for server in Server::ALL {
            let kind = match server {
                Server::A => ServerKind::Prometheus,
                Server::B => options.server_b,
            };
            let rules = options.upstream_rules && kind == ServerKind::Prometheus;
            let process = server_process(&root, &specs, block, server, kind, rules);
            sandbox.servers.push(MetricsServer {
                server,
                kind,
                addr: server.host().addr(block, PROMETHEUS_PORT),
                process: Arc::new(process),
                http: sandbox.http.clone(),
                io: sandbox.io.handle(),
                fakes: sandbox.fakes.clone(),
                seeded: Arc::new(AtomicBool::new(false)),
            });
        }
        futures::future::join_all(sandbox.blackboxes.iter().map(Blackbox::start)).await;
        if options.start_servers {
            futures::future::join_all(sandbox.servers.iter().map(MetricsServer::start)).await;
        }
        sandbox
    }

    pub fn block(&self) -> u8 {
        self.block.number()
    }

    pub fn ip(&self, host: Host) -> Ipv4Addr {
        host.ip(self.block())
    }

    pub fn addr(&self, host: Host, port: u16) -> SocketAddr {
        host.addr(self.block(), port)
    }

    /// The sandbox's temp dir (configs, data, logs); free for the test's own files.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            None => Path::new("/nonexistent"),
        }
    }

    pub fn server(&self, server: Server) -> &MetricsServer {
        &self.servers[match server {
            Server::A => 0,
            Server::B => 1,
        }]
    }

    pub fn blackbox(&self, host: Host) -> &Blackbox {
        match self.blackboxes.iter().find(|b| b.host == host) {
            Some(b) => b,
            None => panic!("no blackbox_exporter on {host:?}"),
        }
    }

    pub fn fakes(&self) -> &[FakeProcess] {
        &self.fakes
    }

    /// The fake that listens on `addr` (any of its ports); panics if there is none.
    pub fn fake(&self, addr: SocketAddr) -> &FakeProcess {
        match self.find_fake(addr) {
            Some(fake) => fake,
            None => panic!(
                "no fake component listens on {addr} in block {}",
                self.block()
            ),
        }
    }

    pub fn find_fake(&self, addr: SocketAddr) -> Option<&FakeProcess> {
        self.fakes.iter().find(|f| f.addrs().contains(&addr))
    }

    /// An instant query to one server; panics if it does not answer.
    pub async fn query(&self, server: Server, promql: &str) -> Vec<Sample> {
        self.server(server).query(promql).await
    }

    /// Polls `promql` on `server` until `done` accepts the result, and returns it. Panics
    /// with the last result (or error) after [`WAIT_LIMIT`]; `what` names the expectation.
    pub async fn wait_for(
        &self,
        server: Server,
        promql: &str,
        what: &str,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let target = self.server(server);
        let what = format!("{what} on server {server:?} (`{promql}`)");
        let log = || format!("log tail:\n{}", target.log_tail());
        Wait::new(WAIT_LIMIT, &what)
            .every(POLL)
            .on_timeout(&log)
            .until_async(|| async {
                let samples = target.try_query(promql).await?;
                if done(&samples) {
                    Ok(samples)
                } else {
                    Err(format!("{samples:?}"))
                }
            })
            .await
    }

    /// What a server must see once it has scraped every target in the current state:
    /// (targets, targets with `up` 1, port probes with `probe_success` 1).
    pub fn expected_counts(&self, server: Server) -> (usize, usize, usize) {
        let own_blackbox = self.blackbox(server.host()).is_running();
        let (mut targets, mut up, mut probes_ok) = (0, 0, 0);
        let mut probe = |target_running: bool| {
            targets += 1;
            if own_blackbox {
                up += 1;
                probes_ok += usize::from(target_running);
            }
        };
        for fake in self.fakes.iter() {
            probe(fake.is_running());
        }
        for blackbox in &self.blackboxes {
            probe(blackbox.is_running());
        }
        for fake in self.fakes.iter() {
            let scraped = fake.metrics_addrs().len();
            targets += scraped;
            if fake.is_running() {
                up += scraped;
            }
        }
        for blackbox in &self.blackboxes {
            // One ICMP job per blackbox exporter, pinging every host.
            targets += Host::ALL.len();
            if blackbox.is_running() {
                up += Host::ALL.len();
            }
        }
        (targets, up, probes_ok)
    }

    /// Waits until every running (not stopped, not paused) server has scraped every target
    /// since it last started, and sees the current state: `up` and `probe_success` are 1
    /// exactly for the targets whose process runs.
    pub async fn wait_until_ready(&self) {
        for server in Server::ALL {
            let target = self.server(server);
            if !target.is_running() {
                continue;
            }
            let (targets, up, probes_ok) = self.expected_counts(server);
            let since = target.process.started_at();
            let checks = [
                (format!("count(timestamp(up) > {since})"), targets),
                ("count(up == 1)".to_string(), up),
                (
                    r#"count(probe_success{job=~"tidb_port_probe|monitor_port_probe"} == 1)"#
                        .to_string(),
                    probes_ok,
                ),
            ];
            for (promql, expected) in checks {
                let what = format!("{expected} from `{promql}`");
                self.wait_for(server, &promql, &what, |samples| {
                    count_of(samples) == expected
                })
                .await;
            }
        }
    }
}

/// The value of a `count(…)` result: an empty vector counts 0.
fn count_of(samples: &[Sample]) -> usize {
    samples.first().map_or(0, |s| s.value as usize)
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_path_buf()
}

/// VictoriaMetrics counts the first sample of a series as a change, so on a fresh sandbox
/// `changes(process_start_time_seconds[5m]) > 0` would be true for 5 minutes. A past of the
/// fakes' series, 1 s apart like the scrapes and following their current settings, makes
/// the sandbox look like a cluster that has been running for a while, as Prometheus sees it.
fn history_import(fakes: &[FakeProcess]) -> String {
    let mut body = String::new();
    for fake in fakes {
        for past in fake.history(HISTORY_SPAN, HISTORY_STEP) {
            let metric: serde_json::Map<String, serde_json::Value> = past
                .labels
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            let (timestamps, values): (Vec<i64>, Vec<f64>) = past.points.into_iter().unzip();
            let line = serde_json::json!({
                "metric": metric,
                "values": values,
                "timestamps": timestamps,
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
    }
    body
}

async fn seed_history(http: reqwest::Client, url: String, body: String) {
    let import = format!("{url}/api/v1/import");
    match http.post(&import).body(body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => panic!("{import} refused the history: {}", r.status()),
        Err(e) => panic!("{import}: {e}"),
    }
    // Makes the import searchable now rather than within a few seconds.
    let _ = http.get(format!("{url}/internal/force_flush")).send().await;
}

fn server_process(
    root: &Path,
    specs: &[topology::FakeSpec],
    block: u8,
    server: Server,
    kind: ServerKind,
    upstream_rules: bool,
) -> ManagedProcess {
    let addr = server.host().addr(block, PROMETHEUS_PORT);
    let mut config = scrape_config::scrape_config(specs, block, server, kind);
    let (name, program) = match kind {
        ServerKind::Prometheus => ("prometheus", "/usr/bin/prometheus"),
        ServerKind::VictoriaMetrics => ("victoria-metrics", "/usr/bin/victoria-metrics"),
    };
    let home = root.join(format!("{name}-{}", server.view()));
    std::fs::create_dir_all(home.join("data"))
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
    if upstream_rules {
        let files = upstream_rules::write_copies(&home.join("rules"));
        config.push_str(&upstream_rules::section(&files));
    }
    let config_path = write(&home.join("scrape.yml"), &config);
    let data = home.join("data");
    let args = match kind {
        ServerKind::Prometheus => vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={addr}"),
            "--web.enable-lifecycle".to_string(),
            "--storage.tsdb.retention.time=1d".to_string(),
        ],
        ServerKind::VictoriaMetrics => vec![
            format!("-promscrape.config={}", config_path.display()),
            format!("-storageDataPath={}", data.display()),
            format!("-httpListenAddr={addr}"),
            "-retentionPeriod=1d".to_string(),
            // By default the last 30 s are hidden from queries; the sandbox wants them.
            "-search.latencyOffset=1s".to_string(),
            "-search.disableCache".to_string(),
        ],
    };
    ManagedProcess::new(
        &format!("{name} {:?} on {addr}", server),
        program,
        args,
        home.join(format!("{name}.log")),
        format!("http://{addr}/-/ready"),
    )
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for server in &self.servers {
            server.process.kill();
        }
        for blackbox in &self.blackboxes {
            blackbox.process.kill();
        }
        for fake in self.fakes.iter() {
            fake.abort();
        }
        // Joins the I/O thread: every fake listener and connection is closed after this.
        self.io.shutdown();
        if std::env::var_os("TIDB_SANDBOX_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                // Renamed so that the next holder of the block does not remove it.
                let path = dir.keep();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let kept = path.with_file_name(format!(
                    "{}kept-{}",
                    block::DIR_PREFIX,
                    name.strip_prefix(block::DIR_PREFIX).unwrap_or(name)
                ));
                let shown = if std::fs::rename(&path, &kept).is_ok() {
                    kept
                } else {
                    path
                };
                eprintln!("sandbox files kept in {}", shown.display());
            }
        }
    }
}
