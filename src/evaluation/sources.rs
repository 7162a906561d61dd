//! Where each key's value comes from (SPEC §15 "Sources"): the pair evaluates the rule for
//! this host, or the agent reads the pair's own `ALERTS` of it. Under `auto`, a key is read
//! from `ALERTS` when every server that answered `/api/v1/rules` loads one alerting rule of
//! its name with the same expression; what the servers load is read at start (each
//! generation, so each reload) and every [`REFRESH_EVERY`]. A read that fails is retried
//! sooner (see [`Schedule`]), so that a fleet started while its pair is overloaded moves
//! to `ALERTS` as soon as the pair answers, not [`REFRESH_EVERY`] later.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use promql_parser::parser::Expr;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RuleSource;
use crate::plan::PlannedRule;
use crate::prometheus::PrometheusPair;

/// How often `auto` re-reads the servers' rules.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Evaluate,
    Alerts,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Evaluate => "evaluate",
            Source::Alerts => "alerts",
        }
    }
}

/// A key's source, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub source: Source,
    pub reason: String,
}

impl Decision {
    fn new(source: Source, reason: impl Into<String>) -> Self {
        Self {
            source,
            reason: reason.into(),
        }
    }
}

/// Every key's decision.
pub type Decisions = HashMap<String, Decision>;

/// How one server's rules of a key's alertname compare with the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Same,
    NotLoaded,
    /// The server loads several alerting rules of this name.
    Several(usize),
    Differs,
}

impl Comparison {
    pub fn describe(self) -> String {
        match self {
            Comparison::Same => "loads it with the same expression".into(),
            Comparison::NotLoaded => "does not load it".into(),
            Comparison::Several(n) => format!("loads {n} alerting rules of this name"),
            Comparison::Differs => "loads it with a different expression".into(),
        }
    }
}

/// What one server loads: each alertname's expressions, in canonical form (`None` for one
/// that does not parse); or why it could not be read.
#[derive(Debug, Clone)]
pub struct ServerRules {
    pub server: String,
    pub rules: Result<HashMap<String, Vec<Option<Expr>>>, String>,
}

impl ServerRules {
    /// How this server's rules of `rule`'s name compare with it; `None` when the server's
    /// rules could not be read.
    pub fn compare(&self, rule: &PlannedRule) -> Option<Comparison> {
        let rules = self.rules.as_ref().ok()?;
        Some(match rules.get(&rule.alert).map(Vec::as_slice) {
            None | Some([]) => Comparison::NotLoaded,
            Some([one]) => match (one, crate::promql::canonical(&rule.expr)) {
                (Some(theirs), Ok(ours)) if *theirs == ours => Comparison::Same,
                _ => Comparison::Differs,
            },
            Some(several) => Comparison::Several(several.len()),
        })
    }
}

/// Reads every server's alerting rules, concurrently, each within `timeout`, and keeps
/// those named like one of `ours` (the rest of the pair's rules are never compared).
pub async fn read(
    pair: &PrometheusPair,
    ours: &[PlannedRule],
    timeout: Duration,
) -> Vec<ServerRules> {
    let names: HashSet<&str> = ours.iter().map(|r| r.alert.as_str()).collect();
    let names = &names;
    let reads = pair.members().iter().map(|m| async move {
        let rules = m
            .server
            .alerting_rules(timeout)
            .await
            .map_err(|e| e.to_string())
            .map(|list| {
                let mut by_name: HashMap<String, Vec<Option<Expr>>> = HashMap::new();
                for (name, query) in list {
                    if names.contains(name.as_str()) {
                        let canonical = crate::promql::canonical(&query).ok();
                        by_name.entry(name).or_default().push(canonical);
                    }
                }
                by_name
            });
        ServerRules {
            server: m.server.name.clone(),
            rules,
        }
    });
    futures::future::join_all(reads).await
}

/// `rule`'s source, from its setting and, under `auto`, from what the servers load
/// (`servers` empty: not read yet).
pub fn decide(rule: &PlannedRule, servers: &[ServerRules]) -> Decision {
    if let Some(why) = rule.alerts_blocked {
        return Decision::new(Source::Evaluate, why);
    }
    match rule.value_source {
        RuleSource::Evaluate => Decision::new(Source::Evaluate, "[rules] source = \"evaluate\""),
        RuleSource::Alerts => Decision::new(Source::Alerts, "[rules] source = \"alerts\""),
        RuleSource::Auto => {
            let answered: Vec<(&str, Comparison)> = servers
                .iter()
                .filter_map(|s| Some((s.server.as_str(), s.compare(rule)?)))
                .collect();
            if answered.is_empty() {
                return Decision::new(
                    Source::Evaluate,
                    "auto: the pair's rules are not read yet (no server answered /api/v1/rules)",
                );
            }
            match answered.iter().find(|(_, c)| *c != Comparison::Same) {
                None => Decision::new(
                    Source::Alerts,
                    "auto: the pair evaluates it with the same expression",
                ),
                Some((server, comparison)) => Decision::new(
                    Source::Evaluate,
                    format!("auto: {server} {}", comparison.describe()),
                ),
            }
        }
    }
}

