//! A tokio runtime on a thread of its own, for servers a test runs beside the code under
//! test (the sandbox's fakes and supervision, a mock Prometheus): they keep working whatever
//! the test does with its own runtime (blocking, paused time), and every task, listener and
//! connection goes away when the thread is shut down or dropped.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub struct IoThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Starts the thread, named `name`.
    pub fn spawn(name: &str) -> IoThread {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot build a runtime: {e}"));
                let _ = handle_tx.send(runtime.handle().clone());
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime here drops every task: listeners and connections close.
            })
            .unwrap_or_else(|e| panic!("cannot start a runtime thread: {e}"));
        let handle = handle_rx
            .recv()
            .unwrap_or_else(|e| panic!("a runtime thread died at startup: {e}"));
        IoThread {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the runtime and waits until all its tasks are dropped.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs `future` on the runtime of `handle` and returns its output; a panic in it (a failed
/// expectation of the harness) is re-raised in the caller, i.e. in the test.
pub async fn run_on<F>(handle: &Handle, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle.spawn(future).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the runtime stopped during a call: {e}"),
    }
}
