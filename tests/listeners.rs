//! The listeners cannot be held (issue 15), against the real binary on loopback: slow
//! clients on the webhook receiver and on self-metrics, the connection cap, fd
//! exhaustion under `prlimit`, a forged log line in a webhook payload, and the
//! receiver's bearer token.
//!
//! Prometheus is not the subject: its configured server refuses connections, so every
//! 1 s cycle writes `Prometheus_is_down = 1` and tikv's keys at 0 to `{dir}/alerts.txt`,
//! which shows that cycles keep running. Times are generous limits, not measurements.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic in a test is a failed test.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::agent::{Agent, PLAIN_FILE_OUTPUT, base_config, metric_sum};
use harness::block::free_port;
use harness::http::http_get;
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

/// Generous bound of every wait: the machine is shared.
const LIMIT: Duration = Duration::from_secs(60);

const FILE_OUTPUT: &str = PLAIN_FILE_OUTPUT;

/// A config with self-metrics on `metrics_port`, the file sink, and the webhook
/// receiver on `webhook_port` with `receiver` extra keys.
fn config(metrics_port: u16, webhook_port: u16, receiver: &str) -> String {
    base_config(
        "1s",
        metrics_port,
        &format!(
            r#"{FILE_OUTPUT}
[alertmanager]
listen = "127.0.0.1:{webhook_port}"
{receiver}

[[alertmanager.forward]]
kind = "exec"
name = "nothing"
command = ["/bin/true"]
"#
        ),
    )
}

fn start(config: &str, metrics_port: u16, webhook_port: u16) -> Agent {
    raise_open_files();
    let agent = Agent::start(AGENT, config);
    wait_listening(&agent, metrics_port);
    wait_listening(&agent, webhook_port);
    agent
}

/// The tests of this file hold ~1,400 client sockets at once, more than a soft limit of
/// 1024 (a CI shell's) allows.
fn raise_open_files() {
    tidb_host_agent::lifecycle::limits::raise_open_files();
}

fn wait_listening(agent: &Agent, port: u16) {
    Wait::new(LIMIT, &format!("port {port} to listen"))
        .blocking(|| TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()));
    assert!(
        !agent.log_text().contains("panicked"),
        "{}",
        agent.log_text()
    );
}

/// A webhook payload with one firing alert; `version` is sent as given.
fn payload(version: &str) -> String {
    serde_json::json!({
        "version": version, "status": "firing", "receiver": "hook",
        "groupKey": "{}:{alertname=\"Listened\"}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Listened"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "00000000000000aa"}]
    })
    .to_string()
}

/// POSTs `body` with the given extra header lines; the status code, or `None` when
/// the connection failed or gave no answer within `within`.
fn post(port: u16, body: &str, headers: &str, within: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    write!(
        stream,
        "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Clients that each start a request and then send it slower than any timeout allows.
struct SlowClients {
    streams: Vec<Option<TcpStream>>,
    /// What each sends now and then: a body chunk, or one more byte of a header.
    drip: &'static [u8],
}

impl SlowClients {
    /// `count` clients on `port`, each having sent `start`.
    fn open(port: u16, count: usize, start: &str, drip: &'static [u8]) -> SlowClients {
        let streams = (0..count)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.write_all(start.as_bytes()).expect("start the request");
                s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                Some(s)
            })
            .collect();
        SlowClients { streams, drip }
    }

    /// Sends one more drip on every open connection and forgets the closed ones.
    fn drip(&mut self) {
        for slot in &mut self.streams {
            let Some(stream) = slot else { continue };
            let mut buf = [0u8; 512];
            let closed = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => continue, // An answer (408); EOF follows.
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break stream.write_all(self.drip).is_err();
                    }
                    Err(_) => break true,
                }
            };
            if closed {
                *slot = None;
            }
        }
    }

    fn open_count(&self) -> usize {
        self.streams.iter().filter(|s| s.is_some()).count()
    }
}

/// Drips every `every` until every slow client was closed; panics after `limit`.
fn until_all_closed(clients: &mut SlowClients, every: Duration, limit: Duration) {
    let start = Instant::now();
    loop {
        clients.drip();
        if clients.open_count() == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{} of {} slow clients still open after {limit:?}",
            clients.open_count(),
            clients.streams.len()
        );
        std::thread::sleep(every);
    }
}