/// Every rule's decision.
pub fn decide_all(rules: &[PlannedRule], servers: &[ServerRules]) -> Decisions {
    rules
        .iter()
        .map(|r| (r.key.clone(), decide(r, servers)))
        .collect()
}

/// When the next read of the servers' rules is due: [`REFRESH_EVERY`] after a read that
/// every server answered; after one that some server failed, one cycle `interval` later,
/// doubling at each further failure up to [`REFRESH_EVERY`].
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    retry: Duration,
}

impl Schedule {
    pub fn new(interval: Duration) -> Self {
        let interval = interval.min(REFRESH_EVERY);
        Self {
            interval,
            retry: interval,
        }
    }

    /// The wait before the next read, after a read that `failed` on some server.
    pub fn after(&mut self, failed: bool) -> Duration {
        if !failed {
            self.retry = self.interval;
            return REFRESH_EVERY;
        }
        let wait = self.retry;
        self.retry = self.retry.saturating_mul(2).min(REFRESH_EVERY);
        wait
    }
}

/// Under `auto`: reads the servers' rules now and on the [`Schedule`], and sends the
/// decisions. A server that cannot be read keeps its last reading. A server whose rules
/// differ from the agent's is logged when the keys concerned change, not at every read.
/// `rules` gives the rules the cycle runs now; they are held only while they are read and
/// decided, so that rules re-scoped since ([`crate::discovery::instances`]) are not kept twice.
pub async fn run(
    pair: std::sync::Arc<PrometheusPair>,
    rules: impl Fn() -> std::sync::Arc<[PlannedRule]>,
    interval: Duration,
    timeout: Duration,
    decisions: watch::Sender<Decisions>,
    shutdown: CancellationToken,
) {
    let mut last: HashMap<String, ServerRules> = HashMap::new();
    let mut logged: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut schedule = Schedule::new(interval);
    loop {
        let failed = {
            let rules = rules();
            let auto: Vec<&PlannedRule> = rules
                .iter()
                .filter(|r| r.value_source == RuleSource::Auto && r.alerts_blocked.is_none())
                .collect();
            let mut failed = false;
            for read in read(&pair, &rules, timeout).await {
                match &read.rules {
                    Ok(_) => {
                        log_differences(&read, &auto, &mut logged);
                        last.insert(read.server.clone(), read);
                    }
                    Err(e) => {
                        tracing::debug!(server = %read.server, "cannot read the alerting rules: {e}");
                        failed = true;
                        last.entry(read.server.clone()).or_insert(read);
                    }
                }
            }
            let servers: Vec<ServerRules> = last.values().cloned().collect();
            decisions.send_replace(decide_all(&rules, &servers));
            failed
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(schedule.after(failed)) => {}
        }
    }
}

