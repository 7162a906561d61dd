//! Alertmanager forwarding in this process, against a real, clustered Alertmanager pair:
//! one event per alert across the pair, servers down, the webhook receiver (`pair`), the
//! polled view winning over the receiver (`polled_view`), and the exec and HTTP targets
//! (`targets`), and a part that fails costing only itself (`degrade`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic in a test is a failed test.

mod forwarder;

mod degrade;
mod pair;
mod polled_view;
mod targets;
