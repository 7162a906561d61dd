//! Loopback blocks: block N is 127.N.1.x, so the tests of several binaries (or of several
//! engineers) never share an address. A block is held through an exclusive `flock` on
//! /tmp/tidb-host-agent-sandbox-N.lock, which the kernel releases even if the holder is
//! killed. Block 0 (exactly 127.0.1.x) is reserved for the demo.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Mutex;

use rustix::fs::{FlockOperation, flock};

/// Blocks handed out to tests.
pub const TEST_BLOCKS: std::ops::RangeInclusive<u8> = 1..=60;
/// The demo's block: 127.0.1.1, 127.0.1.2, 127.0.1.10.
pub const DEMO_BLOCK: u8 = 0;

/// Temp dirs of block N are named `{DIR_PREFIX}N-…`.
pub const DIR_PREFIX: &str = "tidb-host-agent-sandbox-";

/// An allocated block; the lock is released on drop.
#[derive(Debug)]
pub struct Block {
    number: u8,
    _lock: File,
}

impl Block {
    /// The first free test block.
    pub fn take() -> Block {
        Block::acquire(None, |_| Vec::new())
    }

    /// Takes `wanted`, or else the first free test block, starting at a point that depends on
    /// the process id so that parallel test binaries rarely contend for the same one. A block
    /// counts as free only if every address `listens_on` gives for it can be bound.
    pub fn acquire(wanted: Option<u8>, listens_on: impl Fn(u8) -> Vec<SocketAddr>) -> Block {
        if let Some(number) = wanted {
            return try_block(number, &listens_on)
                .unwrap_or_else(|why| panic!("block {number} is not available: {why}"));
        }
        let count = TEST_BLOCKS.end() - TEST_BLOCKS.start() + 1;
        let first = (std::process::id() % u32::from(count)) as u8;
        let mut reasons = Vec::new();
        for i in 0..count {
            let number = TEST_BLOCKS.start() + (first + i) % count;
            match try_block(number, &listens_on) {
                Ok(block) => return block,
                Err(why) => reasons.push(format!("block {number}: {why}")),
            }
        }
        panic!(
            "no free loopback block in {TEST_BLOCKS:?}:\n{}",
            reasons.join("\n")
        );
    }

    pub fn number(&self) -> u8 {
        self.number
    }

    /// 127.N.1.`last_octet`.
    pub fn ip(&self, last_octet: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.number, 1, last_octet)
    }
}

fn lock_path(number: u8) -> PathBuf {
    std::env::temp_dir().join(format!("{DIR_PREFIX}{number}.lock"))
}

/// The block, or why it cannot be taken.
fn try_block(number: u8, listens_on: &impl Fn(u8) -> Vec<SocketAddr>) -> Result<Block, String> {
    let path = lock_path(number);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| format!("{} is held by another test", path.display()))?;
    // A process left over from a killed run (or one started without the lock) may still
    // hold the addresses: then this block is not usable either.
    for addr in listens_on(number) {
        TcpListener::bind(addr).map_err(|e| format!("{addr} is busy: {e}"))?;
    }
    remove_leftovers(number);
    Ok(Block {
        number,
        _lock: file,
    })
}

/// Temp dirs of this block can only be left over by a holder that was killed (SIGKILL
/// skips Drop): the lock is ours now, so they are garbage.
fn remove_leftovers(number: u8) {
    let prefix = format!("{DIR_PREFIX}{number}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A free TCP port on `ip`, for a server the test starts next. Never one this process was
/// handed before: the kernel may give the port of a probe listener just closed to the
/// next, and two servers told the same port (Alertmanager's web and gossip ports, say)
/// would fight over it.
pub fn free_port(ip: impl Into<std::net::IpAddr>) -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<(IpAddr, u16)>> = Mutex::new(BTreeSet::new());
    let ip = ip.into();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if handed_out.insert((ip, port)) {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the kernel picks, no port is handed out twice on one address.
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..500).map(|_| free_port(Ipv4Addr::LOCALHOST)).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
