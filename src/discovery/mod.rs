//! What this host is: its addresses ([`addresses`]) and the TiDB components running on
//! it ([`components`]).

pub mod addresses;
pub mod components;
