//! Liveness (SPEC §6, §15 "Requests"): each cycle, the readiness that `Prometheus_is_down`
//! and the choice of server need. A server that answered one of the cycle's queries is ready,
//! with no request of its own. A failing server gets `/-/ready` as soon as it fails, so that
//! a hung server never delays a cycle. A server not asked gets it when the cycle's work ends,
//! unless it is remote and another server answered: then its readiness changes no value
//! (the key counts remote servers only when every server is down, and one answered), and
//! under `failover` a spare is asked only when the preferred one fails, which that query
//! finds out. So a host whose preferred server answers sends that server one request per
//! cycle and none to the spare.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::PrometheusPair;
use super::pair::Member;
use super::server::QueryError;
use crate::snapshot::Entry;

/// `[prometheus] probe_timeout` and `down_after`.
#[derive(Debug, Clone, Copy)]
pub struct Probing {
    pub timeout: Duration,
    pub down_after: u32,
}

/// Probes every server once, concurrently, and records the results: before the first
/// cycle, and for `once`.
pub async fn probe_all(pair: &PrometheusPair, timeout: Duration, down_after: u32) {
    let probes = pair.members().iter().map(|m| async move {
        let result = m.server.probe(timeout).await;
        record(pair, m, result, down_after);
    });
    futures::future::join_all(probes).await;
}

/// Runs `work`, a cycle's queries, and alongside it settles each server's liveness for the
/// cycle: a server that answered a query and failed none counts as one successful probe; a
/// server that a query failed on is probed at once; one that was unavailable from the start
/// is probed at once; one that was not asked is probed when `work` ends, unless it is remote
/// and another server answered (then it is left as it was). No probe runs past `deadline`:
/// one with no time left is skipped, and counts neither way.
pub async fn alongside<T>(
    pair: &PrometheusPair,
    probing: Probing,
    deadline: Instant,
    work: impl Future<Output = T>,
) -> T {
    pair.begin_cycle();
    let done = CancellationToken::new();
    let work = async {
        let out = work.await;
        done.cancel();
        out
    };
    let checks = pair
        .members()
        .iter()
        .map(|m| settle(pair, m, probing, deadline, &done));
    let (out, _) = tokio::join!(work, futures::future::join_all(checks));
    out
}

async fn settle(
    pair: &PrometheusPair,
    member: &Member,
    probing: Probing,
    deadline: Instant,
    done: &CancellationToken,
) {
    if member.is_available() {
        tokio::select! {
            () = member.failure() => {}
            () = done.cancelled() => {
                if member.answered_this_cycle() {
                    record(pair, member, Ok(()), probing.down_after);
                    return;
                }
                // A remote server while another answered: its state changes no value
                // (see the module's doc), so it is left as it was.
                if !member.local && pair.answered_this_cycle() {
                    return;
                }
            }
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        tracing::debug!(server = %member.server.name, "no time left in the cycle for a probe");
        return;
    }
    let result = member.server.probe(left.min(probing.timeout)).await;
    record(pair, member, result, probing.down_after);
}

/// Records one readiness result, and logs a change of state.
fn record(pair: &PrometheusPair, member: &Member, result: Result<(), QueryError>, down_after: u32) {
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

/// The `Prometheus_is_down` entry (SPEC §6), from the probes recorded so far.
pub fn entry(pair: &PrometheusPair, key: &str, level: &str) -> Entry {
    Entry::computed(
        key.to_owned(),
        level,
        "prometheus",
        pair.prometheus_is_down(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::{PrometheusConfig, ServerConfig};
    use crate::metrics::Metrics;
    use crate::prometheus::test_support::{hung_server, pair_of};

    /// Every probe of a hung server times out: the server is down after exactly
    /// `down_after` cycles, and not one cycle earlier.
    #[tokio::test(start_paused = true)]
    async fn a_server_is_down_after_down_after_timed_out_probes() {
        let (_listener, url) = hung_server();
        let pair = pair_of(&url).await;
        let probing = Probing {
            timeout: Duration::from_secs(2),
            down_after: 3,
        };
        let cycle = || {
            alongside(
                &pair,
                probing,
                Instant::now() + Duration::from_secs(6),
                async {},
            )
        };
        cycle().await;
        cycle().await;
        assert!(!pair.prometheus_is_down(), "down after two failed probes");
        cycle().await;
        assert!(
            pair.prometheus_is_down(),
            "not down after three failed probes"
        );
    }

    /// A server that answers every request with an empty vector, and the request lines it
    /// got.
    async fn recording_server(ip: &str) -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(line);
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (url, requests)
    }

    const PROBING: Probing = Probing {
        timeout: Duration::from_secs(2),
        down_after: 1,
    };

    /// A server that answered the cycle's query needs no probe: the answer counts as a
    /// successful probe. A server not asked, when no other answered, is probed.
    #[tokio::test]
    async fn an_answer_counts_as_a_successful_probe() {
        let (url, requests) = recording_server("127.0.0.1").await;
        let pair = pair_of(&url).await;
        let deadline = Instant::now() + Duration::from_secs(6);
        let answer = alongside(&pair, PROBING, deadline, pair.query("up", deadline)).await;
        assert!(answer.is_ok(), "{answer:?}");
        assert!(!pair.prometheus_is_down());
        let lines = requests.lock().unwrap().clone();
        assert_eq!(lines, ["POST /api/v1/query HTTP/1.1"], "{lines:?}");
        // Not asked, and nobody answered: probed.
        alongside(&pair, PROBING, deadline, async {}).await;
        let lines = requests.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], "GET /-/ready HTTP/1.1", "{lines:?}");
    }

    /// Under `failover`, the preferred server answers: a remote spare gets no request at
    /// all, while a local one, which `Prometheus_is_down` reports, is probed.
    #[tokio::test]
    async fn a_remote_spare_is_not_probed_while_the_preferred_server_answers() {
        let (first, first_requests) = recording_server("127.0.0.1").await;
        let (spare, spare_requests) = recording_server("127.0.0.2").await;
        for spare_is_local in [false, true] {
            first_requests.lock().unwrap().clear();
            spare_requests.lock().unwrap().clear();
            // Both local when the spare is: local servers come first, so the first is
            // still the one asked.
            let local: HashSet<IpAddr> = if spare_is_local {
                ["127.0.0.1", "127.0.0.2"]
                    .map(|ip| ip.parse().unwrap())
                    .into()
            } else {
                HashSet::new()
            };
            let config = PrometheusConfig {
                servers: vec![
                    ServerConfig::from_url(&first),
                    ServerConfig::from_url(&spare),
                ],
                ..PrometheusConfig::default()
            };
            let pair = PrometheusPair::new(&config, &local, Arc::new(Metrics::new()))
                .await
                .unwrap();
            for _ in 0..3 {
                let deadline = Instant::now() + Duration::from_secs(6);
                let answer = alongside(&pair, PROBING, deadline, pair.query("up", deadline)).await;
                assert!(answer.is_ok(), "{answer:?}");
            }
            assert!(!pair.prometheus_is_down());
            let first_lines = first_requests.lock().unwrap().clone();
            assert_eq!(first_lines, ["POST /api/v1/query HTTP/1.1"; 3]);
            let spare_lines = spare_requests.lock().unwrap().clone();
            let expected: &[&str] = if spare_is_local {
                &["GET /-/ready HTTP/1.1"; 3]
            } else {
                &[]
            };
            assert_eq!(spare_lines, expected, "spare local: {spare_is_local}");
        }
    }
}
