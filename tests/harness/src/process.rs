//! A child process that a test started: stderr in a log file, signals, bounded
//! waits for its exit, and SIGKILL when dropped, also when the test panics.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process};

use crate::wait::Wait;

/// A running child process; killed and reaped on drop.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with no stdin, no stdout (a daemon's stdout sink must not mix into
    /// its log) and stderr appended to `log`. `name` is for failure messages.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> ChildProcess {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open the log {}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        ChildProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// The process id, 0 once it was reaped.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Not exited (a paused process counts as running).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The exit status if the process has exited; it is reaped then.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Sends `signal`; panics if the process has already exited.
    pub fn signal(&mut self, signal: Signal) {
        let Some(child) = self.child.as_mut() else {
            panic!("{} has exited: cannot send it {signal:?}", self.name);
        };
        // Once reaped, the pid may belong to someone else: signal live children only.
        if let Ok(None) = child.try_wait() {
            if let Err(e) = kill_process(Pid::from_child(child), signal) {
                panic!("cannot send {signal:?} to {}: {e}", self.name);
            }
        }
    }

    /// Waits (blocking) for the exit, at most `limit`; `None` if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        let what = format!("{} to exit", self.name);
        Wait::new(limit, &what)
            .every(Duration::from_millis(20))
            .try_blocking(|| self.try_exit())
    }

    /// SIGKILL and reap; the exit status, or `None` if it had already been reaped.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log, or "" if it cannot be read.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether process `pid` is gone (or a zombie nobody needs to reap any more).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}
