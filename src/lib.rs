//! tidb-host-agent: evaluates TiDB's alert rules for one host against a Prometheus HA pair
//! and hands the host's monitoring agent one 0/1 value per alert key.
//!
//! Module map (see `docs/architecture.md`):
//! - [`config`]: the serde tree, parse-checked newtypes and cross-field validation.
//! - [`promql`]: the pure host-scoping rewriter on promql-parser's AST.
//! - [`rules`]: the built-in catalog, rule files, key naming, `explain`.
//! - [`plan`]: config + rules + addresses → the exact queries a cycle sends.
//! - [`prometheus`]: one server's client, the HA pair, the liveness probe.
//! - [`discovery`]: host addresses and components.
//! - [`evaluation`]: the `for` state machine, the cycle, the state file.
//! - [`forward`]: Alertmanager polling, merge/dedupe, spool, exec and HTTP targets.
//! - [`snapshot`]: the keys, values and states one cycle reports.
//! - [`output`]: formats and sinks.
//! - [`ping`]: concurrent ICMP rounds, ping keys, the slow-ping record, `ping`.
//! - [`metrics`]: self-metrics (always counted, served when configured).
//! - [`listener`]: what both HTTP listeners share: connection cap, timeouts, accept backoff.
//! - [`lifecycle`]: logging, signals, systemd notify.
//! - [`app`]: builds every task from the config; reload and shutdown.
//! - [`cli`]: clap definitions.

pub mod app;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod evaluation;
pub mod forward;
pub mod lifecycle;
pub mod listener;
pub mod metrics;
pub mod output;
pub mod ping;
pub mod plan;
pub mod prometheus;
pub mod promql;
pub mod rules;
pub mod snapshot;
