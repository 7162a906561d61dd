//! Command-line definitions (SPEC §10). Only clap types live here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{DEFAULT_PATH, DEFAULT_SNAPSHOT_PATH, FormatKind};

#[derive(Debug, Parser)]
#[command(
    name = "tidb-host-agent",
    version,
    about = "Evaluates TiDB's alert rules for this host against the Prometheus pair and writes one 0/1 value per alert key"
)]
pub struct Cli {
    /// Configuration file (also accepted after the subcommand).
    #[arg(short, long, env = "TIDB_HOST_AGENT_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run(ConfigArg),
    /// Validate the configuration and rules; exit 78 when invalid.
    Check {
        /// Also probe every server and run every query once.
        #[arg(long)]
        connect: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print each key with its scope, `for` and level, and the exact PromQL it sends.
    Explain {
        /// Host address to scope the queries to, instead of this host's; may repeat.
        #[arg(long = "address", value_name = "A")]
        addresses: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run one cycle, print the snapshot, exit (a drop-in for the old cron script).
    Once {
        /// Output format.
        #[arg(long, value_enum, default_value = "agent")]
        format: FormatArg,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the Alertmanager pair's merged current alerts, once.
    Alerts {
        #[command(flatten)]
        args: crate::forward::cli::AlertsArgs,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ping targets once, fping-style (needs no configuration).
    Ping(crate::ping::cli::PingArgs),
    /// Print the running daemon's latest snapshot: each key's value, state, since and
    /// level, and why each key at 1 or pending is so. Exit 0 when no key is 1, 1 when
    /// some is, 3 when the daemon is not running or its snapshot is stale.
    Status {
        /// Print the snapshot's json document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        snapshot: SnapshotArg,
    },
    /// What the Zabbix agent 2 include calls: discovery, one key's value, the agent's
    /// health (reads the snapshot, like `status`).
    Zabbix {
        #[command(subcommand)]
        query: crate::commands::zabbix::ZabbixQuery,
        #[command(flatten)]
        snapshot: SnapshotArg,
    },
}

/// Where the running daemon publishes its snapshot (`[agent] snapshot_file`); read
/// without the configuration, which the Zabbix agent's user cannot read.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArg {
    /// The published snapshot.
    #[arg(
        long = "snapshot",
        value_name = "PATH",
        env = "TIDB_HOST_AGENT_SNAPSHOT",
        default_value = DEFAULT_SNAPSHOT_PATH
    )]
    pub path: PathBuf,
}

/// `-c PATH` after a subcommand, for operators who type `check -c FILE`. `ping` has
/// its own `-c` (the echo count), like fping and ping.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArg {
    /// Configuration file (overrides the one before the subcommand).
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Command {
    /// The config path given after the subcommand, if any.
    pub fn config_override(&self) -> Option<&PathBuf> {
        match self {
            Command::Run(c)
            | Command::Check { config: c, .. }
            | Command::Explain { config: c, .. }
            | Command::Once { config: c, .. }
            | Command::Alerts { config: c, .. } => c.config.as_ref(),
            Command::Ping(_) | Command::Status { .. } | Command::Zabbix { .. } => None,
        }
    }
}

/// `--format` values, mirroring the config's `format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Agent,
    Plain,
    Json,
    Prometheus,
    Falcon,
}

impl From<FormatArg> for FormatKind {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Agent => FormatKind::Agent,
            FormatArg::Plain => FormatKind::Plain,
            FormatArg::Json => FormatKind::Json,
            FormatArg::Prometheus => FormatKind::Prometheus,
            FormatArg::Falcon => FormatKind::Falcon,
        }
    }
}
