//! Connections to Prometheus last only as long as a cycle: a fleet of hosts must not hold
//! `max_concurrency` idle connections each against Prometheus' `--web.max-connections`.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use harness::sandbox::{Host, Sandbox, Server};

use crate::agents::{AgentSpec, wait_for_hosts};

/// How long the agent's sockets are watched: several 1 s cycles.
const WATCH: Duration = Duration::from_secs(4);
/// Between two looks at the agent's sockets.
const EVERY: Duration = Duration::from_millis(20);

#[tokio::test]
async fn connections_to_prometheus_are_closed_between_cycles() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let agent = AgentSpec::new(&sb, Host::One).start();
    let agents = [agent];
    wait_for_hosts(&sb, &agents, |_, healthy| healthy, "the host healthy").await;

    let servers: HashSet<SocketAddrV4> = Server::ALL
        .iter()
        .map(|s| {
            let url = sb.server(*s).url();
            let authority = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            authority.parse().expect("a server address")
        })
        .collect();
    let pid = agents[0].pid();
    let mut counts = Vec::new();
    let start = Instant::now();
    while start.elapsed() < WATCH {
        counts.push(established_to(pid, &servers));
        std::thread::sleep(EVERY);
    }
    let open = counts.iter().filter(|&&n| n > 0).count();
    let most = counts.iter().copied().max().unwrap_or(0);
    // Not vacuous: the counting sees the connections a cycle opens.
    assert!(
        open > 0,
        "no connection to {servers:?} was ever seen: {counts:?}"
    );
    // Bounded: one per concurrent query (16 by default) and one probe per server.
    assert!(
        most <= 16 + servers.len(),
        "{most} connections at once: {counts:?}"
    );
    // A cycle takes milliseconds of each second, so between cycles nothing is held. Held
    // connections would show in every look; a quarter of them leaves room for cycles
    // slowed down by a loaded machine.
    let idle = counts.len() - open;
    assert!(
        idle * 4 >= counts.len(),
        "connections held between cycles ({open} of {} looks saw some): {counts:?}",
        counts.len()
    );
}

/// The established TCP connections of process `pid` to any of `servers`, from
/// /proc/PID/fd (the process' socket inodes) and /proc/PID/net/tcp (the connections).
fn established_to(pid: u32, servers: &HashSet<SocketAddrV4>) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let inodes: HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local remote state ... inode (field 9).
            fields.len() > 9
                && fields[3] == "01"
                && inodes.contains(fields[9])
                && parse_addr(fields[2]).is_some_and(|a| servers.contains(&a))
        })
        .count()
}

/// `0101007F:2382` as 127.0.1.1:9090: the kernel prints the address as the u32 it
/// stores (network byte order, read as a little-endian number here), the port as a number.
fn parse_addr(hex: &str) -> Option<SocketAddrV4> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_le_bytes()), port))
}
