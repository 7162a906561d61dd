//! One evaluation cycle: every applicable rule concurrently, bounded by
//! `max_concurrency`, all finished by one deadline so that a slow server never delays
//! the output past the query timeout.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::time::Instant;

use super::sources::{Decisions, Source};
use super::{ForState, Observation};
use crate::config::OnNoData;
use crate::config::QueryMode;
use crate::metrics::Metrics;
use crate::plan::PlannedRule;
use crate::prometheus::alerts::{self, AlertsState};
use crate::prometheus::{BatchVerdict, PrometheusPair, Verdict, batch};
use crate::promql::HostScope;
use crate::rules::Scope;
use crate::snapshot::{AlertState, Entry};
use tokio::sync::watch;

pub struct Evaluator {
    pair: Arc<PrometheusPair>,
    metrics: Arc<Metrics>,
    on_no_data: OnNoData,
    max_concurrency: usize,
    /// Rules sent together in one query.
    rules_per_query: usize,
    /// How long a cycle may wait for answers.
    budget: Duration,
    states: HashMap<String, ForState>,
    /// The last rule error logged per key, so each is logged once per change.
    errors: HashMap<String, String>,
    /// Keys sent one by one: in a batch that was rejected, so one of them is wrong (or
    /// the server takes them only apart). Kept for the life of the configuration.
    unbatched: HashSet<String>,
    /// Set when keys may be read from the pair's alerts.
    alerts: Option<AlertsReading>,
}

/// What reading keys from the pair's `ALERTS` needs.
struct AlertsReading {
    host: HostScope,
    /// Each key's source ([`sources`]), kept up to date under `auto`.
    decisions: watch::Receiver<Decisions>,
}

