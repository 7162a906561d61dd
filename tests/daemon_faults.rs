//! Faults of the host, with the real binary (SPEC §13): a sink on a full disk, a corrupt
//! state file, a state file from a clock that was ahead, a corrupt spool. Times here are
//! generous limits, not measurements.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test scaffolding: failing loudly is the point.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::agent::{Agent, PLAIN_FILE_OUTPUT, base_config, parse_plain, sink_writes};
use harness::block::free_port;
use harness::privilege::is_root;
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

/// A small tmpfs mounted on `dir` in this mount namespace; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until it refuses a write.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() && file.sync_all().is_ok() {}
    filler
}

#[test]
fn a_full_disk_fails_only_its_sink_and_keeps_its_last_file_whole() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let outputs = r#"
[[output]]
kind = "file"
format = "plain"
path = "{dir}/full/alerts.txt"

[[output]]
kind = "file"
format = "plain"
path = "{dir}/ok/alerts.txt"
"#;
    let agent = Agent::prepare(AGENT, &base_config("100ms", port, outputs), false);
    let dir = agent.dir.path().to_path_buf();
    let _tmpfs = Tmpfs::mount(&dir.join("full"), "256k");
    std::fs::create_dir_all(dir.join("ok")).unwrap();
    let mut agent = agent;
    agent.spawn(false);
    let (full, ok) = (dir.join("full/alerts.txt"), dir.join("ok/alerts.txt"));
    let full_name = format!("file:{}", full.display());
    let ok_name = format!("file:{}", ok.display());
    Wait::new(Duration::from_secs(20), "both sinks' first write").blocking(|| {
        (sink_writes(port, &full_name, "ok") > 0.0 && sink_writes(port, &ok_name, "ok") > 0.0)
            .then_some(())
    });
    let filler = fill(&dir.join("full"));
    let failed = sink_writes(port, &full_name, "error");
    Wait::new(Duration::from_secs(20), "the full sink to fail")
        .blocking(|| (sink_writes(port, &full_name, "error") > failed + 2.0).then_some(()));
    // The other sink goes on; the full one keeps its last whole file.
    let before = sink_writes(port, &ok_name, "ok");
    Wait::new(Duration::from_secs(20), "the other sink to keep writing")
        .blocking(|| (sink_writes(port, &ok_name, "ok") >= before + 5.0).then_some(()));
    let last = std::fs::read_to_string(&full).unwrap();
    assert!(
        parse_plain(&last)
            .iter()
            .any(|(k, _)| k == "TiDB.tikv.TiKV_server_is_down"),
        "{last:?}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("full"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
    let log = agent.log_text();
    assert!(log.contains("No space left on device"), "{log}");
    // Room again: the sink recovers on its own.
    std::fs::remove_file(filler).unwrap();
    let ok_before = sink_writes(port, &full_name, "ok");
    Wait::new(Duration::from_secs(20), "the full sink to recover")
        .blocking(|| (sink_writes(port, &full_name, "ok") > ok_before).then_some(()));
}

/// A corrupt state file, and one whose times are an hour ahead of the clock: a warning
/// each, and the daemon runs; a pending timer from the future starts from now.
#[test]
fn corrupt_and_future_state_files_start_fresh_or_from_now() {
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let output = "[[output]]\nkind = \"file\"\nformat = \"json\"\npath = \"{dir}/alerts.json\"\n";
    for (state, warning) in [
        ("{not json".to_owned(), "is corrupt"),
        (future_state(), "holds times later than now"),
    ] {
        let mut agent = Agent::prepare(AGENT, &base_config("100ms", port, output), false);
        let state_dir = agent.dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::write(state_dir.join("state.json"), &state).unwrap();
        agent.spawn(false);
        let file = agent.path("alerts.json");
        Wait::new(Duration::from_secs(20), "a snapshot").blocking(|| {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|t| t.contains("\"values\""))
        });
        assert!(agent.wait_exit(Duration::from_millis(10)).is_none());
        let log = agent.log_text();
        assert!(log.contains(warning), "no `{warning}` in:\n{log}");
        let saved = Wait::new(Duration::from_secs(20), "the state to be saved").blocking(|| {
            std::fs::read_to_string(state_dir.join("state.json"))
                .ok()
                .filter(|t| t.starts_with('{') && t.contains("saved_at") && *t != state)
        });
        let now = jiff::Timestamp::now();
        for since in saved.split("\"since\":\"").skip(1) {
            let since: jiff::Timestamp = since.split('"').next().unwrap().parse().unwrap();
            assert!(since <= now, "a since in the future survived: {saved}");
        }
    }
}

