//! Plain HTTP for the tests: a GET by hand (to read a daemon's self-metrics without a client
//! of its own), and the client the harness queries its servers with.

use std::io::{Read, Write};
use std::time::Duration;

/// A plain HTTP/1.0 GET over loopback; the body, or `None` if anything fails.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The harness's HTTP client: no proxy from the environment ever sees test traffic.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("cannot build the harness HTTP client: {e}"))
}
