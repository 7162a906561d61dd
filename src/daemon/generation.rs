//! A generation: everything one configuration runs. It is built completely (rules
//! planned, server clients with their secret files and CAs, sinks and forward targets
//! checked) before it replaces the running one, so a configuration that cannot run is
//! refused and the old generation runs on.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RuleSource;
use crate::config::{ClusterReporter, Config, HostMatcher};
use crate::discovery::{ComponentDetector, addresses, instances, ping_targets};
use crate::evaluation::host_cycle::{self, HostCycle};
use crate::evaluation::state::{SavedState, StateWriter};
use crate::evaluation::{Evaluator, sources};
use crate::forward::{ForwardError, Forwarder};
use crate::metrics::Metrics;
use crate::output::{OutputError, Outputs};
use crate::plan::{Plan, PlanError};
use crate::prometheus::pair::ServerSetupError;
use crate::prometheus::{PrometheusPair, liveness};

/// A configuration that cannot run, and why.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Server(#[from] ServerSetupError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Every problem found while building a generation.
#[derive(Debug)]
pub struct BuildErrors(pub Vec<BuildError>);

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&crate::error::chain(problem))?;
        }
        Ok(())
    }
}

/// A configuration, built and ready to start.
pub struct Generation {
    pub config: Config,
    pub plan: Plan,
    pair: Arc<PrometheusPair>,
    cycle: HostCycle,
    forwarder: Option<Forwarder>,
    /// Each key's source, sent to the cycle's evaluator.
    decisions: watch::Sender<sources::Decisions>,
}

impl Generation {
    /// Builds everything `config` runs, reporting every problem. Nothing is started.
    pub async fn build(config: Config, metrics: Arc<Metrics>) -> Result<Self, BuildErrors> {
        let mut problems = Vec::new();
        let addresses = addresses::host_addresses(&config.host.addresses);
        let plan = Plan::build(&config, &addresses).map_err(|e| problems.push(e.into()));
        let host_ips = addresses::local_ips(&addresses);
        let pair = PrometheusPair::new(&config.prometheus, &host_ips, metrics.clone())
            .await
            .map_err(|e| problems.extend(e.into_iter().map(BuildError::from)));
        let forwarder = Forwarder::build(&config.alertmanager, &config.agent.state_dir)
            .map_err(|e| problems.extend(e.into_iter().map(BuildError::from)));
        problems.extend(
            crate::output::check(&config.outputs)
                .into_iter()
                .map(BuildError::from),
        );
        let (Ok(plan), Ok(pair), Ok(forwarder)) = (plan, pair, forwarder) else {
            return Err(BuildErrors(problems));
        };
        if !problems.is_empty() {
            return Err(BuildErrors(problems));
        }
        let pair = Arc::new(pair);
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
        let evaluator = Evaluator::new(
            pair.clone(),
            metrics,
            config.prometheus.on_no_data,
            config.agent.max_concurrency,
            config.prometheus.rules_per_query,
            config.prometheus.timeout.get(),
        );
        let rules = plan.evaluated();
        let (decisions, decided) = watch::channel(sources::decide_all(&rules, &[]));
        let evaluator = evaluator.with_sources(plan.host.clone(), decided);
        let components = ComponentDetector::new(
            config.host.clone(),
            plan.detect.clone(),
            config.prometheus.timeout.get(),
        );
        let cycle = HostCycle::new(host_cycle::Parts {
            host,
            cluster_reporter,
            step_secs: config.agent.interval.get().as_secs().max(1),
            pair: pair.clone(),
            evaluator,
            rules,
            components,
            prometheus_key: plan.prometheus_key(&config),
            probing: liveness::Probing {
                timeout: config.prometheus.probe_timeout.get(),
                down_after: config.prometheus.down_after,
            },
            query_timeout: config.prometheus.timeout.get(),
            degraded_key: config.agent.key_template.key(
                &config.agent.product,
                crate::evaluation::degraded::COMPONENT,
                "Agent_degraded",
            ),
        });
        Ok(Self {
            config,
            plan,
            pair,
            cycle,
            forwarder,
            decisions,
        })
    }

    /// Under `auto`, reads what the servers load once and decides each key's source (for
    /// `once`, which runs no background task).
    pub async fn read_sources(&self) {
        if self.uses_auto() {
            let servers = sources::read(
                &self.pair,
                self.cycle.rules(),
                self.config.prometheus.timeout.get(),
            )
            .await;
            self.decisions
                .send_replace(sources::decide_all(self.cycle.rules(), &servers));
        }
    }

    fn uses_auto(&self) -> bool {
        self.cycle
            .rules()
            .iter()
            .any(|r| r.value_source == RuleSource::Auto && r.alerts_blocked.is_none())
    }

    pub fn pair(&self) -> &Arc<PrometheusPair> {
        &self.pair
    }

    /// The cycle alone, for one-shot use (`once`).
    pub fn into_cycle(self) -> HostCycle {
        self.cycle
    }

