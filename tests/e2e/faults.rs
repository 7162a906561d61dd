//! Faults a real Prometheus cannot produce on demand (SPEC §13), from a mock preferred ahead
//! of the real pair: a 5xx, a non-JSON body, a truncated body, an oversized body (declared
//! and chunked), queries that hang while probes answer, and a server that hangs whole. Each
//! is a failure of that server: the agent fails over to the real ones, never panics, and
//! every cycle still writes the right values.

use std::net::Ipv4Addr;

use harness::sandbox::{Host, Sandbox, Server, WAIT_LIMIT};
use harness::wait::Wait;

use crate::agents::{AgentSpec, Histogram, HostAgent, wait_until};
use crate::expect;
use crate::mock_prometheus::{Fault, MockPrometheus, OVERSIZED_BYTES};

/// The agent's response cap: far above a real answer, far below the oversized ones.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024;
const CYCLE: &str = "tidb_host_agent_cycle_duration_seconds";
/// Snapshots checked under each fault.
const FAULTY_CYCLES: usize = 3;
/// Snapshots during which a hung mock must receive no query.
const SKIPPING_CYCLES: usize = 3;

/// How the agent's log names each failure (the `QueryError` messages).
fn logged_as(fault: Fault) -> &'static str {
    match fault {
        Fault::ServerError => "HTTP 503",
        Fault::NotJson => "not a Prometheus API response",
        Fault::Truncated => "end of file before message length reached",
        Fault::OversizedDeclared | Fault::OversizedChunked => "response larger than",
        Fault::HangQueries => "timed out",
        Fault::Hang => "Prometheus is down",
    }
}

async fn wait_for_queries(mock: &MockPrometheus, fault: Fault, agent: &HostAgent) {
    let what = format!("{}: a query to the mock under {fault:?}", agent.name);
    let log = || agent.log_tail();
    Wait::new(WAIT_LIMIT, &what)
        .on_timeout(&log)
        .until(|| (mock.queries(fault) > 0).then_some(()))
        .await;
}

#[tokio::test]
async fn broken_answers_from_the_preferred_server_fail_over_to_the_real_pair() {
    assert!(OVERSIZED_BYTES as u64 > MAX_RESPONSE_BYTES);
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    // 127.N.1.3 is no sandbox host: the mock is remote to every host, so it does not count
    // for Prometheus_is_down, and on .10 (no local server) it is asked first.
    let ip = sb.ip(Host::Ten).octets();
    let mock = MockPrometheus::start(Ipv4Addr::new(ip[0], ip[1], ip[2], 3), Fault::ServerError);
    let mut agent = AgentSpec::new(&sb, Host::Ten)
        .servers(vec![
            mock.url(),
            sb.server(Server::A).url(),
            sb.server(Server::B).url(),
        ])
        .max_response_bytes(MAX_RESPONSE_BYTES)
        .start();
    let healthy = expect::healthy(&sb, Host::Ten);
    wait_until(
        &[(&agent, healthy.clone())],
        "healthy, the mock answering 503",
    )
    .await;

    for fault in [
        Fault::ServerError,
        Fault::NotJson,
        Fault::Truncated,
        Fault::OversizedDeclared,
        Fault::OversizedChunked,
        Fault::HangQueries,
    ] {
        let cycles_before = Histogram::read(&agent.metrics().await, CYCLE, &[]);
        mock.set(fault);
        let log_before = agent.log().len();
        wait_for_queries(&mock, fault, &agent).await;
        // Every cycle from now on asks the mock first (a probe re-enables it each cycle),
        // fails, and is answered by A in the same cycle: every value right.
        let asked = mock.queries(fault);
        let snapshots = agent.next_snapshots(FAULTY_CYCLES).await;
        assert!(
            mock.queries(fault) > asked,
            "{fault:?}: the mock was not asked during the checked cycles"
        );
        for snapshot in &snapshots {
            assert_eq!(
                snapshot.values(),
                healthy.values(),
                "{fault:?}: snapshot {}",
                snapshot.timestamp
            );
            // A fast failure leaves the whole budget to A: every rule answered. A hang
            // leaves 0.9 s of it, which a loaded machine may overrun (then values hold).
            if fault != Fault::HangQueries {
                assert_eq!(
                    snapshot.readings, healthy.0,
                    "{fault:?}: snapshot {}",
                    snapshot.timestamp
                );
            }
        }
        agent.assert_alive();
        let log = agent.log();
        let new_lines: Vec<&str> = log[log_before..]
            .lines()
            .filter(|l| l.contains(&mock.url()) && l.contains("query failed"))
            .collect();
        assert!(
            new_lines.iter().any(|l| l.contains(logged_as(fault))),
            "{fault:?}: no `query failed ({})` for the mock in the log; lines: {new_lines:#?}",
            logged_as(fault)
        );
        let cycles = Histogram::read(&agent.metrics().await, CYCLE, &[]).since(&cycles_before);
        eprintln!(
            "{fault:?}: {} cycles, mean {:.0} ms, every cycle <= {} s (bucket); logged: {}",
            cycles.count,
            cycles.mean() * 1000.0,
            cycles.max_bound(),
            new_lines.first().copied().unwrap_or("")
        );
    }

    // A hung server fails its probes too: it is skipped, and cycles go on without it.
    let probes = mock.probes();
    let log_before = agent.log().len();
    mock.set(Fault::Hang);
    let what = format!("{}: the hung mock to be found down", agent.name);
    let log = || agent.log_tail();
    Wait::new(WAIT_LIMIT, &what)
        .on_timeout(&log)
        .until(|| {
            agent.log()[log_before..]
                .lines()
                .any(|l| l.contains(logged_as(Fault::Hang)) && l.contains(&mock.url()))
                .then_some(())
        })
        .await;
    assert!(mock.probes() > probes, "the hung mock was not probed");
    let sent = mock.queries(Fault::Hang);
    let snapshots = agent.next_snapshots(SKIPPING_CYCLES).await;
    assert_eq!(
        mock.queries(Fault::Hang),
        sent,
        "the hung mock was queried after its probes failed"
    );
    for snapshot in &snapshots {
        assert_eq!(
            snapshot.readings, healthy.0,
            "with the mock hung, snapshot {}",
            snapshot.timestamp
        );
    }
    agent.assert_alive();
}
