//! The Prometheus side: one server's client ([`server`]), the HA pair with its
//! preference and modes ([`pair`]), and the liveness probe ([`liveness`]).

pub mod batch;
pub mod liveness;
pub mod pair;
pub mod server;

pub use pair::{BatchVerdict, PrometheusPair, Verdict};
pub use server::{QueryAnswer, QueryError, Server, ServerError};
