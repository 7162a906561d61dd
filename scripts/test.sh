#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs the
# checks and the whole test suite. Run it as root on Debian (CI does), or with the
# packages already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pair in prometheus:prometheus promtool:prometheus \
            prometheus-alertmanager:prometheus-alertmanager \
            prometheus-blackbox-exporter:prometheus-blackbox-exporter \
            prometheus-node-exporter:prometheus-node-exporter \
            victoria-metrics:victoria-metrics fping:fping ip:iproute2 setpriv:util-linux \
            unshare:util-linux; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
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
for svc in prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-node-exporter victoria-metrics; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build
./target/debug/tidb-host-agent check -c config.example.toml
cargo test --all-targets -- --test-threads=2

# Packaging (SPEC §12): build both packages; install, upgrade, remove and purge the .deb
# on this host; inspect the .rpm. It needs root, and leaves the host as it found it.
if [ "$(id -u)" -eq 0 ]; then
  scripts/verify-package.sh
else
  echo "skipping scripts/verify-package.sh: it installs packages, and needs root" >&2
fi
