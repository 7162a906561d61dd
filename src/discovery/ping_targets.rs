//! Ping targets from Prometheus (`[ping] targets_from_prometheus`, SPEC §7): every host
//! address seen in an `instance` label, refreshed every `detect_every`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::prometheus::PrometheusPair;

/// Lists the hosts every `every` (every `retry` while Prometheus cannot answer) and sends
/// them to the ping task, until `shutdown`.
pub async fn run(
    pair: Arc<PrometheusPair>,
    label: String,
    every: Duration,
    retry: Duration,
    query_timeout: Duration,
    targets: watch::Sender<Vec<String>>,
    shutdown: CancellationToken,
) {
    let query = format!("count by ({label}) (up)");
    loop {
        let deadline = Instant::now() + query_timeout;
        let wait = match pair.query(&query, deadline).await {
            Ok(answer) => {
                let mut hosts: Vec<String> = answer
                    .series
                    .iter()
                    .filter_map(|s| s.get(&label))
                    .map(|i| host_of(i).to_string())
                    .collect();
                hosts.sort();
                hosts.dedup();
                targets.send_replace(hosts);
                every
            }
            Err(e) => {
                tracing::debug!("cannot list ping targets from Prometheus: {e}");
                retry
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// `10.0.1.5:20180` → `10.0.1.5`; `[::1]:9090` → `::1`; a bare host stays as it is.
fn host_of(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("10.0.1.5:20180"), "10.0.1.5");
        assert_eq!(host_of("[::1]:9090"), "::1");
        assert_eq!(host_of("tidb-1"), "tidb-1");
        assert_eq!(host_of("fe80::1"), "fe80::1");
    }
}
