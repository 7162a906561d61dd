# %post: $1 is 1 on a first install, 2 or more on an upgrade.
# Creates the user and the state directory. On a first install the unit follows the
# distribution's preset policy (RHEL and Fedora: disabled until `systemctl enable`);
# on an upgrade a running agent is restarted by %postun. Tolerates a host where systemd
# is not running (containers, image builds).
NAME=tidb-host-agent
STATE_DIR=/var/lib/$NAME

if ! getent passwd "$NAME" >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "/usr/lib/sysusers.d/$NAME.conf"
    else
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /sbin/nologin --comment "$NAME daemon" "$NAME"
    fi
fi
install -d -m 0755 -o "$NAME" -g "$NAME" "$STATE_DIR"

if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    # Works offline: it only applies the preset's enable/disable symlink.
    systemctl --no-reload preset "$NAME.service" >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
exit 0