/// What a cycle sends: one rule on its own, several in one query, or the one query on the
/// pair's `ALERTS` for every key read from them.
enum Ask<'a> {
    One(usize, &'a PlannedRule),
    Batch(Vec<(usize, &'a PlannedRule)>),
    Alerts(Vec<(usize, &'a PlannedRule)>),
}

/// What a cycle learnt of one rule.
enum Outcome {
    /// Evaluated by the pair, or no answer from its alerts.
    Evaluated(Verdict),
    /// Read from the pair's alerts.
    Alert(AlertsState),
}

impl Evaluator {
    pub fn new(
        pair: Arc<PrometheusPair>,
        metrics: Arc<Metrics>,
        on_no_data: OnNoData,
        max_concurrency: usize,
        rules_per_query: usize,
        query_timeout: Duration,
    ) -> Self {
        Self {
            pair,
            metrics,
            on_no_data,
            max_concurrency: max_concurrency.max(1),
            rules_per_query: rules_per_query.max(1),
            // SPEC §13: a cycle ends within the query timeout plus one second.
            budget: query_timeout + Duration::from_millis(900),
            states: HashMap::new(),
            errors: HashMap::new(),
            unbatched: HashSet::new(),
            alerts: None,
        }
    }

    /// Reads from the pair's `ALERTS` the keys whose decision says so, with `host`'s
    /// matcher. Without this every key is evaluated.
    pub fn with_sources(mut self, host: HostScope, decisions: watch::Receiver<Decisions>) -> Self {
        self.alerts = Some(AlertsReading { host, decisions });
        self
    }

    pub fn states(&self) -> &HashMap<String, ForState> {
        &self.states
    }

    /// Takes over `for` states: restored from the state file, or handed on by the
    /// configuration a reload replaced.
    pub fn restore(&mut self, states: impl IntoIterator<Item = (String, ForState)>) {
        self.states = states.into_iter().collect();
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
                Scope::Host => components.contains(&r.component),
                Scope::Cluster => cluster_reporter,
                Scope::Computed => false,
            })
            .collect();
        let pair = &self.pair;
        let (from_alerts, evaluated): (Vec<_>, Vec<_>) = {
            let decisions = self.alerts.as_ref().map(|a| a.decisions.borrow());
            applicable.iter().copied().enumerate().partition(|(_, r)| {
                decisions.as_ref().is_some_and(|d| {
                    d.get(&r.key)
                        .is_some_and(|decision| decision.source == Source::Alerts)
                })
            })
        };
        let mut asks = self.asks(&evaluated);
        if !from_alerts.is_empty() {
            asks.insert(0, Ask::Alerts(from_alerts));
        }
        let host = self.alerts.as_ref().map(|a| &a.host);
        let answered: Vec<Answered> = futures::stream::iter(asks)
            .map(|ask| async move { ask_pair(pair, host, ask, deadline).await })
            .buffer_unordered(self.max_concurrency)
            .collect()
            .await;

        let mut entries = Vec::with_capacity(applicable.len());
        let mut by_index: Vec<Option<Outcome>> = applicable.iter().map(|_| None).collect();
        for answered in answered {
            if let Some(rejection) = answered.rejected_batch {
                let keys: Vec<&str> = answered
                    .verdicts
                    .iter()
                    .filter_map(|(i, _)| applicable.get(*i).map(|r| r.key.as_str()))
                    .collect();
                tracing::warn!(
                    rules = ?keys,
                    "a query of {} rules was rejected ({rejection}); they are sent one by \
                     one from now on",
                    keys.len()
                );
                self.unbatched.extend(keys.into_iter().map(str::to_string));
            }
            for (i, v) in answered.verdicts {
                if let Some(slot) = by_index.get_mut(i) {
                    *slot = Some(v);
                }
            }
        }
        for (rule, outcome) in applicable.iter().zip(by_index) {
            let outcome = outcome.unwrap_or(Outcome::Evaluated(Verdict::Unknown));
            entries.push(self.apply(rule, outcome, now));
        }
        // Keys no longer evaluated (component gone past its TTL, rule disabled) drop
        // their state, so a later return starts clean.
        let live: BTreeSet<&str> = applicable.iter().map(|r| r.key.as_str()).collect();
        self.states.retain(|k, _| live.contains(k.as_str()));
        entries
    }

    /// The queries of a cycle: host rules and cluster rules each in batches of up to
    /// `rules_per_query`, and alone the rules that cannot share a query.
    fn asks<'a>(&self, evaluated: &[(usize, &'a PlannedRule)]) -> Vec<Ask<'a>> {
        let mut asks = Vec::new();
        for scope in [Scope::Host, Scope::Cluster] {
            let (together, alone): (Vec<_>, Vec<_>) = evaluated
                .iter()
                .copied()
                .filter(|(_, r)| r.scope == scope)
                .partition(|(_, r)| r.batchable && !self.unbatched.contains(&r.key));
            // With `rules_per_query` 1 every chunk is a single rule, sent on its own.
            for chunk in together.chunks(self.rules_per_query) {
                match chunk {
                    [(i, rule)] => asks.push(Ask::One(*i, rule)),
                    _ => asks.push(Ask::Batch(chunk.to_vec())),
                }
            }
            asks.extend(alone.into_iter().map(|(i, r)| Ask::One(i, r)));
        }
        asks
    }

    fn apply(&mut self, rule: &PlannedRule, outcome: Outcome, now: Timestamp) -> Entry {
        let verdict = match outcome {
            Outcome::Evaluated(verdict) => verdict,
            Outcome::Alert(alert) => return self.follow(rule, alert, now),
        };
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

impl Evaluator {
    /// The entry of a key read from the pair's alerts: Prometheus owns its `for`.
    fn follow(&mut self, rule: &PlannedRule, alert: AlertsState, now: Timestamp) -> Entry {
        self.metrics.rule_evaluation(match alert {
            AlertsState::Firing => "true",
            AlertsState::Pending | AlertsState::Inactive => "false",
        });
        if self.errors.remove(&rule.key).is_some() {
            tracing::info!(key = %rule.key, "rule evaluates again");
        }
        let previous = self.states.get(&rule.key).copied().unwrap_or_default();
        let next = previous.follow(alert, now);
        self.states.insert(rule.key.clone(), next);
        let (value, state) = match alert {
            AlertsState::Inactive => (0, AlertState::Ok),
            AlertsState::Pending => (0, AlertState::Pending),
            AlertsState::Firing => (1, AlertState::Firing),
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

/// The outcomes of one [`Ask`], by index into the cycle's applicable rules.
struct Answered {
    verdicts: Vec<(usize, Outcome)>,
    /// Set when the rules were asked together and the server rejected the query.
    rejected_batch: Option<String>,
}

async fn ask_pair(
    pair: &PrometheusPair,
    host: Option<&HostScope>,
    ask: Ask<'_>,
    deadline: Instant,
) -> Answered {
    let rules = match ask {
        Ask::One(i, rule) => {
            return Answered {
                verdicts: vec![(
                    i,
                    Outcome::Evaluated(pair.evaluate(&rule.query, deadline).await),
                )],
                rejected_batch: None,
            };
        }
        Ask::Batch(rules) => rules,
        Ask::Alerts(rules) => {
            return Answered {
                verdicts: read_alerts(pair, host, &rules, deadline).await,
                rejected_batch: None,
            };
        }
    };
    let query = batch::compose(rules.iter().map(|(_, r)| r.query.as_str()));
    match pair.evaluate_batch(&query, rules.len(), deadline).await {
        BatchVerdict::Answered(verdicts) => Answered {
            verdicts: rules
                .iter()
                .map(|(i, _)| *i)
                .zip(verdicts.into_iter().map(Outcome::Evaluated))
                .collect(),
            rejected_batch: None,
        },
        // One by one, so that the wrong rule gets its error and the others their values.
        BatchVerdict::Rejected(why) => {
            let mut verdicts = Vec::with_capacity(rules.len());
            for (i, rule) in rules {
                verdicts.push((
                    i,
                    Outcome::Evaluated(pair.evaluate(&rule.query, deadline).await),
                ));
            }
            Answered {
                verdicts,
                rejected_batch: Some(why),
            }
        }
    }
}

/// The keys read from the pair's alerts: one query, and each key's state combined over
/// the answering servers under the pair's mode (`failover`: the one server asked; `any`:
/// the most advanced state any server has; `all`: the least advanced every server has).
/// No answer is unknown, as for an evaluated key.
async fn read_alerts(
    pair: &PrometheusPair,
    host: Option<&HostScope>,
    rules: &[(usize, &PlannedRule)],
    deadline: Instant,
) -> Vec<(usize, Outcome)> {
    let unknown = |verdict: Verdict| {
        rules
            .iter()
            .map(|(i, _)| (*i, Outcome::Evaluated(verdict.clone())))
            .collect()
    };
    let Some(host) = host else {
        return unknown(Verdict::Unknown);
    };
    let wanted: Vec<alerts::Wanted<'_>> = rules
        .iter()
        .map(|(_, r)| alerts::Wanted {
            alert: &r.alert,
            on_this_host: r.scope == Scope::Host,
        })
        .collect();
    let query = alerts::query(&wanted, host);
    let answers = match pair.answers(&query, deadline).await {
        Ok(answers) => answers,
        Err(e) => return unknown(Verdict::RuleError(format!("the ALERTS query {query}: {e}"))),
    };
    let per_server: Vec<Vec<AlertsState>> = answers
        .iter()
        .map(|a| alerts::states(a, &wanted, host))
        .collect();
    rules
        .iter()
        .enumerate()
        .map(|(n, (i, _))| {
            let states = per_server.iter().map(|s| s[n]);
            let combined = match pair.mode() {
                QueryMode::All => states.min(),
                QueryMode::Any | QueryMode::Failover => states.max(),
            };
            let outcome = match combined {
                Some(state) => Outcome::Alert(state),
                None => Outcome::Evaluated(Verdict::Unknown),
            };
            (*i, outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cycle's one deadline bounds a hung server: every rule is unknown, at the query
    /// timeout plus the cycle's margin, not a timeout per rule.
    #[tokio::test(start_paused = true)]
    async fn a_hung_server_costs_one_deadline_per_cycle() {
        use crate::prometheus::test_support::{hung_server, pair_of};

        let (_listener, url) = hung_server();
        let pair = pair_of(&url).await;
        let timeout = Duration::from_secs(5);
        let mut evaluator = Evaluator::new(
            pair,
            Arc::new(Metrics::new()),
            crate::config::OnNoData::Zero,
            2,
            1,
            timeout,
        );
        let rules: Vec<PlannedRule> = (0..6)
            .map(|i| PlannedRule {
                key: format!("TiDB.tikv.Rule{i}"),
                component: "tikv".into(),
                level: "critical".into(),
                for_: Duration::ZERO,
                scope: Scope::Host,
                query: format!("up == {i}"),
                source: "test".into(),
                batchable: false,
                alert: format!("Rule{i}"),
                expr: format!("up == {i}"),
                value_source: crate::config::RuleSource::Evaluate,
                alerts_blocked: None,
            })
            .collect();
        let components = ["tikv".to_owned()].into();
        let started = tokio::time::Instant::now();
        let entries = evaluator
            .cycle(&rules, &components, false, jiff::Timestamp::now())
            .await;
        let took = started.elapsed();
        assert_eq!(entries.len(), 6);
        assert!(
            entries
                .iter()
                .all(|e| e.state == AlertState::Unknown && e.value == 0)
        );
        // Six rules, two at a time: three timeouts in a row would be 15 s.
        assert!(took >= timeout, "{took:?}");
        assert!(took <= timeout + Duration::from_secs(1), "{took:?}");
    }
}
