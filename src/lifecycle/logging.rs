//! Logs go to stderr (journald adds time and unit) or to a daily-rotated file.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the file.
pub fn init(config: &LogConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env("TIDB_HOST_AGENT_LOG")
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    match &config.directory {
        Some(dir) => {
            let appender = tracing_appender::rolling::daily(dir, &config.file_prefix);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(false)
                .log_internal_errors(false)
                .try_init();
            Some(guard)
        }
        None => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                // A broken stderr (journald gone) must not panic the daemon.
                .log_internal_errors(false)
                .try_init();
            None
        }
    }
}

/// Logging for one-shot commands before any config is read.
pub fn init_stderr() {
    let filter =
        EnvFilter::try_from_env("TIDB_HOST_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .log_internal_errors(false)
        .try_init();
}
