//! The end-to-end scenarios of issue 4: the agent binary, one process per sandbox host
//! (127.N.1.1, 127.N.1.2, 127.N.1.10), against the sandbox's real Prometheus pair (or
//! VictoriaMetrics), blackbox exporters and fake TiDB components.
//!
//! Every scenario starts its own sandbox (the harness gives each a free address block, so
//! they run in parallel) and asserts the exact keys and values of every host's snapshot,
//! read from the agent's `json` file sink. Expected key sets come from the catalog's labels
//! (`rules/tidb.rules.yml`) and the sandbox topology, never from the daemon.
//!
//! Waits are bounded and end on observable output (a snapshot, a self-metric, a server's
//! answer); the cycle figures are logged, never asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Tests: failing loudly is the point.

mod agents;
mod expect;
mod mock_prometheus;

mod batches;
mod connections;
mod faults;
mod for_state;
mod hung_server;
mod modes;
mod no_server;
mod one_server_down;
mod sources;
mod steady;
mod tikv_down;
