//! This host's exact label values, for `[host] matcher = "instances"` (README "Host
//! matcher"): which `instance` values the pair has for this host's pattern, read now,
//! every [`REFRESH_EVERY`] and at each reload, with the host rules re-scoped to them.
//!
//! A selector with the pattern makes Prometheus test the pattern against every value of
//! the label in its index, thousands in a large fleet, for every selector of every query;
//! an alternation of exact values it looks up directly. A target first scraped after a
//! read is scoped at the next read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::evaluation::sources::{REFRESH_EVERY, Schedule};
use crate::plan::{self, PlannedRule};
use crate::prometheus::PrometheusPair;
use crate::prometheus::pair::PairError;
use crate::promql::HostScope;

/// The host matcher and the rules scoped by it, as the cycle runs them.
#[derive(Debug, Clone)]
pub struct Scoped {
    pub host: HostScope,
    pub rules: Arc<[PlannedRule]>,
}

/// The label's values on this host's scrape targets and alerts:
/// `count by (LABEL) (up{HOST}) or count by (LABEL) (ALERTS{HOST})`, with `host`'s pattern.
pub fn query(host: &HostScope) -> String {
    let label = host.label();
    let pattern = host.pattern();
    format!("count by ({label}) (up{{{pattern}}}) or count by ({label}) (ALERTS{{{pattern}}})")
}

/// Reads this host's values now and on the [`Schedule`] (`interval` is the cycle's, for
/// retries), and sends the rules re-scoped whenever the values change, until `shutdown`.
/// A read that fails keeps the last scope; one that finds no value goes back to the
/// pattern.
pub async fn run(
    pair: Arc<PrometheusPair>,
    interval: Duration,
    timeout: Duration,
    scoped: watch::Sender<Scoped>,
    shutdown: CancellationToken,
) {
    let pattern = scoped.borrow().host.pattern();
    let mut schedule = Schedule::new(interval);
    loop {
        let failed = match read(&pair, &pattern, timeout).await {
            Ok(host) => {
                if host.instances() != scoped.borrow().host.instances() {
                    rescope(host, &scoped);
                }
                false
            }
            Err(e) => {
                tracing::debug!("cannot read this host's {} values: {e}", pattern.label());
                true
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(schedule.after(failed)) => {}
        }
    }
}

/// The scope `pattern`'s values in the pair give: their exact values, or `pattern` itself
/// when there is none, or too many ([`HostScope::with_instances`]).
pub async fn read(
    pair: &PrometheusPair,
    pattern: &HostScope,
    timeout: Duration,
) -> Result<HostScope, PairError> {
    let answer = pair
        .query(&query(pattern), Instant::now() + timeout)
        .await?;
    let values: Vec<&str> = answer
        .series
        .iter()
        .filter_map(|s| s.get(pattern.label()).map(String::as_str))
        .collect();
    Ok(pattern
        .with_instances(&values)
        .unwrap_or_else(|| pattern.clone()))
}

/// Sends the rules scoped by `host`: re-scoped from their expressions, whatever scope
/// they have now.
fn rescope(host: HostScope, scoped: &watch::Sender<Scoped>) {
    let rules = plan::rescoped(&scoped.borrow().rules, &host);
    match rules {
        Ok(rules) => {
            match host.instances() {
                Some(values) => tracing::info!(
                    label = host.label(),
                    ?values,
                    "host matcher: the {} values the pair has for this host, read again in {} s",
                    values.len(),
                    REFRESH_EVERY.as_secs()
                ),
                None => tracing::info!(
                    matcher = %host,
                    "host matcher: the addresses' pattern (the pair has no value of it, or \
                     too many to list)"
                ),
            }
            scoped.send_replace(Scoped {
                host,
                rules: rules.into(),
            });
        }
        // The same expressions were scoped by the pattern when the plan was built.
        Err(e) => tracing::warn!(
            "host matcher: the pattern stays: {}",
            crate::error::chain(&e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_asks_for_targets_and_alerts_with_the_pattern() {
        let host = match HostScope::new("instance", &["10.0.1.5"]) {
            Ok(host) => host,
            Err(e) => panic!("{e}"),
        };
        let exact = host.with_instances(&["10.0.1.5:20180"]);
        let expected = r#"count by (instance) (up{instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?"}) or count by (instance) (ALERTS{instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?"})"#;
        assert_eq!(query(&host), expected);
        // Built from a scope that lists values, the read still looks for new ones.
        assert_eq!(exact.map(|e| query(&e)).as_deref(), Some(expected));
    }
}
