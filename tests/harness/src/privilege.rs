//! Tests that need root (CI runs as root): network namespaces of their own, and commands
//! run as nobody.

use std::process::Command;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Prints a loud skip notice and returns true when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!(
        "\n*** SKIPPED {test}: needs root to build its network namespace (CI runs as root) ***\n"
    );
    true
}

/// Runs the `setup` shell commands, then `wrapper program args…`, in a fresh network
/// namespace of its own: nothing the program sends can leave it.
pub fn in_new_netns(setup: &[&str], wrapper: &str, program: &str, args: &[&str]) -> Command {
    let mut script: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
    script.push(format!("exec {wrapper} \"$0\" \"$@\"").replace("exec  ", "exec "));
    let mut command = Command::new("unshare");
    command.args(["-n", "--", "sh", "-c", &script.join(" && "), program]);
    command.args(args);
    command
}

/// Runs `program args…` as nobody, without CAP_NET_RAW (not even in the bounding set),
/// in a new network namespace (loopback up) whose `ping_group_range` is `group_range`.
pub fn as_nobody(group_range: &str, program: &str, args: &[&str]) -> Command {
    in_new_netns(
        &[
            "ip link set lo up",
            &format!("echo '{group_range}' > /proc/sys/net/ipv4/ping_group_range"),
        ],
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-net_raw",
        program,
        args,
    )
}
