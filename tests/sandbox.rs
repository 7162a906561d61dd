//! Tests of the end-to-end harness itself, against the real processes: the sandbox must look
//! like a TiUP-monitored cluster to both servers, its faults must be visible through them, and
//! its fake exporters must serve every metric the catalog rules query.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;

use harness::catalog;
use harness::rule_file::{self, text};
use harness::sandbox::{Host, Sample, Sandbox, SandboxOptions, Server, ServerKind};
use promql_parser::parser::{self, Expr};

fn set_of(samples: &[Sample], labels: &[&str]) -> BTreeSet<Vec<String>> {
    samples
        .iter()
        .map(|s| labels.iter().map(|l| s.label(l).to_string()).collect())
        .collect()
}

fn row(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// (job, instance) of every non-ICMP target: the topology of issue 4 with TiUP's jobs.
fn expected_targets(sb: &Sandbox) -> BTreeSet<Vec<String>> {
    let a = |host, port| sb.addr(host, port).to_string();
    let mut out = BTreeSet::new();
    for host in Host::ALL {
        out.insert(row(&["overwritten-nodes", &a(host, 9100)]));
    }
    for (job, host, port) in [
        ("tidb", Host::One, 10080),
        ("tidb", Host::Ten, 10080),
        ("tikv", Host::One, 20180),
        ("tikv", Host::Two, 20180),
        ("tikv", Host::Ten, 20180),
        ("tikv", Host::Ten, 20181),
        ("pd", Host::One, 2379),
        ("pd", Host::Two, 2379),
        ("tiflash", Host::Two, 8234),
        ("tiflash", Host::Two, 20292),
    ] {
        out.insert(row(&[job, &a(host, port)]));
    }
    for (_, instance, job) in expected_port_probes(sb) {
        out.insert(vec![job, instance]);
    }
    out
}

/// (group, instance, job) of every port probe, as TiUP's jobs label them.
fn expected_port_probes(sb: &Sandbox) -> BTreeSet<(String, String, String)> {
    let a = |host, port| sb.addr(host, port).to_string();
    let mut out = BTreeSet::new();
    for (group, host, port) in [
        ("pd", Host::One, 2379),
        ("pd", Host::Two, 2379),
        ("tikv", Host::One, 20180),
        ("tikv", Host::Two, 20180),
        ("tikv", Host::Ten, 20180),
        ("tikv", Host::Ten, 20181),
        ("tidb", Host::One, 10080),
        ("tidb", Host::Ten, 10080),
        ("tiflash", Host::Two, 8234),
    ] {
        out.insert((group.into(), a(host, port), "tidb_port_probe".into()));
    }
    out.insert((
        "grafana".into(),
        a(Host::Two, 3000),
        "monitor_port_probe".into(),
    ));
    for host in Host::ALL {
        for (group, port) in [("node_exporter", 9100), ("blackbox_exporter", 9115)] {
            out.insert((group.into(), a(host, port), "monitor_port_probe".into()));
        }
    }
    out
}

async fn assert_every_target_up(sb: &Sandbox, server: Server) {
    let up = sb.query(server, "up").await;
    let down: Vec<&Sample> = up.iter().filter(|s| s.value != 1.0).collect();
    assert!(down.is_empty(), "server {server:?}: targets down: {down:?}");
    let icmp: Vec<&Sample> = up
        .iter()
        .filter(|s| s.label("job").ends_with("_icmp"))
        .collect();
    let others: Vec<Sample> = up
        .iter()
        .filter(|s| !s.label("job").ends_with("_icmp"))
        .cloned()
        .collect();
    assert_eq!(set_of(&others, &["job", "instance"]), expected_targets(sb));
    assert_eq!(
        others.len(),
        expected_targets(sb).len(),
        "duplicate targets"
    );
    // One ICMP job per blackbox exporter, each pinging the three hosts.
    let mut expected_icmp = BTreeSet::new();
    for blackbox in Host::ALL {
        for pinged in Host::ALL {
            let bb = sb.addr(blackbox, 9115).to_string();
            expected_icmp.insert(row(&[
                &format!("blackbox_exporter_{bb}_icmp"),
                &bb,
                &sb.ip(pinged).to_string(),
            ]));
        }
    }
    let icmp: Vec<Sample> = icmp.into_iter().cloned().collect();
    assert_eq!(set_of(&icmp, &["job", "instance", "ping"]), expected_icmp);
}

#[tokio::test]
async fn both_servers_see_every_target_up() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    for server in Server::ALL {
        assert_every_target_up(&sb, server).await;
    }
}

