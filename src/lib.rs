//! tidb-host-agent: evaluates TiDB's alert rules for one host against a Prometheus HA pair
//! and hands the host's monitoring agent one 0/1 value per alert key.
//!
//! Module map (see `docs/architecture.md`):
//! - [`config`]: the serde tree, parse-checked newtypes and cross-field validation.
//! - [`snapshot`]: the keys, values and states one cycle reports.

pub mod config;
pub mod forward;
pub mod snapshot;