/// The largest gap between two rewrites of `file` (a rename, so a new inode) seen
/// while `during` runs (and for 3 s at least); panics when the file is not rewritten.
fn largest_gap_between_rewrites(file: &Path, during: impl FnOnce()) -> Duration {
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (file, watching) = (file.to_owned(), std::sync::Arc::clone(&watching));
        std::thread::spawn(move || {
            let mut last = (
                std::fs::metadata(&file).map(|m| m.ino()).ok(),
                Instant::now(),
            );
            let (mut largest, mut rewrites) = (Duration::ZERO, 0);
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let inode = std::fs::metadata(&file).map(|m| m.ino()).ok();
                if inode != last.0 {
                    largest = largest.max(last.1.elapsed());
                    last = (inode, Instant::now());
                    rewrites += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (largest.max(last.1.elapsed()), rewrites)
        })
    };
    let started = Instant::now();
    during();
    // Watch for a few cycles at least.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let (largest, rewrites) = watcher.join().unwrap();
    assert!(rewrites > 0, "{} was never rewritten", file.display());
    largest
}

/// A self-metric's value from the metrics endpoint (the sum over matching lines).
fn metric(metrics_port: u16, prefix: &str) -> f64 {
    metric_sum(metrics_port, prefix, &[])
}

#[test]
fn slow_clients_hold_neither_listener() {
    let (metrics_port, webhook_port) = (
        free_port(std::net::Ipv4Addr::LOCALHOST),
        free_port(std::net::Ipv4Addr::LOCALHOST),
    );
    let agent = start(
        &config(metrics_port, webhook_port, ""),
        metrics_port,
        webhook_port,
    );
    let chunked = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n"
        )
    };
    // 80 clients on each listener, sending a chunked body a byte at a time, and 20 more
    // sending their request head a byte at a time.
    // (Self-metrics answers without reading a body, and closes: its chunked clients go
    // at once, so their slots are free again.)
    let mut slow = [
        SlowClients::open(webhook_port, 20, "POST /hook HTTP/1.1\r\nHo", b"s"),
        SlowClients::open(metrics_port, 20, "GET /metrics HTTP/1.1\r\nHo", b"s"),
        SlowClients::open(webhook_port, 80, &chunked("/hook"), b"1\r\n \r\n"),
        SlowClients::open(metrics_port, 80, &chunked("/metrics"), b"1\r\n \r\n"),
    ];
    for clients in &mut slow {
        clients.drip();
    }
    assert!(slow[0].open_count() == 20 && slow[2].open_count() == 80);

    // A valid request on each is still answered, at once.
    let asked = Instant::now();
    assert_eq!(
        post(webhook_port, &payload("4"), "", Duration::from_secs(10)),
        Some(200),
        "a valid webhook POST beside 100 slow clients"
    );
    assert!(
        http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics")
            .is_some_and(|m| m.contains("tidb_host_agent_build_info")),
        "a valid scrape beside 100 slow clients"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        asked.elapsed()
    );

    // The slow ones are cut off by the body and header timeouts (10 s each).
    let gap = largest_gap_between_rewrites(&agent.path("alerts.txt"), || {
        for clients in &mut slow {
            until_all_closed(clients, Duration::from_millis(500), Duration::from_secs(40));
        }
    });
    assert!(
        gap < Duration::from_secs(4),
        "keys not rewritten for {gap:?}"
    );
    assert!(
        metric(
            metrics_port,
            "tidb_host_agent_listener_timeouts_total{listener=\"webhook\",phase=\"body\"}"
        ) >= 80.0
    );
    assert!(
        metric(
            metrics_port,
            "tidb_host_agent_listener_timeouts_total{listener=\"metrics\",phase=\"header\"}"
        ) >= 20.0
    );
    assert!(!agent.log_text().contains("panicked"));
}

