//! Handing memory the daemon no longer uses back to the kernel.
//!
//! Two kinds of resident pages outlive their use:
//!
//! - **Free heap pages.** A cycle's answers, snapshot and sink payloads are freed when it
//!   ends, but glibc's malloc returns only the top of its heap to the kernel: pages freed
//!   in the middle stay resident until the next cycle reuses them. On the footprint
//!   configuration of bench/run.sh that is 300–400 KiB of the `[heap]` mapping on every
//!   host (bench/REPORT.md). `malloc_trim` releases every whole free page; the next cycle
//!   faults back the few it needs.
//! - **Code and read-only data touched at start only.** Loading the configuration, the
//!   rule files and the PromQL rewriter, compiling regexes and setting up TLS touch code
//!   all over the binary and its libraries, and the kernel keeps every page it mapped
//!   for that (64 KiB around each fault). They stay in the process's resident set for
//!   its whole life, though a cycle runs a fraction of them: on bench/run.sh's footprint
//!   configuration 4.3 of the binary's 4.6 MiB of code, all 408 KiB of its relocation
//!   table, and 1.4 MiB of libc. [`release_startup_pages`] unmaps the resident pages of
//!   every clean read-only file mapping; `app::run` calls it after each step of starting a
//!   configuration (loading it, planning its rules, its first cycle), so the peak is the
//!   largest step's pages rather than all of them (each step maps most of the binary's
//!   code again: 5–6 MiB), and the following cycles map back, from the page cache, only
//!   what they execute.

use std::collections::BTreeSet;
use std::ops::Range;

/// Releases the allocator's whole free pages. A no-op where the allocator is not glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_heap() {
    // SAFETY: malloc_trim takes no pointer and touches only the allocator's own arenas,
    // each under its lock; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the allocator's whole free pages. A no-op where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() {}

/// The files mapped into this process before it started any thread: the binary and the
/// shared libraries the loader brought in with it. Only their mappings are ever released.
/// They are in place for the process's life, while a library loaded later (glibc's NSS
/// modules, on a first host-name lookup on the blocking pool) is mapped in several steps,
/// and one of its mappings can look clean just before the loader maps its data over part
/// of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupFiles(BTreeSet<String>);

impl StartupFiles {
    /// The files mapped now. Call it before the runtime starts its first task.
    pub fn record() -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Self(
            maps.lines()
                .filter_map(mapping_header)
                .filter(|h| h.path.starts_with('/'))
                .map(|h| h.path.to_string())
                .collect(),
        )
    }
}

/// The pages a [`release_startup_pages`] call unmapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Mappings it unmapped pages of.
    pub mappings: usize,
    /// Their resident size before, in KiB.
    pub resident_kib: u64,
}

/// Unmaps the resident pages of the clean read-only mappings of `files`: the code,
/// read-only data and relocation tables of the binary and its shared libraries. Their
/// content is the file's, so the next access maps the same bytes back from the page
/// cache, and only the pages the daemon still runs come back. The kernel's reclaim does
/// the same to such pages at any time under memory pressure; doing it once after start
/// keeps what a host's tools show of the daemon to what it uses.
///
/// Mappings that are writable, anonymous, locked, or hold any written (anonymous) page,
/// such as the relocated `.data.rel.ro`, are left alone: their content is not the file's.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_startup_pages(files: &StartupFiles) -> std::io::Result<Released> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = Released::default();
    for mapping in clean_file_mappings(&smaps, files) {
        if mapping.resident_kib == 0 {
            continue;
        }
        let range = &mapping.range;
        // SAFETY: `range` is a whole mapping of this process as the kernel listed it just
        // now: of a file mapped before any thread started (so the loader placed it then
        // and never moves or unmaps it), not writable, not locked, and without a single
        // anonymous page, so every byte in it is the file's. MADV_DONTNEED drops its
        // page-table entries; the next access faults the same bytes back from the page
        // cache, so no value, reference or code that lives there changes.
        let rc = unsafe {
            libc::madvise(
                range.start as *mut libc::c_void,
                range.end - range.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released.mappings += 1;
            released.resident_kib += mapping.resident_kib;
        }
    }
    Ok(released)
}

