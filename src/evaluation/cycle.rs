//! One evaluation cycle: every applicable rule concurrently, bounded by
//! `max_concurrency`, all finished by one deadline so that a slow server never delays
//! the output past the query timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::time::Instant;

use super::{ForState, Observation};
use crate::config::OnNoData;
use crate::metrics::Metrics;
use crate::prometheus::{PrometheusPair, Verdict};
use crate::snapshot::{AlertState, Entry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleScope {
    /// Rewritten to this host; evaluated when its component runs here.
    Host,
    /// Evaluated unmodified, on cluster-reporter hosts only.
    Cluster,
}

/// A rule ready to run: its key and the exact PromQL to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRule {
    pub key: String,
    pub component: String,
    pub level: String,
    pub for_: Duration,
    pub scope: RuleScope,
    pub query: String,
}

pub struct Evaluator {
    pair: Arc<PrometheusPair>,
    metrics: Arc<Metrics>,
    on_no_data: OnNoData,
    max_concurrency: usize,
    /// How long a cycle may wait for answers.
    budget: Duration,
    states: HashMap<String, ForState>,
    /// The last rule error logged per key, so each is logged once per change.
    errors: HashMap<String, String>,
}

impl Evaluator {
    pub fn new(
        pair: Arc<PrometheusPair>,
        metrics: Arc<Metrics>,
        on_no_data: OnNoData,
        max_concurrency: usize,
        query_timeout: Duration,
        states: HashMap<String, ForState>,
    ) -> Self {
        Self {
            pair,
            metrics,
            on_no_data,
            max_concurrency: max_concurrency.max(1),
            // SPEC §13: a cycle ends within the query timeout plus one second.
            budget: query_timeout + Duration::from_millis(900),
            states,
            errors: HashMap::new(),
        }
    }

    pub fn states(&self) -> &HashMap<String, ForState> {
        &self.states
    }

    /// Evaluates the rules that apply to this host and returns their entries.
    pub async fn cycle(
        &mut self,
        rules: &[PlannedRule],
        components: &BTreeSet<String>,
        cluster_reporter: bool,
        now: Timestamp,
    ) -> Vec<Entry> {
        let deadline = Instant::now() + self.budget;
        let applicable: Vec<&PlannedRule> = rules
            .iter()
            .filter(|r| match r.scope {
                RuleScope::Host => components.contains(&r.component),
                RuleScope::Cluster => cluster_reporter,
            })
            .collect();
        let pair = &self.pair;
        let verdicts: Vec<(usize, Verdict)> = futures::stream::iter(applicable.iter().enumerate())
            .map(|(i, rule)| async move { (i, pair.evaluate(&rule.query, deadline).await) })
            .buffer_unordered(self.max_concurrency)
            .collect()
            .await;

        let mut entries = Vec::with_capacity(applicable.len());
        let mut by_index: Vec<Option<Verdict>> = vec![None; applicable.len()];
        for (i, v) in verdicts {
            if let Some(slot) = by_index.get_mut(i) {
                *slot = Some(v);
            }
        }
        for (rule, verdict) in applicable.iter().zip(by_index) {
            let verdict = verdict.unwrap_or(Verdict::Unknown);
            entries.push(self.apply(rule, verdict, now));
        }
        // Keys no longer evaluated (component gone past its TTL, rule disabled) drop
        // their state, so a later return starts clean.
        let live: BTreeSet<&str> = applicable.iter().map(|r| r.key.as_str()).collect();
        self.states.retain(|k, _| live.contains(k.as_str()));
        entries
    }

    fn apply(&mut self, rule: &PlannedRule, verdict: Verdict, now: Timestamp) -> Entry {
        let observation = match &verdict {
            Verdict::True => Observation::True,
            Verdict::False => Observation::False,
            Verdict::Unknown | Verdict::RuleError(_) => Observation::Unknown,
        };
        self.metrics.rule_evaluation(match &verdict {
            Verdict::True => "true",
            Verdict::False => "false",
            Verdict::Unknown => "unknown",
            Verdict::RuleError(_) => "error",
        });
        match &verdict {
            Verdict::RuleError(e) => {
                if self.errors.get(&rule.key) != Some(e) {
                    tracing::error!(key = %rule.key, query = %rule.query, "rule error: {e}");
                    self.errors.insert(rule.key.clone(), e.clone());
                }
            }
            _ => {
                if self.errors.remove(&rule.key).is_some() {
                    tracing::info!(key = %rule.key, "rule evaluates again");
                }
            }
        }
        let previous = self.states.get(&rule.key).copied().unwrap_or_default();
        let next = previous.step(observation, now, rule.for_);
        self.states.insert(rule.key.clone(), next);
        let (value, state) = match observation {
            Observation::Unknown => {
                let value = match self.on_no_data {
                    OnNoData::Hold => u8::from(next.is_firing()),
                    OnNoData::Zero => 0,
                    OnNoData::One => 1,
                };
                (value, AlertState::Unknown)
            }
            _ => match next {
                ForState::Inactive { .. } => (0, AlertState::Ok),
                ForState::Pending { .. } => (0, AlertState::Pending),
                ForState::Firing { .. } => (1, AlertState::Firing),
            },
        };
        Entry {
            key: rule.key.clone(),
            value,
            level: rule.level.clone(),
            component: rule.component.clone(),
            state,
            since: next.since(),
        }
    }
}
