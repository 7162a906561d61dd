//! External processes of the sandbox (Prometheus, VictoriaMetrics, blackbox_exporter):
//! started with their output in a log file, stopped, hung and resumed by signal, started
//! again, and always killed when the sandbox goes away.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;

use crate::io_thread::run_on;
use crate::process::{ChildProcess, Signal};
use crate::wait::Wait;

/// How long a process may take to answer its readiness URL after being spawned.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long SIGSTOP may take to stop every thread.
const PAUSE_LIMIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

pub struct ManagedProcess {
    name: String,
    program: String,
    args: Vec<String>,
    log_path: PathBuf,
    ready_url: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    process: Option<ChildProcess>,
    paused: bool,
    /// Unix seconds of the last spawn.
    started_at: f64,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ManagedProcess {
    pub fn new(
        name: &str,
        program: &str,
        args: Vec<String>,
        log_path: PathBuf,
        ready_url: String,
    ) -> ManagedProcess {
        ManagedProcess {
            name: name.to_string(),
            program: program.to_string(),
            args,
            log_path,
            ready_url,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log_path, 40)
    }

    /// Unix seconds when the process was last spawned (0 if never).
    pub fn started_at(&self) -> f64 {
        self.lock().started_at
    }

    /// Spawned, not exited and not paused.
    pub fn is_running(&self) -> bool {
        let mut state = self.lock();
        let paused = state.paused;
        state.process.as_mut().is_some_and(ChildProcess::is_running) && !paused
    }

    /// Spawns the process, or resumes it if it is alive.
    fn spawn(&self) {
        let mut state = self.lock();
        if let Some(process) = state.process.as_mut() {
            if process.is_running() {
                process.signal(Signal::CONT);
                state.paused = false;
                return;
            }
            // It died on its own: start it again.
            state.process = None;
        }
        let header = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .and_then(|mut log| {
                writeln!(
                    log,
                    "=== sandbox: starting {} {}",
                    self.program,
                    self.args.join(" ")
                )
            });
        if let Err(e) = header {
            panic!("cannot write the log {}: {e}", self.log_path.display());
        }
        // setpriv makes the kernel kill the process when the thread that spawned it (the
        // sandbox's I/O thread) dies, so a killed test run leaves no process behind.
        let mut command = if Path::new("/usr/bin/setpriv").exists() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--", &self.program]);
            c
        } else {
            Command::new(&self.program)
        };
        command.args(&self.args);
        // Before the spawn: every sample the process writes is newer.
        let started_at = unix_now();
        let name = format!("{} (is its Debian package installed?)", self.name);
        state.process = Some(ChildProcess::spawn(&name, command, &self.log_path));
        state.paused = false;
        state.started_at = started_at;
    }

    /// Spawns the process (or resumes it if it is alive) and waits until its readiness
    /// URL answers 200.
    pub async fn start(&self, http: &reqwest::Client) {
        self.spawn();
        let what = format!("{} to become ready at {}", self.name, self.ready_url);
        let log = || format!("log {}:\n{}", self.log_path.display(), self.log_tail());
        Wait::new(READY_LIMIT, &what)
            .every(POLL)
            .on_timeout(&log)
            .until_async(|| async {
                let exited = self
                    .lock()
                    .process
                    .as_mut()
                    .and_then(ChildProcess::try_exit);
                if let Some(status) = exited {
                    panic!("{} exited during startup ({status}); {}", self.name, log());
                }
                let answer = http
                    .get(&self.ready_url)
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                answer.is_ok_and(|r| r.status().is_success()).then_some(())
            })
            .await;
    }

    /// SIGTERM, then SIGKILL if the process has not exited within [`STOP_LIMIT`].
    pub async fn stop(&self) {
        let (mut process, paused) = {
            let mut state = self.lock();
            match state.process.take() {
                Some(process) => (process, std::mem::take(&mut state.paused)),
                None => return,
            }
        };
        if process.is_running() {
            process.signal(Signal::TERM);
            if paused {
                process.signal(Signal::CONT);
            }
        }
        let what = format!("{} to exit after SIGTERM", self.name);
        // Dropping the process kills it if SIGTERM was not enough.
        let _ = Wait::new(STOP_LIMIT, &what)
            .every(POLL)
            .try_until_async(|| std::future::ready(process.try_exit()))
            .await;
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn pause(&self) {
        let mut state = self.lock();
        if let Some(process) = state.process.as_mut() {
            if process.is_running() {
                process.signal(Signal::STOP);
                wait_stopped(process.id());
            }
            state.paused = true;
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        let mut state = self.lock();
        if let Some(process) = state.process.as_mut() {
            if process.is_running() {
                process.signal(Signal::CONT);
            }
            state.paused = false;
        }
    }

    /// SIGKILL and reap, synchronously: for Drop, including during a panic.
    pub fn kill(&self) {
        let mut state = self.lock();
        state.process = None;
        state.paused = false;
    }
}

/// [`ManagedProcess::start`] on the sandbox runtime `io`, from a test's.
pub async fn start_on(io: &Handle, process: &Arc<ManagedProcess>, http: &reqwest::Client) {
    let (process, http) = (process.clone(), http.clone());
    run_on(io, async move { process.start(&http).await }).await;
}

/// [`ManagedProcess::stop`] on the sandbox runtime `io`, from a test's.
pub async fn stop_on(io: &Handle, process: &Arc<ManagedProcess>) {
    let process = process.clone();
    run_on(io, async move { process.stop().await }).await;
}

/// Waits (bounded) until every thread of `pid` is stopped: SIGSTOP takes effect when the
/// kernel next schedules each thread, not when `kill` returns, and until then a server
/// may still answer.
fn wait_stopped(pid: u32) {
    let all_stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Some(());
        };
        tasks
            .filter_map(Result::ok)
            .all(|task| {
                std::fs::read_to_string(task.path().join("stat"))
                    // The state follows the command name, which is in parentheses.
                    .map(|stat| {
                        stat.rsplit_once(')')
                            .and_then(|(_, rest)| rest.split_whitespace().next())
                            .is_some_and(|state| state == "T" || state == "t")
                    })
                    .unwrap_or(true)
            })
            .then_some(())
    };
    // A thread that never stops shows in the test as a server that still answers.
    let _ = Wait::new(PAUSE_LIMIT, "SIGSTOP to stop every thread")
        .every(Duration::from_millis(5))
        .try_blocking(all_stopped);
}
