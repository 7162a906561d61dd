//! The daemon's ping task: a round every `[ping] every`, the slow and lost echoes
//! appended to the record, and the latest keys published for the snapshot.
//!
//! Without ICMP permission the task logs one clear error, publishes no ping keys and
//! waits for shutdown: the rest of the daemon goes on (SPEC §13).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::keys::{self, KeyRules};
use super::outcome::RoundOutcome;
use super::prober::{Family, Prober, ProberError};
use super::record::{self, Record};
use super::round::{self, RoundSettings};
use super::target;
use crate::config::PingConfig;
use crate::metrics::Metrics;
use crate::snapshot::Entry;

/// Runs until `shutdown`. `extra_targets` carries the host addresses seen in
/// Prometheus `instance` labels (used when `targets_from_prometheus`); `entries`
/// receives the ping keys after every round, and `metrics` each target's RTT and loss.
pub async fn run<K>(
    config: PingConfig,
    key_name: K,
    extra_targets: watch::Receiver<Vec<String>>,
    entries: watch::Sender<Vec<Entry>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) where
    K: Fn(&str, &str) -> String + Send + Sync + 'static,
{
    if !config.enabled {
        shutdown.cancelled().await;
        return;
    }
    let mut rounds = Rounds::new(&config);
    // Open IPv4 now, so that a missing permission shows at start, not at the first target.
    if let Err(error) = rounds.open(&[Family::V4]) {
        tracing::error!("{error}");
        entries.send_replace(Vec::new());
        shutdown.cancelled().await;
        return;
    }

    let mut ticker = tokio::time::interval(config.every.get());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut published: Vec<Entry> = Vec::new();
    // The targets whose RTT and loss the self-metrics show.
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let discovered = if config.targets_from_prometheus {
            extra_targets.borrow().clone()
        } else {
            Vec::new()
        };
        let names = target_names(&config.targets, discovered);
        let round = tokio::select! {
            _ = shutdown.cancelled() => return,
            round = rounds.round(&names) => round,
        };
        let round = match round {
            Ok(round) => round,
            Err(error) => {
                tracing::error!("{error}");
                entries.send_replace(Vec::new());
                shutdown.cancelled().await;
                return;
            }
        };
        rounds.write_record(&round).await;
        let mut pinged = HashSet::with_capacity(round.targets.len());
        for target in &round.targets {
            metrics.ping_target(
                &target.target.name,
                target.rtt_summary().map(|s| s.avg),
                target.loss_percent() / 100.0,
            );
            pinged.insert(target.target.name.clone());
        }
        for gone in reported.difference(&pinged) {
            metrics.ping_target_gone(gone);
        }
        reported = pinged;
        let next = keys::entries(&round, &rounds.key_rules, &key_name);
        published = keys::carry_since(&published, next, Timestamp::now());
        entries.send_replace(published.clone());
    }
}

/// The configured targets, then the discovered ones, each once.
fn target_names(configured: &[String], discovered: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    configured
        .iter()
        .cloned()
        .chain(discovered)
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

/// The task's state between rounds: sockets, settings, and what was last logged, so
/// that a persisting problem is logged once per change rather than every round.
struct Rounds {
    prober: Prober,
    settings: RoundSettings,
    key_rules: KeyRules,
    record: Record,
    last_resolve_errors: Vec<String>,
    last_open_errors: Vec<String>,
    last_record_error: Option<String>,
}

impl Rounds {
    fn new(config: &PingConfig) -> Self {
        Self {
            prober: Prober::new(config.receive_buffer_bytes),
            settings: RoundSettings::from(config),
            key_rules: KeyRules::from(config),
            record: Record::new(
                config.record_file.clone(),
                config.record_max_bytes,
                config.record_keep,
            ),
            last_resolve_errors: Vec::new(),
            last_open_errors: Vec::new(),
            last_record_error: None,
        }
    }

    /// Opens the families' sockets. Only a missing permission is an error: ping is
    /// then off. Other failures are logged, and that family's targets count as lost.
    fn open(&mut self, families: &[Family]) -> Result<(), ProberError> {
        let mut problems = Vec::new();
        for family in families {
            match self.prober.open(*family) {
                Ok(_) => {}
                Err(ProberError::NoPermission) => return Err(ProberError::NoPermission),
                Err(error) => problems.push(error.to_string()),
            }
        }
        if problems != self.last_open_errors {
            for problem in &problems {
                tracing::warn!("{problem}; its ping targets count as lost");
            }
            self.last_open_errors = problems;
        }
        Ok(())
    }

    async fn round(&mut self, names: &[String]) -> Result<RoundOutcome, ProberError> {
        let (targets, errors) = target::resolve_all(names).await;
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        if errors != self.last_resolve_errors {
            for error in &errors {
                tracing::warn!("{error}; it is left out of the ping round until it resolves");
            }
            self.last_resolve_errors = errors;
        }
        let families: Vec<Family> = [Family::V4, Family::V6]
            .into_iter()
            .filter(|f| targets.iter().any(|t| Family::of(t.address) == *f))
            .collect();
        self.open(&families)?;
        let round = round::run(&self.prober, targets, &self.settings).await;
        tracing::debug!(
            targets = round.targets.len(),
            unreachable = round.targets.iter().filter(|t| !t.is_reachable()).count(),
            "ping round done"
        );
        Ok(round)
    }

    async fn write_record(&mut self, round: &RoundOutcome) {
        let lines = record::lines(round, self.key_rules.latency_threshold);
        if lines.is_empty() {
            return;
        }
        let record = self.record.clone();
        let written = tokio::task::spawn_blocking(move || record.append(&lines)).await;
        let problem = match written {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(format!(
                "the slow-ping record {} was not written: {error}",
                self.record.path().display()
            )),
        };
        if problem != self.last_record_error {
            match &problem {
                Some(problem) => tracing::error!("{problem}"),
                None => tracing::info!(
                    "the slow-ping record {} is written again",
                    self.record.path().display()
                ),
            }
            self.last_record_error = problem;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_targets_come_first_and_each_once() {
        let configured = vec!["10.0.1.1".to_string(), "10.0.1.2".to_string()];
        let discovered = vec!["10.0.1.2".to_string(), "10.0.1.3".to_string()];
        assert_eq!(
            target_names(&configured, discovered),
            ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
        );
    }
}
