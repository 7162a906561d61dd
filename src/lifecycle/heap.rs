//! Handing free heap pages back to the kernel.
//!
//! A cycle's answers, snapshot and sink payloads are freed when it ends, but glibc's
//! malloc returns only the top of its heap to the kernel: pages freed in the middle stay
//! resident (RssAnon, memory only this process holds) until the next cycle reuses them.
//! `malloc_trim` releases every whole free page; the next cycle faults back the few it
//! needs. bench/REPORT.md gives what it saves.

/// Releases the allocator's whole free pages. A no-op where the allocator is not glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_pages() {
    // SAFETY: malloc_trim takes no pointer and touches only the allocator's own arenas,
    // each under its lock; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the allocator's whole free pages. A no-op where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Anonymous resident memory of this process, in KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn freed_pages_below_a_live_allocation_leave_the_process() {
        const BLOCKS: usize = 32 * 1024;
        // 32 MiB in 1 KiB blocks (far below the mmap threshold, so all in the heap), then
        // one more that stays alive above them: free() alone can only trim a heap's top.
        let blocks: Vec<Box<[u8; 1024]>> = (0..BLOCKS).map(|i| Box::new([i as u8; 1024])).collect();
        let live = Box::new([7u8; 1024]);
        drop(blocks);
        let before = rss_anon_kib();
        release_free_pages();
        let after = rss_anon_kib();
        assert_eq!(live[1023], 7);
        assert!(
            before.saturating_sub(after) >= 16 * 1024,
            "RssAnon went from {before} KiB to {after} KiB; expected at least 16 MiB released"
        );
    }
}