#[tokio::test]
async fn port_probes_carry_tiup_groups_and_instances() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    for server in Server::ALL {
        let probes = sb
            .query(
                server,
                r#"probe_success{job=~"tidb_port_probe|monitor_port_probe"}"#,
            )
            .await;
        let seen: BTreeSet<(String, String, String)> = probes
            .iter()
            .map(|s| {
                (
                    s.label("group").to_string(),
                    s.label("instance").to_string(),
                    s.label("job").to_string(),
                )
            })
            .collect();
        assert_eq!(seen, expected_port_probes(&sb), "server {server:?}");
        assert_eq!(probes.len(), seen.len(), "server {server:?}: duplicates");
        assert!(
            probes.iter().all(|s| s.value == 1.0),
            "server {server:?}: failed probes in a healthy sandbox: {probes:?}"
        );
    }
}

#[tokio::test]
async fn stopping_a_tikv_fails_its_probe_and_scrape_on_both_servers() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let stopped = sb.addr(Host::Ten, 20180).to_string();
    let prefix_twin = sb.addr(Host::One, 20180).to_string();
    sb.fake(sb.addr(Host::Ten, 20180)).stop().await;
    for server in Server::ALL {
        let failed = sb
            .wait_for(
                server,
                r#"probe_success{group="tikv"} == 0"#,
                "the stopped tikv's probe to fail",
                |s| !s.is_empty(),
            )
            .await;
        assert_eq!(
            set_of(&failed, &["instance"]),
            BTreeSet::from([row(&[&stopped])])
        );
        let down = sb
            .wait_for(
                server,
                r#"up{job="tikv"} == 0"#,
                "tikv scrape to fail",
                |s| !s.is_empty(),
            )
            .await;
        assert_eq!(
            set_of(&down, &["instance"]),
            BTreeSet::from([row(&[&stopped])])
        );
        // 127.N.1.1:20180 is a string prefix of 127.N.1.10:20180 and must stay healthy.
        let twin = sb
            .query(
                server,
                &format!(r#"probe_success{{instance="{prefix_twin}"}}"#),
            )
            .await;
        assert_eq!(twin.len(), 1);
        assert_eq!(twin[0].value, 1.0);
    }
    sb.fake(sb.addr(Host::Ten, 20180)).start().await;
    sb.wait_until_ready().await;
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_comes_back() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let a = sb.server(Server::A);
    a.stop().await;
    match TcpStream::connect(a.addr()) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        Ok(_) => panic!("stopped server A still accepts connections"),
    }
    assert!(a.try_query("up").await.is_err());
    assert!(!sb.query(Server::B, "up").await.is_empty());
    a.start().await;
    sb.wait_until_ready().await;
    assert_every_target_up(&sb, Server::A).await;
}

#[tokio::test]
async fn a_paused_server_hangs_until_resumed() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let a = sb.server(Server::A);
    a.pause();
    // The socket still accepts (the kernel does it), but no answer comes.
    assert!(TcpStream::connect(a.addr()).is_ok());
    let answer = a.try_query("up").await;
    assert!(answer.is_err(), "a SIGSTOPped server answered: {answer:?}");
    a.resume();
    assert!(!a.query("up").await.is_empty());
}

