//! Liveness (SPEC §6, §15 "Requests"): each cycle, every server's readiness. A server that
//! answered one of the cycle's queries is ready, with no request of its own; the others (not
//! asked, or failing) get `/-/ready`, as soon as that is known, so that a hung server never
//! delays a cycle.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::PrometheusPair;
use super::pair::Member;
use super::server::QueryError;
use crate::snapshot::{AlertState, Entry};

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
/// is probed at once; one that was not asked is probed when `work` ends. No probe runs past
/// `deadline`: one with no time left is skipped, and counts neither way.
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// A server that answered the cycle's query needs no probe: the hung probe endpoint
    /// is never reached, and the answer counts as a successful probe.
    #[tokio::test]
    async fn an_answer_counts_as_a_successful_probe() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
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
        let pair = pair_of(&url).await;
        let probing = Probing {
            timeout: Duration::from_secs(2),
            down_after: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(6);
        let answer = alongside(&pair, probing, deadline, pair.query("up", deadline)).await;
        assert!(answer.is_ok(), "{answer:?}");
        assert!(!pair.prometheus_is_down());
        let lines = requests.lock().unwrap().clone();
        assert_eq!(lines, ["POST /api/v1/query HTTP/1.1"], "{lines:?}");
        // Not asked: probed.
        alongside(&pair, probing, deadline, async {}).await;
        let lines = requests.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], "GET /-/ready HTTP/1.1", "{lines:?}");
    }
}
