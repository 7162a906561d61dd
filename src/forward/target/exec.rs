//! `kind = "exec"`: runs a program with templated argv, never through a shell.
//!
//! Label values are untrusted, so they only ever become argv elements, stdin bytes and
//! environment values; nothing re-parses them. The child gets:
//! - the event JSON on stdin, followed by a newline;
//! - `ALERT_STATUS` (`firing`/`resolved`), `ALERT_NAME`, `ALERT_SEVERITY` (`severity`, or
//!   TiDB's `level` label), `ALERT_FINGERPRINT`, `ALERT_STARTS_AT`, `ALERT_ENDS_AT` (empty
//!   while firing), `ALERT_GENERATOR_URL`, `ALERT_INSTANCE`, `ALERT_SUMMARY`,
//!   `ALERT_DESCRIPTION`, `ALERT_ID` (the dedupe key) and `ALERT_TARGET` (this target's
//!   name). Each value is cut at [`ENV_VALUE_MAX_BYTES`] and NUL bytes are dropped, so a
//!   huge label cannot make the exec fail; stdin always carries everything.
//!
//! Exit status 0 is success. On timeout the process is killed (SIGKILL) and the attempt
//! failed.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::DeliveryError;
use crate::forward::alert::Event;
use crate::forward::template::{Templates, event_context};

/// Longest value of an `ALERT_*` variable; Linux refuses any single argument or
/// environment string over 128 KiB.
pub const ENV_VALUE_MAX_BYTES: usize = 32 * 1024;
/// Longest argument Linux passes to a program (`MAX_ARG_STRLEN`, 32 pages).
pub const ARG_MAX_BYTES: usize = 128 * 1024;

/// Stderr kept for the failure log.
const STDERR_KEPT_BYTES: usize = 2048;
/// How long stderr is still read after the process exited: a background grandchild may
/// hold the pipe open for ever.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct ExecTarget {
    name: String,
    argv: Vec<String>,
    timeout: Duration,
    templates: Arc<Templates>,
}

