//! Process lifecycle: logging, signals, systemd notifications, the allocator's free pages,
//! process limits.

pub mod heap;
pub mod limits;
pub mod logging;
pub mod notify;
pub mod signals;
