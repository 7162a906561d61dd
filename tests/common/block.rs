//! Address blocks: sandbox N lives on 127.N.1.x, so sandboxes of several test binaries (or
//! several engineers) never collide. A block is held through an exclusive `flock` on
//! /tmp/tidb-host-agent-sandbox-N.lock, which the kernel releases even if the holder is
//! killed. Block 0 (exactly 127.0.1.x) is reserved for the demo.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

use rustix::fs::{FlockOperation, flock};

use super::topology::all_listen_addrs;

/// Blocks handed out to tests.
pub const TEST_BLOCKS: std::ops::RangeInclusive<u8> = 1..=60;
/// The demo's block: 127.0.1.1, 127.0.1.2, 127.0.1.10.
pub const DEMO_BLOCK: u8 = 0;

/// An allocated block; the lock is released on drop.
#[derive(Debug)]
pub struct BlockLock {
    pub block: u8,
    _file: File,
}

/// Temp dirs of block N are named `{DIR_PREFIX}N-…`.
pub const DIR_PREFIX: &str = "tidb-host-agent-sandbox-";

fn lock_path(block: u8) -> PathBuf {
    std::env::temp_dir().join(format!("{DIR_PREFIX}{block}.lock"))
}

/// Why a block could not be taken.
fn try_block(block: u8) -> Result<BlockLock, String> {
    let path = lock_path(block);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| format!("{} is held by another sandbox", path.display()))?;
    // A process left over from a killed run (or a sandbox started without the lock) may
    // still hold the addresses: then this block is not usable either.
    for addr in all_listen_addrs(block) {
        TcpListener::bind(addr).map_err(|e| format!("{addr} is busy: {e}"))?;
    }
    remove_leftovers(block);
    Ok(BlockLock { block, _file: file })
}

/// Temp dirs of this block can only be left over by a holder that was killed (SIGKILL
/// skips Drop): the lock is ours now, so they are garbage.
fn remove_leftovers(block: u8) {
    let prefix = format!("{DIR_PREFIX}{block}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl BlockLock {
    /// Takes `wanted`, or else the first free test block, starting at a point that depends on
    /// the process id so that parallel test binaries rarely contend for the same one.
    pub fn acquire(wanted: Option<u8>) -> BlockLock {
        if let Some(block) = wanted {
            return try_block(block)
                .unwrap_or_else(|why| panic!("sandbox block {block} is not available: {why}"));
        }
        let count = TEST_BLOCKS.end() - TEST_BLOCKS.start() + 1;
        let first = (std::process::id() % u32::from(count)) as u8;
        let mut reasons = Vec::new();
        for i in 0..count {
            let block = TEST_BLOCKS.start() + (first + i) % count;
            match try_block(block) {
                Ok(lock) => return lock,
                Err(why) => reasons.push(format!("block {block}: {why}")),
            }
        }
        panic!(
            "no free sandbox block in {TEST_BLOCKS:?}:\n{}",
            reasons.join("\n")
        );
    }
}