fn log_differences(
    read: &ServerRules,
    auto: &[&PlannedRule],
    logged: &mut HashMap<String, BTreeSet<String>>,
) {
    let mut differing = Vec::new();
    let mut keys = BTreeSet::new();
    for rule in auto {
        if let Some(c) = read.compare(rule)
            && c != Comparison::Same
        {
            differing.push(format!("{} ({})", rule.key, c.describe()));
            keys.insert(rule.key.clone());
        }
    }
    if logged.get(&read.server) == Some(&keys) {
        return;
    }
    if keys.is_empty() {
        tracing::info!(server = %read.server, "the server loads every `auto` rule as the agent has it");
    } else {
        tracing::warn!(
            server = %read.server,
            "the server's rules differ from the agent's; these keys are evaluated: {}",
            differing.join(", ")
        );
    }
    logged.insert(read.server.clone(), keys);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{PrometheusConfig, ServerConfig};
    use crate::metrics::Metrics;
    use crate::rules::Scope;

    fn rule(alert: &str, expr: &str, value_source: RuleSource) -> PlannedRule {
        PlannedRule {
            key: format!("TiDB.tikv.{alert}"),
            component: "tikv".into(),
            level: "critical".into(),
            for_: Duration::ZERO,
            scope: Scope::Host,
            query: String::new(),
            source: "test".into(),
            batchable: true,
            alert: alert.into(),
            expr: expr.into(),
            value_source,
            alerts_blocked: None,
        }
    }

    fn server(name: &str, rules: &[(&str, &str)]) -> ServerRules {
        let mut by_name: HashMap<String, Vec<Option<Expr>>> = HashMap::new();
        for (alert, query) in rules {
            by_name
                .entry(alert.to_string())
                .or_default()
                .push(crate::promql::canonical(query).ok());
        }
        ServerRules {
            server: name.into(),
            rules: Ok(by_name),
        }
    }

    #[test]
    fn auto_reads_alerts_only_when_every_answering_server_has_the_same_rule() {
        let down = rule(
            "Down",
            "probe_success{group=\"tikv\"} == 0",
            RuleSource::Auto,
        );
        let a = server("A", &[("Down", "(probe_success{group=\"tikv\"} == 0)")]);
        let b = server("B", &[("Down", "probe_success{group=\"tikv\"} == 0")]);
        let failed = ServerRules {
            server: "C".into(),
            rules: Err("refused".into()),
        };
        let d = decide(&down, &[a.clone(), b.clone(), failed.clone()]);
        assert_eq!(d.source, Source::Alerts, "{d:?}");
        assert_eq!(decide(&down, &[]).source, Source::Evaluate);
        assert_eq!(decide(&down, &[failed]).source, Source::Evaluate);

        let differs = server("B", &[("Down", "probe_success{group=\"tikv\"} == 1")]);
        let d = decide(&down, &[a.clone(), differs]);
        assert_eq!(
            d,
            Decision::new(
                Source::Evaluate,
                "auto: B loads it with a different expression"
            )
        );
        let missing = server("B", &[]);
        assert_eq!(
            decide(&down, &[a.clone(), missing]).reason,
            "auto: B does not load it"
        );
        let twice = server(
            "B",
            &[
                ("Down", "probe_success == 0"),
                ("Down", "probe_success{group=\"tikv\"} == 0"),
            ],
        );
        assert_eq!(
            decide(&down, &[a, twice]).reason,
            "auto: B loads 2 alerting rules of this name"
        );
    }

    #[test]
    fn a_failed_read_is_retried_at_the_next_cycle_then_less_and_less_often() {
        let mut schedule = Schedule::new(Duration::from_secs(15));
        assert_eq!(schedule.after(false), REFRESH_EVERY);
        let waits: Vec<u64> = (0..7).map(|_| schedule.after(true).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(schedule.after(false), REFRESH_EVERY);
        assert_eq!(
            schedule.after(true),
            Duration::from_secs(15),
            "reset by a good read"
        );
        let mut slow = Schedule::new(Duration::from_secs(600));
        assert_eq!(
            slow.after(true),
            REFRESH_EVERY,
            "never later than a refresh"
        );
    }

    #[test]
    fn settings_and_blocks_come_first() {
        let b = server("B", &[("Down", "up == 0")]);
        let evaluate = rule("Down", "up == 0", RuleSource::Evaluate);
        assert_eq!(
            decide(&evaluate, std::slice::from_ref(&b)).source,
            Source::Evaluate
        );
        let alerts = rule("Down", "up == 1", RuleSource::Alerts);
        assert_eq!(decide(&alerts, &[]).source, Source::Alerts);
        let mut blocked = rule("Down", "sum(up) == 0", RuleSource::Alerts);
        blocked.alerts_blocked = Some(crate::plan::HOST_LABEL_AGGREGATED_AWAY);
        assert_eq!(decide(&blocked, &[b]).source, Source::Evaluate);
    }

    #[tokio::test]
    async fn each_read_decides_for_the_rules_the_cycle_runs_now_and_keeps_none() {
        // A server that refuses connections: every read fails and is retried each interval.
        let config = PrometheusConfig {
            servers: vec![ServerConfig::from_url("http://127.0.0.1:1")],
            ..PrometheusConfig::default()
        };
        let pair =
            match PrometheusPair::new(&config, &HashSet::new(), Arc::new(Metrics::new())).await {
                Ok(pair) => Arc::new(pair),
                Err(e) => panic!("{e:?}"),
            };
        let first: Arc<[PlannedRule]> = vec![rule("Down", "up == 0", RuleSource::Auto)].into();
        let (cycle_rules, follow) = watch::channel(first.clone());
        let (sender, mut decisions) = watch::channel(Decisions::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            pair,
            move || follow.borrow().clone(),
            Duration::from_millis(20),
            Duration::from_millis(500),
            sender,
            shutdown.clone(),
        ));
        let wait = |key: &'static str| {
            let mut decisions = decisions.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    decisions.wait_for(|d| d.contains_key(key) && d.len() == 1),
                )
                .await
                .is_ok_and(|found| found.is_ok())
            }
        };
        assert!(
            wait("TiDB.tikv.Down").await,
            "{:?}",
            decisions.borrow_and_update()
        );
        cycle_rules.send_replace(vec![rule("Up", "up == 1", RuleSource::Auto)].into());
        assert!(
            wait("TiDB.tikv.Up").await,
            "{:?}",
            decisions.borrow_and_update()
        );
        // The task read the new rules and keeps nothing of the first between reads.
        assert_eq!(Arc::strong_count(&first), 1);
        shutdown.cancel();
        assert!(task.await.is_ok());
    }
}
