//! One cycle of this host, start to end: the components present, every rule that applies
//! through the `for` state machine, the daemon's own keys (Prometheus liveness, ping)
//! handed in by their tasks, `Agent_degraded` over all of them, and the snapshot that
//! goes to the sinks.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Evaluator;
use super::degraded::DegradedWatch;
use super::state::SavedState;
use crate::discovery::ComponentDetector;
use crate::discovery::instances::Scoped;
use crate::plan::PlannedRule;
use crate::prometheus::PrometheusPair;
use crate::prometheus::liveness::{self, Probing};
use crate::snapshot::{Entry, Snapshot};

pub struct HostCycle {
    /// The host name in the snapshot.
    pub host: String,
    pub cluster_reporter: bool,
    /// Seconds between cycles, for formats that carry a step.
    step_secs: u64,
    pair: Arc<PrometheusPair>,
    evaluator: Evaluator,
    /// Shared with the tasks that read the pair for them (sources, instances).
    rules: Arc<[PlannedRule]>,
    components: ComponentDetector,
    /// Key and level of `Prometheus_is_down`.
    prometheus_key: (String, String),
    probing: Probing,
    /// How long a cycle may take (SPEC §13: the query timeout plus one second).
    budget: Duration,
    /// Keys computed by other tasks (ping), as they last sent them.
    computed: Vec<watch::Receiver<Vec<Entry>>>,
    /// The host matcher and rules scoped by it, when a task reads them
    /// ([`crate::discovery::instances`]).
    scoped: Option<watch::Receiver<Scoped>>,
    degraded: DegradedWatch,
}

/// What a [`HostCycle`] is made of.
pub struct Parts {
    pub host: String,
    pub cluster_reporter: bool,
    pub step_secs: u64,
    pub pair: Arc<PrometheusPair>,
    pub evaluator: Evaluator,
    pub rules: Vec<PlannedRule>,
    pub components: ComponentDetector,
    pub prometheus_key: (String, String),
    pub probing: Probing,
    pub query_timeout: Duration,
    /// The key of `Agent_degraded`.
    pub degraded_key: String,
}

impl HostCycle {
    pub fn new(parts: Parts) -> Self {
        Self {
            host: parts.host,
            cluster_reporter: parts.cluster_reporter,
            step_secs: parts.step_secs,
            pair: parts.pair,
            evaluator: parts.evaluator,
            rules: parts.rules.into(),
            components: parts.components,
            prometheus_key: parts.prometheus_key,
            probing: parts.probing,
            budget: parts.query_timeout + Duration::from_secs(1),
            computed: Vec::new(),
            scoped: None,
            degraded: DegradedWatch::new(parts.degraded_key),
        }
    }

    /// The rules a cycle may send.
    pub fn rules(&self) -> &[PlannedRule] {
        &self.rules
    }

    /// The same rules, shared.
    pub fn shared_rules(&self) -> Arc<[PlannedRule]> {
        self.rules.clone()
    }

    /// Adds keys computed by another task, read at every cycle.
    pub fn add_computed(&mut self, entries: watch::Receiver<Vec<Entry>>) {
        self.computed.push(entries);
    }

    /// Runs the rules as `scoped` last sent them, from the next cycle on.
    pub fn follow_scope(&mut self, scoped: watch::Receiver<Scoped>) {
        self.scoped = Some(scoped);
    }

    /// One cycle: detection when due, every rule, each server's liveness, the computed
    /// keys, and `Agent_degraded` from them and the sinks whose last write failed.
    pub async fn run(&mut self, failing_sinks: Vec<String>) -> Snapshot {
        let now = Timestamp::now();
        let deadline = Instant::now() + self.budget;
        if let Some(scoped) = &mut self.scoped
            && scoped.has_changed().unwrap_or(false)
        {
            let Scoped { host, rules } = scoped.borrow_and_update().clone();
            self.rules = rules;
            self.evaluator.set_host(host);
        }
        let work = async {
            let components = self.components.present(&self.pair, now).await;
            self.evaluator
                .cycle(&self.rules, &components, self.cluster_reporter, now)
                .await
        };
        let mut entries = liveness::alongside(&self.pair, self.probing, deadline, work).await;
        let (key, level) = &self.prometheus_key;
        entries.push(liveness::entry(&self.pair, key, level));
        for rx in &self.computed {
            entries.extend(rx.borrow().iter().cloned());
        }
        let (degraded_entry, degraded) = self.degraded.observe(&entries, failing_sinks, now);
        entries.push(degraded_entry);
        let mut snapshot = Snapshot::new(self.host.clone(), now, self.step_secs, entries);
        snapshot.degraded = degraded;
        snapshot
    }

    /// What the state file holds now: `for` states and components.
    pub fn saved_state(&self) -> SavedState {
        SavedState {
            version: 0,
            saved_at: None,
            keys: self
                .evaluator
                .states()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            components: self.components.sticky().clone(),
        }
    }

    /// Takes over `saved`: from the state file at start, or from the configuration a
    /// reload replaced.
    pub fn restore(&mut self, saved: SavedState) {
        self.evaluator.restore(saved.keys);
        self.components.restore(saved.components);
    }
}
