#!/usr/bin/env bash
# Installs the Debian packages the tests, the package checks and the demo need, when
# they are missing (for scripts/verify-package.sh: lintian, rpmlint and rpm, and man-db,
# bash-completion, zsh and fish to use the man page and completions the packages
# install), and stops the daemons those packages start on their default ports (the tests
# and the demo run their own, on their own addresses). Run by scripts/test.sh and
# scripts/demo.sh; run it as root on Debian, or with the packages already installed.
set -euo pipefail

need_pkgs=()
for pair in prometheus:prometheus promtool:prometheus \
            prometheus-alertmanager:prometheus-alertmanager \
            prometheus-blackbox-exporter:prometheus-blackbox-exporter \
            prometheus-node-exporter:prometheus-node-exporter \
            victoria-metrics:victoria-metrics fping:fping ip:iproute2 setpriv:util-linux \
            unshare:util-linux zabbix_agent2:zabbix-agent2 \
            lintian:lintian rpmlint:rpmlint rpm:rpm man:man-db zsh:zsh fish:fish; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
# Packaging checks (scripts/verify-package.sh): tab completion as an operator's bash has it.
[ -f /usr/share/bash-completion/bash_completion ] || need_pkgs+=(bash-completion)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need_pkgs[*]} (run as root, or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Only the binaries are needed; the packages' own services are not started here.
  apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need_pkgs[@]}" | sort -u)
fi
# Debian's packages start their daemons on the default ports; the tests use their own
# addresses, but stop those to keep the machine quiet.
for svc in prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-node-exporter victoria-metrics zabbix-agent2; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
