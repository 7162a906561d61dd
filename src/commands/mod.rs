//! The one-shot commands: `check`, `explain` and `once`, which read the configuration,
//! and `status` and `zabbix`, which read the running daemon's published snapshot.
//! (`ping` and `alerts` live with their subjects.) Exit codes are SPEC §10's.

pub mod check;
pub mod explain;
pub mod once;
pub mod published;
pub mod status;
pub mod zabbix;

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config, Purpose};

pub use crate::lifecycle::exit::{EXIT_CONFIG, EXIT_RUNTIME, EXIT_USAGE};

/// Loads the config for `purpose` or prints every problem; `Err` carries the exit code.
pub fn load_config(path: &Path, purpose: Purpose) -> Result<Config, ExitCode> {
    config::load_for(path, purpose).map_err(|problems| {
        eprint!("{problems}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Writes `text` to stdout; a closed stdout is a runtime failure.
fn print(text: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_RUNTIME),
    }
}
