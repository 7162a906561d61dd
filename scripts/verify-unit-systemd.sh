#!/usr/bin/env bash
# Installs the .deb under a real systemd, booted as PID 1 of throwaway pid, mount,
# network, UTS, IPC and cgroup namespaces, and runs the unit there: the maintainer
# scripts' "systemd is running" branches, and the hardening shown to keep the daemon
# working rather than just read. Called by verify-package.sh with the package not
# installed; run as root:
#
#   scripts/verify-unit-systemd.sh DEB BUMPED_DEB
#
# Checks, in order:
#   - dpkg -i: postinst enables and starts the unit; an upgrade restarts a running
#     agent, and leaves a stopped one stopped;
#   - with a test config (ping 127.0.0.1, Prometheus unreachable, 1 s cycles):
#     Type=notify (active after READY=1, a STATUS= text); the watchdog fed; the
#     dedicated user with CAP_NET_RAW as its only capability, enough for raw ICMP (the
#     namespace's ping_group_range admits no group); the resource bounds in force
#     (MemoryHigh/MemoryMax, TasksMax, CPUWeight/IOWeight, oom_score_adj 500, open
#     files 8192 soft and hard); the process table visible
#     (ProtectProc=default): another user's `tikv-server` is detected; the file and
#     socket sinks in StateDirectory/RuntimeDirectory; reload applies a good config
#     and refuses a bad one while the agent runs on; stop exits 0 and removes
#     /run/tidb-host-agent; the published snapshot is readable by another user; a bad
#     config fails ExecStartPre with 78 and the retries stop at the start limit;
#   - dpkg -r stops the agent and keeps the config; dpkg -P removes it;
#   - with a policy-rc.d that forbids starts (exit 101, as in image builds), dpkg -i
#     enables the unit and does not start it.
# The unit runs as installed, plus a test drop-in that drops the default sysinit/basic
# dependencies (their units would act on the host) and shortens WatchdogSec and
# RestartSec so that feeding and retries show within seconds.
#
# The package database and /etc, /usr, /var are the host's: this installs and purges
# the package for real, as verify-package.sh does. Outside the namespaces nothing else
# changes; a cgroup is made and removed.
# Exit codes: 0 passed, 1 failed, 77 this host cannot boot systemd in namespaces.
set -euo pipefail

NAME=tidb-host-agent
UNIT=$NAME.service
CONFIG=/etc/$NAME/config.toml
STATE_DIR=/var/lib/$NAME

