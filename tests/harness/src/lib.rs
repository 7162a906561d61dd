//! What the integration tests of tidb-host-agent share, in one place. A dev-only crate: it
//! does not depend on the agent (the tests would see two copies of its types), so whatever
//! needs the agent's types stays in the test files.
//!
//! - [`block`]: loopback blocks (127.N.1.x) held by `flock`, and free ports.
//! - [`sandbox`]: a small TiDB cluster on a block, with real Prometheus (or VictoriaMetrics)
//!   servers and blackbox_exporters from Debian's packages and fake TiDB exporters.
//! - [`alertmanager`]: real Alertmanagers clustered in pairs, and alerts to post.
//! - [`agent`]: the agent binary in a temp dir of its own.
//! - [`process`]: the one guard of child processes: log file, signals, kill on drop.
//! - [`wait`]: the one bounded wait, with a deadline and a message.
//! - [`catalog`]: the built-in catalog's rules and keys, read from `rules/tidb.rules.yml`.
//! - [`rule_file`]: rule files read generically, and TiDB's upstream files.
//! - [`recorder`]: what the exec-target fixtures record.
//! - [`privilege`]: root, network namespaces, running as nobody.
//! - [`http`]: a hand-made GET and the harness's HTTP client.
//! - [`io_thread`]: a runtime on a thread of its own, for servers beside the code under test.

pub mod agent;
pub mod alertmanager;
pub mod block;
pub mod catalog;
pub mod http;
pub mod io_thread;
pub mod privilege;
pub mod process;
pub mod recorder;
pub mod rule_file;
pub mod sandbox;
pub mod wait;

use std::path::Path;

/// The repository's root: the harness lives in `tests/harness`.
pub fn repository() -> &'static Path {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not tests/harness", harness.display()))
}
