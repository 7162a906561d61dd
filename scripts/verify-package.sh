#!/usr/bin/env bash
# Verifies the packages on this Debian host, as root (CI runs it from scripts/test.sh):
#   - builds both with scripts/package.sh, plus the .deb again with a bumped revision;
#   - lintian on the .deb: no error, at most 2 warnings, each explained in
#     packaging/README.md; rpmlint on the .rpm (packaging/rpm/rpmlint.toml): no error,
#     each warning explained there too;
#   - apt install of the .deb: man tidb-host-agent renders the page; the bash, zsh and
#     fish completions load from each shell's own directory and complete a command;
#     --version prints the version and --help lists it;
#   - install: binary, unit, conffile, sysusers file, user, directories, enable symlink;
#     the shipped config passes `check`; the daemon runs one cycle as its user and stops
#     cleanly on SIGTERM;
#   - upgrade keeps an edited config; `dpkg -r` keeps it; `dpkg -P` removes it and the state;
#   - the unit passes `systemd-analyze verify`, and its `systemd-analyze security`
#     exposure stays at or below 2.0; it bounds the agent's memory, tasks, open files,
#     OOM score and CPU and IO weights;
#   - the .rpm holds the same files with the same contents, the config is
#     %config(noreplace), and its scriptlets create and remove what they should;
#   - under a real systemd booted in throwaway namespaces (verify-unit-systemd.sh): the
#     maintainer scripts start, restart and stop the unit, and the hardened unit works
#     (notify, watchdog, CAP_NET_RAW, resource bounds, process table, reload, stop,
#     start limit).
# Leaves the machine as it found it: the package purged, the user removed if it created it.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=tidb-host-agent
UNIT=$NAME.service
CONFIG=/etc/$NAME/config.toml
STATE_DIR=/var/lib/$NAME
RUN_DIR=/run/$NAME
WANTS_LINK=/etc/systemd/system/multi-user.target.wants/$UNIT
MAX_EXPOSURE=2.0

started=$(date +%s)
checks=0
step() { printf '\n== %s\n' "$*"; }
ok() { checks=$((checks + 1)); printf '  ok  %s\n' "$*"; }
fail() { printf '  FAIL %s\n' "$*" >&2; exit 1; }
# expect DESCRIPTION COMMAND...: the command must succeed.
expect() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
# expect_eq DESCRIPTION ACTUAL WANTED
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', wanted '$3'"; fi; }
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$NAME" 2>/dev/null | tr -d ' ' || true; }
# Never installed or purged: dpkg knows nothing of it, or only its name.
pkg_absent() { case "$(pkg_status)" in ""|un|pn) true ;; *) false ;; esac; }

if [ "$(id -u)" -ne 0 ]; then
  echo "verify-package.sh: run as root (it installs and purges the package)" >&2
  exit 1
fi
if ! pkg_absent; then
  echo "verify-package.sh: $NAME is installed here ($(pkg_status)); it would be purged. Remove it first." >&2
  exit 1
fi