if [ "${1:-}" = "--pid1" ]; then
  # Inside the namespaces, before systemd: private /run, /tmp and /var/tmp, a cgroup2
  # tree rooted at the namespace's cgroup, loopback up, and the console into a file.
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
  # A booted host has no policy-rc.d; a container image's ("exit 101": start nothing)
  # would stop deb-systemd-invoke here. The checks below change this one's answer.
  if [ -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 0\n' >/run/tha/policy-rc.d
    chmod 0755 /run/tha/policy-rc.d
    mount --bind /run/tha/policy-rc.d /usr/sbin/policy-rc.d
  fi
  touch /run/tha/console.log
  mount --bind /run/tha/console.log /dev/console
  export container=tidb-host-agent-verify
  exec /lib/systemd/systemd --unit=tha-verify.target
fi

if [ $# -ne 2 ] || [ ! -f "$1" ] || [ ! -f "$2" ]; then
  echo "usage: verify-unit-systemd.sh DEB BUMPED_DEB" >&2
  exit 2
fi
deb=$(readlink -f "$1")
deb_bumped=$(readlink -f "$2")
if [ "$(id -u)" -ne 0 ]; then
  echo "verify-unit-systemd.sh: run as root" >&2
  exit 1
fi
if dpkg-query -W -f='${db:Status-Abbrev}' "$NAME" 2>/dev/null | grep -q '^[ir]'; then
  echo "verify-unit-systemd.sh: $NAME is installed here; purge it first" >&2
  exit 1
fi
for tool in unshare nsenter ip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is missing"; exit 77; }
done
[ -x /lib/systemd/systemd ] || { echo "skipped: /lib/systemd/systemd is missing"; exit 77; }
# A cgroup2 tree to root the namespaces' cgroup in: the hybrid mount or the whole tree.
if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
  cgroup_parent=/sys/fs/cgroup/unified
elif [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
  cgroup_parent=/sys/fs/cgroup
else
  echo "skipped: no cgroup2 hierarchy"
  exit 77
fi
cgroup=$cgroup_parent/tidb-host-agent-verify-$$
mkdir "$cgroup" 2>/dev/null || { echo "skipped: cannot create a cgroup under $cgroup_parent"; exit 77; }
# The same preparations as --pid1, without systemd: can this host do them at all?
if ! sh -c 'echo $$ >"$1/cgroup.procs" && exec unshare --cgroup --fork --pid --mount-proc --mount --net --uts --ipc \
     sh -c "mount -t tmpfs tmpfs /run && umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && ip link set lo up"' \
     - "$cgroup" >/dev/null 2>&1; then
  rmdir "$cgroup" 2>/dev/null || true
  echo "skipped: this host does not allow new namespaces with a cgroup2 mount (a container without CAP_SYS_ADMIN?)"
  exit 77
fi

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
state_is() { [ "$(in_ns systemctl show -P ActiveState "$UNIT")" = "$1" ]; }

work=$(mktemp -d)
unshare_pid=
pid1=
cleanup() {
  if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
    nsenter -t "$pid1" -a dpkg -P "$NAME" >/dev/null 2>&1 || true
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

# The units: a target for systemd to start, the test drop-in, and masks. sysinit.target
# and basic.target stay masked: their units (sysctl, binfmt, tmpfiles, udev, modules)
# would act on the host's kernel and file systems.
mkdir -p "$work/units/$UNIT.d"
cat >"$work/units/tha-verify.target" <<'EOF'
[Unit]
Description=tidb-host-agent verification
Wants=systemd-journald.service
EOF
ln -s /dev/null "$work/units/sysinit.target"
ln -s /dev/null "$work/units/basic.target"
cat >"$work/units/$UNIT.d/verify.conf" <<'EOF'
[Unit]
DefaultDependencies=no
[Service]
WatchdogSec=2s
RestartSec=1s
EOF
cat >"$work/test.toml" <<'EOF'
[agent]
interval = "1s"
state_dir = "/var/lib/tidb-host-agent"
[prometheus]
# Nothing listens here inside the namespaces: components come from the process table.
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
printf '[agent]\ninterval = "soon"\n' >"$work/bad.toml"

started=$(date +%s)
echo "booting systemd in new namespaces"
sh -c 'echo $$ >"$1/cgroup.procs" && exec unshare --cgroup --fork --pid --mount-proc --mount --net --uts --ipc "$2" --pid1 "$3"' \
  - "$cgroup" "$(readlink -f "$0")" "$work/units" &
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
# /tmp is private in there: the packages go through /run/tha.
in_ns sh -c 'cat >/run/tha/agent.deb' <"$deb"
in_ns sh -c 'cat >/run/tha/agent-bumped.deb' <"$deb_bumped"

echo "-- the package under systemd"
in_ns dpkg -i /run/tha/agent.deb >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -i: $(cat "$work/dpkg.log")"
until_ok 30 state_is active || fail "postinst did not start $UNIT"
ok "dpkg -i: postinst started the unit"
expect_eq "dpkg -i: postinst enabled the unit" "$(in_ns systemctl is-enabled "$UNIT")" "enabled"
first_pid=$(prop MainPID)
in_ns dpkg -i /run/tha/agent-bumped.deb >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -i (upgrade): $(cat "$work/dpkg.log")"
until_ok 30 state_is active || fail "$UNIT not active after the upgrade"
[ "$(prop MainPID)" != "$first_pid" ] || fail "upgrade: the running agent was not restarted"
ok "upgrade: the running agent restarted (main PID $first_pid -> $(prop MainPID))"
in_ns systemctl stop "$UNIT"
in_ns dpkg -i /run/tha/agent-bumped.deb >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -i (reinstall): $(cat "$work/dpkg.log")"
expect_eq "upgrade: a stopped agent stays stopped" "$(prop ActiveState)" "inactive"

echo "-- the unit at work (test config)"
# Another user's process the agent must see through /proc: a `sleep` named tikv-server,
# run by systemd as nobody (it dies with the namespaces).
in_ns cp /bin/sleep /run/tha/tikv-server
in_ns systemd-run --quiet --uid=nobody --gid=nogroup --unit=tha-tikv -p DefaultDependencies=no \
  /run/tha/tikv-server 600
cp "$work/test.toml" "$CONFIG"
# A fresh state: saved components would otherwise stand in for the process table.
find "$STATE_DIR" -mindepth 1 -delete
in_ns systemctl start "$UNIT" || fail "systemctl start"
expect_eq "Type=notify: active once READY=1 came" "$(prop ActiveState)" "active"
main_pid=$(prop MainPID)
expect_eq "runs as the dedicated user" "$(in_ns stat -c %U "/proc/$main_pid")" "$NAME"
caps=$(in_ns grep '^CapEff' "/proc/$main_pid/status" | awk '{print $2}')
expect_eq "effective capabilities: CAP_NET_RAW only" "$caps" "0000000000002000"
# The unit grants it as an ambient capability; the daemon clears its ambient set so
# that forward commands it starts do not inherit it.
caps=$(in_ns grep '^CapAmb' "/proc/$main_pid/status" | awk '{print $2}')
expect_eq "ambient capabilities: none left for the commands it starts" "$caps" "0000000000000000"
expect_eq "memory and task bounds: MemoryHigh MemoryMax TasksMax" \
  "$(prop MemoryHigh) $(prop MemoryMax) $(prop TasksMax)" "100663296 134217728 64"
expect_eq "low CPU and IO weights" "$(prop CPUWeight) $(prop IOWeight)" "10 10"
expect_eq "OOM score: the agent goes before TiKV" "$(in_ns cat "/proc/$main_pid/oom_score_adj")" "500"
expect_eq "open files: soft and hard limit" \
  "$(in_ns awk '/^Max open files/ {print $4, $5}' "/proc/$main_pid/limits")" "8192 8192"
until_ok 15 sh -c "grep -q '^metric=TiDB.ping.Ping_packet_loss|value=0|' '$STATE_DIR/alerts.txt'" \
  || fail "no ping round without loss: $(grep ping "$STATE_DIR/alerts.txt" 2>/dev/null)"
ok "raw ICMP to 127.0.0.1 as $NAME: Ping_packet_loss 0"
until_ok 15 sh -c "grep -q '^metric=TiDB.tikv.' '$STATE_DIR/alerts.txt'" \
  || fail "tikv-server (run by nobody) not detected from the process table"
ok "process table: another user's tikv-server detected (TiDB.tikv.* keys)"
status_text=$(prop StatusText)
case "$status_text" in *keys*) ok "STATUS=: $status_text" ;; *) fail "no STATUS text: '$status_text'" ;; esac
expect_eq "unix sink socket" "$(in_ns stat -c '%F %U:%G %a' /run/$NAME/alerts.sock)" "socket $NAME:$NAME 660"
# The published snapshot ($RUNTIME_DIRECTORY/snapshot.json): readable by any user, as
# Zabbix agent 2's `zabbix` user reads it with no grant.
until_ok 10 in_ns test -s /run/$NAME/snapshot.json || fail "no snapshot in /run/$NAME"
expect_eq "published snapshot: owner, mode, directory mode" \
  "$(in_ns stat -c '%U %a' /run/$NAME/snapshot.json) $(in_ns stat -c %a /run/$NAME)" "$NAME 644 755"
expect_eq "another user (nobody, like zabbix) reads it fresh: zabbix stale" \
  "$(in_ns setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/$NAME zabbix stale)" "0"
sleep 6 # three watchdog periods
expect_eq "watchdog fed: still active, same main PID, no restart" \
  "$(prop ActiveState) $(prop MainPID) $(prop NRestarts)" "active $main_pid 0"

sed 's/^interval = "1s"/interval = "2s"/' "$work/test.toml" >"$CONFIG"
in_ns systemctl reload "$UNIT" || fail "systemctl reload with a good config"
until_ok 10 sh -c "nsenter -t $pid1 -a journalctl -u $UNIT --no-pager | grep -q 'configuration reloaded'" \
  || fail "no 'configuration reloaded' in the journal"
ok "reload with a good config: applied"
cp "$work/bad.toml" "$CONFIG"
if in_ns systemctl reload "$UNIT" 2>/dev/null; then fail "systemctl reload accepted a bad config"; fi
expect_eq "reload with a bad config: refused, still running" "$(prop ActiveState) $(prop MainPID)" "active $main_pid"
cp "$work/test.toml" "$CONFIG"

in_ns systemctl stop "$UNIT"
expect_eq "stop: exit status and result" "$(prop ExecMainStatus) $(prop Result)" "0 success"
expect_eq "stop: /run/$NAME removed" "$(in_ns sh -c "test -e /run/$NAME && echo present || echo gone")" "gone"

cp "$work/bad.toml" "$CONFIG"
if in_ns systemctl start "$UNIT" 2>/dev/null; then fail "started with a bad config"; fi
case "$(prop ExecStartPre)" in
  *status=78*) ok "bad config: the start fails in ExecStartPre with 78" ;;
  *) fail "bad config: ExecStartPre did not exit 78: $(prop ExecStartPre)" ;;
