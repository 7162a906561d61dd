//! `check` on every invalid config fixture gives exit 78 and exactly the paired
//! message (`NAME.toml` → `NAME.expected`, with `{file}` standing for the path).
//! `UPDATE_EXPECTED=1` rewrites the `.expected` files; review them before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn agent() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidb-host-agent"));
    cmd.env_remove("TIDB_HOST_AGENT_CONFIG");
    cmd
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/invalid")
}

#[test]
fn every_invalid_fixture_gives_its_exact_message_and_exit_78() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for path in entries {
        let out = agent().arg("check").arg("-c").arg(&path).output().unwrap();
        let stderr =
            String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "{file}");
        let expected_path = path.with_extension("expected");
        if std::env::var_os("UPDATE_EXPECTED").is_some() {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if out.status.code() != Some(78) {
            failures.push(format!(
                "{}: exit {:?}, want 78",
                path.display(),
                out.status.code()
            ));
        }
        if stderr != expected {
            failures.push(format!(
                "{}:\n--- got\n{stderr}--- want\n{expected}",
                path.display()
            ));
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = agent()
        .arg("check")
        .arg("-c")
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_config_is_exit_78_with_the_path() {
    let out = agent()
        .args(["check", "-c", "/nonexistent/tidb-host-agent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/tidb-host-agent.toml: cannot read the config file: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn the_config_path_comes_from_the_environment() {
    let out = agent()
        .arg("check")
        .env("TIDB_HOST_AGENT_CONFIG", "/nonexistent/from-env.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/from-env.toml"));
}

#[test]
fn check_warns_about_a_secret_file_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[prometheus]\nservers = [{{ url = \"http://127.0.0.1:1\", bearer_token_file = \"{}\" }}]\n\n[[output]]\nkind = \"stdout\"\n",
            token.display()
        ),
    )
    .unwrap();
    let check = |mode: u32| {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = agent()
            .arg("check")
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let open = check(0o644);
    assert!(
        open.contains(&format!(
            "warning: {} is readable by every user",
            token.display()
        )),
        "{open}"
    );
    assert!(!open.contains("s3cret"), "{open}");
    assert_eq!(check(0o640), "");
}

/// `check | head` closes stdout early: the check still tells its result by the exit
/// status, and does not panic.
#[test]
fn check_into_a_closed_pipe_exits_with_its_result() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = agent()
        .arg("check")
        .arg("-c")
        .arg(&example)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
