//! The Prometheus side: one server's client ([`server`]), the HA pair with its
//! preference and modes ([`pair`]), and the liveness probe ([`liveness`]).

pub mod alerts;
pub mod batch;
pub mod liveness;
pub mod pair;
pub mod server;

pub use pair::{BatchVerdict, PrometheusPair, Verdict};
pub use server::{QueryAnswer, QueryError, Server, ServerError};

/// A Prometheus that cannot answer, for the timer tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::PrometheusPair;
    use crate::config::{PrometheusConfig, ServerConfig};
    use crate::metrics::Metrics;

    /// A server that accepts connections (the kernel's backlog does) and never answers.
    pub fn hung_server() -> (std::net::TcpListener, String) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        (listener, url)
    }

    /// A pair of the one server at `url`, with a 5 s query timeout.
    pub async fn pair_of(url: &str) -> Arc<PrometheusPair> {
        let config = PrometheusConfig {
            servers: vec![ServerConfig::from_url(url)],
            timeout: crate::config::Duration::from_secs(5),
            ..PrometheusConfig::default()
        };
        match PrometheusPair::new(&config, &HashSet::new(), Arc::new(Metrics::new())).await {
            Ok(pair) => Arc::new(pair),
            Err(e) => panic!("{e:?}"),
        }
    }
}
