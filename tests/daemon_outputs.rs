//! The daemon's sinks and lifecycle, end to end with the real binary (issue 2):
//! atomic file rewrites, the unix socket under load, independent sinks, SIGHUP, SIGTERM,
//! and node_exporter's textfile collector reading the `prometheus` format.
//!
//! Prometheus itself is not the subject here: the configured server refuses
//! connections, so the snapshot holds `Prometheus_is_down = 1` and the fixed component's
//! keys at `on_no_data = "zero"`.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use harness::agent::{Agent, PLAIN_FILE_OUTPUT, base_config, parse_plain, sink_writes};
use harness::block::free_port;
use harness::http::http_get;
use harness::process::{ChildProcess, Signal};
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

fn agent_line_ok(line: &str) -> bool {
    let mut parts = line.split('|');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(m), Some(v), Some("type=gauge"), Some(t), None)
            if m.starts_with("metric=TiDB.") && (v == "value=0" || v == "value=1") && t.starts_with("tags=status:")
    )
}

#[test]
fn a_reader_never_sees_a_partial_or_empty_file_over_1000_rewrites() {
    let port = free_port(Ipv4Addr::LOCALHOST);
    let agent = Agent::start(
        AGENT,
        &base_config(
            "2ms",
            port,
            r#"
[[output]]
kind = "file"
path = "{dir}/alerts.txt"
"#,
        ),
    );
    let path = agent.path("alerts.txt");
    let sink = format!("file:{}", path.display());
    Wait::new(Duration::from_secs(20), "the first file").blocking(|| path.exists().then_some(()));

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut line_counts = BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).expect("the file is always there");
                assert!(!text.is_empty(), "read an empty file");
                assert!(text.ends_with('\n'), "read a partial file: {text:?}");
                for line in text.lines() {
                    assert!(agent_line_ok(line), "read a broken line: {line:?}");
                }
                line_counts.insert(text.lines().count());
                reads += 1;
            }
            (reads, line_counts)
        })
    };
    let start_writes = sink_writes(port, &sink, "ok");
    Wait::new(Duration::from_secs(120), "1000 rewrites")
        .blocking(|| (sink_writes(port, &sink, "ok") >= start_writes + 1000.0).then_some(()));
    done.store(true, Ordering::Relaxed);
    let (reads, line_counts) = reader.join().expect("the reader saw only whole files");
    assert!(reads > 1000, "the reader polled only {reads} times");
    // Every read held the same, whole set of keys.
    assert_eq!(line_counts.len(), 1, "{line_counts:?}");
    eprintln!(
        "{reads} reads during {} rewrites",
        sink_writes(port, &sink, "ok") - start_writes
    );
}

#[test]
fn unix_socket_serves_200_concurrent_clients_and_stalled_ones_do_not_delay_cycles() {
    let port = free_port(Ipv4Addr::LOCALHOST);
    let mut agent = Agent::start(
        AGENT,
        &base_config(
            "200ms",
            port,
            r#"
[[output]]
kind = "unix"
format = "plain"
path = "{dir}/alerts.sock"
timeout = "500ms"
max_clients = 256

[[output]]
kind = "file"
format = "json"
path = "{dir}/alerts.json"
"#,
        ),
    );
    let sock = agent.path("alerts.sock");
    let json = agent.path("alerts.json");
    Wait::new(Duration::from_secs(20), "the socket")
        .blocking(|| UnixStream::connect(&sock).ok().map(|_| ()));

    // The whole snapshot, as one client reads it.
    let read_all = |sock: &std::path::Path| -> String {
        let mut s = UnixStream::connect(sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read to EOF");
        text
    };
    let reference = read_all(&sock);
    let keys = parse_plain(&reference);
    assert!(
        keys.iter()
            .any(|(k, v)| k == "TiDB.prometheus.Prometheus_is_down" && *v == 1),
        "{reference}"
    );
    assert!(
        keys.iter()
            .any(|(k, _)| k == "TiDB.tikv.TiKV_server_is_down"),
        "{reference}"
    );

    let barrier = Arc::new(Barrier::new(200));
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let (sock, barrier) = (sock.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut s = UnixStream::connect(&sock).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut text = String::new();
                s.read_to_string(&mut text).expect("read to EOF");
                text
            })
        })
        .collect();
    for c in clients {
        let text = c.join().expect("client thread");
        assert_eq!(
            parse_plain(&text).len(),
            keys.len(),
            "incomplete snapshot: {text:?}"
        );
        assert!(text.ends_with('\n'));
    }

    // Clients that connect and never read, nor close.
    let stalled: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&sock).expect("connect"))
        .collect();
    let timestamp = |path: &std::path::Path| -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["timestamp"].as_str().map(str::to_string)
    };
    // Cycles go on: the snapshot's timestamp keeps advancing while they hang on.
    let mut seen = BTreeSet::new();
    Wait::new(Duration::from_secs(15), "three new cycle timestamps").blocking(|| {
        if let Some(t) = timestamp(&json) {
            seen.insert(t);
        }
        (seen.len() >= 3).then_some(())
    });
    // A fresh client is still served in full.
    assert_eq!(parse_plain(&read_all(&sock)).len(), keys.len());
    drop(stalled);

    agent.signal(Signal::TERM);
    let started = Instant::now();
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("the agent exits after SIGTERM");
    eprintln!("exited {status:?} in {:?}", started.elapsed());
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    assert!(
        std::fs::symlink_metadata(&sock).is_err(),
        "the socket is gone after SIGTERM"
    );
}

