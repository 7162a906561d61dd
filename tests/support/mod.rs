//! Running the agent binary in tests: a temp dir with a config, the child process
//! killed on drop, and bounded waits. Shared by several test files; each uses a part.
#![allow(dead_code)] // Each test binary uses its own subset.
#![allow(clippy::expect_used, clippy::unwrap_used)] // Test scaffolding: failing loudly is the point.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Log at the config's `[log] level`; otherwise `TIDB_HOST_AGENT_LOG=debug`
    /// overrides it, so that a failing test's log says everything.
    pub log_from_config: bool,
}

impl Agent {
    /// Writes `config` (with `{dir}` replaced by the temp dir) and starts `run`.
    pub fn start(config: &str) -> Agent {
        Self::start_with(config, false)
    }

    /// With `as_nobody`, a root test runs the agent as uid/gid 65534 (root ignores
    /// permission bits, which some tests rely on).
    pub fn start_with(config: &str, as_nobody: bool) -> Agent {
        let mut agent = Self::prepare(config, as_nobody);
        agent.spawn(as_nobody && is_root());
        agent
    }

    /// The temp dir and config of [`Agent::start_with`], without starting the agent.
    pub fn prepare(config: &str, as_nobody: bool) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        if as_nobody {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("open the temp dir to nobody");
        }
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            config.replace("{dir}", &dir.path().display().to_string()),
        )
        .expect("write config");
        let log = dir.path().join("agent.log");
        Agent {
            child: None,
            dir,
            config: config_path,
            log,
            log_from_config: false,
        }
    }

    pub fn spawn(&mut self, as_nobody: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        cmd.arg("-c")
            .arg(&self.config)
            .arg("run")
            .env_remove("TIDB_HOST_AGENT_CONFIG")
            .env("TIDB_HOST_AGENT_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if self.log_from_config {
            cmd.env_remove("TIDB_HOST_AGENT_LOG");
        }
        self.child = Some(cmd.spawn().expect("start the agent"));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, at most `limit`; panics with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
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

/// A plain HTTP GET over loopback, returning the body (no client dependency needed).
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// A free loopback TCP port on `ip`.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Kills a helper process on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
