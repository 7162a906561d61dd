//! Exit codes (SPEC §10).

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 78;
/// `status` and `zabbix`: no fresh snapshot (the daemon is not running, or stuck).
pub const EXIT_NO_SNAPSHOT: u8 = 3;