impl ExecTarget {
    pub(super) fn new(
        name: String,
        argv: Vec<String>,
        timeout: Duration,
        templates: Arc<Templates>,
    ) -> Self {
        Self {
            name,
            argv,
            timeout,
            templates,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let context = event_context(event);
        let argv = self
            .argv
            .iter()
            .map(|t| self.templates.render(t, &context))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((program, args)) = argv.split_first().filter(|(p, _)| !p.is_empty()) else {
            return Err(DeliveryError::EmptyProgram);
        };
        for (index, arg) in argv.iter().enumerate() {
            let why = if arg.contains('\0') {
                "it holds a NUL byte, which no argument can carry".to_owned()
            } else if arg.len() > ARG_MAX_BYTES {
                format!(
                    "it is {} bytes, and Linux passes at most {ARG_MAX_BYTES}",
                    arg.len()
                )
            } else {
                continue;
            };
            return Err(DeliveryError::BadArgument { index, why });
        }
        let mut stdin_bytes = serde_json::to_vec(event).unwrap_or_default();
        stdin_bytes.push(b'\n');

        let mut child = Command::new(program)
            .args(args)
            .envs(alert_env(event, &self.name))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so that a timeout ends whatever it started too.
            .process_group(0)
            .spawn()
            .map_err(|source| DeliveryError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let mut kept = Vec::new();
        let run = async {
            let feed = async {
                if let Some(mut stdin) = stdin {
                    // A program that does not read its stdin is fine: ignore the broken pipe.
                    let _ = stdin.write_all(&stdin_bytes).await;
                }
            };
            let ((), status) = tokio::join!(feed, child.wait());
            if let Some(stderr) = stderr {
                let _ = tokio::time::timeout(STDERR_DRAIN, keep_head(stderr, &mut kept)).await;
            }
            status
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        let status = match outcome {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                return Err(DeliveryError::Wait {
                    program: program.clone(),
                    source,
                });
            }
            Err(_) => {
                if let Some(pid) = child
                    .id()
                    .and_then(|id| rustix::process::Pid::from_raw(id as i32))
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill().await;
                return Err(DeliveryError::ExecTimeout {
                    program: program.clone(),
                    timeout: self.timeout,
                });
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(DeliveryError::Exit {
                program: program.clone(),
                status,
                stderr: String::from_utf8_lossy(&kept).trim_end().to_owned(),
            })
        }
    }
}

/// Reads `from` to its end, keeping the first bytes.
async fn keep_head(mut from: impl AsyncRead + Unpin, kept: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = STDERR_KEPT_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// The `ALERT_*` variables for `event`.
pub fn alert_env(event: &Event, target: &str) -> Vec<(&'static str, String)> {
    let annotation = |key: &str| event.annotations.get(key).cloned().unwrap_or_default();
    let vars = [
        ("ALERT_STATUS", event.status.to_string()),
        ("ALERT_NAME", event.alertname().to_owned()),
        ("ALERT_SEVERITY", event.severity().to_owned()),
        ("ALERT_FINGERPRINT", event.fingerprint.clone()),
        ("ALERT_STARTS_AT", event.starts_at.to_string()),
        (
            "ALERT_ENDS_AT",
            event.ends_at.map(|t| t.to_string()).unwrap_or_default(),
        ),
        ("ALERT_GENERATOR_URL", event.generator_url.clone()),
        (
            "ALERT_INSTANCE",
            event.labels.get("instance").cloned().unwrap_or_default(),
        ),
        ("ALERT_SUMMARY", annotation("summary")),
        ("ALERT_DESCRIPTION", annotation("description")),
        ("ALERT_ID", event.id()),
        ("ALERT_TARGET", target.to_owned()),
    ];
    vars.into_iter().map(|(k, v)| (k, env_value(v))).collect()
}

fn env_value(mut value: String) -> String {
    value.retain(|c| c != '\0');
    if value.len() > ENV_VALUE_MAX_BYTES {
        let mut cut = ENV_VALUE_MAX_BYTES;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::merge::tests::alert;

    #[test]
    fn env_values_are_bounded_and_nul_free() {
        let mut a = alert("aa", 0);
        a.labels
            .insert("instance".into(), "é".repeat(ENV_VALUE_MAX_BYTES));
        a.annotations.insert("summary".into(), "a\0b".into());
        let event = Event::firing(&a, a.starts_at);
        let env: std::collections::BTreeMap<_, _> =
            alert_env(&event, "pager").into_iter().collect();
        assert!(env["ALERT_INSTANCE"].len() <= ENV_VALUE_MAX_BYTES);
        assert!(env["ALERT_INSTANCE"].len() > ENV_VALUE_MAX_BYTES - 2);
        assert_eq!(env["ALERT_SUMMARY"], "ab");
        assert_eq!(env["ALERT_STATUS"], "firing");
        assert_eq!(env["ALERT_ENDS_AT"], "");
        assert_eq!(env["ALERT_TARGET"], "pager");
        assert_eq!(env["ALERT_ID"], event.id());
    }

    fn exec_target(command: &[&str], timeout: Duration) -> ExecTarget {
        let config = crate::config::ForwardConfig::Exec(crate::config::ExecForward {
            name: Some("t".into()),
            command: command.iter().map(|c| c.to_string()).collect(),
            timeout: crate::config::Duration(timeout),
        });
        match super::super::build(&[config]) {
            Ok(mut targets) => match targets.remove(0) {
                super::super::Target::Exec(t) => t,
                other => panic!("{other:?}"),
            },
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn arguments_that_no_program_can_take_fail_for_good() {
        let target = exec_target(&["/bin/true", "{{ labels.x }}"], Duration::from_secs(5));
        for (value, expected) in [
            ("a\0b".to_owned(), "holds a NUL byte"),
            (
                "x".repeat(ARG_MAX_BYTES + 1),
                "bytes, and Linux passes at most",
            ),
        ] {
            let mut a = alert("aa", 0);
            a.labels.insert("x".into(), value);
            let error = match target.deliver(&Event::firing(&a, a.starts_at)).await {
                Err(e) => e,
                Ok(()) => panic!("delivered an unusable argument"),
            };
            assert!(error.is_permanent(), "{error}");
            assert!(error.to_string().contains("argument 1"), "{error}");
            assert!(error.to_string().contains(expected), "{error}");
        }
        let a = alert("aa", 0);
        assert!(
            target
                .deliver(&Event::firing(&a, a.starts_at))
                .await
                .is_ok()
        );
    }

    /// A command that times out is killed with everything it started.
    #[tokio::test]
    async fn a_timed_out_command_is_killed_with_its_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let target = exec_target(&["/bin/sh", "-c", &script], Duration::from_millis(300));
        let a = alert("aa", 0);
        let error = match target.deliver(&Event::firing(&a, a.starts_at)).await {
            Err(e) => e,
            Ok(()) => panic!("a hung command succeeded"),
        };
        assert!(
            matches!(error, DeliveryError::ExecTimeout { .. }),
            "{error}"
        );
        assert!(!error.is_permanent());
        let pid = std::fs::read_to_string(&pid_file).expect("the grandchild's pid");
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for whoever inherited it.
        while std::fs::read_to_string(&stat).is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the command's child {} outlived its timeout",
                pid.trim()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