/// Unmaps the resident pages of clean read-only file mappings. Linux only.
#[cfg(not(target_os = "linux"))]
pub fn release_startup_pages(_files: &StartupFiles) -> std::io::Result<Released> {
    Ok(Released::default())
}

/// A mapping [`clean_file_mappings`] found in `/proc/self/smaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CleanMapping {
    range: Range<usize>,
    resident_kib: u64,
}

/// The mappings of an smaps listing whose content is exactly their file's: a mapping of
/// one of `files`, private, not writable, not locked, and without anonymous pages.
/// Lines it cannot read leave their mapping out.
fn clean_file_mappings(smaps: &str, files: &StartupFiles) -> Vec<CleanMapping> {
    struct Candidate {
        range: Option<Range<usize>>,
        rss: Option<u64>,
        anonymous: Option<u64>,
        locked: bool,
    }
    let mut out = Vec::new();
    let mut current: Option<Candidate> = None;
    let finish = |c: Option<Candidate>, out: &mut Vec<CleanMapping>| {
        if let Some(Candidate {
            range: Some(range),
            rss: Some(resident_kib),
            anonymous: Some(0),
            locked: false,
        }) = c
        {
            out.push(CleanMapping {
                range,
                resident_kib,
            });
        }
    };
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            finish(current.take(), &mut out);
            let candidate = header.read_only_private && files.0.contains(header.path);
            current = Some(Candidate {
                range: candidate.then_some(header.range),
                rss: None,
                anonymous: None,
                locked: false,
            });
            continue;
        }
        let Some(c) = current.as_mut() else { continue };
        if let Some(v) = line.strip_prefix("Rss:") {
            c.rss = kib(v);
        } else if let Some(v) = line.strip_prefix("Anonymous:") {
            c.anonymous = kib(v);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            // lo: mlock()ed; DONTNEED refuses those anyway.
            c.locked = flags.split_whitespace().any(|f| f == "lo");
        }
    }
    finish(current, &mut out);
    out
}

/// A mapping's header line in /proc/self/maps or smaps.
struct MappingHeader<'a> {
    range: Range<usize>,
    /// `r--p` or `r-xp`: readable, not writable, private.
    read_only_private: bool,
    /// The file's path; empty, or `[heap]`, `[stack]`, `[vdso]`…, for other mappings.
    path: &'a str,
}

/// `start-end perms offset dev inode [path]`; `None` for any other line, such as smaps'
/// `Key: value` lines.
fn mapping_header(line: &str) -> Option<MappingHeader<'_>> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let (start, end) = (
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    );
    let perms = fields.next()?;
    let (_offset, _dev, _inode) = (fields.next()?, fields.next()?, fields.next()?);
    Some(MappingHeader {
        range: start..end,
        read_only_private: start < end && matches!(perms.as_bytes(), [b'r', b'-', _, b'p']),
        path: fields.next().unwrap_or(""),
    })
}

