#!/usr/bin/env bash
# Ping benchmark (issue 5): `tidb-host-agent ping` against fping on the same loopback
# targets, A/B alternated, medians of RUNS runs; then 10,000 targets, which fping
# refuses. Prints a Markdown report on stdout (paste it into bench/REPORT.md).
#
#   bench/ping/run.sh                 # release build, RUNS=7
#   RUNS=11 BIN=target/release/tidb-host-agent bench/ping/run.sh
#
# Needs root (or CAP_NET_RAW / an open ping_group_range), fping and GNU time.
# Only 127.x.y.z addresses are pinged.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-7}
BIN=${BIN:-target/release/tidb-host-agent}
# Both tools run at this niceness, so that other work on a shared machine disturbs
# them less (and equally); NICE=0 turns it off. Negative values need root.
NICE=${NICE:--20}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet
fi
for tool in fping /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install fping time)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# N distinct loopback addresses from 127.1.0.1 on (all of 127/8 answers on Linux).
targets() {
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "127.%d.%d.%d\n", 1 + int(i / 62500), int(i / 250) % 250, i % 250 + 1 }'
}
targets 1000 >"$work/t1000"
targets 6000 >"$work/t6000"
targets 10000 >"$work/t10000"

# One timed run: prints "wall user sys maxrss_kb sent received".
timed() {
  local name=$1; shift
  nice -n "$NICE" /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || true
  local counts
  case $name in
    ours)  counts=$(awk -F'[ /=,]+' '/xmt\/rcv/ { for (i = 1; i <= NF; i++) if ($i == "xmt") { s += $(i+3); r += $(i+4) } } END { print s + 0, r + 0 }' "$work/out") ;;
    fping) counts=$(awk -F'[ /=,]+' '/xmt\/rcv/ { for (i = 1; i <= NF; i++) if ($i == "xmt") { s += $(i+3); r += $(i+4) } } END { print s + 0, r + 0 }' "$work/err") ;;
  esac
  # GNU time adds "Command exited with non-zero status N" before its figures.
  echo "$(tail -n 1 "$work/time") $counts"
}

ours_1000=( "$BIN" ping -c 10 -i 40ms -s 16 -j 1000 -f "$work/t1000" )
fping_1000=( fping -q -c 10 -p 40 -i 0 -b 16 -f "$work/t1000" )
# About the most fping takes at 10 echoes (it has 65,535 sequence numbers in all).
ours_6000=( "$BIN" ping -c 10 -i 40ms -s 16 -j 6000 -f "$work/t6000" )
fping_6000=( fping -q -c 10 -p 40 -i 0 -b 16 -f "$work/t6000" )
ours_10000=( "$BIN" ping -c 10 -i 40ms -s 16 -j 10000 -f "$work/t10000" )

: >"$work/ours1000"; : >"$work/fping1000"; : >"$work/ours6000"; : >"$work/fping6000"; : >"$work/ours10000"
for run in $(seq 1 "$RUNS"); do
  # A/B alternated, so that neither tool always runs second.
  if [ $((run % 2)) -eq 1 ]; then
    timed ours "${ours_1000[@]}" >>"$work/ours1000"
    timed fping "${fping_1000[@]}" >>"$work/fping1000"
  else
    timed fping "${fping_1000[@]}" >>"$work/fping1000"
    timed ours "${ours_1000[@]}" >>"$work/ours1000"
  fi
  if [ $((run % 2)) -eq 1 ]; then
    timed ours "${ours_6000[@]}" >>"$work/ours6000"
    timed fping "${fping_6000[@]}" >>"$work/fping6000"
  else
    timed fping "${fping_6000[@]}" >>"$work/fping6000"
    timed ours "${ours_6000[@]}" >>"$work/ours6000"
  fi
  timed ours "${ours_10000[@]}" >>"$work/ours10000"
done
fping_10000_says=$( (fping -q -c 10 -p 40 -i 0 -b 16 -f "$work/t10000" 2>&1 || true) | grep -m1 -i 'sequence' || true)

# Median of column $2 of file $1.
median() { awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Median of user+sys.
median_cpu() { awk '{ print $2 + $3 }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Total lost echoes over all runs, and runs with any loss.
loss() { awk '{ lost += $5 - $6; if ($5 != $6) bad++ } END { printf "%d lost of %d sent (%d of %d runs with loss)", lost, s, bad + 0, NR }' s="$(awk '{ s += $5 } END { print s }' "$1")" "$1"; }
row() { printf '| %s | %s s | %s s | %s MB | %s |\n' "$1" "$(median "$2" 1)" "$(median_cpu "$2")" "$(awk -v kb="$(median "$2" 4)" 'BEGIN { printf "%.1f", kb / 1024 }')" "$(loss "$2")"; }

ratio=$(awk -v a="$(median "$work/ours1000" 1)" -v b="$(median "$work/fping1000" 1)" 'BEGIN { printf "%.2f", a / b }')
cat <<EOF
Machine: $(nproc) cores, $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).
Medians of $RUNS runs, A/B alternated, both at nice $NICE; CPU is user + sys; RSS is the peak (GNU time).

| 1,000 targets × 10 echoes, 40 ms, 16 B | wall | CPU | peak RSS | loss |
|---|---|---|---|---|
$(row "tidb-host-agent ping -j 1000" "$work/ours1000")
$(row "fping -q -c 10 -p 40 -i 0 -b 16" "$work/fping1000")

Wall time ratio (ours / fping): **$ratio** (goal ≤ 1.1).

| 6,000 targets × 10 echoes, 40 ms, 16 B | wall | CPU | peak RSS | loss |
|---|---|---|---|---|
$(row "tidb-host-agent ping -j 6000" "$work/ours6000")
$(row "fping -q -c 10 -p 40 -i 0 -b 16" "$work/fping6000")

| 10,000 targets × 10 echoes, 40 ms, 16 B | wall | CPU | peak RSS | loss |
|---|---|---|---|---|
$(row "tidb-host-agent ping -j 10000" "$work/ours10000")

fping on 10,000 targets: \`$fping_10000_says\`

Raw runs (wall user sys maxrss_kb sent received):
- ours, 1,000: $(paste -sd';' "$work/ours1000")
- fping, 1,000: $(paste -sd';' "$work/fping1000")
- ours, 6,000: $(paste -sd';' "$work/ours6000")
- fping, 6,000: $(paste -sd';' "$work/fping6000")
- ours, 10,000: $(paste -sd';' "$work/ours10000")
EOF
