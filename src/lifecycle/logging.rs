//! Logs go to stderr (journald adds time and unit) or to a daily-rotated file.

use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// The environment variable that overrides `[log] level`, at start and on reload.
const LEVEL_VARIABLE: &str = "TIDB_HOST_AGENT_LOG";

/// Swaps the daemon's filter; set by [`init`].
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the file.
pub fn init(config: &LogConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env(LEVEL_VARIABLE)
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = match &config.directory {
        Some(dir) => {
            let appender = tracing_appender::rolling::daily(dir, &config.file_prefix);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(writer),
                Some(guard),
            )
        }
        None => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        // A broken stderr (journald gone) must not panic the daemon.
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    if builder.try_init().is_ok() {
        let _ = SET_FILTER.set(Box::new(move |filter| {
            handle.reload(filter).map_err(|e| e.to_string())
        }));
    }
    guard
}

/// Applies a reloaded `[log] level` to the running daemon, unless the environment
/// variable overrides it. The directory and the file prefix stay as they were at start.
pub fn set_level(level: &str) {
    if std::env::var_os(LEVEL_VARIABLE).is_some() {
        return;
    }
    let Some(set) = SET_FILTER.get() else { return };
    match EnvFilter::try_new(level) {
        Ok(filter) => {
            if let Err(e) = set(filter) {
                tracing::warn!("cannot apply the new log level {level:?}: {e}");
            }
        }
        Err(e) => tracing::warn!("the new log level {level:?} is not a filter: {e}"),
    }
}

/// Logging for one-shot commands before any config is read: the daemon's stderr
/// subscriber at `warn`, unless the environment variable says otherwise.
pub fn init_stderr() {
    let _ = init(&LogConfig {
        level: "warn".into(),
        ..LogConfig::default()
    });
}
