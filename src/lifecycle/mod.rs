//! Process lifecycle: logging, signals, systemd notifications.

pub mod logging;
pub mod notify;
pub mod signals;
