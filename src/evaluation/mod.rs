//! The cycle: evaluate the host's rules on the pair ([`Evaluator`]), run them through the
//! `for` state machine ([`ForState`]), assemble the snapshot ([`HostCycle`]), and keep the
//! state file ([`state`]).

pub mod evaluator;
pub mod for_state;
pub mod host_cycle;
pub mod sources;
pub mod state;

pub use evaluator::Evaluator;
pub use for_state::{ForState, Observation};
pub use host_cycle::HostCycle;
