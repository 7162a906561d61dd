//! Logs go to stderr (journald adds time and unit) or to a daily-rotated file, of
//! which `[log] keep` are kept.
//!
//! Every event is one line: a control character inside an event (a newline in a peer's
//! string interpolated into a message) is escaped, so nothing a peer sends can forge a
//! log line of its own.

use std::io::Write;
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
    let appender = config
        .directory
        .as_ref()
        .map(|dir| daily_files(dir, config).map_err(|e| (dir, e)));
    let (writer, guard, failed) = match appender {
        Some(Ok(appender)) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(OneLinePerEvent(writer)),
                Some(guard),
                None,
            )
        }
        other => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(OneLinePerEvent(std::io::stderr)),
            None,
            other.and_then(Result::err),
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
    if let Some((dir, e)) = failed {
        tracing::error!(
            directory = %dir.display(),
            "cannot open the log file: {e}; logging to stderr instead (check that the \
             directory exists and the service user may write to it)"
        );
    }
    guard
}

/// Daily files `<file_prefix>.YYYY-MM-DD` in `dir`; at start and at each rotation, the
/// oldest files beginning with the prefix are deleted so that `keep` remain.
fn daily_files(
    dir: &std::path::Path,
    config: &LogConfig,
) -> Result<tracing_appender::rolling::RollingFileAppender, tracing_appender::rolling::InitError> {
    tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(&config.file_prefix)
        .max_log_files(config.keep)
        .build(dir)
}

/// A writer factory whose writers escape control characters inside each event.
#[derive(Debug, Clone)]
struct OneLinePerEvent<M>(M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for OneLinePerEvent<M>
{
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }
}

/// The fmt layer writes each event with one `write_all` of the whole line: every
/// newline but the last, and every other control character except tab, is written as
/// an escape.
struct EscapingWriter<W>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        if !body.iter().any(|b| needs_escape(*b)) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b if needs_escape(b) => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn needs_escape(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_a_newline_stays_one_line() {
        let mut out = Vec::new();
        EscapingWriter(&mut out)
            .write_all(b"INFO version=4\n2026-12-04T23:59:59Z ERROR forged\r\x1b[0m\ttab\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "INFO version=4\\n2026-12-04T23:59:59Z ERROR forged\\r\\x1b[0m\ttab\n"
        );
        let mut plain = Vec::new();
        EscapingWriter(&mut plain)
            .write_all(b"plain line\n")
            .unwrap();
        assert_eq!(plain, b"plain line\n");
    }

    #[test]
    fn old_daily_files_are_pruned_to_keep() {
        let dir = tempfile::tempdir().unwrap();
        for day in 1..=9 {
            std::fs::write(
                dir.path().join(format!("agent.log.2026-11-0{day}")),
                "old\n",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), "mine\n").unwrap();
        let config = LogConfig {
            directory: Some(dir.path().to_owned()),
            file_prefix: "agent.log".into(),
            keep: 3,
            ..LogConfig::default()
        };
        let _appender = daily_files(dir.path(), &config).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            4,
            "3 log files and the unrelated one: {names:?}"
        );
        assert!(names.contains(&"unrelated.txt".to_string()), "{names:?}");
    }
}