#[tokio::test]
async fn a_view_override_makes_the_servers_disagree() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let tidb = sb.addr(Host::One, 10080);
    sb.fake(tidb)
        .set_for_view(Server::A, "tidb_ddl_waiting_jobs", 10.0);
    let query = format!(r#"sum(tidb_ddl_waiting_jobs{{instance="{tidb}"}}) > 5"#);
    sb.wait_for(Server::A, &query, "A to see the override", |s| s.len() == 1)
        .await;
    // B scrapes the same fake with view=b and keeps seeing the real value.
    let b = sb
        .query(
            Server::B,
            &format!(r#"tidb_ddl_waiting_jobs{{instance="{tidb}"}}"#),
        )
        .await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].value, 0.0);
    assert!(sb.query(Server::B, &query).await.is_empty());
    sb.fake(tidb).clear_views();
    sb.wait_for(Server::A, &query, "A to agree again", |s| s.is_empty())
        .await;
}

#[tokio::test]
async fn victoria_metrics_as_server_b_answers_like_prometheus() {
    let sb = Sandbox::start_with(SandboxOptions {
        server_b: ServerKind::VictoriaMetrics,
        ..SandboxOptions::default()
    })
    .await;
    assert_eq!(sb.server(Server::B).kind(), ServerKind::VictoriaMetrics);
    sb.wait_until_ready().await;
    for server in Server::ALL {
        assert_every_target_up(&sb, server).await;
    }
    check_catalog(&sb).await;
}

// --- The catalog rules against the fakes -------------------------------------------------

/// (key, expression) of the 40 PromQL rules of the catalog: the expression of the upstream
/// file the catalog names, or the catalog's own for the two rules no upstream file has.
fn catalog_expressions() -> Vec<(String, String)> {
    catalog::promql_rules()
        .map(|rule| {
            let expr = match rule.upstream_file() {
                Some(path) => upstream_expression(&path, &rule.alert),
                None => rule.expr.clone(),
            };
            (rule.key.clone(), expr)
        })
        .collect()
}

