//! The built-in catalog (SPEC §2): exactly the 41 keys of issue 3 with their scope and level,
//! expressions and `for` copied verbatim from the upstream files, and accepted by promtool.

use std::process::Command;
use std::time::Duration;

use harness::catalog;
use harness::rule_file::{self, text};
use tidb_host_agent::rules::{CATALOG_YAML, LoadOptions, RuleSet, Scope, assemble};
use yaml_serde::Value;

/// The table of issue 3: key, scope, level.
const TABLE: [(&str, Scope, &str); 41] = [
    ("TiDB.pd.PD_server_is_down", Scope::Host, "emergency"),
    ("TiDB.pd.PD_node_restart", Scope::Host, "warning"),
    ("TiDB.tidb.TiDB_server_is_down", Scope::Host, "emergency"),
    ("TiDB.tidb.TiDB_node_restart", Scope::Host, "warning"),
    ("TiDB.tidb.TiDB_schema_error", Scope::Host, "emergency"),
    (
        "TiDB.tidb.TiDB_monitor_keep_alive",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.tidb.TiDB_monitor_time_jump_back_error",
        Scope::Host,
        "warning",
    ),
    ("TiDB.tidb.TiDB_ddl_waiting_jobs", Scope::Host, "warning"),
    ("TiDB.tidb.TiDB_server_panic_total", Scope::Host, "critical"),
    ("TiDB.tikv.TiKV_server_is_down", Scope::Host, "emergency"),
    ("TiDB.tikv.TiKV_node_restart", Scope::Host, "warning"),
    ("TiDB.tikv.TiKV_GC_can_not_work", Scope::Host, "emergency"),
    (
        "TiDB.tikv.TiKV_coprocessor_request_error",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.tikv.TiKV_raft_append_log_duration_secs",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tikv.TiKV_raftstore_thread_cpu_seconds_total",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tikv.TiKV_thread_apply_worker_cpu_seconds",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tikv.TiKV_approximate_region_size",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.tikv.TiKV_async_request_write_duration_seconds",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tikv.TiKV_coprocessor_pending_request",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.tikv.TiKV_raft_apply_log_duration_secs",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tikv.TiKV_scheduler_command_duration_seconds",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.tikv.TiKV_scheduler_latch_wait_duration_seconds",
        Scope::Host,
        "critical",
    ),
    ("TiDB.tikv.TiKV_write_stall", Scope::Host, "critical"),
    (
        "TiDB.tiflash.TiFlash_server_is_down",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.tiflash.TiFlash_proxy_node_restart",
        Scope::Host,
        "critical",
    ),
    (
        "TiDB.tiflash.TiFlash_schema_error",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.blackbox_exporter.Blackbox_exporter_server_is_down",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.blackbox_exporter.BLACKER_ping_latency_more_than_1s",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.node_exporter.Node_exporter_server_is_down",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.node_exporter.Node_exporter_node_restart",
        Scope::Host,
        "warning",
    ),
    (
        "TiDB.grafana.Grafana_server_is_down",
        Scope::Host,
        "emergency",
    ),
    (
        "TiDB.prometheus.Prometheus_is_down",
        Scope::Computed,
        "critical",
    ),
    (
        "TiDB.cluster.PD_cluster_down_tikv_nums",
        Scope::Cluster,
        "emergency",
    ),
    (
        "TiDB.cluster.PD_cluster_lost_connect_tikv_nums",
        Scope::Cluster,
        "warning",
    ),
    ("TiDB.cluster.PD_leader_change", Scope::Cluster, "warning"),
    (
        "TiDB.cluster.TiKV_space_used_more_than_80",
        Scope::Cluster,
        "warning",
    ),
    (
        "TiDB.cluster.PD_miss_peer_region_count",
        Scope::Cluster,
        "critical",
    ),
    (
        "TiDB.cluster.PD_no_store_for_making_replica",
        Scope::Cluster,
        "warning",
    ),
    (
        "TiDB.cluster.PD_system_time_slow",
        Scope::Cluster,
        "warning",
    ),
    (
        "TiDB.cluster.PD_cluster_low_space",
        Scope::Cluster,
        "warning",
    ),
    (
        "TiDB.cluster.PD_down_peer_region_nums",
        Scope::Cluster,
        "warning",
    ),
];

/// The two rules issue 3 writes itself, since no upstream file has them.
const OWN_RULES: [(&str, &str, Duration); 2] = [
    (
        "TiFlash_proxy_node_restart",
        r#"changes(tiflash_proxy_process_start_time_seconds{job="tiflash"}[5m]) > 0"#,
        Duration::from_secs(60),
    ),
    (
        "Node_exporter_node_restart",
        r#"changes(process_start_time_seconds{job="overwritten-nodes"}[5m]) > 0"#,
        Duration::from_secs(60),
    ),
];

