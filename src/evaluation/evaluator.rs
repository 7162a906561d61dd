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
use crate::metrics::Metrics;
use crate::plan::PlannedRule;
use crate::prometheus::alerts::{self, AlertsState};
use crate::prometheus::server::QueryAnswer;
use crate::prometheus::{BatchVerdict, PrometheusPair, Verdict, batch};
use crate::promql::HostScope;
use crate::rules::Scope;
use crate::snapshot::{AlertState, Entry, Reason};
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
    /// Set when a batch joined with the `ALERTS` query was rejected: the two are sent
    /// apart for the life of the configuration.
    alerts_apart: bool,
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
    /// A batch with the `ALERTS` query as its last member, so that a host whose keys come
    /// partly from the pair's alerts still sends one request.
    Together {
        batch: Vec<(usize, &'a PlannedRule)>,
        alerts: Vec<(usize, &'a PlannedRule)>,
    },
}

/// What a cycle learnt of one rule.
enum Outcome {
    /// Evaluated by the pair, or no answer from its alerts.
    Evaluated(Verdict),
    /// Read from the pair's alerts, with the alert series behind the state.
    Alert(AlertsState, Vec<Reason>),
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
            alerts_apart: false,
        }
    }

    /// Reads from the pair's `ALERTS` the keys whose decision says so, with `host`'s
    /// matcher. Without this every key is evaluated.
    pub fn with_sources(mut self, host: HostScope, decisions: watch::Receiver<Decisions>) -> Self {
        self.alerts = Some(AlertsReading { host, decisions });
        self
    }

    /// Reads the pair's `ALERTS` with `host`'s matcher from now on.
    pub fn set_host(&mut self, host: HostScope) {
        if let Some(alerts) = &mut self.alerts {
            alerts.host = host;
        }
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
            let ask = match self.take_joinable(&mut asks) {
                Some(batch) => Ask::Together {
                    batch,
                    alerts: from_alerts,
                },
                None => Ask::Alerts(from_alerts),
            };
            asks.insert(0, ask);
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
            if let Some(rejection) = answered.alerts_rejected {
                tracing::warn!(
                    "a batch joined with the ALERTS query was rejected ({rejection}); the \
                     two are sent apart from now on"
                );
                self.alerts_apart = true;
            }
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

    /// Takes out of `asks` the first batch the `ALERTS` query may join: any batch, or a
    /// rule alone that could be batched. None when batching is off (`rules_per_query` 1)
    /// or a joined query was rejected before.
    fn take_joinable<'a>(&self, asks: &mut Vec<Ask<'a>>) -> Option<Vec<(usize, &'a PlannedRule)>> {
        if self.rules_per_query < 2 || self.alerts_apart {
            return None;
        }
        let position = asks.iter().position(|ask| match ask {
            Ask::Batch(_) => true,
            Ask::One(_, rule) => rule.batchable && !self.unbatched.contains(&rule.key),
            Ask::Alerts(_) | Ask::Together { .. } => false,
        })?;
        match asks.remove(position) {
            Ask::Batch(rules) => Some(rules),
            Ask::One(i, rule) => Some(vec![(i, rule)]),
            other => {
                asks.insert(position, other);
                None
            }
        }
    }

    fn apply(&mut self, rule: &PlannedRule, outcome: Outcome, now: Timestamp) -> Entry {
        let verdict = match outcome {
            Outcome::Evaluated(verdict) => verdict,
            Outcome::Alert(alert, reasons) => return self.follow(rule, alert, reasons, now),
        };
        let observation = match &verdict {
            Verdict::True(_) => Observation::True,
            Verdict::False => Observation::False,
            Verdict::Unknown | Verdict::RuleError(_) => Observation::Unknown,
        };
        self.metrics.rule_evaluation(match &verdict {
            Verdict::True(_) => "true",
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
            _ => reading(next),
        };
        let reasons = match verdict {
            Verdict::True(reasons) => reasons,
            _ => Vec::new(),
        };
        entry(rule, (value, state), next, reasons)
    }

    /// The entry of a key read from the pair's alerts: Prometheus owns its `for`.
    fn follow(
        &mut self,
        rule: &PlannedRule,
        alert: AlertsState,
        reasons: Vec<Reason>,
        now: Timestamp,
    ) -> Entry {
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
        entry(rule, reading(next), next, reasons)
    }
}

/// What a key in `state` shows: 0 and ok, 0 and pending, or 1 and firing.
fn reading(state: ForState) -> (u8, AlertState) {
    match state {
        ForState::Inactive { .. } => (0, AlertState::Ok),
        ForState::Pending { .. } => (0, AlertState::Pending),
        ForState::Firing { .. } => (1, AlertState::Firing),
    }
}

/// `rule`'s entry showing `(value, state)`, since `next` began.
fn entry(
    rule: &PlannedRule,
    (value, state): (u8, AlertState),
    next: ForState,
    reasons: Vec<Reason>,
) -> Entry {
    Entry {
        key: rule.key.clone(),
        value,
        level: rule.level.clone(),
        component: rule.component.clone(),
        state,
        since: next.since(),
        reasons,
    }
}

/// The outcomes of one [`Ask`], by index into the cycle's applicable rules.
struct Answered {
    verdicts: Vec<(usize, Outcome)>,
    /// Set when the rules were asked together and the server rejected the query.
    rejected_batch: Option<String>,
    /// Set when a batch joined with the `ALERTS` query was rejected (and the two were
    /// then sent apart).
    alerts_rejected: Option<String>,
}

