//! Builds every task from the config and owns the daemon's life: cycles, reloads on
//! SIGHUP, and a confirmed shutdown. Only this module knows all the tasks.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, ClusterReporter, Config, FormatKind};
use crate::discovery::{addresses, components};
use crate::evaluation::state::{self, SavedState};
use crate::evaluation::{Evaluator, PlannedRule};
use crate::lifecycle::{heap, logging, notify, signals};
use crate::metrics::Metrics;
use crate::output::{Outputs, format};
use crate::prometheus::pair::PairError;
use crate::prometheus::{PrometheusPair, liveness};
use crate::snapshot::{AlertState, Entry, Snapshot};

/// Exit codes of SPEC §10.
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 78;

/// A state file unchanged for this long (or half of `state_max_age`, if shorter) is
/// written again, to refresh its `saved_at`: the age checked against `state_max_age` at
/// start.
const STATE_REFRESH: Duration = Duration::from_secs(60);

/// SIGTERM to exit must take less than this (SPEC §12 gives 5 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Prometheus server setup: {0}")]
    Server(#[from] crate::prometheus::ServerError),
    #[error("rules: {0}")]
    Rules(String),
}

/// One configuration's worth of running agent: everything a reload replaces.
pub struct Agent {
    config: Config,
    host: String,
    scope_queries: DetectionQueries,
    pair: Arc<PrometheusPair>,
    evaluator: Evaluator,
    rules: Vec<PlannedRule>,
    sticky: components::StickyComponents,
    next_detect: Option<Instant>,
    process_fallback_logged: bool,
    cluster_reporter: bool,
    state_path: PathBuf,
    /// The state write started after the last cycle, if any; true once written.
    pending_save: Option<tokio::task::JoinHandle<bool>>,
    /// The state last written (without its `saved_at`), and when.
    last_saved: Option<(SavedState, Instant)>,
    extra_entries: Vec<watch::Receiver<Vec<Entry>>>,
    /// Ping targets seen in `instance` labels, when `targets_from_prometheus` is on.
    ping_targets: Option<watch::Sender<Vec<String>>>,
    next_targets: Option<Instant>,
    prometheus_key: String,
    prometheus_level: String,
}

/// The detection queries of SPEC §3, already scoped to this host.
struct DetectionQueries {
    groups: String,
    jobs: String,
}

impl Agent {
    /// Builds the agent for `config`, restoring saved state.
    pub async fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, AppError> {
        let addresses = addresses::host_addresses(&config.host.addresses);
        let host_ips = addresses::local_ips(&addresses);
        let pair =
            Arc::new(PrometheusPair::new(&config.prometheus, &host_ips, metrics.clone()).await?);
        let plan = crate::plan::Plan::build(&config, &addresses).map_err(AppError::Rules)?;
        let now = Timestamp::now();
        let state_path = state::path_in(&config.agent.state_dir);
        let saved = state::restore(&state_path, now, config.agent.state_max_age.get());
        let states: HashMap<_, _> = saved.keys.into_iter().collect();
        let evaluator = Evaluator::new(
            pair.clone(),
            metrics,
            config.prometheus.on_no_data,
            config.agent.max_concurrency,
            config.prometheus.rules_per_query,
            config.prometheus.timeout.get(),
            states,
        );
        let cluster_reporter = match config.host.cluster_reporter {
            ClusterReporter::Always => true,
            ClusterReporter::Never => false,
            ClusterReporter::Auto => pair.has_local(),
        };
        let host = if config.agent.hostname.is_empty() {
            addresses::hostname().unwrap_or_else(|| addresses.first().cloned().unwrap_or_default())
        } else {
            config.agent.hostname.clone()
        };
        tracing::info!(
            host,
            addresses = ?addresses,
            cluster_reporter,
            rules = plan.rules.len(),
            servers = ?pair.members().iter().map(|m| (&m.server.name, m.local)).collect::<Vec<_>>(),
            "agent configured"
        );
        Ok(Self {
            host,
            scope_queries: DetectionQueries {
                groups: plan.detect_groups,
                jobs: plan.detect_jobs,
            },
            pair,
            evaluator,
            rules: plan.rules,
            sticky: saved.components,
            next_detect: None,
            process_fallback_logged: false,
            cluster_reporter,
            state_path,
            pending_save: None,
            last_saved: None,
            extra_entries: Vec::new(),
            ping_targets: None,
            next_targets: None,
            prometheus_key: plan.prometheus_key,
            prometheus_level: plan.prometheus_level,
            config,
        })
    }

