//! tidb-host-agent: evaluates TiDB's alert rules for one host against a Prometheus HA pair
//! and hands the host's monitoring agent one 0/1 value per alert key.
//!
//! Module map (see `docs/architecture.md`):
//! - [`cli`]: clap definitions.
//! - [`config`]: the serde tree, parse-checked newtypes and cross-field validation.
//! - [`promql`]: the pure host-scoping rewriter on promql-parser's AST.
//! - [`rules`]: the built-in catalog, rule files, `disable` and `override`.
//! - [`plan`]: config + rules + addresses → the exact queries a cycle sends.
//! - [`prometheus`]: one server's client, the HA pair, the liveness probe.
//! - [`discovery`]: host addresses, components, ping targets.
//! - [`evaluation`]: the evaluator, the `for` state machine, the cycle and its snapshot,
//!   the state file.
//! - [`snapshot`]: the keys, values and states one cycle reports.
//! - [`output`]: formats and sinks.
//! - [`ping`]: concurrent ICMP rounds, ping keys, the slow-ping record, `ping`.
//! - [`forward`]: Alertmanager polling, merge/dedupe, spool, exec and HTTP targets.
//! - [`metrics`]: self-metrics (always counted, served when configured).
//! - [`listener`]: what both HTTP listeners share: connection cap, timeouts, accept backoff.
//! - [`lifecycle`]: exit codes, logging, signals, systemd notify, process limits, the
//!   allocator's free pages.
//! - [`atomic_file`]: files replaced atomically, never through a planted link.
//! - [`error`]: an error with its causes, for the top to print.
//! - [`daemon`]: generations, reload and shutdown: the `run` command.
//! - [`commands`]: `check`, `explain` and `once`; `status` and `zabbix` (the published
//!   snapshot).

pub mod atomic_file;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod error;
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
