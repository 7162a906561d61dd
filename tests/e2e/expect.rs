//! What each host must report, computed from the catalog's labels (`component`, `scope`)
//! and the sandbox topology: the keys of the components that run on the host, the
//! prometheus key and `Agent_degraded` everywhere, and the cluster keys on the hosts that
//! run a server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use harness::catalog::{catalog, degraded_key, prometheus_key};
use harness::sandbox::{Host, Sandbox, Server};

/// A key's value and its `state` in the json format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub value: u8,
    pub state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ok,
    Pending,
    Firing,
    Unknown,
}

impl State {
    pub fn parse(text: &str) -> Option<State> {
        match text {
            "ok" => Some(State::Ok),
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "unknown" => Some(State::Unknown),
            _ => None,
        }
    }
}

/// Every key of one host's snapshot with what it must read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected(pub BTreeMap<String, Reading>);

impl Expected {
    /// Sets `key`, which must already be expected on this host (so a typo cannot add a key).
    pub fn with(mut self, key: &str, value: u8, state: State) -> Expected {
        match self.0.get_mut(key) {
            Some(reading) => *reading = Reading { value, state },
            None => panic!("{key} is not a key of this host: {:?}", self.0.keys()),
        }
        self
    }

    /// `key` is true and answered: value 1, firing (every test `for` is 0s unless said).
    pub fn firing(self, key: &str) -> Expected {
        self.with(key, 1, State::Firing)
    }

    /// Every rule key unknown (no server answers): keys that were 0 read `zero_to`, keys
    /// that were 1 read `one_to` (`on_no_data`); the prometheus key stays as it is, and
    /// `Agent_degraded` reads 1 (once they are unknown for 3 cycles).
    pub fn unknown(mut self, zero_to: u8, one_to: u8) -> Expected {
        let prometheus = prometheus_key();
        let degraded = degraded_key();
        for (key, reading) in self.0.iter_mut() {
            if *key == degraded {
                *reading = Reading {
                    value: 1,
                    state: State::Firing,
                };
            } else if *key != prometheus {
                let value = if reading.value == 1 { one_to } else { zero_to };
                *reading = Reading {
                    value,
                    state: State::Unknown,
                };
            }
        }
        self
    }

    pub fn keys(&self) -> BTreeSet<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    pub fn values(&self) -> BTreeMap<&str, u8> {
        self.0.iter().map(|(k, r)| (k.as_str(), r.value)).collect()
    }
}

/// The differences between what a host reports and what it must, for failure messages.
pub fn diff(expected: &Expected, seen: &BTreeMap<String, Reading>) -> String {
    let mut out = Vec::new();
    for (key, want) in &expected.0 {
        match seen.get(key) {
            None => out.push(format!("missing {key} (want {want})")),
            Some(got) if got != want => out.push(format!("{key}: got {got}, want {want}")),
            Some(_) => {}
        }
    }
    for (key, got) in seen {
        if !expected.0.contains_key(key) {
            out.push(format!("unexpected {key} = {got}"));
        }
    }
    out.join("; ")
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.value, self.state)
    }
}

/// The components running on `host`: its fakes, and the blackbox_exporter every host has.
pub fn components(sb: &Sandbox, host: Host) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = sb
        .fakes()
        .iter()
        .filter(|f| f.host() == host)
        .map(|f| f.component().name().to_string())
        .collect();
    // Panics if the host has none.
    let _ = sb.blackbox(host);
    out.insert("blackbox_exporter".to_string());
    out
}

/// SPEC §4 under `auto`: a host is a cluster reporter when it runs one of the servers.
pub fn is_cluster_reporter(host: Host) -> bool {
    Server::ALL.iter().any(|s| s.host() == host)
}

/// The keys of a host running `components`, all 0 and answered.
pub fn healthy_for(components: &BTreeSet<String>, cluster_reporter: bool) -> Expected {
    let keys = catalog().iter().filter(|r| match r.scope.as_str() {
        "host" => components.contains(&r.component),
        "cluster" => cluster_reporter,
        "computed" => true,
        other => panic!("{}: unknown scope {other}", r.key),
    });
    let ok = Reading {
        value: 0,
        state: State::Ok,
    };
    Expected(
        keys.map(|r| (r.key.clone(), ok))
            .chain(std::iter::once((degraded_key(), ok)))
            .collect(),
    )
}

/// What `host` reports while the whole sandbox is healthy.
pub fn healthy(sb: &Sandbox, host: Host) -> Expected {
    healthy_for(&components(sb, host), is_cluster_reporter(host))
}
