//! Self-metrics (SPEC §12). Always collected — counting is cheaper than asking whether
//! anyone listens — and served on `[metrics] listen` only when it is set.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Every self-metric, shared by all tasks.
pub struct Metrics {
    registry: Registry,
    rule_evaluations: Family<Labels, Counter>,
    query_duration: Family<Labels, Histogram, fn() -> Histogram>,
    prometheus_requests: Family<Labels, Counter>,
    server_up: Family<Labels, Gauge>,
    failovers: Counter,
    cycle_duration: Histogram,
    output_writes: Family<Labels, Counter>,
    ping_rtt: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    ping_loss: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    forward_deliveries: Family<Labels, Counter>,
    forward_dropped: Family<Labels, Counter>,
    forward_part_up: Family<Labels, Gauge>,
    config_last_reload_successful: Gauge,
    listener_connections: Family<Labels, Gauge>,
    listener_refused: Family<Labels, Counter>,
    listener_accept_errors: Family<Labels, Counter>,
    listener_timeouts: Family<Labels, Counter>,
    webhook_requests: Family<Labels, Counter>,
    webhook_events_ignored: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tidb_host_agent");
        let rule_evaluations = Family::<Labels, Counter>::default();
        registry.register(
            "rule_evaluations",
            "Rule evaluations by result (true, false, unknown, error)",
            rule_evaluations.clone(),
        );
        let query_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "query_duration_seconds",
            "Duration of PromQL queries per server",
            query_duration.clone(),
        );
        let prometheus_requests = Family::<Labels, Counter>::default();
        registry.register(
            "prometheus_requests",
            "HTTP requests sent to each Prometheus server, by endpoint (queries, readiness probes, rule reads)",
            prometheus_requests.clone(),
        );
        let server_up = Family::<Labels, Gauge>::default();
        registry.register(
            "server_up",
            "1 until a Prometheus server fails down_after probes in a row (a remote server not asked is probed only while no server answers)",
            server_up.clone(),
        );
        let failovers = Counter::default();
        registry.register(
            "failovers",
            "Queries answered by a server other than the preferred one",
            failovers.clone(),
        );
        let cycle_duration = latency_histogram();
        registry.register(
            "cycle_duration_seconds",
            "Wall time of one evaluation cycle",
            cycle_duration.clone(),
        );
        let output_writes = Family::<Labels, Counter>::default();
        registry.register(
            "output_writes",
            "Snapshot writes per sink and result",
            output_writes.clone(),
        );
        let ping_rtt = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "ping_rtt_avg_seconds",
            "Average echo round-trip time of the last round per target",
            ping_rtt.clone(),
        );
        let ping_loss = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "ping_loss_ratio",
            "Lost echoes over sent echoes in the last round per target",
            ping_loss.clone(),
        );
        let forward_deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "forward_deliveries",
            "Alertmanager event deliveries per target and result",
            forward_deliveries.clone(),
        );
        let config_last_reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "1 if the last configuration load or reload succeeded",
            config_last_reload_successful.clone(),
        );
        let forward_dropped = Family::<Labels, Counter>::default();
        registry.register(
            "forward_dropped",
            "Alerts and events dropped by a forwarding bound, by reason",
            forward_dropped.clone(),
        );
        let forward_part_up = Family::<Labels, Gauge>::default();
        registry.register(
            "forward_part_up",
            "1 while a part of forwarding works: the receiver listens, an Alertmanager answers",
            forward_part_up.clone(),
        );
        let listener_connections = Family::<Labels, Gauge>::default();
        registry.register(
            "listener_connections",
            "Connections open per listener (webhook, metrics)",
            listener_connections.clone(),
        );
        let listener_refused = Family::<Labels, Counter>::default();
        registry.register(
            "listener_connections_refused",
            "Connections closed at once because the listener had its most clients",
            listener_refused.clone(),
        );
        let listener_accept_errors = Family::<Labels, Counter>::default();
        registry.register(
            "listener_accept_errors",
            "Failed accepts per listener or unix sink (e.g. too many open files)",
            listener_accept_errors.clone(),
        );
        let listener_timeouts = Family::<Labels, Counter>::default();
        registry.register(
            "listener_timeouts",
            "Connections cut off per listener and phase (header, body, age)",
            listener_timeouts.clone(),
        );
        let webhook_requests = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook receiver requests by result",
            webhook_requests.clone(),
        );
        let webhook_events_ignored = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_events_ignored",
            "Webhook alerts not forwarded, by reason (polled: polling already tracks that fingerprint)",
            webhook_events_ignored.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        registry.register("build_info", "Build information", build_info.clone());
        build_info
            .get_or_create(&labels([("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        config_last_reload_successful.set(1);
        Self {
            registry,
            rule_evaluations,
            query_duration,
            prometheus_requests,
            server_up,
            failovers,
            cycle_duration,
            output_writes,
            ping_rtt,
            ping_loss,
            forward_deliveries,
            forward_dropped,
            forward_part_up,
            config_last_reload_successful,
            listener_connections,
            listener_refused,
            listener_accept_errors,
            listener_timeouts,
            webhook_requests,
            webhook_events_ignored,
        }
    }

    pub fn rule_evaluation(&self, result: &str) {
        self.rule_evaluations
            .get_or_create(&labels([("result", result)]))
            .inc();
    }

    pub fn query(&self, server: &str, took: Duration) {
        self.query_duration
            .get_or_create(&labels([("server", server)]))
            .observe(took.as_secs_f64());
    }

    /// One request to `server`'s `endpoint` (its path, as Prometheus names its handlers).
    pub fn prometheus_request(&self, server: &str, endpoint: &'static str) {
        self.prometheus_requests
            .get_or_create(&labels([("server", server), ("endpoint", endpoint)]))
            .inc();
    }

    pub fn server_up(&self, server: &str, up: bool) {
        self.server_up
            .get_or_create(&labels([("server", server)]))
            .set(i64::from(up));
    }

    pub fn failover(&self) {
        self.failovers.inc();
    }

    pub fn cycle(&self, took: Duration) {
        self.cycle_duration.observe(took.as_secs_f64());
    }

    pub fn output_write(&self, sink: &str, ok: bool) {
        self.output_writes
            .get_or_create(&labels([
                ("sink", sink),
                ("result", if ok { "ok" } else { "error" }),
            ]))
            .inc();
    }

    pub fn ping_target(&self, target: &str, rtt_avg: Option<Duration>, loss_ratio: f64) {
        let l = labels([("target", target)]);
        self.ping_rtt
            .get_or_create(&l)
            .set(rtt_avg.map_or(f64::NAN, |d| d.as_secs_f64()));
        self.ping_loss.get_or_create(&l).set(loss_ratio);
    }

    /// Drops the RTT and loss series of a target that is no longer pinged, so that a
    /// target gone from the list (or from Prometheus' discovery) does not report its last
    /// figures forever.
    pub fn ping_target_gone(&self, target: &str) {
        let l = labels([("target", target)]);
        self.ping_rtt.remove(&l);
        self.ping_loss.remove(&l);
    }

    pub fn forward_delivery(&self, target: &str, ok: bool) {
        self.forward_deliveries
            .get_or_create(&labels([
                ("target", target),
                ("result", if ok { "ok" } else { "error" }),
            ]))
            .inc();
    }

    /// `count` alerts or events dropped because a bound was hit: `spool_full` (the oldest
    /// spooled events, past `max_events` or `max_bytes`) or `alerts_over_max` (an
    /// answer's alerts past `max_alerts`).
    pub fn forward_dropped(&self, reason: &str, count: u64) {
        self.forward_dropped
            .get_or_create(&labels([("reason", reason)]))
            .inc_by(count);
    }

    /// Whether one part of forwarding works: `receiver`, or `alertmanager:<server>`.
    pub fn forward_part_up(&self, part: &str, up: bool) {
        self.forward_part_up
            .get_or_create(&labels([("part", part)]))
            .set(i64::from(up));
    }

    pub fn config_reload(&self, ok: bool) {
        self.config_last_reload_successful.set(i64::from(ok));
    }

    /// Adds `delta` to the open connections of `listener`.
    pub fn listener_connections(&self, listener: &str, delta: i64) {
        self.listener_connections
            .get_or_create(&labels([("listener", listener)]))
            .inc_by(delta);
    }

    pub fn listener_refused(&self, listener: &str) {
        self.listener_refused
            .get_or_create(&labels([("listener", listener)]))
            .inc();
    }

    pub fn listener_accept_error(&self, listener: &str) {
        self.listener_accept_errors
            .get_or_create(&labels([("listener", listener)]))
            .inc();
    }

    /// A connection cut off in `phase`: `header` (or idle), `body` or `age`.
    pub fn listener_timeout(&self, listener: &str, phase: &str) {
        self.listener_timeouts
            .get_or_create(&labels([("listener", listener), ("phase", phase)]))
            .inc();
    }

    /// One webhook request: `ok`, `unauthorized`, `bad_request`, `too_large`,
    /// `timeout`, `method` or `error`.
    pub fn webhook_request(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&labels([("result", result)]))
            .inc();
    }

    pub fn webhook_events_ignored(&self, reason: &str, count: u64) {
        self.webhook_events_ignored
            .get_or_create(&labels([("reason", reason)]))
            .inc_by(count);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_gone_from_the_round_leaves_the_metrics() {
        let metrics = Metrics::new();
        metrics.ping_target("127.0.0.1", Some(Duration::from_micros(50)), 0.0);
        metrics.ping_target("127.0.0.2", None, 1.0);
        metrics.ping_target_gone("127.0.0.2");
        let text = metrics.encode();
        assert!(
            text.contains(r#"ping_rtt_avg_seconds{target="127.0.0.1"} 0.00005"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ping_loss_ratio{target="127.0.0.1"} 0.0"#),
            "{text}"
        );
        assert!(!text.contains("127.0.0.2"), "{text}");
    }
}