#[test]
fn past_the_cap_connections_are_refused_and_the_keys_still_written() {
    let (metrics_port, webhook_port) = (
        free_port(std::net::Ipv4Addr::LOCALHOST),
        free_port(std::net::Ipv4Addr::LOCALHOST),
    );
    let agent = start(
        &config(metrics_port, webhook_port, "listen_max_clients = 8"),
        metrics_port,
        webhook_port,
    );
    let gap = largest_gap_between_rewrites(&agent.path("alerts.txt"), || {
        // Eight idle connections take every slot, once start()'s probe has gone.
        Wait::new(LIMIT, "no open webhook connection").blocking(|| {
            (metric(
                metrics_port,
                "tidb_host_agent_listener_connections{listener=\"webhook\"}",
            ) == 0.0)
                .then_some(())
        });
        let held: Vec<TcpStream> = (0..8)
            .map(|_| TcpStream::connect(("127.0.0.1", webhook_port)).unwrap())
            .collect();
        Wait::new(LIMIT, "8 open webhook connections").blocking(|| {
            (metric(
                metrics_port,
                "tidb_host_agent_listener_connections{listener=\"webhook\"}",
            ) == 8.0)
                .then_some(())
        });
        // 40 more are closed at once, not queued.
        let refused_at = Instant::now();
        for _ in 0..40 {
            let mut extra = TcpStream::connect(("127.0.0.1", webhook_port)).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 16];
            let closed = match extra.read(&mut buf) {
                Ok(0) => true,
                Err(e) => e.kind() == ErrorKind::ConnectionReset,
                Ok(_) => false,
            };
            assert!(closed, "a connection past the cap was not closed");
        }
        assert!(
            refused_at.elapsed() < Duration::from_secs(10),
            "refusing 40 took {:?}",
            refused_at.elapsed()
        );
        assert_eq!(
            post(webhook_port, &payload("4"), "", Duration::from_secs(5)),
            None,
            "the cap holds while the 8 are open"
        );
        // Once they go, a legitimate request succeeds.
        drop(held);
        Wait::new(LIMIT, "a webhook POST to succeed after the cap").blocking(|| {
            (post(webhook_port, &payload("4"), "", Duration::from_secs(5)) == Some(200))
                .then_some(())
        });
    });
    assert!(
        gap < Duration::from_secs(4),
        "keys not rewritten for {gap:?}"
    );
    assert!(
        metric(
            metrics_port,
            "tidb_host_agent_listener_connections_refused_total{listener=\"webhook\"}"
        ) >= 41.0
    );
    let log = agent.log_text();
    assert_eq!(
        log.matches("listener full").count(),
        1,
        "the bound is logged once: {log}"
    );
}

#[test]
fn idle_connections_under_a_low_fd_limit_do_not_stop_the_keys() {
    raise_open_files();
    let metrics_port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let mut agent = Agent::prepare(AGENT, &base_config("1s", metrics_port, FILE_OUTPUT), false);
    // 64 descriptors, soft and hard: the self-metrics cap (64) would take them all; it
    // becomes 8.
    agent.spawn_under(&["prlimit", "--nofile=64:64", "--"]);
    wait_listening(&agent, metrics_port);
    Wait::new(LIMIT, "the first snapshot")
        .blocking(|| agent.path("alerts.txt").exists().then_some(()));
    let mut idle = Vec::new();
    let gap = largest_gap_between_rewrites(&agent.path("alerts.txt"), || {
        // 1,100 idle connections, opened over ~10 s and then held for ~10 s more.
        let start = Instant::now();
        for _ in 0..1100 {
            if let Ok(s) = TcpStream::connect_timeout(
                &([127, 0, 0, 1], metrics_port).into(),
                Duration::from_millis(200),
            ) {
                idle.push(s);
            }
            std::thread::sleep(Duration::from_millis(9));
        }
        assert!(start.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_secs(10));
    });
    assert!(
        gap < Duration::from_secs(4),
        "keys not rewritten for {gap:?}"
    );
    let text = agent.log_text();
    assert!(!text.contains("Too many open files"), "{text}");
    assert!(
        text.contains("lowered_to=8"),
        "the cap follows the fd limit: {text}"
    );
    drop(idle);
    // Still answering once the flood is over.
    Wait::new(LIMIT, "a scrape after the flood").blocking(|| {
        http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics")
            .filter(|m| m.contains("listener_connections_refused_total"))
    });
}

#[test]
fn a_newline_in_a_webhook_field_cannot_forge_a_log_line() {
    let (metrics_port, webhook_port) = (
        free_port(std::net::Ipv4Addr::LOCALHOST),
        free_port(std::net::Ipv4Addr::LOCALHOST),
    );
    let agent = start(
        &config(metrics_port, webhook_port, ""),
        metrics_port,
        webhook_port,
    );
    let forged = "4\n2026-12-04T23:59:59Z ERROR tidb_host_agent::app: FORGED";
    assert_eq!(
        post(webhook_port, &payload(forged), "", Duration::from_secs(10)),
        Some(200)
    );
    // The same in a place serde quotes in its error message: an unknown status.
    let bad_status = payload("4").replace(
        "\"status\":\"firing\"}]",
        "\"status\":\"firing\\n2026-12-04T23:59:59Z ERROR tidb_host_agent::app: FORGED\"}]",
    );
    assert_ne!(bad_status, payload("4"));
    assert_eq!(
        post(webhook_port, &bad_status, "", Duration::from_secs(10)),
        Some(400)
    );
    Wait::new(LIMIT, "both requests in the log").blocking(|| {
        let log = agent.log_text();
        (log.contains("version is not 4") && log.contains("not an Alertmanager webhook payload"))
            .then_some(())
    });
    let log = agent.log_text();
    assert!(
        log.matches("FORGED").count() >= 2,
        "the values are logged, escaped: {log}"
    );
    let forged_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("2026-12-04T23:59:59Z"))
        .collect();
    assert!(forged_lines.is_empty(), "forged lines: {forged_lines:?}");
}