esac
# Retried (RestartSec=1s in the test drop-in) up to the start limit.
until_ok 30 sh -c "nsenter -t $pid1 -a journalctl -u $UNIT --no-pager | grep -q 'Start request repeated too quickly'" \
  || fail "bad config: retried without end: $(prop ActiveState) $(prop NRestarts)"
restarts=$(prop NRestarts)
sleep 3 # three RestartSec periods: another retry would show
expect_eq "bad config: retries stopped at the start limit" "$(prop ActiveState) $(prop NRestarts)" "failed $restarts"
in_ns systemctl reset-failed "$UNIT"

echo "-- removal under systemd"
cp "$work/test.toml" "$CONFIG"
in_ns systemctl start "$UNIT" || fail "systemctl start"
in_ns dpkg -r "$NAME" >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -r: $(cat "$work/dpkg.log")"
expect_eq "dpkg -r: prerm stopped the agent" "$(in_ns sh -c "pgrep -u $NAME -x $NAME || echo none")" "none"
expect_eq "dpkg -r: the unit is gone" "$(prop LoadState)" "not-found"
[ -f "$CONFIG" ] || fail "dpkg -r removed the config"
in_ns dpkg -P "$NAME" >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -P: $(cat "$work/dpkg.log")"
[ ! -e "$CONFIG" ] || fail "dpkg -P kept the config"
ok "dpkg -r kept the config; dpkg -P removed it"

# deb-systemd-invoke asks policy-rc.d first, as image builds expect.
if in_ns test -e /run/tha/policy-rc.d; then
  in_ns sh -c 'printf "#!/bin/sh\nexit 101\n" >/run/tha/policy-rc.d'
  in_ns dpkg -i /run/tha/agent.deb >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -i (policy-rc.d 101): $(cat "$work/dpkg.log")"
  expect_eq "policy-rc.d 101: enabled, not started" \
    "$(in_ns systemctl is-enabled "$UNIT") $(prop ActiveState)" "enabled inactive"
  in_ns dpkg -P "$NAME" >"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -P: $(cat "$work/dpkg.log")"
else
  echo "  (no policy-rc.d on this host: the policy check needs one to bind over)"
fi

printf 'verify-unit-systemd.sh: %d checks passed in %ds\n' "$checks" "$(($(date +%s) - started))"
