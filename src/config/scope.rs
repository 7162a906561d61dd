//! Where a rule is evaluated (SPEC §3, §4): a rule label and an override, read the same
//! way in both.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// Where a rule is evaluated (SPEC §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Rewritten with the host matcher; evaluated on every host running the component.
    Host,
    /// Evaluated unmodified, only on cluster-reporter hosts.
    Cluster,
    /// Not PromQL: the daemon computes the value itself (`Prometheus_is_down`, SPEC §6).
    Computed,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Host => "host",
            Scope::Cluster => "cluster",
            Scope::Computed => "computed",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "host" => Ok(Scope::Host),
            "cluster" => Ok(Scope::Cluster),
            "computed" => Ok(Scope::Computed),
            other => Err(format!("unknown scope `{other}`; use `host` or `cluster`")),
        }
    }
}
