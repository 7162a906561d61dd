//! Ping targets: what the operator wrote (an address or a name) and the address it
//! resolved to. Names are resolved once, before a round, so that DNS never sits inside
//! the timed part.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use futures::StreamExt;

/// Name lookups run at once; each takes a blocking thread.
const RESOLVE_CONCURRENCY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve ping target `{name}`: {source}")]
    Lookup { name: String, source: io::Error },
    #[error("ping target `{name}` resolves to no address")]
    NoAddress { name: String },
}

/// One host to ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As configured or typed: an address or a name.
    pub name: String,
    pub address: IpAddr,
}

impl Target {
    pub fn from_address(address: IpAddr) -> Self {
        Self {
            name: address.to_string(),
            address,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.address.to_string() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} ({})", self.name, self.address)
        }
    }
}

/// Reads an address literal: `10.0.1.1`, `fd00::1`, `[fd00::1]`, or one with a port as
/// it appears in an `instance` label (`10.0.1.1:9100`, `[fd00::1]:9100`).
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

/// Resolves one target; an address literal needs no lookup.
pub async fn resolve(name: &str) -> Result<Target, ResolveError> {
    if let Some(address) = parse_address(name) {
        return Ok(Target {
            name: name.to_owned(),
            address,
        });
    }
    let mut found =
        tokio::net::lookup_host((name, 0))
            .await
            .map_err(|source| ResolveError::Lookup {
                name: name.to_owned(),
                source,
            })?;
    match found.next() {
        Some(socket) => Ok(Target {
            name: name.to_owned(),
            address: socket.ip(),
        }),
        None => Err(ResolveError::NoAddress {
            name: name.to_owned(),
        }),
    }
}

/// Resolves every name, keeping the given order. Blank names are skipped, and a
/// second name for an address already listed is dropped: one address is pinged once
/// per round (two pingers on one address would claim the same replies).
pub async fn resolve_all(names: &[String]) -> (Vec<Target>, Vec<ResolveError>) {
    // Owned names, so that the future stays `Send` for tokio::spawn.
    let names: Vec<String> = names
        .iter()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    let results: Vec<Result<Target, ResolveError>> = futures::stream::iter(names)
        .map(|name| async move { resolve(&name).await })
        .buffered(RESOLVE_CONCURRENCY)
        .collect()
        .await;

    let mut seen = HashSet::new();
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(target) => {
                if seen.insert(target.address) {
                    targets.push(target);
                }
            }
            Err(error) => errors.push(error),
        }
    }
    (targets, errors)
}

/// Reads a target list as fping does: one target per line; blank lines and `#`
/// comments are ignored.
pub fn parse_target_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_with_and_without_ports() {
        let v4: IpAddr = "10.0.1.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_address("10.0.1.1"), Some(v4));
        assert_eq!(parse_address(" 10.0.1.1:9100 "), Some(v4));
        assert_eq!(parse_address("fd00::1"), Some(v6));
        assert_eq!(parse_address("[fd00::1]"), Some(v6));
        assert_eq!(parse_address("[fd00::1]:9100"), Some(v6));
        assert_eq!(parse_address("tikv-1"), None);
        assert_eq!(parse_address("10.0.1"), None);
    }

    #[test]
    fn target_list_skips_comments_and_blanks() {
        let text = "# hosts\n127.0.0.1\n\n  127.0.0.2  # second\n#127.0.0.3\n";
        assert_eq!(parse_target_list(text), vec!["127.0.0.1", "127.0.0.2"]);
    }

    #[test]
    fn display_shows_the_address_only_when_it_differs() {
        let address: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(Target::from_address(address).to_string(), "127.0.0.1");
        let named = Target {
            name: "localhost".into(),
            address,
        };
        assert_eq!(named.to_string(), "localhost (127.0.0.1)");
    }

    #[tokio::test]
    async fn resolve_all_keeps_order_and_drops_duplicate_addresses() {
        let names: Vec<String> = ["127.0.0.3", "127.0.0.1", " ", "127.0.0.3:80", "127.0.0.2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (targets, errors) = resolve_all(&names).await;
        assert!(errors.is_empty());
        let addresses: Vec<String> = targets.iter().map(|t| t.address.to_string()).collect();
        assert_eq!(addresses, ["127.0.0.3", "127.0.0.1", "127.0.0.2"]);
    }
}
