# %preun: $1 is 0 when the package is erased, 1 or more on an upgrade.
# On erase: disable and stop the agent (disable works offline).
NAME=tidb-host-agent

if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable "$NAME.service" >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl stop "$NAME.service" || :
    fi
fi
exit 0
