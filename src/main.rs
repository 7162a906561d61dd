//! CLI → logging → config → app; exit codes of SPEC §10.

use std::process::ExitCode;

use clap::Parser;
use tidb_host_agent::cli::{Cli, Command};
use tidb_host_agent::commands::{self, EXIT_RUNTIME, EXIT_USAGE};
use tidb_host_agent::config::Purpose;
use tidb_host_agent::daemon;
use tidb_host_agent::lifecycle::logging;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let command = cli.command.unwrap_or(Command::Run(Default::default()));
    // Before the runtime starts any thread: forward commands must not inherit CAP_NET_RAW.
    tidb_host_agent::lifecycle::capabilities::keep_ambient_capabilities_from_children();
    // The daemon waits on the network nearly all the time: one thread carries it, with less
    // memory and fewer wake-ups than a pool (bench/REPORT.md). The one-shot ping keeps two
    // workers to take the replies of thousands of targets at once.
    let runtime = match &command {
        Command::Ping(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // One-shot commands that need no configuration.
    let command = match command {
        Command::Ping(args) => {
            logging::init_stderr();
            return runtime.block_on(tidb_host_agent::ping::cli::main(args));
        }
        // Read the daemon's snapshot, not the config (Zabbix's user cannot read it).
        Command::Status { json, snapshot } => return commands::status::run(&snapshot.path, json),
        Command::Zabbix { query, snapshot } => {
            return commands::zabbix::run(&snapshot.path, &query);
        }
        other => other,
    };
    let path = command.config_override().cloned().unwrap_or(cli.config);
    // `once`, `explain` and `alerts` print to stdout and need no sink.
    let purpose = match command {
        Command::Run(_) | Command::Check { .. } => Purpose::Daemon,
        _ => Purpose::OneShot,
    };
    let config = match commands::load_config(&path, purpose) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match command {
        Command::Run(_) => {
            let _guard = logging::init(&config.log);
            tidb_host_agent::lifecycle::limits::raise_open_files();
            runtime.block_on(daemon::run(path, config))
        }
        Command::Check { connect, .. } => {
            logging::init_stderr();
            runtime.block_on(commands::check::run(&path, config, connect))
        }
        Command::Explain { addresses, .. } => commands::explain::run(&path, &config, &addresses),
        Command::Once { format, .. } => {
            logging::init_stderr();
            runtime.block_on(commands::once::run(config, format.into()))
        }
        Command::Alerts { args, .. } => {
            logging::init_stderr();
            runtime.block_on(tidb_host_agent::forward::cli::main(&config, args))
        }
        // Handled above.
        Command::Ping(_) | Command::Status { .. } | Command::Zabbix { .. } => {
            ExitCode::from(EXIT_USAGE)
        }
    }
}
