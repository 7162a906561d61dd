#!/usr/bin/env bash
# The README's quick start. On a Debian machine (root, to install what is missing):
#   1. installs the packages the sandbox needs and builds the agent;
#   2. starts the sandbox on loopback (examples/sandbox.rs): Prometheus A on 127.0.1.1,
#      Prometheus B on 127.0.1.2, blackbox exporters, and fake TiDB components on
#      127.0.1.1, 127.0.1.2 and 127.0.1.10;
#   3. runs the agent for host 127.0.1.10 and shows its keys;
#   4. stops the TiKV on 127.0.1.10:20180 and shows TiDB.tikv.TiKV_server_is_down flip to 1,
#      and `status` saying why;
#   5. stops Prometheus A and shows the failover to B;
#   6. stops everything on exit, even on Ctrl-C. DEMO_KEEP=1 keeps the work directory.
# DEMO_BLOCK=N runs it on 127.N.1.x instead of 127.0.1.x (when block 0 is taken).
set -euo pipefail
cd "$(dirname "$0")/.."

block=${DEMO_BLOCK:-0}
case $block in (*[!0-9]*|'') echo "DEMO_BLOCK must be a number" >&2; exit 2;; esac
one=127.$block.1.1 two=127.$block.1.2 ten=127.$block.1.10

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

# --- 1. What the demo needs --------------------------------------------------------------
scripts/install-deps.sh
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || fail "cargo is missing; install Rust (https://rustup.rs) or run as root"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cargo rustc
fi
rust_minor=$(rustc --version | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ -z "$rust_minor" ] || [ "$rust_minor" -lt 85 ]; then
  fail "Rust 1.85 or newer is needed (edition 2024), this is $(rustc --version); install it with rustup: https://rustup.rs"
fi
say "building the agent and the sandbox"
cargo build --bin tidb-host-agent --example sandbox
agent_bin=target/debug/tidb-host-agent

work=$(mktemp -d /tmp/tidb-host-agent-demo.XXXXXX)
agent_pid="" sandbox_pid=""
cleanup() {
  set +e
  if [ -n "$agent_pid" ]; then
    kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  fi
  if [ -n "$sandbox_pid" ]; then
    # The sandbox stops every process it started and frees its addresses.
    kill -TERM "$sandbox_pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$sandbox_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sandbox_pid" 2>/dev/null
  fi
  if [ -n "${DEMO_KEEP:-}" ]; then
    echo "demo files kept in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 2. The sandbox ----------------------------------------------------------------------
say "starting the sandbox on $one, $two and $ten"
coproc SANDBOX { exec target/debug/examples/sandbox --block "$block" 2>"$work/sandbox.log"; }
# Bash forgets SANDBOX_PID once the coprocess exits; the cleanup needs it anyway.
sandbox_pid=$SANDBOX_PID
# Asks the sandbox to do something and waits for its one-line answer.
sandbox() {
  local reply
  echo "$*" >&"${SANDBOX[1]}"
  read -r -t 120 reply <&"${SANDBOX[0]}" || fail "the sandbox did not answer \`$*\`; see $work/sandbox.log"
  case $reply in
    ok*) echo "sandbox: $reply" ;;
    *) fail "sandbox: $reply" ;;
  esac
}
read -r -t 180 ready <&"${SANDBOX[0]}" ||
  fail "the sandbox did not start: $(tail -n 20 "$work/sandbox.log")"
echo "sandbox: $ready"

# --- 3. The agent for host .10 -------------------------------------------------------
cat >"$work/agent.toml" <<TOML
[agent]
interval = "2s"
state_dir = "$work/state"
hostname = "demo-$ten"
# What the status command reads (under systemd: /run/tidb-host-agent/snapshot.json).
snapshot_file = "$work/snapshot.json"

[host]
addresses = ["$ten"]

[prometheus]
servers = ["http://$one:9090", "http://$two:9090"]
timeout = "2s"
probe_timeout = "1s"

# The catalog waits 1m; the demo does not.
[rules.override."TiDB.tikv.TiKV_server_is_down"]
for = "0s"

[[output]]
kind = "file"
format = "agent"
path = "$work/alerts.txt"

