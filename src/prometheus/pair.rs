//! The Prometheus HA pair (SPEC §5): which server to ask, in which order, and how to
//! combine their answers.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::server::{QueryAnswer, QueryError, Server, ServerError};
use super::{batch, evidence};
use crate::config::{PrometheusConfig, QueryMode};
use crate::metrics::Metrics;
use crate::snapshot::Reason;

/// One server with what the agent knows of its health.
#[derive(Debug)]
pub struct Member {
    pub server: Server,
    /// Runs on this host (its address resolves to one of ours).
    pub local: bool,
    /// Queries may go here. Cleared by any failure, set again by a successful probe,
    /// so a hung server costs at most one timeout.
    available: AtomicBool,
    /// Consecutive failed probes.
    failed_probes: AtomicU32,
    /// Failed `down_after` probes in a row.
    down: AtomicBool,
    /// In this cycle, a query got an answer (a `bad_data` one too: the server is up).
    answered: AtomicBool,
    /// In this cycle, a query failed.
    failed: AtomicBool,
    /// Wakes the cycle's liveness check at a query's failure ([`super::liveness`]).
    failure: Notify,
}

impl Member {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// A query got an answer in this cycle, and none failed.
    pub fn answered_this_cycle(&self) -> bool {
        self.answered.load(Ordering::Relaxed) && !self.failed_this_cycle()
    }

    pub fn failed_this_cycle(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits for a query to this server to fail in this cycle.
    pub async fn failure(&self) {
        // A wake-up left over from a failure outside the cycle is not one.
        while !self.failed_this_cycle() {
            self.failure.notified().await;
        }
    }
}

/// The outcome of one rule's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// With the series that made it true (a few, [`evidence`]).
    True(Vec<Reason>),
    False,
    /// No server could answer.
    Unknown,
    /// The query itself is wrong (`bad_data`).
    RuleError(String),
}

/// The outcome of a batch of rules ([`batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// One verdict per rule, in batch order: `True`, `False` or `Unknown`.
    Answered(Vec<Verdict>),
    /// A server rejected the combined query (`bad_data`): the rules must be asked one by
    /// one to learn which of them is wrong.
    Rejected(String),
}

/// A configured server whose client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("[prometheus] server {server}")]
pub struct ServerSetupError {
    /// The URL without credentials.
    pub server: String,
    #[source]
    pub source: ServerError,
}

/// Why a pair query gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PairError {
    #[error("no Prometheus server answered ({0})")]
    NoAnswer(String),
    #[error("the query was rejected: {0}")]
    BadData(String),
}