    pub fn pair(&self) -> &Arc<PrometheusPair> {
        &self.pair
    }

    /// Adds a source of entries computed elsewhere (ping), read at every cycle.
    pub fn add_entries(&mut self, rx: watch::Receiver<Vec<Entry>>) {
        self.extra_entries.push(rx);
    }

    /// Starts the ping task when `[ping] enabled`; its keys join every snapshot.
    pub fn start_ping(
        &mut self,
        tasks: &TaskTracker,
        metrics: Arc<Metrics>,
        shutdown: &CancellationToken,
    ) {
        if !self.config.ping.enabled {
            return;
        }
        let (entries_tx, entries_rx) = watch::channel(Vec::new());
        let (targets_tx, targets_rx) = watch::channel(Vec::new());
        let template =
            crate::rules::KeyTemplate::parse(&self.config.agent.key_template).unwrap_or_default();
        let product = self.config.agent.product.clone();
        let key_name = move |component: &str, alert: &str| template.key(&product, component, alert);
        tasks.spawn(crate::ping::task::run(
            self.config.ping.clone(),
            key_name,
            targets_rx,
            entries_tx,
            metrics,
            shutdown.clone(),
        ));
        self.add_entries(entries_rx);
        if self.config.ping.targets_from_prometheus {
            self.ping_targets = Some(targets_tx);
        }
    }

    /// Host addresses in every `instance` label, for `targets_from_prometheus`.
    async fn refresh_ping_targets(&mut self) {
        let Some(tx) = &self.ping_targets else { return };
        if self.next_targets.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let deadline = Instant::now() + self.config.prometheus.timeout.get();
        let label = &self.config.host.label;
        match self
            .pair
            .query(&format!("count by ({label}) (up)"), deadline)
            .await
        {
            Ok(answer) => {
                let mut hosts: Vec<String> = answer
                    .series
                    .iter()
                    .filter_map(|s| s.get(label))
                    .map(|i| host_of(i).to_string())
                    .collect();
                hosts.sort();
                hosts.dedup();
                tx.send_replace(hosts);
                self.next_targets = Some(Instant::now() + self.config.host.detect_every.get());
            }
            Err(e) => tracing::debug!("cannot list ping targets from Prometheus: {e}"),
        }
    }

    /// The components this host reports now.
    async fn components(&mut self, now: Timestamp) -> BTreeSet<String> {
        if !self.config.host.components.is_empty() {
            return self.config.host.components.iter().cloned().collect();
        }
        let due = self.next_detect.is_none_or(|t| Instant::now() >= t);
        if due {
            let deadline = Instant::now() + self.config.prometheus.timeout.get();
            let (groups, jobs) = tokio::join!(
                self.pair.query(&self.scope_queries.groups, deadline),
                self.pair.query(&self.scope_queries.jobs, deadline)
            );
            match (groups, jobs) {
                (Ok(groups), Ok(jobs)) => {
                    let found =
                        components::from_answers(&self.config.host.component_map, &groups, &jobs);
                    tracing::debug!(?found, "components detected from Prometheus");
                    self.sticky.saw(found, now);
                    self.process_fallback_logged = false;
                    self.next_detect = Some(Instant::now() + self.config.host.detect_every.get());
                }
                (Err(e), _) | (_, Err(e)) => {
                    if self.sticky.is_empty() {
                        let found = components::from_process_table();
                        // Said once per outage, not every cycle.
                        if !self.process_fallback_logged {
                            tracing::warn!(
                                ?found,
                                "cannot detect components from Prometheus ({e}); using the process table"
                            );
                            self.process_fallback_logged = true;
                        }
                        self.sticky.saw(found, now);
                    } else if matches!(e, PairError::BadData(_)) {
                        tracing::error!("component detection query rejected: {e}");
                    }
                    // Try again next cycle rather than after detect_every.
                }
            }
        }
        self.sticky
            .present(now, self.config.host.component_ttl.get())
    }

    /// One cycle: detection when due, every rule, the computed keys.
    pub async fn cycle(&mut self) -> Snapshot {
        let now = Timestamp::now();
        let components = self.components(now).await;
        self.refresh_ping_targets().await;
        let mut entries = self
            .evaluator
            .cycle(&self.rules, &components, self.cluster_reporter, now)
            .await;
        let down = self.pair.prometheus_is_down();
        entries.push(Entry {
            key: self.prometheus_key.clone(),
            value: u8::from(down),
            level: self.prometheus_level.clone(),
            component: "prometheus".into(),
            state: if down {
                AlertState::Firing
            } else {
                AlertState::Ok
            },
            since: None,
        });
        for rx in &self.extra_entries {
            entries.extend(rx.borrow().iter().cloned());
        }
        Snapshot::new(
            self.host.clone(),
            now,
            self.config.agent.interval.get().as_secs().max(1),
            entries,
        )
    }