    /// Starts every task of this generation under `token`, with the state `saved` (handed
    /// on by the generation it replaces), or else the state file's.
    pub fn start(
        self,
        saved: Option<SavedState>,
        metrics: &Arc<Metrics>,
        token: CancellationToken,
    ) -> Running {
        let uses_auto = self.uses_auto();
        let Self {
            config,
            plan,
            pair,
            mut cycle,
            forwarder,
            decisions,
        } = self;
        let state = StateWriter::new(&config.agent.state_dir, config.agent.state_max_age.get());
        cycle.restore(saved.unwrap_or_else(|| state.restore()));
        tracing::info!(
            host = cycle.host,
            cluster_reporter = cycle.cluster_reporter,
            rules = cycle.rules().len(),
            servers = ?pair.members().iter().map(|m| (&m.server.name, m.local)).collect::<Vec<_>>(),
            "agent configured"
        );
        let tasks = TaskTracker::new();
        // The rules the cycle runs, as the instances task re-scopes them when it runs;
        // without it, the channel keeps the planned ones.
        let (scoped, follow) = watch::channel(instances::Scoped {
            host: plan.host,
            rules: cycle.shared_rules(),
        });
        if config.host.matcher == HostMatcher::Instances {
            tasks.spawn(instances::run(
                pair.clone(),
                config.agent.interval.into(),
                config.prometheus.timeout.get(),
                scoped,
                token.clone(),
            ));
            cycle.follow_scope(follow.clone());
        }
        if uses_auto {
            tasks.spawn(sources::run(
                pair.clone(),
                move || follow.borrow().rules.clone(),
                config.agent.interval.into(),
                config.prometheus.timeout.get(),
                decisions,
                token.clone(),
            ));
        }
        let sinks: Vec<_> = config
            .outputs
            .iter()
            .cloned()
            .chain(crate::output::published(&config.agent))
            .collect();
        let outputs = Outputs::start(&sinks, metrics.clone(), &tasks, &token);
        if config.ping.enabled {
            let (entries_tx, entries_rx) = watch::channel(Vec::new());
            let (targets_tx, targets_rx) = watch::channel(Vec::new());
            let template = config.agent.key_template.clone();
            let product = config.agent.product.clone();
            let key_name =
                move |component: &str, alert: &str| template.key(&product, component, alert);
            tasks.spawn(crate::ping::task::run(
                config.ping.clone(),
                key_name,
                targets_rx,
                entries_tx,
                metrics.clone(),
                token.clone(),
            ));
            cycle.add_computed(entries_rx);
            if config.ping.targets_from_prometheus {
                tasks.spawn(ping_targets::run(
                    pair.clone(),
                    config.host.label.clone(),
                    config.host.detect_every.get(),
                    config.agent.interval.get(),
                    config.prometheus.timeout.get(),
                    targets_tx,
                    token.clone(),
                ));
            }
        }
        if let Some(forwarder) = forwarder {
            forward_on_own_thread(forwarder, metrics.clone(), token.clone(), &tasks);
        }
        tasks.close();
        Running {
            config,
            pair,
            cycle,
            outputs,
            state,
            tasks,
            token,
        }
    }
}

/// Runs forwarding on a thread and runtime of its own: parsing a large Alertmanager
/// answer, merging thousands of alerts and fsyncing the spool then never delay a cycle,
/// a sink or the watchdog, which share the daemon's one runtime thread.
fn forward_on_own_thread(
    forwarder: Forwarder,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tasks: &TaskTracker,
) {
    let thread = tokio::task::spawn_blocking(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!("alert forwarding is off: cannot start its runtime: {e}");
                return;
            }
        };
        if let Err(e) = runtime.block_on(forwarder.run(metrics, stop)) {
            tracing::error!("alert forwarding is off: {}", crate::error::chain(&e));
        }
    });
    tasks.spawn(async move {
        let _ = thread.await;
    });
}

/// A started generation.
pub struct Running {
    pub config: Config,
    pair: Arc<PrometheusPair>,
    cycle: HostCycle,
    outputs: Outputs,
    state: StateWriter,
    tasks: TaskTracker,
    token: CancellationToken,
}

impl Running {
    /// Probes every server once, so that the first snapshot knows who is up.
    pub async fn first_probe(&self) {
        liveness::probe_all(
            &self.pair,
            self.config.prometheus.probe_timeout.get(),
            self.config.prometheus.down_after,
        )
        .await;
    }

    /// One cycle: the snapshot to every sink, the state file when due. Returns the
    /// number of keys and of firing keys.
    pub async fn cycle(&mut self) -> (usize, usize) {
        let snapshot = self.cycle.run(self.outputs.failing()).await;
        let firing = snapshot.entries.iter().filter(|e| e.value == 1).count();
        let keys = snapshot.entries.len();
        self.outputs.publish(Arc::new(snapshot));
        self.state.save_in_background(&self.cycle.saved_state());
        (keys, firing)
    }

    /// Saves the state, stops every task of this generation and waits for them; returns
    /// the state, for the generation that replaces this one.
    pub async fn stop(mut self, grace: std::time::Duration) -> SavedState {
        let saved = self.cycle.saved_state();
        self.state.save_now(&saved).await;
        self.token.cancel();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within {grace:?}");
        }
        saved
    }
}
