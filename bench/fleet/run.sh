#!/usr/bin/env bash
# The fleet simulation of issue 16: N real agents against a real Prometheus pair that
# scrapes one fake-exporter process serving N hosts (bench/fleet/measure.py writes
# bench/results/fleet-<date>-<commit>.json; bench/fleet/render.py renders it into
# bench/REPORT.md and bench/fleet/cpu.png). Run as root on a machine with the packages of
# scripts/install-deps.sh; it installs python3-matplotlib for the plot.
#
#   bench/fleet/run.sh                                # N = 100, 300, 1000; the default modes; 3 windows of 30 s: ~45 min
#   bench/fleet/run.sh --hosts 100,300 --modes none,evaluate,sequential --rounds 1 --window-seconds 60
#   bench/fleet/run.sh --modes none,evaluate,auto,auto-instances   # the goals of issue 16
#   bench/fleet/run.sh --hosts 1000 --modes none,auto,auto-instances --profile   # where A's CPU goes
#   bench/fleet/run.sh --mode 'wide=prometheus.rules_per_query=40' --modes none,wide
#   bench/fleet/run.sh --agent-for auto=/path/to/tidb-host-agent ...   # any measure.py option (--help)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Debian's python3, where Debian's matplotlib is (not one from PATH, e.g. pyenv's).
python=/usr/bin/python3
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >/dev/null
fi
cargo build --release --quiet --bin tidb-host-agent --example fleet-exporter
result=$("$python" bench/fleet/measure.py "$@")
"$python" bench/fleet/render.py "$result"
