//! The agent binary run by a test: a temp dir with its config, the process killed on drop,
//! and its log. The binary's path comes from the test (`env!("CARGO_BIN_EXE_tidb-host-agent")`
//! is set only where cargo builds the tests).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::process::{ChildProcess, Signal};

/// `TIDB_HOST_AGENT_LOG` of an agent under test: everything, so that a failing test's log
/// says everything.
pub const DEBUG_LOG: &str = "debug";

/// `program -c config run`, logging at `log_filter` (or at the config's `[log] level`).
pub fn run_command(program: &str, config: &Path, log_filter: Option<&str>) -> Command {
    let mut command = Command::new(program);
    run_args(&mut command, config, log_filter);
    command
}

fn run_args(command: &mut Command, config: &Path, log_filter: Option<&str>) {
    command
        .arg("-c")
        .arg(config)
        .arg("run")
        .env_remove("TIDB_HOST_AGENT_CONFIG")
        .env_remove("TIDB_HOST_AGENT_LOG");
    if let Some(filter) = log_filter {
        command.env("TIDB_HOST_AGENT_LOG", filter);
    }
}

/// A running agent in a temp dir of its own; killed when dropped.
pub struct Agent {
    program: String,
    process: Option<ChildProcess>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    /// `TIDB_HOST_AGENT_LOG` at the next [`Agent::spawn`]; `None` logs at the config's
    /// `[log] level`.
    pub log_filter: Option<&'static str>,
}

impl Agent {
    /// Writes `config` (with `{dir}` replaced by the temp dir) and starts `program … run`.
    pub fn start(program: &str, config: &str) -> Agent {
        Agent::start_with(program, config, false)
    }

    /// With `as_nobody`, a root test runs the agent as uid/gid 65534 (root ignores
    /// permission bits, which some tests rely on).
    pub fn start_with(program: &str, config: &str, as_nobody: bool) -> Agent {
        let mut agent = Agent::prepare(program, config, as_nobody);
        agent.spawn(as_nobody && crate::privilege::is_root());
        agent
    }

    /// The temp dir and config of [`Agent::start_with`], without starting the agent.
    pub fn prepare(program: &str, config: &str, as_nobody: bool) -> Agent {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        if as_nobody {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .unwrap_or_else(|e| panic!("cannot open the temp dir to nobody: {e}"));
        }
        let config_path = dir.path().join("config.toml");
        let text = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&config_path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let log = dir.path().join("agent.log");
        Agent {
            program: program.to_string(),
            process: None,
            dir,
            config: config_path,
            log,
            log_filter: Some(DEBUG_LOG),
        }
    }

    /// Starts the agent (again) on the same config, state and log.
    pub fn spawn(&mut self, as_nobody: bool) {
        if as_nobody {
            self.spawn_under(&[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]);
        } else {
            self.spawn_under(&[]);
        }
    }

    /// Starts the agent under `wrapper` (a program and its arguments, which then runs
    /// the agent: `prlimit --nofile=64:64 --`, say).
    pub fn spawn_under(&mut self, wrapper: &[&str]) {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        run_args(&mut command, &self.config, self.log_filter);
        self.process = Some(ChildProcess::spawn("the agent", command, &self.log));
    }

    /// A file in the agent's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The process id, 0 when not running.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, ChildProcess::id)
    }

    pub fn signal(&mut self, signal: Signal) {
        self.running().signal(signal);
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.process.as_mut()?.wait_exit(limit)
    }

    /// The exit status if the agent has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.running().try_exit()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> &mut ChildProcess {
        match self.process.as_mut() {
            Some(process) => process,
            None => panic!("the agent was never started"),
        }
    }
}

/// Parses the `plain` format into (key, value) pairs.
pub fn parse_plain(text: &str) -> Vec<(String, u8)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A daemon config for tests that are not about Prometheus: the one configured server
/// refuses connections, so every query and probe fails at once and the snapshot holds
/// `Prometheus_is_down = 1` beside tikv's keys at 0 (`on_no_data = "zero"`). `{dir}` is
/// left for the caller (or [`Agent::start`]) to fill in; `rest` adds sections, outputs
/// among them.
pub fn base_config(interval: &str, metrics_port: u16, rest: &str) -> String {
    format!(
        r#"
[agent]
interval = "{interval}"
state_dir = "{{dir}}/state"

[host]
addresses = ["127.0.0.1"]
components = ["tikv"]
cluster_reporter = false

[prometheus]
# Nothing listens here: every query and probe is refused at once.
servers = ["http://127.0.0.1:1"]
down_after = 1
on_no_data = "zero"

[metrics]
listen = "127.0.0.1:{metrics_port}"

{rest}
"#
    )
}

/// One file sink in the plain format, `{dir}/alerts.txt`.
pub const PLAIN_FILE_OUTPUT: &str = r#"
[[output]]
kind = "file"
format = "plain"
path = "{dir}/alerts.txt"
"#;

/// The sum of the agent's self-metric samples on `metrics_port` whose line starts with
/// `prefix` and holds every one of `labels` (`name="value"` pairs); 0 when it cannot be
/// scraped.
pub fn metric_sum(metrics_port: u16, prefix: &str, labels: &[(&str, &str)]) -> f64 {
    let needles: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    crate::http::http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Successful (`ok`) or failed (`error`) writes of the sink named `sink`.
pub fn sink_writes(metrics_port: u16, sink: &str, result: &str) -> f64 {
    metric_sum(
        metrics_port,
        "tidb_host_agent_output_writes_total",
        &[("sink", sink), ("result", result)],
    )
}
