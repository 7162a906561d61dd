//! `once`: one cycle, the snapshot on stdout: a drop-in for the old cron-run script.

use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_CONFIG, print};
use crate::config::{Config, FormatKind};
use crate::daemon::Generation;
use crate::evaluation::state::StateWriter;
use crate::metrics::Metrics;
use crate::output::format;
use crate::prometheus::liveness;

pub async fn run(config: Config, format_kind: FormatKind) -> ExitCode {
    let generation = match Generation::build(config, Arc::new(Metrics::new())).await {
        Ok(generation) => generation,
        Err(problems) => {
            eprintln!("cannot run:\n{problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = generation.config.clone();
    // A single run cannot wait for `down_after` probes: one failure counts.
    liveness::probe_all(generation.pair(), config.prometheus.probe_timeout.get(), 1).await;
    generation.read_sources().await;
    let mut cycle = generation.into_cycle();
    let mut state = StateWriter::new(&config.agent.state_dir, config.agent.state_max_age.get());
    cycle.restore(state.restore());
    let snapshot = cycle.run().await;
    let _ = std::fs::create_dir_all(&config.agent.state_dir);
    state.save_now(&cycle.saved_state()).await;
    print(&format::render(format_kind, &snapshot, &Default::default()))
}