#[test]
fn a_read_only_sink_directory_leaves_others_writing_and_recovers() {
    use std::os::unix::fs::PermissionsExt;
    let port = free_port(Ipv4Addr::LOCALHOST);
    let config = base_config(
        "100ms",
        port,
        r#"
[[output]]
kind = "file"
format = "plain"
path = "{dir}/ro/alerts.txt"

[[output]]
kind = "file"
format = "plain"
path = "{dir}/rw/alerts.txt"
"#,
    );
    // Root writes through permission bits, so a root test runs the agent as nobody.
    let agent = Agent::start_with(AGENT, &config, true);
    // The temp dir is private to root: let nobody in.
    let dir = agent.dir.path();
    for sub in ["", "ro", "rw", "state"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let ro = dir.join("ro");
    let ro_file = ro.join("alerts.txt");
    let rw_file = dir.join("rw/alerts.txt");
    Wait::new(Duration::from_secs(20), "both files")
        .blocking(|| (ro_file.exists() && rw_file.exists()).then_some(()));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let sink_ro = format!("file:{}", ro_file.display());
    let sink_rw = format!("file:{}", rw_file.display());
    let failed = |port| sink_writes(port, &sink_ro, "error");
    // The sink may have failed before the test created its directory: count from the
    // first failure after the chmod, when the file holds the last good snapshot.
    let failed_before = failed(port);
    Wait::new(Duration::from_secs(20), "a failed write after the chmod")
        .blocking(|| (failed(port) > failed_before).then_some(()));
    let before = std::fs::read_to_string(&ro_file).unwrap();
    let (failed_then, rw_before) = (failed(port), sink_writes(port, &sink_rw, "ok"));
    Wait::new(
        Duration::from_secs(20),
        "failed writes to the read-only directory",
    )
    .blocking(|| (failed(port) >= failed_then + 3.0).then_some(()));
    // The other sink keeps writing meanwhile (at its own pace: a sink that is slower
    // than the cycle skips to the newest snapshot), and the last good file is intact.
    Wait::new(Duration::from_secs(20), "the other sink to keep writing")
        .blocking(|| (sink_writes(port, &sink_rw, "ok") >= rw_before + 2.0).then_some(()));
    assert_eq!(std::fs::read_to_string(&ro_file).unwrap(), before);

    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ok_before = sink_writes(port, &sink_ro, "ok");
    Wait::new(Duration::from_secs(20), "the sink to recover")
        .blocking(|| (sink_writes(port, &sink_ro, "ok") > ok_before).then_some(()));
}

#[test]
fn sighup_keeps_the_old_config_when_broken_and_applies_a_valid_one() {
    let port = free_port(Ipv4Addr::LOCALHOST);
    let outputs = PLAIN_FILE_OUTPUT;
    let mut agent = Agent::start(AGENT, &base_config("100ms", port, outputs));
    let file = agent.path("alerts.txt");
    let keys = |file: &std::path::Path| -> Vec<String> {
        parse_plain(&std::fs::read_to_string(file).unwrap_or_default())
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    Wait::new(Duration::from_secs(20), "the first snapshot")
        .blocking(|| (!keys(&file).is_empty()).then_some(()));
    assert!(keys(&file).iter().all(|k| k.starts_with("TiDB.")));
    let dir = agent.dir.path().display().to_string();

    std::fs::write(&agent.config, "[agent\nbroken").unwrap();
    agent.signal(Signal::HUP);
    Wait::new(Duration::from_secs(10), "the reload to be refused")
        .blocking(|| agent.log_text().contains("reload refused").then_some(()));
    let metric = |port| {
        http_get(&format!("127.0.0.1:{port}"), "/metrics")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("tidb_host_agent_config_last_reload_successful"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert!(metric(port).ends_with(" 0"), "{}", metric(port));
    // Still running, still the old keys.
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.wait_exit(Duration::from_millis(10)).is_none());
    assert!(keys(&file).iter().all(|k| k.starts_with("TiDB.")));

    let changed = base_config("100ms", port, outputs)
        .replace("[agent]", "[agent]\nproduct = \"Acme\"")
        .replace("{dir}", &dir);
    std::fs::write(&agent.config, changed).unwrap();
    agent.signal(Signal::HUP);
    Wait::new(Duration::from_secs(10), "keys with the new product").blocking(|| {
        let k = keys(&file);
        (!k.is_empty() && k.iter().all(|k| k.starts_with("Acme."))).then_some(())
    });
    assert!(metric(port).ends_with(" 1"), "{}", metric(port));
}

#[test]
fn sighup_moves_the_metrics_listener_and_applies_the_log_level() {
    let (old_port, new_port) = (
        free_port(Ipv4Addr::LOCALHOST),
        free_port(Ipv4Addr::LOCALHOST),
    );
    let config = |port, level: &str| {
        let rest = format!(
            "[log]\nlevel = \"{level}\"\n\n[[output]]\nkind = \"file\"\nformat = \"plain\"\npath = \"{{dir}}/alerts.txt\"\n"
        );
        base_config("100ms", port, &rest)
    };
    let mut agent = Agent::prepare(AGENT, &config(old_port, "warn"), false);
    agent.log_filter = None;
    agent.spawn(false);
    let serves = |port| {
        http_get(&format!("127.0.0.1:{port}"), "/metrics")
            .is_some_and(|b| b.contains("tidb_host_agent_"))
    };
    Wait::new(Duration::from_secs(20), "self-metrics on the first port")
        .blocking(|| serves(old_port).then_some(()));
    let debug_lines = |text: &str| text.lines().filter(|l| l.contains("DEBUG")).count();
    assert_eq!(
        debug_lines(&agent.log_text()),
        0,
        "level warn logs no debug line"
    );

    let dir = agent.dir.path().display().to_string();
    std::fs::write(
        &agent.config,
        config(new_port, "debug").replace("{dir}", &dir),
    )
    .unwrap();
    agent.signal(Signal::HUP);
    Wait::new(Duration::from_secs(10), "self-metrics on the new port")
        .blocking(|| serves(new_port).then_some(()));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old_port)).is_err(),
        "the old port is closed"
    );
    Wait::new(Duration::from_secs(10), "debug lines after the reload")
        .blocking(|| (debug_lines(&agent.log_text()) > 0).then_some(()));
}

