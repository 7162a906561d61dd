//! What each fake exporter serves: the real metric names that the 41 catalog rules query
//! (see issue 3's table and tests/data/upstream/), with healthy values, so that every rule
//! is false until a test injects a fault.
//!
//! Counters that a rule wants to see *grow* (keep-alive, GC tasks) grow steadily. The rates
//! are large enough that `increase()` clears each threshold from the second sample on, on
//! Prometheus (which extrapolates) and on VictoriaMetrics (which does not).

use super::exposition::Series;
use super::topology::MetricSet;

/// TiKV's duration histograms: 0.5 ms doubling up to ~8 s.
fn duration_buckets() -> Vec<f64> {
    (0..15).map(|i| 0.0005 * f64::from(1u32 << i)).collect()
}

/// Region sizes: 1 MiB doubling up to 8 GiB.
fn region_size_buckets() -> Vec<f64> {
    (20..=33).map(|i| f64::from(2u32).powi(i)).collect()
}

/// A healthy latency: inside the first buckets, far below every rule's 1 s threshold.
const FAST: f64 = 0.001;

pub fn series(exporter: MetricSet) -> Vec<Series> {
    match exporter {
        MetricSet::PdLeader => pd(true),
        MetricSet::PdFollower => pd(false),
        MetricSet::Tidb => tidb(),
        MetricSet::Tikv => tikv(),
        MetricSet::Tiflash => tiflash(),
        MetricSet::TiflashProxy => tiflash_proxy(),
        MetricSet::NodeExporter => node_exporter(),
    }
}

fn pd(leader: bool) -> Vec<Series> {
    let mut out = vec![
        Series::start_time("process_start_time_seconds"),
        Series::gauge("etcd_server_is_leader", &[], if leader { 1.0 } else { 0.0 }),
        // The leader persists a TSO window every 3 s; followers never do.
        Series::counter(
            "pd_tso_events",
            &[("type", "save")],
            if leader { 1000.0 } else { 0.0 },
            if leader { 1.0 / 3.0 } else { 0.0 },
        ),
        Series::counter("pd_tso_events", &[("type", "system_time_slow")], 0.0, 0.0),
    ];
    if !leader {
        return out;
    }
    // Cluster-wide state is published by the leader.
    let status = [
        ("store_up_count", 4.0),
        ("store_down_count", 0.0),
        ("store_disconnected_count", 0.0),
        ("store_low_space_count", 0.0),
        ("storage_size", 20e9),
        ("storage_capacity", 100e9),
    ];
    out.extend(
        status
            .iter()
            .map(|(t, v)| Series::gauge("pd_cluster_status", &[("type", t)], *v)),
    );
    let regions = [
        "miss_peer_region_count",
        "down-peer-region-count",
        "pending-peer-region-count",
    ];
    out.extend(
        regions
            .iter()
            .map(|t| Series::gauge("pd_regions_status", &[("type", t)], 0.0)),
    );
    out.push(Series::counter(
        "pd_checker_event_count",
        &[("type", "replica_checker"), ("name", "check")],
        0.0,
        1.0,
    ));
    out.push(Series::counter(
        "pd_checker_event_count",
        &[("type", "replica_checker"), ("name", "no_target_store")],
        0.0,
        0.0,
    ));
    out
}

fn tidb() -> Vec<Series> {
    vec![
        Series::start_time("process_start_time_seconds"),
        Series::counter(
            "tidb_session_schema_lease_error_total",
            &[("type", "outdated")],
            0.0,
            0.0,
        ),
        Series::counter(
            "tidb_session_schema_lease_error_total",
            &[("type", "change")],
            0.0,
            0.0,
        ),
        // TiDB_monitor_keep_alive fires below 100 per 10 minutes.
        Series::counter("tidb_monitor_keep_alive_total", &[], 0.0, 1000.0),
        Series::counter("tidb_monitor_time_jump_back_total", &[], 0.0, 0.0),
        Series::gauge("tidb_ddl_waiting_jobs", &[("type", "add index")], 0.0),
        Series::counter("tidb_server_panic_total", &[("type", "ddl")], 0.0, 0.0),
    ]
}

fn tikv() -> Vec<Series> {
    let durations = duration_buckets();
    let mut out = vec![
        Series::start_time("process_start_time_seconds"),
        // TiKV_GC_can_not_work fires when neither GC counter grows.
        Series::counter("tikv_gcworker_gc_tasks_vec", &[("task", "gc")], 0.0, 10.0),
        Series::counter(
            "tikv_gcworker_gc_tasks_vec",
            &[("task", "unsafe_destroy_range")],
            0.0,
            0.0,
        ),
        Series::counter("tikv_gc_compaction_filter_perform", &[], 0.0, 0.0),
        Series::counter(
            "tikv_coprocessor_request_error",
            &[("reason", "lock")],
            0.0,
            0.0,
        ),
        Series::counter(
            "tikv_coprocessor_request_error",
            &[("reason", "meet_lock")],
            0.0,
            0.0,
        ),
        Series::counter(
            "tikv_thread_cpu_seconds_total",
            &[("name", "raftstore_0")],
            0.0,
            0.1,
        ),
        Series::counter(
            "tikv_thread_cpu_seconds_total",
            &[("name", "apply_worker")],
            0.0,
            0.1,
        ),
        Series::gauge(
            "tikv_coprocessor_pending_request",
            &[("req", "select"), ("priority", "normal")],
            0.0,
        ),
        Series::gauge(
            "tikv_engine_write_stall",
            &[("db", "kv"), ("type", "write_stall_percentile99")],
            0.0,
        ),
    ];
    out.extend(Series::histogram(
        "tikv_raftstore_append_log_duration_seconds",
        &[],
        &durations,
        FAST,
    ));
    out.extend(Series::histogram(
        "tikv_raftstore_apply_log_duration_seconds",
        &[],
        &durations,
        FAST,
    ));
    // 96 MiB regions; the rule fires above 1 GiB.
    out.extend(Series::histogram(
        "tikv_raftstore_region_size",
        &[],
        &region_size_buckets(),
        96.0 * 1024.0 * 1024.0,
    ));
    for family in [
        "tikv_storage_engine_async_request_duration_seconds",
        "tikv_scheduler_command_duration_seconds",
        "tikv_scheduler_latch_wait_duration_seconds",
    ] {
        let types: &[&str] = if family.starts_with("tikv_storage") {
            &["write", "snapshot"]
        } else {
            &["prewrite", "commit"]
        };
        for t in types {
            out.extend(Series::histogram(family, &[("type", t)], &durations, FAST));
        }
    }
    out
}

fn tiflash() -> Vec<Series> {
    vec![
        Series::counter("tiflash_schema_apply_count", &[("type", "diff")], 0.0, 0.1),
        Series::counter(
            "tiflash_schema_apply_count",
            &[("type", "failed")],
            0.0,
            0.0,
        ),
    ]
}

fn tiflash_proxy() -> Vec<Series> {
    vec![Series::start_time(
        "tiflash_proxy_process_start_time_seconds",
    )]
}

fn node_exporter() -> Vec<Series> {
    vec![
        Series::start_time("process_start_time_seconds"),
        Series::gauge("node_load1", &[], 0.5),
        Series::counter(
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "idle")],
            0.0,
            0.9,
        ),
    ]
}