fn upstream_expression(path: &Path, alert: &str) -> String {
    rule_file::read_alerts(path)
        .iter()
        .find(|r| text(r, "alert") == Some(alert))
        .and_then(|r| text(r, "expr"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no alert {alert} in {}", path.display()))
}

/// Every vector selector of an expression, at any depth, as PromQL text.
fn selectors(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs.to_string()),
        Expr::MatrixSelector(ms) => out.push(ms.vs.to_string()),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(param) = &a.param {
                selectors(param, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The measured sides of a rule: for `X > 5` it is `X`, for `A and B` the measured sides
/// of both. A healthy rule is false because these have values below the thresholds, not
/// because they are empty.
fn measured_sides(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Paren(p) => measured_sides(&p.expr, out),
        Expr::Binary(b) if b.op.is_set_operator() => {
            measured_sides(&b.lhs, out);
            measured_sides(&b.rhs, out);
        }
        Expr::Binary(b)
            if b.op.is_comparison_operator() && matches!(*b.rhs, Expr::NumberLiteral(_)) =>
        {
            out.push(b.lhs.to_string());
        }
        other => out.push(other.to_string()),
    }
}

/// Every catalog selector has series on both servers, every measured side has a value, and
/// every rule is false: the fakes serve the real names, healthy.
async fn check_catalog(sb: &Sandbox) {
    let expressions = catalog_expressions();
    assert_eq!(
        expressions.len(),
        catalog::RULES - 1,
        "every key but the computed one"
    );
    for (key, text) in &expressions {
        let expr = parser::parse(text).unwrap_or_else(|e| panic!("{key}: {text}: {e}"));
        let mut found = Vec::new();
        selectors(&expr, &mut found);
        assert!(!found.is_empty(), "{key}: no selector in {text}");
        let mut sides = Vec::new();
        measured_sides(&expr, &mut sides);
        for server in Server::ALL {
            for selector in &found {
                let samples = sb.query(server, selector).await;
                assert!(
                    !samples.is_empty(),
                    "{key}: server {server:?} has no series for {selector} (rule: {text})"
                );
            }
            for side in &sides {
                // Rates and increases need a second sample: wait for it, bounded.
                let what = format!("{key}: a value for {side}");
                sb.wait_for(server, side, &what, |s| !s.is_empty()).await;
            }
            let firing = sb.query(server, text).await;
            assert!(
                firing.is_empty(),
                "{key}: true on server {server:?} in a healthy sandbox: {text} gave {firing:?}"
            );
        }
    }
}

#[tokio::test]
async fn catalog_rules_find_their_metrics_and_are_false_when_healthy() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    check_catalog(&sb).await;
}

// --- Faults that turn each catalog rule true ---------------------------------------------

/// A fault on the fake (or blackbox exporter) at `host:port`.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Stop it, then start it again once the rule is true.
    Stop,
    Restart,
    Set(&'static str, f64),
    Add(&'static str, f64),
    Rate(&'static str, f64),
    Histogram(&'static str, f64),
    StopBlackbox,
    /// Set before the servers started (see `PREPARED`): the rule is true from the start.
    Prepared,
}

/// Every PromQL key of the catalog with the fault that makes its expression true, and where.
/// `BLACKER_ping_latency_more_than_1s` has none: loopback pings always answer at once.
const FAULTS: [(&str, Host, u16, Fault); 39] = [
    ("TiDB.pd.PD_server_is_down", Host::Two, 2379, Fault::Stop),
    ("TiDB.pd.PD_node_restart", Host::One, 2379, Fault::Restart),
    (
        "TiDB.tidb.TiDB_server_is_down",
        Host::Ten,
        10080,
        Fault::Stop,
    ),
    (
        "TiDB.tidb.TiDB_node_restart",
        Host::One,
        10080,
        Fault::Restart,
    ),
    (
        "TiDB.tidb.TiDB_schema_error",
        Host::One,
        10080,
        Fault::Add(
            r#"tidb_session_schema_lease_error_total{type="outdated"}"#,
            1.0,
        ),
    ),
    (
        "TiDB.tidb.TiDB_monitor_keep_alive",
        Host::Ten,
        10080,
        Fault::Prepared,
    ),
    (
        "TiDB.tidb.TiDB_monitor_time_jump_back_error",
        Host::One,
        10080,
        Fault::Add("tidb_monitor_time_jump_back_total", 1.0),
    ),
    (
        "TiDB.tidb.TiDB_ddl_waiting_jobs",
        Host::One,
        10080,
        Fault::Set("tidb_ddl_waiting_jobs", 10.0),
    ),
    (
        "TiDB.tidb.TiDB_server_panic_total",
        Host::One,
        10080,
        Fault::Add("tidb_server_panic_total", 1.0),
    ),
    (
        "TiDB.tikv.TiKV_server_is_down",
        Host::Ten,
        20180,
        Fault::Stop,
    ),
    (
        "TiDB.tikv.TiKV_node_restart",
        Host::One,
        20180,
        Fault::Restart,
    ),
    (
        "TiDB.tikv.TiKV_GC_can_not_work",
        Host::One,
        20180,
        Fault::Prepared,
    ),
    (
        "TiDB.tikv.TiKV_coprocessor_request_error",
        Host::One,
        20180,
        Fault::Add(r#"tikv_coprocessor_request_error{reason="lock"}"#, 200.0),
    ),
    (
        "TiDB.tikv.TiKV_raft_append_log_duration_secs",
        Host::One,
        20180,
        Fault::Histogram("tikv_raftstore_append_log_duration_seconds", 2.0),
    ),
    (
        "TiDB.tikv.TiKV_raftstore_thread_cpu_seconds_total",
        Host::One,
        20180,
        Fault::Rate(
            r#"tikv_thread_cpu_seconds_total{name="raftstore_0"}"#,
            100.0,
        ),
    ),
    (
        "TiDB.tikv.TiKV_thread_apply_worker_cpu_seconds",
        Host::One,
        20180,
        Fault::Rate(
            r#"tikv_thread_cpu_seconds_total{name="apply_worker"}"#,
            100.0,
        ),
    ),
    (
        "TiDB.tikv.TiKV_approximate_region_size",
        Host::Two,
        20180,
        Fault::Histogram("tikv_raftstore_region_size", 2e9),
    ),
    (
        "TiDB.tikv.TiKV_async_request_write_duration_seconds",
        Host::One,
        20180,
        Fault::Histogram(
            r#"tikv_storage_engine_async_request_duration_seconds{type="write"}"#,
            2.0,
        ),
    ),
    (
        "TiDB.tikv.TiKV_coprocessor_pending_request",
        Host::One,
        20180,
        Fault::Set("tikv_coprocessor_pending_request", 10000.0),
    ),
    (
        "TiDB.tikv.TiKV_raft_apply_log_duration_secs",
        Host::One,
        20180,
        Fault::Histogram("tikv_raftstore_apply_log_duration_seconds", 2.0),
    ),
    (
        "TiDB.tikv.TiKV_scheduler_command_duration_seconds",
        Host::One,
        20180,
        Fault::Histogram(
            r#"tikv_scheduler_command_duration_seconds{type="prewrite"}"#,
            2.0,
        ),
    ),
    (
        "TiDB.tikv.TiKV_scheduler_latch_wait_duration_seconds",
        Host::One,
        20180,
        Fault::Histogram(
            r#"tikv_scheduler_latch_wait_duration_seconds{type="prewrite"}"#,
            2.0,
        ),
    ),
    (
        "TiDB.tikv.TiKV_write_stall",
        Host::One,
        20180,
        Fault::Set("tikv_engine_write_stall", 1.0),
    ),
    (
        "TiDB.tiflash.TiFlash_server_is_down",
        Host::Two,
        8234,
        Fault::Stop,
    ),
    (
        "TiDB.tiflash.TiFlash_proxy_node_restart",
        Host::Two,
        8234,
        Fault::Restart,
    ),
    (
        "TiDB.tiflash.TiFlash_schema_error",
        Host::Two,
        8234,
        Fault::Add(r#"tiflash_schema_apply_count{type="failed"}"#, 1.0),
    ),
    (
        "TiDB.blackbox_exporter.Blackbox_exporter_server_is_down",
        Host::Ten,
        9115,
        Fault::StopBlackbox,
    ),
    (
        "TiDB.node_exporter.Node_exporter_server_is_down",
        Host::Ten,
        9100,
        Fault::Stop,
    ),
    (
        "TiDB.node_exporter.Node_exporter_node_restart",
        Host::One,
        9100,
        Fault::Restart,
    ),
    (
        "TiDB.grafana.Grafana_server_is_down",
        Host::Two,
        3000,
        Fault::Stop,
    ),
    (
        "TiDB.cluster.PD_cluster_down_tikv_nums",
        Host::One,
        2379,
        Fault::Set(r#"pd_cluster_status{type="store_down_count"}"#, 1.0),
    ),
    (
        "TiDB.cluster.PD_cluster_lost_connect_tikv_nums",
        Host::One,
        2379,
        Fault::Set(r#"pd_cluster_status{type="store_disconnected_count"}"#, 1.0),
    ),
    (
        "TiDB.cluster.PD_leader_change",
        Host::Two,
        2379,
        Fault::Rate(r#"pd_tso_events{type="save"}"#, 1.0),
    ),
    (
        "TiDB.cluster.TiKV_space_used_more_than_80",
        Host::One,
        2379,
        Fault::Set(r#"pd_cluster_status{type="storage_size"}"#, 90e9),
    ),
    (
        "TiDB.cluster.PD_miss_peer_region_count",
        Host::One,
        2379,
        Fault::Set(r#"pd_regions_status{type="miss_peer_region_count"}"#, 200.0),
    ),
    (
        "TiDB.cluster.PD_no_store_for_making_replica",
        Host::One,
        2379,
        Fault::Add(r#"pd_checker_event_count{name="no_target_store"}"#, 1.0),
    ),
    (
        "TiDB.cluster.PD_system_time_slow",
        Host::One,
        2379,
        Fault::Add(r#"pd_tso_events{type="system_time_slow"}"#, 1.0),
    ),
    (
        "TiDB.cluster.PD_cluster_low_space",
        Host::One,
        2379,
        Fault::Set(r#"pd_cluster_status{type="store_low_space_count"}"#, 1.0),
    ),
    (
        "TiDB.cluster.PD_down_peer_region_nums",
        Host::One,
        2379,
        Fault::Set(r#"pd_regions_status{type="down-peer-region-count"}"#, 1.0),
    ),
];

/// Counters that stay at 0 from the first scrape on: `increase()` over their long windows
/// stays 0, which no later fault could achieve once they had grown. (At 0 rather than at
/// any constant: VictoriaMetrics reads a small first value as an increase from 0.)
const PREPARED: [(Host, u16, &str); 5] = [
    (Host::Ten, 10080, "tidb_monitor_keep_alive_total"),
    (Host::One, 20180, r#"tikv_gcworker_gc_tasks_vec{task="gc"}"#),
    (Host::Two, 20180, r#"tikv_gcworker_gc_tasks_vec{task="gc"}"#),
    (Host::Ten, 20180, r#"tikv_gcworker_gc_tasks_vec{task="gc"}"#),
    (Host::Ten, 20181, r#"tikv_gcworker_gc_tasks_vec{task="gc"}"#),
];

#[tokio::test]
async fn every_catalog_rule_but_ping_latency_turns_true_under_its_fault() {
    // B is VictoriaMetrics, so that both flavours see every fault.
    let sb = Sandbox::start_with(SandboxOptions {
        server_b: ServerKind::VictoriaMetrics,
        start_servers: false,
        ..SandboxOptions::default()
    })
    .await;
    for (host, port, selector) in PREPARED {
        sb.fake(sb.addr(host, port)).set(selector, 0.0);
    }
    for server in Server::ALL {
        sb.server(server).start().await;
    }
    sb.wait_until_ready().await;

    let expressions: Vec<(String, String)> = catalog_expressions();
    let keyed: BTreeSet<&str> = FAULTS.iter().map(|(key, ..)| *key).collect();
    let untested: Vec<&str> = expressions
        .iter()
        .map(|(key, _)| key.as_str())
        .filter(|key| !keyed.contains(key))
        .collect();
    assert_eq!(
        untested,
        ["TiDB.blackbox_exporter.BLACKER_ping_latency_more_than_1s"]
    );
    for (key, host, port, fault) in FAULTS {
        let expr = match expressions.iter().find(|(k, _)| k == key) {
            Some((_, expr)) => expr.as_str(),
            None => panic!("{key} is not in the catalog"),
        };
        let addr = sb.addr(host, port);
        // Where the rule may fire: the faulted process, on any of its ports.
        let faulted: BTreeSet<String> = match fault {
            Fault::StopBlackbox => BTreeSet::from([addr.to_string()]),
            _ => sb
                .fake(addr)
                .addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
        };
        match fault {
            Fault::Stop => sb.fake(addr).stop().await,
            Fault::Restart => sb.fake(addr).restart().await,
            Fault::Set(selector, value) => sb.fake(addr).set(selector, value),
            Fault::Add(selector, delta) => sb.fake(addr).add(selector, delta),
            Fault::Rate(selector, rate) => sb.fake(addr).set_rate(selector, rate),
            Fault::Histogram(selector, value) => sb.fake(addr).set_histogram(selector, value),
            Fault::StopBlackbox => sb.blackbox(host).stop().await,
            Fault::Prepared => {}
        }
        let what = format!("{key} to turn true under {fault:?} at {addr}");
        let answers = futures::future::join_all(
            Server::ALL.map(|server| sb.wait_for(server, expr, &what, |s| !s.is_empty())),
        )
        .await;
        for (server, firing) in Server::ALL.iter().zip(answers) {
            for sample in &firing {
                let instance = sample.label("instance");
                assert!(
                    instance.is_empty() || faulted.contains(instance),
                    "{key} on server {server:?} fired for {instance}, not for the faulted {addr}: {firing:?}"
                );
            }
        }
        match fault {
            Fault::Stop => sb.fake(addr).start().await,
            Fault::StopBlackbox => sb.blackbox(host).start().await,
            _ => {}
        }
    }
}
