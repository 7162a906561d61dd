//! External processes of the sandbox (Prometheus, VictoriaMetrics, blackbox_exporter):
//! started with their output in a log file, stopped, hung and resumed by signal, and always
//! killed when the sandbox goes away.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{Pid, Signal, kill_process};

/// How long a process may take to answer its readiness URL after being spawned.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

pub struct ManagedProcess {
    pub name: String,
    program: String,
    args: Vec<String>,
    log_path: PathBuf,
    ready_url: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    child: Option<Child>,
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

/// The last `lines` lines of a log file, for panic messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
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

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log_path, 40)
    }

    /// Unix seconds when the process was last spawned (0 if never).
    pub fn started_at(&self) -> f64 {
        self.lock().started_at
    }

    /// Spawned, not exited and not paused.
    pub fn is_running(&self) -> bool {
        let mut state = self.lock();
        let paused = state.paused;
        match state.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => !paused,
            _ => false,
        }
    }

    fn open_log(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", self.log_path.display()))
    }

    /// Spawns the process, or resumes it if it is alive.
    fn spawn(&self) {
        let mut state = self.lock();
        if let Some(child) = state.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                Self::signal(child, Signal::CONT);
                state.paused = false;
                return;
            }
            // It died on its own: start it again.
            state.child = None;
        }
        let mut log = self.open_log();
        let _ = writeln!(
            log,
            "=== sandbox: starting {} {}",
            self.program,
            self.args.join(" ")
        );
        let stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate log handle: {e}"));
        // setpriv makes the kernel kill the process when the thread that spawned it (the
        // sandbox's I/O thread) dies, so a killed test run leaves no process behind.
        let mut command = if Path::new("/usr/bin/setpriv").exists() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--", &self.program]);
            c
        } else {
            Command::new(&self.program)
        };
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        // Before the spawn: every sample the process writes is newer.
        let started_at = unix_now();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({}): {e}; is its Debian package installed?",
                self.name, self.program
            )
        });
        state.child = Some(child);
        state.paused = false;
        state.started_at = started_at;
    }

    /// Spawns the process (or resumes it if it is alive) and waits until its readiness
    /// URL answers 200.
    pub async fn start(&self, http: &reqwest::Client) {
        self.spawn();
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Some(status) = self.lock().child.as_mut().and_then(|c| c.try_wait().ok()?) {
                panic!(
                    "{} exited during startup ({status}); log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            let answer = http
                .get(&self.ready_url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not become ready at {} within {READY_LIMIT:?}; log {}:\n{}",
                    self.name,
                    self.ready_url,
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn signal(child: &mut Child, signal: Signal) {
        // Once reaped, the pid may belong to someone else: signal live children only.
        if let Ok(None) = child.try_wait() {
            let _ = kill_process(Pid::from_child(child), signal);
        }
    }

    /// SIGTERM, then SIGKILL if the process has not exited within [`STOP_LIMIT`].
    pub async fn stop(&self) {
        let (mut child, paused) = {
            let mut state = self.lock();
            match state.child.take() {
                Some(child) => (child, std::mem::take(&mut state.paused)),
                None => return,
            }
        };
        Self::signal(&mut child, Signal::TERM);
        if paused {
            Self::signal(&mut child, Signal::CONT);
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn pause(&self) {
        let mut state = self.lock();
        if let Some(child) = state.child.as_mut() {
            let pid = child.id();
            Self::signal(child, Signal::STOP);
            state.paused = true;
            wait_stopped(pid);
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        let mut state = self.lock();
        if let Some(child) = state.child.as_mut() {
            Self::signal(child, Signal::CONT);
            state.paused = false;
        }
    }

    /// SIGKILL and reap, synchronously: for Drop, including during a panic.
    pub fn kill(&self) {
        let mut state = self.lock();
        if let Some(mut child) = state.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        state.paused = false;
    }
}

/// Waits (bounded) until every thread of `pid` is stopped: SIGSTOP takes effect when the
/// kernel next schedules each thread, not when `kill` returns, and until then a server
/// may still answer.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        let all_stopped = tasks.filter_map(Result::ok).all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                // The state follows the command name, which is in parentheses.
                .map(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .is_some_and(|state| state == "T" || state == "t")
                })
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