impl Answered {
    fn of(verdicts: Vec<(usize, Outcome)>) -> Self {
        Self {
            verdicts,
            rejected_batch: None,
            alerts_rejected: None,
        }
    }
}

async fn ask_pair(
    pair: &PrometheusPair,
    host: Option<&HostScope>,
    ask: Ask<'_>,
    deadline: Instant,
) -> Answered {
    match ask {
        Ask::One(i, rule) => Answered::of(vec![(
            i,
            Outcome::Evaluated(pair.evaluate(&rule.query, deadline).await),
        )]),
        Ask::Batch(rules) => ask_batch(pair, rules, deadline).await,
        Ask::Alerts(rules) => Answered::of(read_alerts(pair, host, &rules, deadline).await),
        Ask::Together { batch, alerts } => match host {
            Some(host) => ask_together(pair, host, batch, alerts, deadline).await,
            None => {
                let mut answered = ask_batch(pair, batch, deadline).await;
                answered.verdicts.extend(all(&alerts, Verdict::Unknown));
                answered
            }
        },
    }
}

async fn ask_batch(
    pair: &PrometheusPair,
    rules: Vec<(usize, &PlannedRule)>,
    deadline: Instant,
) -> Answered {
    let query = batch::compose(rules.iter().map(|(_, r)| r.query.as_str()));
    match pair.evaluate_batch(&query, rules.len(), deadline).await {
        BatchVerdict::Answered(verdicts) => Answered::of(
            rules
                .iter()
                .map(|(i, _)| *i)
                .zip(verdicts.into_iter().map(Outcome::Evaluated))
                .collect(),
        ),
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
                alerts_rejected: None,
            }
        }
    }
}

/// A batch and the `ALERTS` query in one request: the `ALERTS` query is the batch's last
/// member, and its series, split out by their tag, are read as [`read_alerts`] reads its
/// own answer. A rejection sends the two apart.
async fn ask_together(
    pair: &PrometheusPair,
    host: &HostScope,
    batch: Vec<(usize, &PlannedRule)>,
    alerts: Vec<(usize, &PlannedRule)>,
    deadline: Instant,
) -> Answered {
    let wanted = wanted(&alerts);
    let alerts_query = alerts::query(&wanted, host);
    let members = batch.len();
    let query = batch::compose(
        batch
            .iter()
            .map(|(_, r)| r.query.as_str())
            .chain([alerts_query.as_str()]),
    );
    match pair.answers(&query, deadline).await {
        Ok(answers) => {
            let mut verdicts: Vec<(usize, Outcome)> = batch
                .iter()
                .map(|(i, _)| *i)
                .zip(
                    pair.batch_verdicts(&answers, members)
                        .into_iter()
                        .map(Outcome::Evaluated),
                )
                .collect();
            let parts: Vec<QueryAnswer> = answers.iter().map(|a| batch::part(a, members)).collect();
            verdicts.extend(alert_outcomes(pair, host, &alerts, &wanted, &parts));
            Answered::of(verdicts)
        }
        Err(why) => {
            let mut answered = ask_batch(pair, batch, deadline).await;
            answered
                .verdicts
                .extend(read_alerts(pair, Some(host), &alerts, deadline).await);
            answered.alerts_rejected = Some(why);
            answered
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
    let Some(host) = host else {
        return all(rules, Verdict::Unknown);
    };
    let wanted = wanted(rules);
    let query = alerts::query(&wanted, host);
    match pair.answers(&query, deadline).await {
        Ok(answers) => alert_outcomes(pair, host, rules, &wanted, &answers),
        Err(e) => all(
            rules,
            Verdict::RuleError(format!("the ALERTS query {query}: {e}")),
        ),
    }
}

fn wanted<'a>(rules: &[(usize, &'a PlannedRule)]) -> Vec<alerts::Wanted<'a>> {
    rules
        .iter()
        .map(|(_, r)| alerts::Wanted {
            alert: &r.alert,
            on_this_host: r.scope == Scope::Host,
        })
        .collect()
}

/// The same evaluated verdict for every rule.
fn all(rules: &[(usize, &PlannedRule)], verdict: Verdict) -> Vec<(usize, Outcome)> {
    rules
        .iter()
        .map(|(i, _)| (*i, Outcome::Evaluated(verdict.clone())))
        .collect()
}

/// Each rule's outcome from the servers' answers to the `ALERTS` query.
fn alert_outcomes(
    pair: &PrometheusPair,
    host: &HostScope,
    rules: &[(usize, &PlannedRule)],
    wanted: &[alerts::Wanted<'_>],
    answers: &[QueryAnswer],
) -> Vec<(usize, Outcome)> {
    let per_server: Vec<Vec<AlertsState>> = answers
        .iter()
        .map(|a| alerts::states(a, wanted, host))
        .collect();
    rules
        .iter()
        .zip(wanted)
        .enumerate()
        .map(|(n, ((i, _), w))| {
            let states = per_server.iter().filter_map(|s| s.get(n).copied());
            let outcome = match alerts::combine(pair.mode(), states) {
                Some(state) => {
                    // The series of the first server that has the combined state.
                    let reasons = match state {
                        AlertsState::Inactive => Vec::new(),
                        _ => answers
                            .iter()
                            .zip(&per_server)
                            .find(|(_, s)| s.get(n) == Some(&state))
                            .map(|(a, _)| alerts::reasons(a, w, host, state))
                            .unwrap_or_default(),
                    };
                    Outcome::Alert(state, reasons)
                }
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