/// A state file saved just now, whose TiKV timer and component sighting are an hour
/// ahead.
fn future_state() -> String {
    let now = jiff::Timestamp::now();
    let ahead = now + jiff::SignedDuration::from_hours(1);
    format!(
        r#"{{"version":1,"saved_at":"{now}","keys":{{"TiDB.tikv.TiKV_server_is_down":{{"state":"pending","since":"{ahead}"}}}},"components":{{"last_seen":{{"tikv":"{ahead}"}}}}}}"#
    )
}

/// A link planted where the old sink put its temp file (`.alerts.txt.tmp.<pid>`) is never
/// written through: the file it points to keeps its content and mode.
#[test]
fn a_link_planted_beside_the_sink_is_never_written_through() {
    use std::os::unix::fs::PermissionsExt;
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let output =
        "[[output]]\nkind = \"file\"\nformat = \"plain\"\npath = \"{dir}/out/alerts.txt\"\n";
    let mut agent = Agent::prepare(AGENT, &base_config("100ms", port, output), false);
    let out = agent.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = agent.dir.path().join("victim");
    std::fs::write(&victim, b"root's secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    agent.spawn(false);
    let name = format!("file:{}", out.join("alerts.txt").display());
    // Planted once the sink runs (at start it removes what looks like its leftovers).
    Wait::new(Duration::from_secs(20), "the first write")
        .blocking(|| (sink_writes(port, &name, "ok") > 0.0).then_some(()));
    let planted = out.join(format!(".alerts.txt.tmp.{}", agent.pid()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let before = sink_writes(port, &name, "ok");
    Wait::new(Duration::from_secs(20), "ten writes")
        .blocking(|| (sink_writes(port, &name, "ok") >= before + 10.0).then_some(()));
    assert_eq!(std::fs::read(&victim).unwrap(), b"root's secret\n");
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
}

/// A corrupt spooled event and a corrupt `known.json`: the event is set aside as
/// `.corrupt` with an error, the alert state starts afresh with a warning, and the daemon
/// runs and writes its keys.
#[test]
fn a_corrupt_spool_is_set_aside_and_the_daemon_runs() {
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let receiver = free_port(std::net::Ipv4Addr::LOCALHOST);
    let rest = format!(
        "{PLAIN_FILE_OUTPUT}\n[alertmanager]\nlisten = \"127.0.0.1:{receiver}\"\n\n\
         [[alertmanager.forward]]\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n"
    );
    let mut agent = Agent::prepare(AGENT, &base_config("100ms", port, &rest), false);
    let spool = agent.dir.path().join("state/spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("x-1-firing.event"), b"{ torn").unwrap();
    std::fs::write(spool.join("known.json"), b"[not the state").unwrap();
    agent.spawn(false);
    Wait::new(Duration::from_secs(20), "the corrupt event set aside")
        .blocking(|| spool.join("x-1-firing.corrupt").exists().then_some(()));
    let name = format!("file:{}", agent.path("alerts.txt").display());
    let before = sink_writes(port, &name, "ok");
    Wait::new(Duration::from_secs(20), "keys written after it")
        .blocking(|| (sink_writes(port, &name, "ok") >= before + 3.0).then_some(()));
    assert!(agent.try_exit().is_none());
    let log = agent.log_text();
    assert!(log.contains("unreadable spooled event set aside"), "{log}");
    assert!(
        log.contains("saved alert state is corrupt, starting afresh"),
        "{log}"
    );
    assert!(!spool.join("x-1-firing.event").exists());
}
