//! Multi-ping (SPEC §7): ICMP echo rounds against a list of targets, the latency and
//! loss keys they produce, a JSON-lines record of slow and lost echoes, and the
//! one-shot `ping` command.
//!
//! - [`target`]: names and addresses, resolved once per round.
//! - [`prober`]: the ICMP sockets, a few per address family (surge-ping).
//! - `socket_options`: receive buffer, ICMP filter and BPF reply steering.
//! - [`round`]: one round: `count` echoes per target, bounded concurrency.
//! - [`outcome`]: what a round found, and the per-target statistics (pure).
//! - [`keys`]: a round's outcome as snapshot entries (pure).
//! - [`record`]: the slow-ping record, rotated by size.
//! - [`task`]: the daemon task that runs a round every `[ping] every`.
//! - [`cli`]: `tidb-host-agent ping`.

pub mod cli;
pub mod keys;
pub mod outcome;
pub mod prober;
pub mod record;
pub mod round;
mod socket_options;
pub mod target;
pub mod task;
