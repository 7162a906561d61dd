//! This host's addresses: configured, or every non-loopback interface address plus the
//! host name (SPEC §3).

use std::collections::HashSet;
use std::net::IpAddr;

/// The addresses the host matcher uses, in a stable order.
pub fn host_addresses(configured: &[String]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut out: Vec<String> = interface_ips()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .map(|ip| ip.to_string())
        .collect();
    out.sort();
    out.dedup();
    if let Some(name) = hostname() {
        out.push(name);
    }
    out
}

/// Every IP this host answers on, loopback included: a configured server on any of
/// them is local.
pub fn local_ips(addresses: &[String]) -> HashSet<IpAddr> {
    let mut ips: HashSet<IpAddr> = interface_ips().into_iter().collect();
    ips.extend(addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
    ips
}

fn interface_ips() -> Vec<IpAddr> {
    match sysinfo::Networks::new_with_refreshed_list() {
        Ok(networks) => networks
            .into_iter()
            .flat_map(|(_, data)| data.ip_networks().iter().map(|n| n.addr))
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list network interfaces: {e}");
            Vec::new()
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The system host name, if it has a usable one.
pub fn hostname() -> Option<String> {
    let name = gethostname::gethostname().into_string().ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "localhost").then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_addresses_win() {
        let a = host_addresses(&["10.0.1.5".into()]);
        assert_eq!(a, vec!["10.0.1.5".to_string()]);
        assert!(local_ips(&a).contains(&"10.0.1.5".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn discovered_addresses_skip_loopback() {
        for a in host_addresses(&[]) {
            if let Ok(ip) = a.parse::<IpAddr>() {
                assert!(!ip.is_loopback(), "{a}");
            }
        }
    }
}
