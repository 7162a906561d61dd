//! Replacing a file atomically: a temp file beside the target, fsync, rename over it. A
//! reader sees the old file or the new one, never a partial or empty one, and a failed
//! write leaves the old one intact.
//!
//! The temp file is created with `O_EXCL | O_NOFOLLOW` under an unpredictable name, so a
//! link planted in a directory another user can write to is never followed, and the
//! rename replaces the target's directory entry, never what a link there points to.
//! Used by the file sink, the state file and the forward spool.

use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Marks the temp files of this module: `.NAME.tmp.RANDOM`.
const TEMP_MARK: &str = ".tmp.";

/// Names tried before giving up when each is taken (by a leftover or a planted file).
const ATTEMPTS: usize = 8;

/// Whether the rename itself must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The directory is not fsynced after the rename: a reader needs the rename to be
    /// atomic, not durable. After a crash the old file is whole, and the next write
    /// replaces it. One fsync less per write (the file sink, the state file).
    Atomic,
    /// The directory is fsynced too: once this returns, the new file survives a crash
    /// (the forward spool, whose files are promises to deliver).
    Durable,
}

/// Replaces `path` with `bytes`, with permissions `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let dir = directory_of(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let (tmp, mut file) = create_temp(&dir, file_name, mode)?;
    let result = (|| {
        // The umask may have narrowed the mode at creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        match durability {
            Durability::Atomic => Ok(()),
            Durability::Durable => std::fs::File::open(&dir)?.sync_all(),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temp files a crash left beside `path`. Links are removed, not followed.
pub fn remove_leftovers(path: &Path) {
    let Some(file_name) = path.file_name() else {
        return;
    };
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(TEMP_MARK);
    let Some(prefix) = prefix.to_str() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(directory_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether `name` is one of this module's temp files (for a directory that holds many
/// atomically written files, such as the spool).
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a new temp file for `file_name` in `dir`, never opening an existing one.
fn create_temp(
    dir: &Path,
    file_name: &std::ffi::OsStr,
    mode: u32,
) -> io::Result<(PathBuf, std::fs::File)> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..ATTEMPTS {
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(format!("{TEMP_MARK}{:016x}", unpredictable()));
        let tmp = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// 64 bits another user cannot guess: SipHash under the process's random keys (std's
/// `RandomState`, seeded from the OS), over the time and the process id.
fn unpredictable() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.txt");
        for durability in [Durability::Atomic, Durability::Durable] {
            replace(&path, b"one\n", 0o640, durability).expect("first write");
            replace(&path, b"two\n", 0o640, durability).expect("second write");
            assert_eq!(std::fs::read(&path).expect("read"), b"two\n");
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
            assert_eq!(files_in(dir.path()), ["out.txt"]);
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing/out.txt");
        assert!(replace(&path, b"x", 0o644, Durability::Atomic).is_err());
    }

    #[test]
    fn temp_names_are_new_each_time_and_recognised() {
        let dir = Path::new("/nonexistent");
        let a = dir.join(format!(".x{TEMP_MARK}{:016x}", unpredictable()));
        let b = dir.join(format!(".x{TEMP_MARK}{:016x}", unpredictable()));
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(is_temp(name));
        assert!(!is_temp("x.json"));
    }

    /// A link planted where an old, predictable temp name would have been, and links to
    /// a victim under every other name in the directory, are never written through.
    #[test]
    fn a_planted_link_is_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"secret").expect("victim");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let path = dir.path().join("alerts.txt");
        let planted = dir
            .path()
            .join(format!(".alerts.txt.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
        // The target itself is a link to the victim: the rename replaces the link.
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        replace(&path, b"keys\n", 0o644, Durability::Atomic).expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"secret");
        let mode = std::fs::metadata(&victim)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!std::fs::symlink_metadata(&path).expect("stat").is_symlink());
        assert_eq!(std::fs::read(&path).expect("read"), b"keys\n");
    }

    #[test]
    fn leftovers_are_removed_and_other_files_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.txt");
        std::fs::write(dir.path().join(".alerts.txt.tmp.0123456789abcdef"), b"x").expect("w");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(".alerts.txt.tmp.1"))
            .expect("symlink");
        std::fs::write(dir.path().join("other.txt"), b"x").expect("w");
        std::fs::write(&path, b"x").expect("w");
        remove_leftovers(&path);
        assert_eq!(files_in(dir.path()), ["alerts.txt", "other.txt"]);
        assert!(Path::new("/etc/passwd").exists());
    }
}
