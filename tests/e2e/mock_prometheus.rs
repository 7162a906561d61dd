//! A small mock Prometheus for the faults a real one cannot produce on demand: a 5xx, a body
//! that is not JSON, a body cut short, a body over the agent's size cap, and a server that
//! accepts and never answers (all requests, or queries only). It speaks just enough HTTP/1.1
//! by hand to break it on purpose, on a runtime thread of its own ([`IoThread`]) so that
//! nothing the test does can stall it; dropping it closes every connection.
//!
//! Every body it sends would make the rule true if the agent took it for an answer (a
//! non-empty vector), so a fault that slipped through shows up as a wrong value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use harness::io_thread::IoThread;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the mock answers `/api/v1/query`. `/-/ready` answers 200, except under `Hang`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 503 with an HTML body, as a proxy in front of an overloaded server sends.
    ServerError,
    /// 200 with an HTML login page.
    NotJson,
    /// 200 announcing more bytes than it sends, then the connection closes.
    Truncated,
    /// A valid answer larger than the cap, with its Content-Length.
    OversizedDeclared,
    /// A valid answer larger than the cap, chunked (no length to reject it early).
    OversizedChunked,
    /// Answers probes, but never a query: a server whose query engine is stuck.
    HangQueries,
    /// Accepts every connection, reads the request, never answers (a hung process).
    Hang,
}

/// Bytes of the oversized answers.
pub const OVERSIZED_BYTES: usize = 2 * 1024 * 1024;

#[derive(Default)]
struct Counts {
    fault: Option<Fault>,
    queries: BTreeMap<Fault, usize>,
    probes: usize,
}

pub struct MockPrometheus {
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    /// Its runtime: the listener and every connection end with it.
    _io: IoThread,
}

impl MockPrometheus {
    /// Listens on `ip`, any free port, answering with `fault`.
    pub fn start(ip: std::net::Ipv4Addr, fault: Fault) -> MockPrometheus {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind the mock Prometheus");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("mock address");
        let counts = Arc::new(Mutex::new(Counts {
            fault: Some(fault),
            ..Counts::default()
        }));
        let io = IoThread::spawn("mock-prometheus");
        let counts_in = counts.clone();
        io.handle().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("mock listener");
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, counts_in.clone()));
                }
            }
        });
        MockPrometheus {
            addr,
            counts,
            _io: io,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, fault: Fault) {
        self.lock().fault = Some(fault);
    }

    /// Queries answered (or not) under `fault` so far.
    pub fn queries(&self, fault: Fault) -> usize {
        self.lock().queries.get(&fault).copied().unwrap_or(0)
    }

    pub fn probes(&self) -> usize {
        self.lock().probes
    }
}

/// One connection: one request, one (broken) answer, then close.
async fn serve(mut stream: TcpStream, counts: Arc<Mutex<Counts>>) {
    let Some(path) = read_request(&mut stream).await else {
        return;
    };
    let fault = {
        let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        let fault = counts.fault.unwrap_or(Fault::ServerError);
        if path.starts_with("/api/v1/query") {
            *counts.queries.entry(fault).or_default() += 1;
        } else {
            counts.probes += 1;
        }
        fault
    };
    let is_query = path.starts_with("/api/v1/query");
    if fault == Fault::Hang || (fault == Fault::HangQueries && is_query) {
        // Keep the connection open and silent until the mock (its runtime) is dropped.
        std::future::pending::<()>().await;
    }
    if !is_query {
        let _ = stream
            .write_all(&response("200 OK", "text/plain", b"ready\n"))
            .await;
        return;
    }
    let _ = match fault {
        Fault::ServerError => {
            stream
                .write_all(&response(
                    "503 Service Unavailable",
                    "text/html",
                    b"<html><body>upstream overloaded</body></html>",
                ))
                .await
        }
        Fault::NotJson => {
            stream
                .write_all(&response(
                    "200 OK",
                    "text/html",
                    b"<html><body><form>Sign in</form></body></html>",
                ))
                .await
        }
        Fault::Truncated => {
            let body = true_answer(1);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let cut = &body[..body.len() / 2];
            match stream.write_all(head.as_bytes()).await {
                Ok(()) => stream.write_all(cut).await,
                Err(e) => Err(e),
            }
        }
        Fault::OversizedDeclared => {
            let body = true_answer(OVERSIZED_BYTES);
            stream
                .write_all(&response("200 OK", "application/json", &body))
                .await
        }
        Fault::OversizedChunked => write_chunked(&mut stream, &true_answer(OVERSIZED_BYTES)).await,
        Fault::HangQueries | Fault::Hang => Ok(()),
    };
    let _ = stream.shutdown().await;
}

/// Reads one request (head and body); returns its path.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    head.lines()
        .next()?
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

async fn write_chunked(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await?;
    for piece in body.chunks(64 * 1024) {
        stream
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await?;
        stream.write_all(piece).await?;
        stream.write_all(b"\r\n").await?;
    }
    stream.write_all(b"0\r\n\r\n").await
}

/// A successful, non-empty vector answer of at least `min_bytes` bytes.
fn true_answer(min_bytes: usize) -> Vec<u8> {
    let sample = r#"{"metric":{"instance":"mock:1"},"value":[1700000000,"1"]}"#;
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    body.push_str(sample);
    while body.len() < min_bytes {
        body.push(',');
        body.push_str(sample);
    }
    body.push_str("]}}");
    body.into_bytes()
}
