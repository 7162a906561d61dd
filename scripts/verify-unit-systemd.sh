#!/usr/bin/env bash
# Runs the installed unit under a real systemd, booted as PID 1 of throwaway pid, mount,
# network, UTS, IPC and cgroup namespaces, so that the hardening is shown to keep the
# daemon working, not just read. Called by verify-package.sh while the .deb is
# installed; run as root. Outside the namespaces it changes only
# /var/lib/tidb-host-agent (emptied first: the package's own state directory) and a
# cgroup it removes at the end.
#
# What it shows, with the unit as installed (a test drop-in only drops the default
# sysinit/basic dependencies, which would start udev and friends, and shortens the
# watchdog so feeding it is seen within seconds):
#   - Type=notify: the unit becomes active (READY=1) and carries a STATUS= text;
#   - the watchdog is fed: same main PID and no restart after several periods;
#   - CAP_NET_RAW as the dedicated user: 127.0.0.1 answers the agent's raw ICMP echoes
#     (the namespace's ping_group_range admits no group, so raw sockets are the only way);
#   - the process table (ProtectProc=default): a `tikv-server` run by another user is
#     detected while Prometheus is unreachable;
#   - StateDirectory/RuntimeDirectory: the file and socket sinks are written;
#   - reload: a good config is applied; a bad one makes `systemctl reload` fail and the
#     agent runs on;
#   - stop: exit status 0, the socket and /run/tidb-host-agent removed;
#   - a bad config: the start fails in ExecStartPre with 78, and the retries stop at the
#     start limit.
#
# Exit codes: 0 passed, 1 failed, 77 cannot run here (no namespaces or cgroup2).
set -euo pipefail

NAME=tidb-host-agent
UNIT=$NAME.service
STATE_DIR=/var/lib/$NAME

if [ "${1:-}" = "--pid1" ]; then
  # Inside the namespaces, before systemd: private /run, /tmp and /var/tmp, a cgroup2 tree
  # rooted at the namespace's cgroup, loopback up, and the console into a file.
  units=$2
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p /run/systemd/system /run/systemd/journald.conf.d /run/tha
  cp -a "$units/." /run/systemd/system/
  printf '[Journal]\nStorage=volatile\n' >/run/systemd/journald.conf.d/volatile.conf
  # PrivateTmp= directories land here, and vanish with the namespaces.
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mount -t tmpfs -o mode=1777 tmpfs /var/tmp
  umount -R /sys/fs/cgroup
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  ip link set lo up
  touch /run/tha/console.log
  mount --bind /run/tha/console.log /dev/console
  export container=tidb-host-agent-verify
  exec /lib/systemd/systemd --unit=tha-verify.target
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "verify-unit-systemd.sh: run as root" >&2
  exit 1
fi
for tool in unshare nsenter ip setpriv; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is missing"; exit 77; }
done
[ -x /lib/systemd/systemd ] || { echo "skipped: /lib/systemd/systemd is missing"; exit 77; }
[ -f /lib/systemd/system/$UNIT ] || { echo "verify-unit-systemd.sh: $UNIT is not installed" >&2; exit 1; }
# A cgroup2 tree to root the namespace's cgroup in: the hybrid mount or the whole tree.
if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
  cgroup_parent=/sys/fs/cgroup/unified