#[test]
fn node_exporter_textfile_collector_exposes_the_keys() {
    let Some(node_exporter) = [
        "/usr/bin/prometheus-node-exporter",
        "/usr/bin/node_exporter",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        panic!("prometheus-node-exporter is not installed; scripts/test.sh installs it");
    };
    let port = free_port(Ipv4Addr::LOCALHOST);
    let agent = Agent::start(
        AGENT,
        &base_config(
            "200ms",
            port,
            r#"
[[output]]
kind = "file"
format = "prometheus"
path = "{dir}/textfile/tidb_host_agent.prom"
"#,
        ),
    );
    let textfile = agent.path("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    Wait::new(Duration::from_secs(20), "the .prom file")
        .blocking(|| textfile.join("tidb_host_agent.prom").exists().then_some(()));
    let ne_port = free_port(Ipv4Addr::LOCALHOST);
    let mut command = std::process::Command::new(node_exporter);
    command
        .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
        .arg(format!(
            "--collector.textfile.directory={}",
            textfile.display()
        ))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile");
    let mut ne = ChildProcess::spawn("node_exporter", command, &agent.path("node_exporter.log"));
    let body = Wait::new(Duration::from_secs(20), "node_exporter's /metrics").blocking(|| {
        http_get(&format!("127.0.0.1:{ne_port}"), "/metrics")
            .filter(|b| b.contains("tidb_host_agent_alert"))
    });
    assert!(
        body.lines().any(|l| l == r#"tidb_host_agent_alert{component="prometheus",key="TiDB.prometheus.Prometheus_is_down",level="critical"} 1"#),
        "{body}"
    );
    assert!(
        body.lines().any(|l| l.starts_with(r#"tidb_host_agent_alert{component="tikv",key="TiDB.tikv.TiKV_server_is_down",level="emergency"}"#)),
        "{body}"
    );
    // No parse error of our file.
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "{body}"
    );
    ne.kill();
}
