//! Process lifecycle: exit codes, logging, signals, systemd notifications, process
//! limits, the allocator's free pages.

pub mod capabilities;
pub mod exit;
pub mod heap;
pub mod limits;
pub mod logging;
pub mod notify;
pub mod signals;
