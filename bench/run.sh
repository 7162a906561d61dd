#!/usr/bin/env bash
# The benchmarks of SPEC §14: builds the release binaries, measures (bench/measure.py writes
# bench/results/<date>-<commit>.json) and renders bench/REPORT.md's generated part from it
# (bench/render.py). Run as root: ping needs CAP_NET_RAW.
#
#   bench/run.sh                                   # about 12 minutes on 2 cores
#   bench/run.sh --rounds 3 --window-seconds 20    # any bench/measure.py option (--help)
#   bench/run.sh --compare other=/path/to/tidb-host-agent --describe 'other=what it is'
#
# Needs the packages of scripts/install-deps.sh, and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin tidb-host-agent --example sandbox --example sequential
result=$(python3 bench/measure.py "$@")
python3 bench/render.py "$result"