elif [ -f /sys/fs/cgroup/cgroup.procs ] && [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgroup_parent=/sys/fs/cgroup
else
  echo "skipped: no cgroup2 hierarchy"
  exit 77
fi
cgroup=$cgroup_parent/tidb-host-agent-verify-$$
mkdir "$cgroup" 2>/dev/null || { echo "skipped: cannot create a cgroup under $cgroup_parent"; exit 77; }

checks=0
ok() { checks=$((checks + 1)); printf '  ok  %s\n' "$*"; }
fail() {
  printf '  FAIL %s\n' "$*" >&2
  if [ -n "${pid1:-}" ]; then
    echo "-- journal of $UNIT" >&2
    in_ns journalctl -u "$UNIT" --no-pager -n 60 >&2 || true
    echo "-- systemd console" >&2
    tail -n 40 "/proc/$pid1/root/run/tha/console.log" >&2 || true
  fi
  exit 1
}
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', wanted '$3'"; fi; }
in_ns() { nsenter -t "$pid1" -a "$@"; }
prop() { in_ns systemctl show -P "$1" "$UNIT"; }
# until SECONDS COMMAND...: polls the command, at most SECONDS.
until_ok() {
  local tries=$(($1 * 5)); shift
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

work=$(mktemp -d)
unshare_pid=
pid1=
cleanup() {
  if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
    # Stopped first: at poweroff the test drop-in's lack of ordering would let
    # journald go before it.
    nsenter -t "$pid1" -a systemctl stop "$UNIT" >/dev/null 2>&1 || true
    nsenter -t "$pid1" -a systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do kill -0 "$pid1" 2>/dev/null || break; sleep 0.2; done
    # The namespaces' init going takes every process in them along.
    kill -KILL "$pid1" 2>/dev/null || true
  fi
  if [ -n "$unshare_pid" ]; then
    wait "$unshare_pid" 2>/dev/null || true
  fi
  find "$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The units: a target for systemd to start, which wants the agent, and the test
# drop-in. The test config is
# bind-mounted over /etc/tidb-host-agent/config.toml inside the namespaces, so it is
# only ever rewritten in place (the mount holds the inode).
mkdir -p "$work/units/$UNIT.d"
cat >"$work/units/tha-verify.target" <<'EOF'
[Unit]
Description=tidb-host-agent verification
Wants=systemd-journald.service tidb-host-agent.service
EOF
# sysinit.target and basic.target stay masked: their units (sysctl, binfmt, tmpfiles,
# udev, modules) would act on the host's kernel and file systems.
ln -s /dev/null "$work/units/sysinit.target"
ln -s /dev/null "$work/units/basic.target"
cat >"$work/units/$UNIT.d/verify.conf" <<'EOF'
[Unit]
DefaultDependencies=no
[Service]
WatchdogSec=2s
RestartSec=1s
EOF
cat >"$work/config.toml" <<'EOF'
[agent]
interval = "1s"
state_dir = "/var/lib/tidb-host-agent"
[prometheus]
# Nothing listens here inside the namespace: components come from the process table.
servers = ["http://127.0.0.1:9090"]
timeout = "1s"
[ping]
enabled = true
targets = ["127.0.0.1"]
every = "1s"
count = 3
[[output]]
kind = "file"
path = "/var/lib/tidb-host-agent/alerts.txt"
[[output]]
kind = "unix"
path = "/run/tidb-host-agent/alerts.sock"
EOF
cp "$work/config.toml" "$work/good.toml"
printf '[agent]\ninterval = "soon"\n' >"$work/bad.toml"
# A fresh state: saved components would otherwise stand in for the process table.
find "$STATE_DIR" -mindepth 1 -delete

started=$(date +%s)
echo "booting systemd in new namespaces"
sh -c 'echo $$ >"$1/cgroup.procs" && exec unshare --cgroup --fork --pid --mount-proc --mount --net --uts --ipc \
  sh -c "mount --bind \"\$1\" /etc/tidb-host-agent/config.toml && exec \"\$2\" --pid1 \"\$3\"" - "$2" "$3" "$4"' \
  - "$cgroup" "$work/config.toml" "$(readlink -f "$0")" "$work/units" &
unshare_pid=$!
# The namespaces' PID 1 is the child of unshare that has become systemd.
systemd_child() {
  local child
  for child in $(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null); do
    [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && echo "$child" && return 0
  done
  return 1
}
until_ok 20 systemd_child || fail "systemd did not start in the namespaces"
pid1=$(systemd_child)
until_ok 30 sh -c "nsenter -t $pid1 -a systemctl is-active --quiet tha-verify.target" \
  || fail "systemd did not reach tha-verify.target"
ok "systemd $(in_ns systemctl --version | head -n 1 | cut -d' ' -f2) booted as PID 1 of the namespaces"

# Another user's process the agent must see through /proc: a `sleep` named tikv-server,
# run by systemd as nobody (it dies with the namespaces).
in_ns cp /bin/sleep /run/tha/tikv-server
in_ns systemd-run --quiet --uid=nobody --gid=nogroup --unit=tha-tikv -p DefaultDependencies=no \
  /run/tha/tikv-server 600

until_ok 30 sh -c "[ \"\$(nsenter -t $pid1 -a systemctl show -P ActiveState $UNIT)\" = active ]" \
  || fail "$UNIT did not become active"
ok "Type=notify: active after READY=1"
main_pid=$(prop MainPID)
expect_eq "runs as the dedicated user" "$(in_ns stat -c %U "/proc/$main_pid")" "$NAME"
caps=$(in_ns grep '^CapAmb' "/proc/$main_pid/status" | awk '{print $2}')
expect_eq "ambient capabilities: CAP_NET_RAW only" "$caps" "0000000000002000"
until_ok 15 sh -c "grep -q '^metric=TiDB.ping.Ping_packet_loss|value=0|' '$STATE_DIR/alerts.txt'" \
  || fail "no ping round without loss: $(cat "$STATE_DIR/alerts.txt" 2>/dev/null | grep ping)"
ok "raw ICMP to 127.0.0.1 as $NAME: Ping_packet_loss 0"
until_ok 15 sh -c "grep -q '^metric=TiDB.tikv.' '$STATE_DIR/alerts.txt'" \
  || fail "tikv-server (run by nobody) not detected from the process table"
ok "process table: another user's tikv-server detected (TiDB.tikv.* keys)"
status_text=$(prop StatusText)
case "$status_text" in *keys*) ok "STATUS=: $status_text" ;; *) fail "no STATUS text: '$status_text'" ;; esac
expect_eq "unix sink socket" "$(in_ns stat -c '%F %U:%G %a' /run/$NAME/alerts.sock)" "socket $NAME:$NAME 660"
# Three watchdog periods.
sleep 6
expect_eq "watchdog fed: still active" "$(prop ActiveState)" "active"
expect_eq "watchdog fed: same main PID, no restart" "$(prop MainPID) $(prop NRestarts)" "$main_pid 0"

sed 's/^interval = "1s"/interval = "2s"/' "$work/good.toml" >"$work/config.toml"
in_ns systemctl reload "$UNIT" || fail "systemctl reload with a good config"
until_ok 10 sh -c "nsenter -t $pid1 -a journalctl -u $UNIT --no-pager | grep -q 'configuration reloaded'" \
  || fail "no 'configuration reloaded' in the journal"
ok "reload with a good config: applied"
cp "$work/bad.toml" "$work/config.toml"
if in_ns systemctl reload "$UNIT" 2>/dev/null; then fail "systemctl reload accepted a bad config"; fi
expect_eq "reload with a bad config: refused, still running" "$(prop ActiveState) $(prop MainPID)" "active $main_pid"
cp "$work/good.toml" "$work/config.toml"

in_ns systemctl stop "$UNIT"
expect_eq "stop: exit status and result" "$(prop ExecMainStatus) $(prop Result)" "0 success"
expect_eq "stop: /run/$NAME removed" "$(in_ns sh -c "test -e /run/$NAME && echo present || echo gone")" "gone"

cp "$work/bad.toml" "$work/config.toml"
if in_ns systemctl start "$UNIT" 2>/dev/null; then fail "started with a bad config"; fi
case "$(prop ExecStartPre)" in
  *status=78*) ok "bad config: the start fails in ExecStartPre with 78" ;;
  *) fail "bad config: ExecStartPre did not exit 78: $(prop ExecStartPre)" ;;
esac
# Retried (RestartSec=1s in the test drop-in) up to the start limit: 5 starts.
until_ok 30 sh -c "[ \"\$(nsenter -t $pid1 -a systemctl show -P NRestarts $UNIT)\" = 4 ] \
  && [ \"\$(nsenter -t $pid1 -a systemctl show -P ActiveState $UNIT)\" = failed ]" \
  || fail "bad config: not given up after 5 starts: $(prop ActiveState) $(prop NRestarts)"
sleep 3 # three RestartSec periods: another retry would show
expect_eq "bad config: given up after 5 starts (StartLimitBurst)" "$(prop ActiveState) $(prop NRestarts)" "failed 4"
until_ok 10 sh -c "nsenter -t $pid1 -a journalctl -u $UNIT --no-pager | grep -q 'Start request repeated too quickly'" \
  || fail "journal: no 'Start request repeated too quickly'"
ok "journal: Start request repeated too quickly"

printf 'verify-unit-systemd.sh: %d checks passed in %ds\n' "$checks" "$(($(date +%s) - started))"
