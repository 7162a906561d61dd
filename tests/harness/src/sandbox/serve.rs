//! The HTTP side of the fake exporters (`fake.rs` for the sandbox, `fleet.rs` for the fleet
//! bench): a listener, and one accept loop that serves every connection with a `respond`
//! function until cancelled.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Answers one request.
pub type Respond = dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync;

/// A listener on `addr` for the current runtime.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = StdListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serves every connection to `listener` with `respond`, each on a task of `tracker`,
/// until `cancel`.
pub async fn accept_loop(
    listener: TcpListener,
    respond: Arc<Respond>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracker.spawn(serve(stream, respond.clone(), cancel.clone()));
                }
                // Out of file descriptors or a reset before accept: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn serve(stream: TcpStream, respond: Arc<Respond>, cancel: CancellationToken) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    // Dropping the connection closes it: a stopped fake keeps no keep-alive scrape open.
    tokio::select! {
        _ = connection => {}
        () = cancel.cancelled() => {}
    }
}
