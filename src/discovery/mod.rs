//! What this host is: its addresses ([`addresses`]), the TiDB components running on it
//! ([`components`], [`detector`]), its exact label values in the pair ([`instances`]),
//! and the hosts to ping ([`ping_targets`]).

pub mod addresses;
pub mod components;
pub mod detector;
pub mod instances;
pub mod ping_targets;

pub use detector::ComponentDetector;