    /// What the state file holds now: `for` states and components.
    fn saved_state(&self) -> SavedState {
        SavedState {
            version: 0,
            saved_at: Some(Timestamp::now()),
            keys: self
                .evaluator
                .states()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            components: self.sticky.clone(),
        }
    }

    /// Saves the state now and waits for it: at exit, before a reload, and for `once`.
    /// Failures are logged, never fatal.
    pub async fn save_state(&mut self) {
        if let Some(pending) = self.pending_save.take() {
            let _ = pending.await;
        }
        write_state(&self.state_path, &self.saved_state());
    }

    /// Saves the state after a cycle, on the blocking pool: the fsync of an atomic write
    /// takes milliseconds of CPU and tens of milliseconds on a busy disk, and the cycle
    /// must not wait for it. Most cycles change nothing, and those write only when the
    /// file is [`STATE_REFRESH`] old, so that a TiDB host's disk sees one fsync a minute
    /// from it.
    fn save_state_in_background(&mut self) {
        if let Some(pending) = &self.pending_save {
            if !pending.is_finished() {
                // The next cycle saves a newer state anyway.
                return;
            }
            let written = self
                .pending_save
                .take()
                .and_then(FutureExt::now_or_never)
                .is_some_and(|r| r.unwrap_or(false));
            if !written {
                self.last_saved = None;
            }
        }
        let mut saved = self.saved_state();
        saved.saved_at = None;
        let refresh = STATE_REFRESH.min(self.config.agent.state_max_age.get() / 2);
        if !state_write_due(self.last_saved.as_ref(), &saved, Instant::now(), refresh) {
            return;
        }
        self.last_saved = Some((saved.clone(), Instant::now()));
        saved.saved_at = Some(Timestamp::now());
        let path = self.state_path.clone();
        self.pending_save = Some(tokio::task::spawn_blocking(move || {
            write_state(&path, &saved)
        }));
    }
}

/// Whether `current` (without its `saved_at`) must be written: it differs from the state
/// last written, or that write is `refresh` old, or nothing was written yet.
fn state_write_due(
    last: Option<&(SavedState, Instant)>,
    current: &SavedState,
    now: Instant,
    refresh: Duration,
) -> bool {
    match last {
        Some((written, at)) => written != current || now.duration_since(*at) >= refresh,
        None => true,
    }
}

/// Writes the state file; false (and a warning) when it could not.
fn write_state(path: &Path, saved: &SavedState) -> bool {
    match state::save(path, saved) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot save state to {}: {e}", path.display());
            false
        }
    }
}

