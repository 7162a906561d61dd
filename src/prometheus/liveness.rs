//! The liveness probe (SPEC §6): every cycle, `/-/ready` on each server, on its own
//! task so that a hung server never delays a cycle.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PrometheusPair;
use crate::snapshot::{AlertState, Entry};

/// Probes every server once, concurrently, and records the results.
pub async fn probe_all(pair: &PrometheusPair, timeout: Duration, down_after: u32) {
    let probes = pair.members().iter().map(|m| async move {
        let result = m.server.probe(timeout).await;
        (m, result)
    });
    for (member, result) in futures::future::join_all(probes).await {
        let was_down = member.is_down();
        pair.record_probe(member, result.is_ok(), down_after);
        match (&result, was_down, member.is_down()) {
            (Err(e), false, true) => tracing::error!(
                server = %member.server.name,
                local = member.local,
                "Prometheus is down: {e}"
            ),
            (Ok(()), true, false) => {
                tracing::info!(server = %member.server.name, "Prometheus is up again")
            }
            (Err(e), _, _) => tracing::debug!(server = %member.server.name, "probe failed: {e}"),
            _ => {}
        }
    }
}

/// Probes every `every` until `shutdown`.
pub async fn run(
    pair: Arc<PrometheusPair>,
    every: Duration,
    timeout: Duration,
    down_after: u32,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => probe_all(&pair, timeout, down_after).await,
        }
    }
}

/// The `Prometheus_is_down` entry (SPEC §6), from the probes recorded so far.
pub fn entry(pair: &PrometheusPair, key: &str, level: &str) -> Entry {
    let down = pair.prometheus_is_down();
    Entry {
        key: key.to_owned(),
        value: u8::from(down),
        level: level.to_owned(),
        component: "prometheus".into(),
        state: if down {
            AlertState::Firing
        } else {
            AlertState::Ok
        },
        since: None,
        reasons: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::test_support::{hung_server, pair_of};

    /// Every probe of a hung server times out: the server is down after exactly
    /// `down_after` of them, one per interval, and not one probe earlier.
    #[tokio::test(start_paused = true)]
    async fn a_server_is_down_after_down_after_timed_out_probes() {
        let (_listener, url) = hung_server();
        let pair = pair_of(&url).await;
        let stop = CancellationToken::new();
        let every = Duration::from_secs(15);
        let timeout = Duration::from_secs(2);
        let task = tokio::spawn(run(pair.clone(), every, timeout, 3, stop.clone()));
        // Probes start at 0 s, 15 s and 30 s, and each fails at +2 s.
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(!pair.prometheus_is_down(), "down after two failed probes");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            pair.prometheus_is_down(),
            "not down after three failed probes"
        );
        stop.cancel();
        let _ = task.await;
    }
}
