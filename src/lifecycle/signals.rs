//! SIGTERM/SIGINT end the daemon; SIGHUP asks for a reload.

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Reload,
}

/// Installs the handlers. Termination cancels `shutdown`; SIGHUP is sent on the channel.
pub fn install(shutdown: CancellationToken) -> std::io::Result<mpsc::Receiver<Signal>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => {
                    let _ = tx.try_send(Signal::Reload);
                }
                _ => {
                    tracing::info!(signal, "termination requested");
                    shutdown.cancel();
                }
            }
        }
    });
    Ok(rx)
}