/// Loads the config or prints every problem; `Err` carries the exit code.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|problems| {
        eprint!("{problems}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `run`: the daemon.
pub async fn run(path: PathBuf, mut config: Config) -> ExitCode {
    let metrics = Arc::new(Metrics::new());
    let root = CancellationToken::new();
    let mut reloads = match signals::install(root.clone()) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let tracker = TaskTracker::new();
    let mut metrics_server = MetricsServer::start(&config, &metrics, &root, &tracker);
    if let Err(e) = std::fs::create_dir_all(&config.agent.state_dir) {
        tracing::warn!(
            "cannot create the state directory {}: {e}",
            config.agent.state_dir.display()
        );
    }

    let mut first = true;
    'generations: loop {
        let generation = root.child_token();
        let tasks = TaskTracker::new();
        let mut agent = match Agent::new(config.clone(), metrics.clone()).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let outputs = Outputs::start(&config.outputs, metrics.clone(), &tasks, &generation);
        agent.start_ping(&tasks, metrics.clone(), &generation);
        tasks.spawn(liveness::run(
            agent.pair().clone(),
            config.agent.interval.get(),
            config.prometheus.probe_timeout.get(),
            config.prometheus.down_after,
            generation.clone(),
        ));
        // Alertmanager forwarding (returns at once when it is off).
        let (forward_config, state_dir, forward_metrics, stop) = (
            config.alertmanager.clone(),
            config.agent.state_dir.clone(),
            metrics.clone(),
            generation.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) =
                crate::forward::run(forward_config, state_dir, forward_metrics, stop).await
            {
                tracing::error!("alert forwarding is off: {e}");
            }
        });
        // Give the first probe a moment so the first snapshot knows who is up.
        liveness::probe_all(
            agent.pair(),
            config.prometheus.probe_timeout.get(),
            config.prometheus.down_after,
        )
        .await;
        if first {
            notify::ready();
            first = false;
        }
        let mut ticker = tokio::time::interval(config.agent.interval.get());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watchdog =
            tokio::time::interval(notify::watchdog_period().unwrap_or(Duration::from_secs(3600)));
        // Half an interval after each cycle, once its sinks and state file are written,
        // the pages the cycle freed go back to the kernel.
        let mut trimmer = tokio::time::interval_at(
            tokio::time::Instant::now() + config.agent.interval.get() / 2,
            config.agent.interval.get(),
        );
        trimmer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = root.cancelled() => {
                    notify::stopping();
                    agent.save_state().await;
                    // The generation token is a child of root: wait for its tasks too.
                    tasks_shutdown(&tasks).await;
                    break 'generations;
                }
                Some(_) = reloads.recv() => {
                    notify::reloading();
                    match config::load(&path) {
                        Ok(new) => {
                            tracing::info!("configuration reloaded from {}", path.display());
                            metrics.config_reload(true);
                            agent.save_state().await;
                            generation.cancel();
                            tasks.close();
                            tasks.wait().await;
                            apply_log_changes(&config.log, &new.log);
                            if new.metrics.listen != config.metrics.listen {
                                metrics_server.stop().await;
                                metrics_server = MetricsServer::start(&new, &metrics, &root, &tracker);
                            }
                            config = new;
                            notify::ready();
                            continue 'generations;
                        }
                        Err(problems) => {
                            metrics.config_reload(false);
                            tracing::error!("reload refused, keeping the running configuration: {problems}");
                            notify::ready();
                        }
                    }
                }
                _ = watchdog.tick() => notify::watchdog(),
                _ = trimmer.tick() => heap::release_free_pages(),
                _ = ticker.tick() => {
                    let started = Instant::now();
                    let snapshot = agent.cycle().await;
                    let firing = snapshot.entries.iter().filter(|e| e.value == 1).count();
                    let keys = snapshot.entries.len();
                    outputs.publish(Arc::new(snapshot));
                    metrics.cycle(started.elapsed());
                    agent.save_state_in_background();
                    notify::status(&format!("{keys} keys, {firing} firing, last cycle {:.0?}", started.elapsed()));
                }
            }
        }
    }
    tasks_shutdown(&tracker).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The self-metrics listener. It outlives reloads, and is moved only when a reload
/// changes `[metrics] listen`.
struct MetricsServer {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetricsServer {
    fn start(
        config: &Config,
        metrics: &Arc<Metrics>,
        root: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let stop = root.child_token();
        let listen = config
            .metrics
            .listen
            .as_deref()
            .and_then(|l| l.parse().ok());
        let task = listen.map(|listen| {
            let (m, stop) = (metrics.clone(), stop.clone());
            tracker.spawn(async move {
                if let Err(e) = crate::metrics::serve(listen, m, stop).await {
                    tracing::error!(%listen, "cannot serve self-metrics: {e}");
                }
            })
        });
        Self { stop, task }
    }

    /// Stops listening, and returns once the port is free again.
    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A reload applies a new `[log] level` at once; a new log directory, file prefix or
/// `keep` needs a restart, and says so.
fn apply_log_changes(old: &crate::config::LogConfig, new: &crate::config::LogConfig) {
    if new.level != old.level {
        logging::set_level(&new.level);
    }
    if new.directory != old.directory || new.file_prefix != old.file_prefix || new.keep != old.keep
    {
        tracing::warn!(
            "the new [log] directory, file_prefix or keep takes effect when the agent restarts"
        );
    }
}

async fn tasks_shutdown(tracker: &TaskTracker) {
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}");
    }
}

/// `once`: one cycle, the snapshot on stdout.
pub async fn once(config: Config, format_kind: FormatKind) -> ExitCode {
    let metrics = Arc::new(Metrics::new());
    let mut agent = match Agent::new(config.clone(), metrics).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // A single run cannot wait for `down_after` probes: one failure counts.
    liveness::probe_all(agent.pair(), config.prometheus.probe_timeout.get(), 1).await;
    let snapshot = agent.cycle().await;
    let _ = std::fs::create_dir_all(&config.agent.state_dir);
    agent.save_state().await;
    let bytes = format::render(format_kind, &snapshot, &Default::default());
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
        return ExitCode::from(EXIT_RUNTIME);
    }
    ExitCode::SUCCESS
}