/// `   1234 kB` as 1234.
fn kib(value: &str) -> Option<u64> {
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// A `… kB` line of /proc/self/status, in KiB.
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(kib)
            .unwrap_or(0)
    }

    /// Anonymous resident memory of this process, in KiB.
    fn rss_anon_kib() -> u64 {
        status_kib("RssAnon:")
    }

    /// Mappings of a real smaps listing (trimmed): the binary's code and its relocated
    /// read-only data, the heap, libc's code, a locked libm mapping, an NSS module loaded
    /// after start, and the vDSO.
    const SMAPS: &str = "\
5581f5a00000-5581f5e89000 r-xp 00208000 fe:00 1310801                    /usr/bin/tidb-host-agent
Size:               4644 kB
Rss:                4324 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
5581f5e8a000-5581f5ed9000 r--p 00691000 fe:00 1310801                    /usr/bin/tidb-host-agent
Size:                316 kB
Rss:                 312 kB
Anonymous:           312 kB
VmFlags: rd mr mw me ac sd
5581f6b51000-5581f6c8e000 rw-p 00000000 00:00 0                          [heap]
Size:               1268 kB
Rss:                1200 kB
Anonymous:          1200 kB
VmFlags: rd wr mr mw me ac sd
7f2b0c228000-7f2b0c3bd000 r-xp 00028000 fe:00 1054211                    /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1620 kB
Rss:                1048 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7f2b0c3bd000-7f2b0c415000 r--p 00000000 fe:00 1054211                    /usr/lib/x86_64-linux-gnu/libm.so.6
Size:                352 kB
Rss:                  64 kB
Anonymous:             0 kB
VmFlags: rd mr mw me lo sd
7f2b0c500000-7f2b0c504000 r--p 00000000 fe:00 1054300                    /usr/lib/x86_64-linux-gnu/libnss_files.so.2
Size:                 16 kB
Rss:                  16 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
7ffd3c9f5000-7ffd3c9f7000 r-xp 00000000 00:00 0                          [vdso]
Size:                  8 kB
Rss:                   4 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me de sd
";

    /// The files of [`SMAPS`] mapped at start: all but the NSS module.
    fn at_start() -> StartupFiles {
        StartupFiles(
            [
                "/usr/bin/tidb-host-agent",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libm.so.6",
            ]
            .map(String::from)
            .into(),
        )
    }

    #[test]
    fn only_clean_read_only_mappings_of_files_mapped_at_start_are_released() {
        let found = clean_file_mappings(SMAPS, &at_start());
        assert_eq!(
            found,
            vec![
                CleanMapping {
                    range: 0x5581f5a00000..0x5581f5e89000,
                    resident_kib: 4324
                },
                CleanMapping {
                    range: 0x7f2b0c228000..0x7f2b0c3bd000,
                    resident_kib: 1048
                },
            ],
            "the relocated data (anonymous pages), the heap (writable), the locked libm \
             mapping, the NSS module (loaded later) and the vDSO (no file) must be left alone"
        );
    }

    #[test]
    fn the_files_mapped_at_start_are_the_binary_and_its_libraries() {
        let files = StartupFiles::record();
        let exe = std::fs::read_link("/proc/self/exe").expect("/proc/self/exe");
        assert!(
            files.0.contains(exe.to_str().expect("a UTF-8 path")),
            "{files:?}"
        );
        assert!(files.0.iter().any(|f| f.contains("/libc.so")), "{files:?}");
        assert!(files.0.iter().all(|f| f.starts_with('/')), "{files:?}");
    }

    #[test]
    fn a_mapping_whose_anonymous_count_is_missing_or_unreadable_is_left_alone() {
        let header = "7f2b0c228000-7f2b0c3bd000 r-xp 00028000 fe:00 1054211  /usr/lib/libc.so.6\n";
        let files = StartupFiles(["/usr/lib/libc.so.6".to_string()].into());
        for body in [
            "Rss:                1048 kB\n",
            "Rss:                1048 kB\nAnonymous:          ?? kB\n",
            "Rss:                1048 kB\nAnonymous:            4 kB\n",
        ] {
            assert_eq!(
                clean_file_mappings(&format!("{header}{body}"), &files),
                vec![],
                "{body}"
            );
        }
        assert_eq!(
            clean_file_mappings("not smaps at all\n\n-\n", &files),
            vec![]
        );
    }

    /// File-backed resident memory of this process, in KiB.
    fn rss_file_kib() -> u64 {
        status_kib("RssFile:")
    }

    #[test]
    fn start_up_pages_leave_the_process_and_code_still_runs() {
        let before = rss_file_kib();
        let released = release_startup_pages(&StartupFiles::record()).expect("read smaps");
        let after = rss_file_kib();
        assert!(released.mappings > 0, "{released:?}");
        assert!(
            after < before && before - after >= released.resident_kib / 2,
            "RssFile went from {before} KiB to {after} KiB after unmapping {released:?}"
        );
        // The code and data it unmapped come back on use: parse a listing again.
        assert_eq!(clean_file_mappings(SMAPS, &at_start()).len(), 2);
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
        release_free_heap();
        let after = rss_anon_kib();
        assert_eq!(live[1023], 7);
        assert!(
            before.saturating_sub(after) >= 16 * 1024,
            "RssAnon went from {before} KiB to {after} KiB; expected at least 16 MiB released"
        );
    }
}
