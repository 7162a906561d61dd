# %postun: $1 is 0 when the package is erased, 1 or more on an upgrade.
# On upgrade: restart the agent if it was running, so the new binary runs. On erase the
# state in /var/lib/tidb-host-agent and the user stay (rpm has no purge); an edited
# config is kept as config.toml.rpmsave.
NAME=tidb-host-agent

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart "$NAME.service" || :
    fi
fi
exit 0