/// `explain`: every key with its scope, `for` and level, and the PromQL sent for this host,
/// or for `addresses` when given.
pub fn explain(path: &Path, config: &Config, addresses: &[String]) -> ExitCode {
    let rules = match crate::rules::load(&crate::plan::load_options(config)) {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let host = if addresses.is_empty() {
        let own = addresses::host_addresses(&config.host.addresses);
        crate::promql::HostScope::new(&config.host.label, &own).map_err(|e| {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        })
    } else {
        crate::promql::HostScope::new(&config.host.label, addresses).map_err(|e| {
            eprintln!("--address: {e}");
            ExitCode::from(EXIT_USAGE)
        })
    };
    let host = match host {
        Ok(host) => host,
        Err(code) => return code,
    };
    let text = crate::rules::explain(&rules, &host);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_RUNTIME),
    }
}

/// `check [--connect]`.
pub async fn check(path: &Path, config: Config, connect: bool) -> ExitCode {
    let addresses = addresses::host_addresses(&config.host.addresses);
    let plan = match crate::plan::Plan::build(&config, &addresses) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!(
        "{}: configuration OK ({} rules, {} outputs)",
        path.display(),
        plan.rules.len(),
        config.outputs.len()
    );
    if !connect {
        return ExitCode::SUCCESS;
    }
    let metrics = Arc::new(Metrics::new());
    let host_ips = addresses::local_ips(&addresses);
    let pair = match PrometheusPair::new(&config.prometheus, &host_ips, metrics).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let mut failed = false;
    for member in pair.members() {
        match member
            .server
            .probe(config.prometheus.probe_timeout.get())
            .await
        {
            Ok(()) => println!(
                "server {} (local: {}): up",
                member.server.name, member.local
            ),
            Err(e) => {
                failed = true;
                println!(
                    "server {} (local: {}): DOWN: {e}",
                    member.server.name, member.local
                );
            }
        }
    }
    for server in &config.alertmanager.servers {
        let answer =
            match crate::forward::client::AlertmanagerClient::new(server, &config.alertmanager) {
                Ok(client) => client.alerts().await.map(|alerts| (client, alerts.len())),
                Err(e) => Err(e),
            };
        match answer {
            Ok((client, alerts)) => {
                println!("alertmanager {}: up ({alerts} alerts match)", client.name());
            }
            Err(e) => {
                failed = true;
                // The error names the server (without the URL's credentials).
                println!("DOWN: {e}");
            }
        }
    }
    for rule in &plan.rules {
        let deadline = Instant::now() + config.prometheus.timeout.get();
        let result = pair.query(&rule.query, deadline).await;
        match result {
            Ok(a) if a.series.is_empty() => println!("{}: ok", rule.key),
            Ok(a) => println!("{}: firing ({} series)", rule.key, a.series.len()),
            Err(e) => {
                failed = true;
                println!("{}: error: {e}", rule.key);
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// `10.0.1.5:20180` → `10.0.1.5`; `[::1]:9090` → `::1`; a bare host stays as it is.
fn host_of(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_written_when_it_changes_or_ages() {
        let t0 = Instant::now();
        let refresh = Duration::from_secs(60);
        let quiet = SavedState::default();
        let mut changed = SavedState::default();
        changed.keys.insert(
            "TiDB.tikv.TiKV_server_is_down".into(),
            crate::evaluation::ForState::Pending {
                since: Timestamp::UNIX_EPOCH,
            },
        );
        assert!(state_write_due(None, &quiet, t0, refresh));
        let last = (quiet.clone(), t0);
        let soon = t0 + Duration::from_secs(59);
        assert!(!state_write_due(Some(&last), &quiet, soon, refresh));
        assert!(state_write_due(Some(&last), &changed, soon, refresh));
        let later = t0 + refresh;
        assert!(state_write_due(Some(&last), &quiet, later, refresh));
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(super::host_of("10.0.1.5:20180"), "10.0.1.5");
        assert_eq!(super::host_of("[::1]:9090"), "::1");
        assert_eq!(super::host_of("tidb-1"), "tidb-1");
        assert_eq!(super::host_of("fe80::1"), "fe80::1");
    }
}