need=()
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v file >/dev/null 2>&1 || need+=(file)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v rpmlint >/dev/null 2>&1 || need+=(rpmlint)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
[ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

user_existed=no
getent passwd "$NAME" >/dev/null && user_existed=yes
work=$(mktemp -d)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  dpkg -P "$NAME" >/dev/null 2>&1 || true
  rm -rf "$STATE_DIR" "$RUN_DIR" "/var/log/$NAME" "$WANTS_LINK"
  # Left by the rpm scriptlet test if it stopped halfway; dpkg owns neither path then.
  if pkg_absent; then
    rm -f "/usr/lib/sysusers.d/$NAME.conf" "/usr/lib/systemd/system/$UNIT"
  fi
  if [ "$user_existed" = no ] && getent passwd "$NAME" >/dev/null; then
    userdel "$NAME" 2>/dev/null || true
  fi
  if [ "$user_existed" = no ] && getent group "$NAME" >/dev/null; then
    groupdel "$NAME" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "building the packages"
build_started=$(date +%s)
scripts/package.sh | tee "$work/package.log"
deb=$(sed -n 's/^deb: *//p' "$work/package.log")
rpm_file=$(sed -n 's/^rpm: *//p' "$work/package.log")
# The bumped .deb also shows that the maintainer is set at packaging time.
bumped_maintainer='Verify Package <verify-package@example.org>'
PACKAGE_NO_BUILD=1 DEB_REVISION=99 PACKAGE_MAINTAINER=$bumped_maintainer scripts/package.sh >"$work/package-bumped.log"
deb_bumped=$(sed -n 's/^deb: *//p' "$work/package-bumped.log")
# The bumped .deb must not be left in dist/ where it would pass for the release.
mv "$deb_bumped" "$work/"
deb_bumped=$work/$(basename "$deb_bumped")
build_seconds=$(($(date +%s) - build_started))
expect "the .deb exists: $deb" test -s "$deb"
expect "the bumped .deb exists: $(basename "$deb_bumped")" test -s "$deb_bumped"
expect "the .rpm exists: $rpm_file" test -s "$rpm_file"
version=$(dpkg-deb -f "$deb" Version)
version_bumped=$(dpkg-deb -f "$deb_bumped" Version)
expect "$version_bumped is newer than $version" dpkg --compare-versions "$version_bumped" gt "$version"
expect_eq "PACKAGE_MAINTAINER sets the Maintainer" "$(dpkg-deb -f "$deb_bumped" Maintainer)" "$bumped_maintainer"
dpkg-deb --fsys-tarfile "$deb_bumped" | tar -xO ./usr/share/doc/$NAME/changelog.Debian.gz | gunzip >"$work/changelog.Debian"
expect "... and signs changelog.Debian: $(tail -n 1 "$work/changelog.Debian")" \
  grep -q "^ -- $bumped_maintainer  " "$work/changelog.Debian"
expect "changelog.Debian names $version_bumped" grep -q "^$NAME ($version_bumped) " "$work/changelog.Debian"
expect "package.sh refuses a maintainer without an address" \
  sh -c "! PACKAGE_NO_BUILD=1 PACKAGE_MAINTAINER=nobody scripts/package.sh >/dev/null 2>&1"

step "release binary"
binary_info=$(file -b target/release/$NAME)
expect "stripped: $binary_info" grep -q ', stripped' <<<"$binary_info"
expect "no debug sections" sh -c "! readelf -S target/release/$NAME | grep -q '\.debug_'"
binary_size=$(stat -c %s target/release/$NAME)
ok "size: $binary_size bytes"

step "lintian $(basename "$deb")"
# Explained: a tag named in packaging/README.md, where each remaining one is justified.
explained() { grep -qF "\`$1\`" packaging/README.md; }
# Overridden tags (packaging/debian/lintian-overrides, each with its reason) are shown,
# not counted.
lintian --show-overrides "$deb" 2>/dev/null | grep -v '^N:' || true
# --fail-on none: a non-zero exit is lintian failing to run, never a tag.
lintian --fail-on none "$deb" >"$work/lintian.txt" 2>"$work/lintian.err" \
  || fail "lintian did not run: $(cat "$work/lintian.err")"
lintian_errors=$(grep -c '^E:' "$work/lintian.txt" || true)
lintian_warnings=$(grep -c '^W:' "$work/lintian.txt" || true)
expect_eq "lintian: no errors" "$lintian_errors" "0"
expect "lintian: $lintian_warnings warnings, at most 2" test "$lintian_warnings" -le 2
for tag in $(sed -n 's/^W: [^:]*: \([^ ]*\).*/\1/p' "$work/lintian.txt" | sort -u); do
  expect "lintian warning $tag is explained in packaging/README.md" explained "$tag"
done
for tag in $(sed -n 's/^[a-z0-9.+-]*: \([a-z0-9-]*\) .*/\1/p' packaging/debian/lintian-overrides); do
  expect "lintian override $tag is explained in packaging/README.md" explained "$tag"
done

step "rpmlint $(basename "$rpm_file")"
rpmlint -c packaging/rpm/rpmlint.toml "$rpm_file" >"$work/rpmlint.txt" 2>&1 || true
cat "$work/rpmlint.txt"
rpmlint_summary=$(grep -E '[0-9]+ errors, [0-9]+ warnings' "$work/rpmlint.txt" || true)
[ -n "$rpmlint_summary" ] || fail "rpmlint printed no summary"
rpmlint_errors=$(sed -E 's/.* ([0-9]+) errors,.*/\1/' <<<"$rpmlint_summary")
rpmlint_warnings=$(sed -E 's/.* ([0-9]+) warnings,.*/\1/' <<<"$rpmlint_summary")
expect_eq "rpmlint: no errors" "$rpmlint_errors" "0"
for tag in $(sed -n 's/^[^ ]*: W: \([^ ]*\).*/\1/p' "$work/rpmlint.txt" | sort -u); do
  expect "rpmlint warning $tag is explained in packaging/README.md" explained "$tag"
done
for tag in $(sed -n 's/^ *"\([a-z-]*\)",$/\1/p' packaging/rpm/rpmlint.toml); do
  expect "rpmlint filter $tag is explained in packaging/README.md" explained "$tag"
done

step "apt install ./$(basename "$deb")"
# apt, as an operator would: it resolves the package's dependencies from what is here.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$(readlink -f "$deb")" </dev/null
expect_eq "package state" "$(pkg_status)" "ii"
expect "binary /usr/bin/$NAME is executable" test -x /usr/bin/$NAME
expect_eq "binary is the release build" "$(sha256sum </usr/bin/$NAME)" "$(sha256sum <target/release/$NAME)"
version_upstream=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
expect_eq "binary version (--version)" "$(/usr/bin/$NAME --version)" "$NAME $version_upstream"
expect "unit /lib/systemd/system/$UNIT is the repository's" cmp -s /lib/systemd/system/$UNIT systemd/$UNIT
expect "sysusers file /usr/lib/sysusers.d/$NAME.conf" cmp -s /usr/lib/sysusers.d/$NAME.conf packaging/$NAME.sysusers
expect "config $CONFIG is the shipped default" cmp -s "$CONFIG" packaging/config.toml
expect "config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}\n' $NAME | grep -q '^ $CONFIG '"
expect "docs installed" test -s /usr/share/doc/$NAME/config.example.toml -a -s /usr/share/doc/$NAME/README.md
expect "changelogs installed: changelog.gz, changelog.Debian.gz" \
  test -s /usr/share/doc/$NAME/changelog.gz -a -s /usr/share/doc/$NAME/changelog.Debian.gz
expect_eq "--help lists --version" "$(/usr/bin/$NAME --help | grep -c -- '-V, --version')" "1"
expect_eq "-V prints the version too" "$(/usr/bin/$NAME -V)" "$(/usr/bin/$NAME --version)"

step "man page and completions"
# A minimal image may tell dpkg to drop man pages (path-exclude); the page is then
# checked in the .deb only, and this says so.
if grep -qs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
  mkdir -p "$work/man" && dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/man" ./usr/share/man
  man_page=$work/man/usr/share/man/man8/$NAME.8.gz
  ok "dpkg excludes /usr/share/man on this host: checking the page from the .deb"
else
  man_page=/usr/share/man/man8/$NAME.8.gz
  expect_eq "man -w finds tidb-host-agent(8)" "$(man -w 8 $NAME)" "$man_page"
fi
man_text=$(MANWIDTH=80 man -l "$man_page" 2>"$work/man.err" | col -b)
expect "man renders without warnings" test ! -s "$work/man.err"
for section in NAME SYNOPSIS OPTIONS COMMANDS "EXIT STATUS" FILES "SEE ALSO" VERSION; do
  expect "man page section $section" grep -qx "$section" <<<"$man_text"
done
for sub in run check explain once alerts ping status zabbix; do
  expect "man page describes '$NAME $sub'" grep -q "^   $NAME $sub\$" <<<"$man_text"
done
expect "man page version $version_upstream" grep -q "v$version_upstream" <<<"$man_text"
bash_completion=/usr/share/bash-completion/completions/$NAME
zsh_completion=/usr/share/zsh/vendor-completions/_$NAME
fish_completion=/usr/share/fish/vendor_completions.d/$NAME.fish
# bash: bash-completion's loader finds the file by the command's name, and the function
# it registers completes a command and an option.
bash_out=$(bash -c "source /usr/share/bash-completion/bash_completion
  __load_completion $NAME || exit 1
  complete -p $NAME
  COMP_WORDS=($NAME ex); COMP_CWORD=1; COMP_LINE='$NAME ex'; COMP_POINT=\${#COMP_LINE}
  \$(complete -p $NAME | sed -n 's/.*-F \([^ ]*\) .*/\1/p') $NAME ex $NAME
  echo \"reply: \${COMPREPLY[*]}\"
  COMP_WORDS=($NAME check --conn); COMP_CWORD=2; COMP_LINE='$NAME check --conn'; COMP_POINT=\${#COMP_LINE}
  \$(complete -p $NAME | sed -n 's/.*-F \([^ ]*\) .*/\1/p') $NAME --conn check
  echo \"reply: \${COMPREPLY[*]}\"" 2>&1) || fail "bash completion did not load: $bash_out"
expect "bash: the loader registers it ($(head -n 1 <<<"$bash_out"))" grep -q "^complete .* $NAME\$" <<<"$bash_out"
expect "bash: '$NAME ex<TAB>' completes explain" grep -qx "reply: explain" <<<"$bash_out"
expect "bash: '$NAME check --conn<TAB>' completes --connect" grep -qx "reply: --connect" <<<"$bash_out"
# zsh: a clean compinit (no user config) finds it on Debian's fpath.
expect "zsh: the file parses" zsh -n "$zsh_completion"
expect_eq "zsh: compinit maps $NAME to _$NAME" \
  "$(zsh -fc "autoload -Uz compinit && compinit -u -d $work/zcompdump && print -r -- \${_comps[$NAME]}")" "_$NAME"
# fish: autoloaded from vendor_completions.d when the command is completed (a fresh
# HOME: no user's configuration; --no-config would empty fish_complete_path).
expect "fish: the file parses" fish --no-config -n "$fish_completion"
mkdir -p "$work/fish-home"
fish_out=$(cd "$work" && HOME=$work/fish-home fish -c "complete -C '$NAME ex'" 2>&1 || true)
expect "fish: '$NAME ex<TAB>' completes explain ($(head -n 1 <<<"$fish_out"))" grep -q "^explain" <<<"$fish_out"
for f in packaging/zabbix/*; do
  expect "Zabbix file /usr/share/$NAME/zabbix/$(basename "$f") is the repository's" \
    cmp -s "/usr/share/$NAME/zabbix/$(basename "$f")" "$f"
done
expect "user $NAME exists" sh -c "getent passwd $NAME >/dev/null"
expect "group $NAME exists" sh -c "getent group $NAME >/dev/null"
uid=$(id -u "$NAME")
expect "user is a system user (uid $uid)" test "$uid" -lt 1000
expect "user has no login shell" sh -c "getent passwd $NAME | grep -q 'nologin\$\|/false\$'"
expect_eq "state directory owner and mode" "$(stat -c '%U:%G %a' "$STATE_DIR")" "$NAME:$NAME 755"
if command -v systemctl >/dev/null 2>&1; then
  expect "unit enabled on first install ($WANTS_LINK)" test -L "$WANTS_LINK"
fi
if [ -d /run/systemd/system ]; then
  expect "systemd runs here: the unit is active" systemctl is-active --quiet "$UNIT"
  # The checks below run the daemon themselves.
  systemctl stop "$UNIT"
else
  ok "systemd is not running here: postinst skipped start (no error)"
fi

step "check and one daemon cycle with the shipped config"
expect "check -c $CONFIG exits 0 (as root)" /usr/bin/$NAME check -c "$CONFIG"
as_agent=(setpriv --reuid="$NAME" --regid="$NAME" --init-groups --reset-env)
expect "check -c $CONFIG exits 0 (as $NAME)" "${as_agent[@]}" /usr/bin/$NAME check -c "$CONFIG"
# What RuntimeDirectory= does under systemd.
install -d -m 0755 -o "$NAME" -g "$NAME" "$RUN_DIR"
"${as_agent[@]}" /usr/bin/$NAME -c "$CONFIG" run 2>"$work/daemon.log" &
daemon_pid=$!
# Bounded wait for the first cycle's outputs (refused or answered, the first cycle is quick).
for _ in $(seq 1 100); do
  [ -s "$STATE_DIR/alerts.txt" ] && [ -S "$RUN_DIR/alerts.sock" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.2
done
expect "file sink written by $NAME: $STATE_DIR/alerts.txt" test -s "$STATE_DIR/alerts.txt"
expect "every line in the agent format" \
  sh -c "! grep -Ev '^metric=TiDB\.[a-z_]+\.[A-Za-z0-9_]+\|value=[01]\|type=gauge\|tags=status:[a-z]+\$' $STATE_DIR/alerts.txt"
expect "Prometheus_is_down is reported" grep -q '^metric=TiDB.prometheus.Prometheus_is_down|' "$STATE_DIR/alerts.txt"
expect_eq "unix sink socket owner and mode" "$(stat -c '%F %U:%G %a' "$RUN_DIR/alerts.sock")" "socket $NAME:$NAME 660"
kill -TERM "$daemon_pid"
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=
expect_eq "SIGTERM: exit code" "$daemon_rc" "0"
expect "SIGTERM: socket removed" test ! -e "$RUN_DIR/alerts.sock"
expect "state saved in $STATE_DIR" sh -c "ls -A $STATE_DIR | grep -qv '^alerts.txt\$'"
if grep -qi 'panic' "$work/daemon.log"; then fail "the daemon panicked: $(cat "$work/daemon.log")"; fi
rmdir "$RUN_DIR"

step "systemd-analyze"
verify_out=$(systemd-analyze verify /lib/systemd/system/$UNIT 2>&1) || fail "systemd-analyze verify: $verify_out"
if grep -q "$UNIT" <<<"$verify_out"; then fail "systemd-analyze verify: $verify_out"; fi
ok "systemd-analyze verify passes, with no complaint about $UNIT"
# The agent runs beside TiKV and PD: it must not take their resources (issue 15).
for directive in MemoryHigh=96M MemoryMax=128M TasksMax=64 OOMScoreAdjust=500 \
  CPUWeight=10 IOWeight=10 LimitNOFILE=8192; do
  expect "unit bounds the agent: $directive" grep -qx "$directive" /lib/systemd/system/$UNIT
done
security_out=$(systemd-analyze security --offline=true --no-pager /lib/systemd/system/$UNIT 2>&1) || true
printf '%s\n' "$security_out" | grep -v '^✓' || true
exposure=$(printf '%s\n' "$security_out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level"
expect "exposure $exposure <= $MAX_EXPOSURE" awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'

step "upgrade to $version_bumped keeps an edited config and a disabled unit"
sed -i 's/^interval = "15s"/interval = "30s"  # edited by verify-package.sh/' "$CONFIG"
expect "config edited" grep -q 'edited by verify-package.sh' "$CONFIG"
if command -v systemctl >/dev/null 2>&1; then
  systemctl --quiet disable "$UNIT" 2>/dev/null
  expect "unit disabled by the administrator" test ! -e "$WANTS_LINK"
fi
# stdin closed: a conffile prompt would fail here instead of hanging.
dpkg -i "$deb_bumped" </dev/null
expect_eq "package state" "$(pkg_status)" "ii"
if command -v systemctl >/dev/null 2>&1; then
  expect "the upgrade left it disabled (deb-systemd-helper remembers)" test ! -e "$WANTS_LINK" -a ! -L "$WANTS_LINK"
fi
expect_eq "installed version" "$(dpkg-query -W -f='${Version}' "$NAME")" "$version_bumped"
expect "the edit survived" grep -q 'edited by verify-package.sh' "$CONFIG"
expect "no .dpkg-new/.dpkg-dist beside it" sh -c "! ls /etc/$NAME/ | grep -q dpkg"
expect_eq "user kept its uid" "$(id -u "$NAME")" "$uid"
expect "edited config passes check" /usr/bin/$NAME check -c "$CONFIG"

step "dpkg -r keeps the config"
dpkg -r "$NAME" </dev/null
expect_eq "package state" "$(pkg_status)" "rc"
expect "binary removed" test ! -e /usr/bin/$NAME
expect "unit removed" test ! -e /lib/systemd/system/$UNIT
expect "config kept, with the edit" grep -q 'edited by verify-package.sh' "$CONFIG"
expect "state directory kept" test -d "$STATE_DIR"

step "dpkg -i after dpkg -r, then dpkg -P removes everything"
dpkg -i "$deb_bumped" </dev/null
expect "the edit is still there" grep -q 'edited by verify-package.sh' "$CONFIG"
dpkg -P "$NAME" </dev/null
expect "package purged" pkg_absent
expect "config removed" test ! -e "$CONFIG"
expect "/etc/$NAME removed" test ! -e "/etc/$NAME"
expect "state directory removed" test ! -e "$STATE_DIR"
expect "enable symlink removed" test ! -e "$WANTS_LINK" -a ! -L "$WANTS_LINK"

step "rpm $(basename "$rpm_file")"
echo "-- rpm -qpl"
rpm -qpl "$rpm_file"
echo "-- rpm -qp --configfiles"
rpm -qp --configfiles "$rpm_file"
echo "-- rpm -qp --scripts"
rpm -qp --scripts "$rpm_file"
# The same files as the .deb. By distribution: the unit's and zsh's directories, and
# the upstream changelog's name (Debian: changelog.gz). Debian policy only: copyright,
# changelog.Debian.gz and the lintian overrides.
deb_only="^/usr/share/doc/$NAME/\(copyright\|changelog.Debian.gz\)\$\|^/usr/share/lintian/"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' \
  | sed -e 's#^/lib/systemd/system/#/usr/lib/systemd/system/#' \
        -e 's#^/usr/share/zsh/vendor-completions/#/usr/share/zsh/site-functions/#' \
        -e "s#^/usr/share/doc/$NAME/changelog.gz\$#/usr/share/doc/$NAME/CHANGELOG.md#" \
  | grep -v "$deb_only" | sort >"$work/deb-files"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file" | awk '$1 !~ /^d/ { print $2 }' | sort >"$work/rpm-files"
expect "same file set as the .deb" diff -u "$work/deb-files" "$work/rpm-files"
mkdir -p "$work/deb-root" "$work/rpm-root"
dpkg-deb -x "$deb" "$work/deb-root"
mv "$work/deb-root/lib/systemd" "$work/deb-root/usr/lib/systemd"
rmdir "$work/deb-root/lib"
mv "$work/deb-root/usr/share/zsh/vendor-completions" "$work/deb-root/usr/share/zsh/site-functions"
deb_doc=$work/deb-root/usr/share/doc/$NAME
gunzip -c "$deb_doc/changelog.gz" >"$deb_doc/CHANGELOG.md"
rm "$deb_doc/changelog.gz" "$deb_doc/copyright" "$deb_doc/changelog.Debian.gz"
rm -r "$work/deb-root/usr/share/lintian"
rpm2archive - <"$rpm_file" | tar -xz -C "$work/rpm-root"
expect "same contents as the .deb" diff -r "$work/deb-root" "$work/rpm-root"
expect_eq "config files" "$(rpm -qp --configfiles "$rpm_file")" "$CONFIG"
# FILEFLAGS: c = %config, n = noreplace.
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" | awk -v f="$CONFIG" '$1 == f { print $2 }')
expect "config is %config(noreplace) (flags: $flags)" sh -c "case '$flags' in *c*n*|*n*c*) true;; *) false;; esac"
expect_eq "binary mode" "$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file" | awk '$2 == "/usr/bin/'$NAME'" { print $1 }')" "-rwxr-xr-x"
for tag in POSTIN PREUN POSTUN; do
  rpm -qp --qf "%{$tag}" "$rpm_file" >"$work/$tag.sh"
  expect "%$tag scriptlet present and valid sh" sh -c "test -s $work/$tag.sh && sh -n $work/$tag.sh"
done

step "rpm scriptlets on this host (systemd not running here: no start, no error)"
# Only the scriptlets run: rpm on Debian keeps its own database, so the files come from
# the .rpm's payload, extracted above.
install -m 0644 "$work/rpm-root/usr/lib/sysusers.d/$NAME.conf" /usr/lib/sysusers.d/$NAME.conf
install -m 0644 "$work/rpm-root/usr/lib/systemd/system/$UNIT" /usr/lib/systemd/system/$UNIT
if [ "$user_existed" = no ]; then
  userdel "$NAME" 2>/dev/null || true
  groupdel "$NAME" 2>/dev/null || true
fi
sh -e "$work/POSTIN.sh" 1
expect "%post 1 created the user" sh -c "getent passwd $NAME >/dev/null"
expect_eq "%post 1 created the state directory" "$(stat -c '%U:%G %a' "$STATE_DIR")" "$NAME:$NAME 755"
# Debian's presets enable what they do not list; RHEL's disable it.
expect "%post 1 applied the preset (enabled on Debian)" test -L "$WANTS_LINK"
sh -e "$work/POSTIN.sh" 2
ok "%post 2 (upgrade) runs again cleanly"
sh -e "$work/POSTUN.sh" 1
ok "%postun 1 (upgrade) runs cleanly"
sh -e "$work/PREUN.sh" 0
expect "%preun 0 left no enable symlink" test ! -e "$WANTS_LINK" -a ! -L "$WANTS_LINK"
sh -e "$work/POSTUN.sh" 0
ok "%postun 0 (erase) runs cleanly"
rm -f /usr/lib/sysusers.d/$NAME.conf /usr/lib/systemd/system/$UNIT
rm -rf "$STATE_DIR"

step "the package and the unit under a real systemd (booted in throwaway namespaces)"
unit_rc=0
scripts/verify-unit-systemd.sh "$deb" "$deb_bumped" || unit_rc=$?
case $unit_rc in
  0) unit_result="passed" ;;
  77) unit_result="skipped: this host cannot boot systemd in namespaces" ; echo "  $unit_result" ;;
  *) fail "verify-unit-systemd.sh failed" ;;
esac

trap - EXIT
cleanup
expect "machine clean: package purged" pkg_absent
if [ "$user_existed" = no ]; then
  expect "machine clean: no $NAME user" sh -c "! getent passwd $NAME"
fi

elapsed=$(($(date +%s) - started))
printf '\nverify-package.sh: %d checks passed in %ds (building: %ds); under systemd: %s. exposure %s, binary %s bytes; lintian %s errors %s warnings; rpmlint %s errors %s warnings\n' \
  "$checks" "$elapsed" "$build_seconds" "$unit_result" "$exposure" "$binary_size" \
  "$lintian_errors" "$lintian_warnings" "$rpmlint_errors" "$rpmlint_warnings"