#[test]
fn the_receiver_token_is_required() {
    let (metrics_port, webhook_port) = (
        free_port(std::net::Ipv4Addr::LOCALHOST),
        free_port(std::net::Ipv4Addr::LOCALHOST),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("webhook.token");
    std::fs::write(&token_file, "Zm9yd2FyZGluZy10b2tlbg\n").unwrap();
    let agent = start(
        &config(
            metrics_port,
            webhook_port,
            &format!("listen_token_file = {:?}", token_file.display().to_string()),
        ),
        metrics_port,
        webhook_port,
    );
    let body = payload("4");
    let within = Duration::from_secs(10);
    assert_eq!(post(webhook_port, &body, "", within), Some(401), "no token");
    assert_eq!(
        post(
            webhook_port,
            &body,
            "Authorization: Bearer wrong\r\n",
            within
        ),
        Some(401),
        "a wrong token"
    );
    assert_eq!(
        post(
            webhook_port,
            &body,
            "Authorization: Bearer Zm9yd2FyZGluZy10b2tlbh\r\n",
            within
        ),
        Some(401),
        "a token one character off"
    );
    assert_eq!(
        post(
            webhook_port,
            &body,
            "Authorization: Bearer Zm9yd2FyZGluZy10b2tlbg\r\n",
            within
        ),
        Some(200),
        "the token"
    );
    assert_eq!(
        metric(
            metrics_port,
            "tidb_host_agent_webhook_requests_total{result=\"unauthorized\"}"
        ),
        3.0
    );
    assert!(!agent.log_text().contains("Zm9yd2FyZGluZy10b2tlbg"));
}

/// A notification of 20,000 alerts (under the body limit) is answered, its alerts past
/// `max_alerts` are counted, and the keys go on being written meanwhile; one over the
/// body limit is refused with 413.
#[test]
fn a_huge_notification_neither_delays_the_keys_nor_outgrows_its_bounds() {
    let (metrics_port, webhook_port) = (
        free_port(std::net::Ipv4Addr::LOCALHOST),
        free_port(std::net::Ipv4Addr::LOCALHOST),
    );
    let agent = start(
        &config(metrics_port, webhook_port, "max_alerts = 500"),
        metrics_port,
        webhook_port,
    );
    Wait::new(LIMIT, "the first snapshot")
        .blocking(|| agent.path("alerts.txt").exists().then_some(()));
    let notification = |alerts: usize| {
        let list: Vec<String> = (0..alerts)
            .map(|i| {
                format!(
                    r#"{{"status":"firing","labels":{{"alertname":"Flood","n":"{i}"}},"annotations":{{}},"startsAt":"2026-12-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{i:016x}"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"version":"4","status":"firing","receiver":"hook","groupKey":"{{}}","alerts":[{}]}}"#,
            list.join(",")
        )
    };
    let (fits, too_big) = (notification(20_000), notification(40_000));
    assert!(fits.len() < 4 * 1024 * 1024 && too_big.len() > 4 * 1024 * 1024);
    let mut answers = Vec::new();
    let gap = largest_gap_between_rewrites(&agent.path("alerts.txt"), || {
        answers.push(post(webhook_port, &fits, "", LIMIT));
        answers.push(post(webhook_port, &too_big, "", LIMIT));
    });
    assert_eq!(answers[0], Some(200));
    // The server answers 413 and closes while the client may still be writing: the client
    // then sees the reset instead of the answer. The server's own count says what it did.
    assert!(matches!(answers[1], Some(413) | None), "{answers:?}");
    assert_eq!(
        metric(
            metrics_port,
            "tidb_host_agent_webhook_requests_total{result=\"too_large\"}"
        ),
        1.0
    );
    assert!(
        gap < Duration::from_secs(4),
        "the keys were not written for {gap:?}"
    );
    assert_eq!(
        metric(
            metrics_port,
            "tidb_host_agent_forward_dropped_total{reason=\"alerts_over_max\"}"
        ),
        19_500.0
    );
}
