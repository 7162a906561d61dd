//! The daemon (`run`): starts a [`Generation`] of tasks from the configuration, runs its
//! cycles, replaces it on SIGHUP with one built completely beforehand, and shuts down
//! on SIGTERM with every task confirmed stopped. Each arm of the loop is one call.

mod generation;
mod metrics_listener;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use generation::{BuildError, BuildErrors, Generation, Running};
use metrics_listener::MetricsListener;

use crate::config::{self, Config, LogConfig};
use crate::lifecycle::exit::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::lifecycle::{heap, logging, notify, signals};
use crate::metrics::Metrics;

/// SIGTERM to exit must take less than this (SPEC §12 gives 5 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// `run`: the daemon, until SIGTERM or SIGINT.
pub async fn run(path: PathBuf, config: Config) -> ExitCode {
    let metrics = Arc::new(Metrics::new());
    let root = CancellationToken::new();
    let mut reloads = match signals::install(root.clone()) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let tracker = TaskTracker::new();
    let mut listener = MetricsListener::start(&config.metrics, &metrics, &root, &tracker);
    if let Err(e) = std::fs::create_dir_all(&config.agent.state_dir) {
        tracing::warn!(
            "cannot create the state directory {}: {e}",
            config.agent.state_dir.display()
        );
    }
    let generation = match Generation::build(config, metrics.clone()).await {
        Ok(generation) => generation,
        Err(problems) => {
            tracing::error!("cannot start:\n{problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut running = generation.start(None, &metrics, root.child_token());
    running.first_probe().await;
    notify::ready();
    let mut timers = Timers::new(&running.config);
    loop {
        tokio::select! {
            biased;
            _ = root.cancelled() => break,
            Some(_) = reloads.recv() => {
                running = reload(&path, running, &metrics, &root, &mut listener, &tracker).await;
                timers = Timers::new(&running.config);
            }
            _ = timers.watchdog.tick() => notify::watchdog(),
            _ = timers.trim.tick() => heap::release_free_pages(),
            _ = timers.cycle.tick() => cycle(&mut running, &metrics).await,
        }
    }
    notify::stopping();
    running.stop(SHUTDOWN_GRACE).await;
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}");
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The loop's clocks, set from a configuration's interval.
struct Timers {
    cycle: Interval,
    /// Half an interval after each cycle, once its sinks and state file are written,
    /// the pages the cycle freed go back to the kernel.
    trim: Interval,
    watchdog: Interval,
}

impl Timers {
    fn new(config: &Config) -> Self {
        let every = config.agent.interval.get();
        let mut cycle = tokio::time::interval(every);
        cycle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut trim = tokio::time::interval_at(Instant::now() + every / 2, every);
        trim.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let watchdog =
            tokio::time::interval(notify::watchdog_period().unwrap_or(Duration::from_secs(3600)));
        Self {
            cycle,
            trim,
            watchdog,
        }
    }
}

async fn cycle(running: &mut Running, metrics: &Metrics) {
    let started = Instant::now();
    let (keys, firing) = running.cycle().await;
    metrics.cycle(started.elapsed());
    notify::status(&format!(
        "{keys} keys, {firing} firing, last cycle {:.0?}",
        started.elapsed()
    ));
}

/// SIGHUP: builds a generation from the file at `path`, and only when it is whole stops
/// `running` and starts it, handing on the `for` states and components. Anything wrong
/// keeps `running`, with every problem logged.
async fn reload(
    path: &Path,
    running: Running,
    metrics: &Arc<Metrics>,
    root: &CancellationToken,
    listener: &mut MetricsListener,
    tracker: &TaskTracker,
) -> Running {
    notify::reloading();
    let built = match config::load(path) {
        Ok(config) => Generation::build(config, metrics.clone())
            .await
            .map_err(|e| e.to_string()),
        Err(problems) => Err(problems.to_string()),
    };
    let next = match built {
        Ok(next) => next,
        Err(problems) => {
            metrics.config_reload(false);
            tracing::error!(
                "reload refused, keeping the running configuration:\n{}",
                problems.trim_end()
            );
            notify::ready();
            return running;
        }
    };
    tracing::info!("configuration reloaded from {}", path.display());
    metrics.config_reload(true);
    apply_log_changes(&running.config.log, &next.config.log);
    if next.config.metrics.listen != running.config.metrics.listen {
        listener.stop().await;
        *listener = MetricsListener::start(&next.config.metrics, metrics, root, tracker);
    }
    let saved = running.stop(SHUTDOWN_GRACE).await;
    let running = next.start(Some(saved), metrics, root.child_token());
    running.first_probe().await;
    notify::ready();
    running
}

/// A reload applies a new `[log] level` at once; a new log directory, file prefix or
/// `keep` needs a restart, and says so.
fn apply_log_changes(old: &LogConfig, new: &LogConfig) {
    if new.level != old.level {
        logging::set_level(&new.level);
    }
    if new.directory != old.directory || new.file_prefix != old.file_prefix || new.keep != old.keep
    {
        tracing::warn!(
            "the new [log] directory, file_prefix or keep takes effect when the agent restarts"
        );
    }
}