fn catalog() -> RuleSet {
    match assemble(&LoadOptions::default(), &[]) {
        Ok(rules) => rules,
        Err(e) => panic!("the catalog does not load: {e}"),
    }
}

/// Every alerting rule of a rule file's text, as YAML values.
fn alerts(text_of_file: &str) -> Vec<Value> {
    rule_file::alerts(text_of_file).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn catalog_holds_exactly_the_41_keys_of_the_issue() {
    let rules = catalog();
    let actual: Vec<(&str, Scope, &str)> = rules
        .rules()
        .iter()
        .map(|r| (r.key.as_str(), r.scope, r.level.as_str()))
        .collect();
    assert_eq!(actual, TABLE);
    for rule in rules.rules() {
        let component = rule.key.split('.').nth(1);
        assert_eq!(component, Some(rule.component.as_str()), "{}", rule.key);
    }
}

/// The tests' own reading of `rules/tidb.rules.yml` (keys named by SPEC §1 in the harness)
/// agrees with the daemon's, rule for rule.
#[test]
fn the_harness_reads_the_catalog_as_the_daemon_does() {
    let rules = catalog();
    let daemon: Vec<[&str; 5]> = rules
        .rules()
        .iter()
        .map(|r| [&r.key, &r.alert, &r.level, r.scope.as_str(), &r.expr].map(|s| s as &str))
        .collect();
    let harness: Vec<[&str; 5]> = catalog::catalog()
        .iter()
        .map(|r| [&r.key, &r.alert, &r.level, &r.scope, &r.expr].map(|s| s.as_str()))
        .collect();
    assert_eq!(harness, daemon);
}

#[test]
fn expressions_and_for_are_copied_from_upstream() {
    let upstream = rule_file::upstream_dir();
    let rules = catalog().rules().to_vec();
    let entries = alerts(CATALOG_YAML);
    assert_eq!(entries.len(), TABLE.len());
    let mut checked = 0;
    for entry in &entries {
        let alert = text(entry, "alert").unwrap_or_default();
        let source = entry
            .get("annotations")
            .and_then(|a| text(a, "source"))
            .unwrap_or_else(|| panic!("{alert} has no source annotation"));
        let Some(rule) = rules.iter().find(|r| r.alert == alert) else {
            panic!("{alert} did not load");
        };
        if source.starts_with("tidb-host-agent") {
            if rule.scope == Scope::Computed {
                assert_eq!(rule.expr, "vector(0) > 1");
            } else {
                assert!(
                    OWN_RULES.contains(&(alert, rule.expr.as_str(), rule.for_)),
                    "{alert}: {} for {:?}",
                    rule.expr,
                    rule.for_
                );
            }
            checked += 1;
            continue;
        }
        let path = upstream.join(source);
        let file = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{alert}: cannot read {}: {e}", path.display()));
        let matches: Vec<Value> = alerts(&file)
            .into_iter()
            .filter(|u| text(u, "alert") == Some(alert))
            .collect();
        assert_eq!(matches.len(), 1, "{alert} in {source}");
        let original = &matches[0];
        assert_eq!(
            text(original, "expr").map(str::trim),
            Some(rule.expr.as_str()),
            "{alert}: expression differs from {source}"
        );
        let for_text = text(original, "for").unwrap_or("0s");
        let for_ = promql_parser::util::parse_duration(for_text)
            .unwrap_or_else(|e| panic!("{alert}: upstream for `{for_text}`: {e}"));
        assert_eq!(rule.for_, for_, "{alert}: for differs from {source}");
        checked += 1;
    }
    assert_eq!(checked, TABLE.len());
}

#[test]
fn the_catalog_has_no_upstream_placeholder() {
    for entry in alerts(CATALOG_YAML) {
        let values = yaml_serde::to_string(&entry).unwrap_or_default();
        assert!(!values.contains("ENV_LABELS_ENV"), "{values}");
        let labels = entry
            .get("labels")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = labels.keys().filter_map(Value::as_str).collect();
        assert_eq!(
            names,
            ["component", "level", "scope"],
            "{:?}",
            text(&entry, "alert")
        );
    }
}

#[test]
fn promtool_accepts_the_catalog() {
    let output = promtool(&["check", "rules", &catalog::path().display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "promtool rejected rules/tidb.rules.yml:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found = format!("SUCCESS: {} rules found", TABLE.len());
    assert!(stdout.contains(&found), "{stdout}");
}

/// Runs promtool, which `scripts/install-deps.sh` installs: a missing one fails the test.
fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run promtool ({e}); scripts/install-deps.sh installs it (Debian's prometheus)")
    })
}