pub struct PrometheusPair {
    /// In preference order: local servers first, then the configured order.
    members: Vec<Arc<Member>>,
    mode: QueryMode,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl PrometheusPair {
    /// Builds the pair; `host_ips` decides which servers are local.
    /// Builds a client for every configured server (secret files read, CA parsed, headers
    /// checked: every problem is returned), then finds which are local.
    pub async fn new(
        config: &PrometheusConfig,
        host_ips: &HashSet<IpAddr>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Vec<ServerSetupError>> {
        let mut servers = Vec::new();
        let mut problems = Vec::new();
        for sc in &config.servers {
            match Server::new(sc, config.max_response_bytes, metrics.clone()) {
                Ok(server) => servers.push(server),
                Err(source) => problems.push(ServerSetupError {
                    server: crate::config::redacted_url(&sc.url),
                    source,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut members = Vec::new();
        for server in servers {
            let local = match server.host() {
                Some((host, port)) => resolves_to_any(&host, port, host_ips).await,
                None => false,
            };
            members.push(Arc::new(Member {
                server,
                local,
                available: AtomicBool::new(true),
                failed_probes: AtomicU32::new(0),
                down: AtomicBool::new(false),
                answered: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                failure: Notify::new(),
            }));
        }
        // Stable: keeps the configured order within local and remote servers.
        members.sort_by_key(|m| !m.local);
        Ok(Self {
            members,
            mode: config.mode,
            timeout: config.timeout.get(),
            metrics,
        })
    }

    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// Every answer a query gets under the configured mode: the preferred server's under
    /// `failover`, every answering server's under `any` and `all`; none when no server
    /// answered. `Err` is the query's rejection (`bad_data`).
    pub async fn answers(&self, expr: &str, deadline: Instant) -> Result<Vec<QueryAnswer>, String> {
        match self.mode {
            QueryMode::Failover => match self.query(expr, deadline).await {
                Ok(answer) => Ok(vec![answer]),
                Err(PairError::BadData(e)) => Err(e),
                Err(PairError::NoAnswer(_)) => Ok(Vec::new()),
            },
            QueryMode::Any | QueryMode::All => self.ask_everywhere(expr, deadline).await,
        }
    }

    pub fn has_local(&self) -> bool {
        self.members.iter().any(|m| m.local)
    }

    /// SPEC §6: 1 when a local server is down, or when every server is down.
    pub fn prometheus_is_down(&self) -> bool {
        let any_local_down = self.members.iter().any(|m| m.local && m.is_down());
        let all_down = !self.members.is_empty() && self.members.iter().all(|m| m.is_down());
        any_local_down || all_down
    }

    /// Starts a cycle: no server has answered or failed in it yet.
    pub fn begin_cycle(&self) {
        for m in &self.members {
            m.answered.store(false, Ordering::Relaxed);
            m.failed.store(false, Ordering::Relaxed);
        }
    }

    /// Some server answered a query in this cycle.
    pub fn answered_this_cycle(&self) -> bool {
        self.members.iter().any(|m| m.answered_this_cycle())
    }

    /// Records one liveness probe result for `member`.
    pub fn record_probe(&self, member: &Member, ok: bool, down_after: u32) {
        if ok {
            member.failed_probes.store(0, Ordering::Relaxed);
            member.down.store(false, Ordering::Relaxed);
            member.available.store(true, Ordering::Relaxed);
        } else {
            let failures = member.failed_probes.fetch_add(1, Ordering::Relaxed) + 1;
            member.available.store(false, Ordering::Relaxed);
            if failures >= down_after {
                member.down.store(true, Ordering::Relaxed);
            }
        }
        self.metrics
            .server_up(&member.server.name, !member.is_down());
    }

    /// Evaluates an alert condition under the configured mode, finishing by `deadline`.
    pub async fn evaluate(&self, expr: &str, deadline: Instant) -> Verdict {
        match self.mode {
            QueryMode::Failover => match self.query(expr, deadline).await {
                Ok(answer) => self.combine(std::iter::once(evidence::reasons(answer.samples()))),
                Err(PairError::BadData(e)) => Verdict::RuleError(e),
                Err(PairError::NoAnswer(_)) => Verdict::Unknown,
            },
            QueryMode::Any | QueryMode::All => self.evaluate_everywhere(expr, deadline).await,
        }
    }

    /// Asks the preferred available server, failing over down the list.
    pub async fn query(&self, expr: &str, deadline: Instant) -> Result<QueryAnswer, PairError> {
        let mut failures = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            if !member.is_available() {
                continue;
            }
            let Some(timeout) = self.budget(deadline) else {
                failures.push("the cycle deadline passed".to_string());
                break;
            };
            match self.ask(member, expr, timeout).await {
                Ok(answer) => {
                    if i > 0 {
                        self.metrics.failover();
                    }
                    return Ok(answer);
                }
                Err(QueryError::BadData(e)) => return Err(PairError::BadData(e)),
                Err(e) => failures.push(format!("{}: {e}", member.server.name)),
            }
        }
        if failures.is_empty() {
            failures.push("every server is marked down until its next successful probe".into());
        }
        Err(PairError::NoAnswer(failures.join("; ")))
    }

    /// Evaluates a batch of `rules` conditions composed by [`batch::compose`] under the
    /// configured mode, finishing by `deadline`. Each rule's verdict is the one its own
    /// query would get from the same server(s).
    pub async fn evaluate_batch(
        &self,
        expr: &str,
        rules: usize,
        deadline: Instant,
    ) -> BatchVerdict {
        match self.answers(expr, deadline).await {
            Ok(answers) => BatchVerdict::Answered(self.batch_verdicts(&answers, rules)),
            Err(e) => BatchVerdict::Rejected(e),
        }
    }

    /// The verdicts of the first `rules` conditions of a batch, from every answer it got
    /// ([`Self::answers`]): each rule's series split out by its tag, then combined over
    /// the servers under the mode.
    pub fn batch_verdicts(&self, answers: &[QueryAnswer], rules: usize) -> Vec<Verdict> {
        let per_server: Vec<_> = answers.iter().map(|a| batch::split(a, rules)).collect();
        (0..rules)
            .map(|i| {
                self.combine(
                    per_server
                        .iter()
                        .map(|split| split.get(i).cloned().unwrap_or_default()),
                )
            })
            .collect()
    }

    async fn evaluate_everywhere(&self, expr: &str, deadline: Instant) -> Verdict {
        match self.ask_everywhere(expr, deadline).await {
            Ok(answers) => self.combine(answers.iter().map(|a| evidence::reasons(a.samples()))),
            Err(e) => Verdict::RuleError(e),
        }
    }

    /// Every available server's answer (the ones that answered), or the `bad_data` error
    /// of any of them.
    async fn ask_everywhere(
        &self,
        expr: &str,
        deadline: Instant,
    ) -> Result<Vec<QueryAnswer>, String> {
        let Some(timeout) = self.budget(deadline) else {
            return Ok(Vec::new());
        };
        let asks = self
            .members
            .iter()
            .filter(|m| m.is_available())
            .map(|m| self.ask(m, expr, timeout));
        let mut answers = Vec::new();
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(a) => answers.push(a),
                Err(QueryError::BadData(e)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(answers)
    }

    /// One rule's verdict from what each answering server said of it (the series it
    /// returned, none when false): none answered is unknown; otherwise `all` needs every
    /// server to say true, `failover` and `any` one. The reasons are the first true
    /// server's.
    fn combine(&self, answers: impl Iterator<Item = Vec<Reason>>) -> Verdict {
        let (mut answered, mut fired_anywhere, mut fired_everywhere) = (false, false, true);
        let mut reasons = Vec::new();
        for answer in answers {
            let f = !answer.is_empty();
            answered = true;
            fired_anywhere |= f;
            fired_everywhere &= f;
            if reasons.is_empty() {
                reasons = answer;
            }
        }
        let fires = match self.mode {
            QueryMode::All => fired_everywhere,
            QueryMode::Failover | QueryMode::Any => fired_anywhere,
        };
        match (answered, fires) {
            (false, _) => Verdict::Unknown,
            (true, true) => Verdict::True(reasons),
            (true, false) => Verdict::False,
        }
    }

    fn budget(&self, deadline: Instant) -> Option<Duration> {
        let left = deadline.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| left.min(self.timeout))
    }

    async fn ask(
        &self,
        member: &Member,
        expr: &str,
        timeout: Duration,
    ) -> Result<QueryAnswer, QueryError> {
        let started = Instant::now();
        let result = member.server.query(expr, timeout).await;
        self.metrics.query(&member.server.name, started.elapsed());
        match &result {
            Err(e) if e.is_server_failure() => {
                member.failed.store(true, Ordering::Relaxed);
                member.failure.notify_one();
                if member.available.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        server = %member.server.name,
                        "query failed ({e}); skipping this server until its next successful probe"
                    );
                }
            }
            _ => member.answered.store(true, Ordering::Relaxed),
        }
        result
    }
}

async fn resolves_to_any(host: &str, port: u16, ips: &HashSet<IpAddr>) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ips.contains(&ip);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.into_iter().any(|a| ips.contains(&a.ip())),
        Err(e) => {
            tracing::warn!(host, "cannot resolve a Prometheus host: {e}");
            false
        }
    }
}
