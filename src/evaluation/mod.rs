//! The cycle: evaluate the host's rules on the pair, run them through the `for` state
//! machine, and build the snapshot entries.

pub mod cycle;
pub mod for_state;
pub mod state;

pub use cycle::{Evaluator, PlannedRule, RuleScope};
pub use for_state::{ForState, Observation};