[metrics]
listen = "$ten:9555"
TOML
say "the agent's configuration ($work/agent.toml)"
cat "$work/agent.toml"
"$agent_bin" -c "$work/agent.toml" check
"$agent_bin" -c "$work/agent.toml" run 2>"$work/agent.log" &
agent_pid=$!

# Waits until the output file has a line matching $1 (a grep -E pattern).
wait_for_line() {
  for _ in $(seq 1 300); do
    grep -qE "$1" "$work/alerts.txt" 2>/dev/null && return 0
    kill -0 "$agent_pid" 2>/dev/null || fail "the agent exited: $(tail -n 20 "$work/agent.log")"
    sleep 0.2
  done
  fail "no line matching $1 within 60 s; agent log: $(tail -n 20 "$work/agent.log")"
}
# The agent's self-metrics, through bash's /dev/tcp (no curl needed).
self_metrics() {
  exec 3<>/dev/tcp/$ten/9555
  printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$ten" >&3
  cat <&3
  exec 3<&-
}
show_failover_metrics() {
  self_metrics | grep -E '^tidb_host_agent_(failovers_total|query_duration_seconds_count|server_up)' || true
}

wait_for_line 'TiDB\.tikv\.TiKV_server_is_down\|value=0'
say "the keys of host $ten ($work/alerts.txt): its components tikv, tidb, node_exporter, blackbox_exporter, and prometheus"
cat "$work/alerts.txt"

# --- 4. A TiKV stops ---------------------------------------------------------------------
say "stopping the TiKV on $ten:20180"
sandbox stop tikv $ten:20180
wait_for_line 'TiDB\.tikv\.TiKV_server_is_down\|value=1'
say "TiKV_server_is_down is 1 on $ten ($one has a TiKV on :20180 too, and is not matched)"
grep -E 'TiKV_server_is_down|Prometheus_is_down' "$work/alerts.txt"
say "tidb-host-agent status: the keys that are 1, and why (exit 1: something fires)"
status_rc=0
"$agent_bin" status --snapshot "$work/snapshot.json" || status_rc=$?
[ "$status_rc" -eq 1 ] || fail "status exited $status_rc while a key is 1 (expected 1)"

# --- 5. Prometheus A stops ---------------------------------------------------------------
say "self-metrics before: every query goes to A, the first configured server"
show_failover_metrics
say "stopping Prometheus A ($one:9090)"
sandbox stop prometheus a
failovers() { self_metrics | sed -n 's/^tidb_host_agent_failovers_total \([0-9]*\).*/\1/p'; }
for _ in $(seq 1 300); do
  [ "$(failovers)" -gt 0 ] 2>/dev/null && break
  sleep 0.2
done
[ "$(failovers)" -gt 0 ] 2>/dev/null || fail "no failover to B within 60 s: $(tail -n 20 "$work/agent.log")"
# Two more snapshots, both answered by B: each write renames a new file into place.
for _ in 1 2; do
  inode=$(stat -c %i "$work/alerts.txt")
  for _ in $(seq 1 100); do
    [ "$(stat -c %i "$work/alerts.txt")" != "$inode" ] && break
    sleep 0.1
  done
done
say "the agent's log: A failed, B answers"
grep -E 'query failed|Prometheus is down' "$work/agent.log" | head -n 3
say "self-metrics after: failovers, and the queries now going to B"
show_failover_metrics
say "the keys of $ten are unchanged: B answers, and this host has no Prometheus of its own"
cat "$work/alerts.txt"

cat >"$work/host-1.toml" <<TOML
[agent]
state_dir = "$work/state-1"
[host]
addresses = ["$one"]
[prometheus]
servers = ["http://$one:9090", "http://$two:9090"]
probe_timeout = "1s"
[rules.override."TiDB.tikv.TiKV_server_is_down"]
for = "0s"
[[output]]
kind = "stdout"
TOML
say "on $one, the host of Prometheus A, one cycle (\`once\`, the old script's drop-in) says:"
echo "(its own TiKV, $one:20180, is up: the stopped $ten:20180 is not matched by $one)"
"$agent_bin" -c "$work/host-1.toml" once 2>"$work/once.log" | grep -E 'Prometheus_is_down|TiKV_server_is_down' ||
  fail "once printed no such keys: $(cat "$work/once.log")"

say "done; cleaning up"
