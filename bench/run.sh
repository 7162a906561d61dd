#!/usr/bin/env bash
# Benchmarks of issue 8 (SPEC §14): footprint, CPU, vmalert, the sequential seed approach and
# the load on Prometheus, all against the loopback sandbox of the end-to-end tests (a real
# Prometheus pair scraping fake TiDB components that serve the 41 rules' metrics). Writes its
# sections of bench/REPORT.md and leaves every other section of that file alone.
#
#   bench/run.sh                    # as root: ping needs CAP_NET_RAW or ping_group_range
#
# Durations and counts come from the environment (defaults in brackets); the defaults finish in
# about 15 minutes on 2 cores:
#   BENCH_BLOCK [0]                 sandbox block: hosts 127.B.1.1 (Prometheus A), .2 (B), .10
#   BENCH_FOOTPRINT_CYCLES [600]    cycles of the footprint run (600 = the issue's 10 minutes at 1 s)
#   BENCH_FOOTPRINT_INTERVAL_MS [250]  its cycle interval; 600 cycles take 2.5 minutes
#   BENCH_PING_TARGETS [100]        ping targets of the footprint run (127.B.2.1 upwards)
#   BENCH_PING_EVERY [1s]           their round period (10 echoes 40 ms apart per target, the defaults)
#   BENCH_ROUNDS [5]                A/B rounds: agent and vmalert alternate, then the sequential baseline
#   BENCH_AB_SECONDS [30]           measured window of each contender per round
#   BENCH_AB_INTERVAL_MS [250]      cycle (evaluation) interval of agent, vmalert and baseline
#   BENCH_WARMUP_CYCLES [8]         cycles before a window starts (startup is not steady state)
#   BENCH_SEQ_RUNS [40]             sequential-baseline runs per round, paced at the interval
#   BENCH_CALLGRIND_RUNS [3]        callgrind runs of `once`, with all rules and with none
#   BENCH_BEFORE_BIN []             another tidb-host-agent binary (e.g. main before a fix) measured
#                                   side by side with this one: footprint, A/B rounds, callgrind
#   BENCH_REPORT [bench/REPORT.md]  where the sections go
#   BENCH_KEEP []                   set: keep the work directory (configs, logs, raw figures)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

BLOCK=${BENCH_BLOCK:-0}
FOOTPRINT_CYCLES=${BENCH_FOOTPRINT_CYCLES:-600}
FOOTPRINT_INTERVAL_MS=${BENCH_FOOTPRINT_INTERVAL_MS:-250}
PING_TARGETS=${BENCH_PING_TARGETS:-100}
PING_EVERY=${BENCH_PING_EVERY:-1s}
ROUNDS=${BENCH_ROUNDS:-5}
AB_SECONDS=${BENCH_AB_SECONDS:-30}
AB_INTERVAL_MS=${BENCH_AB_INTERVAL_MS:-250}
WARMUP_CYCLES=${BENCH_WARMUP_CYCLES:-8}
SEQ_RUNS=${BENCH_SEQ_RUNS:-40}
CALLGRIND_RUNS=${BENCH_CALLGRIND_RUNS:-3}
BEFORE_BIN=${BENCH_BEFORE_BIN:-}
REPORT=${BENCH_REPORT:-$ROOT/bench/REPORT.md}

HOST_IP=127.$BLOCK.1.1
PROM_A=http://127.$BLOCK.1.1:9090
PROM_B=http://127.$BLOCK.1.2:9090
AGENT_METRICS=127.$BLOCK.1.1:9555
VMALERT_LISTEN=127.$BLOCK.1.10:8880
ALERTMANAGER_LISTEN=127.$BLOCK.1.10:9093
TICK_MS=$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1000 / hz }')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMAND="$(env | grep -E '^BENCH_' | sort | tr '\n' ' ')bench/run.sh"

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: ping needs CAP_NET_RAW"
for tool in curl jq awk valgrind vmalert prometheus-alertmanager; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install curl jq valgrind victoria-metrics prometheus-alertmanager)"
done

WORK=$(mktemp -d /tmp/tidb-host-agent-bench.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW"
# Processes this script started, stopped by pid on exit.
STARTED=()
SANDBOX_PID=

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [ -n "$SANDBOX_PID" ]; then
        { echo quit >&3; } 2>/dev/null || true
        exec 3>&- || true
        for _ in $(seq 100); do kill -0 "$SANDBOX_PID" 2>/dev/null || break; sleep 0.2; done
        kill -TERM "$SANDBOX_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- small measuring helpers -------------------------------------------------------------

# utime + stime of a process in ms (its whole life, threads included, exited ones too).
cpu_ms() { awk -v tick="$TICK_MS" '{ sub(/^.*\) /, ""); print ($12 + $13) * tick }' "/proc/$1/stat"; }

# A /proc/PID/status field in KiB (VmRSS, VmHWM, RssAnon, RssFile) or a count (Threads).
status_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# Sum of the samples of metric NAME (exact name) whose labels contain FILTER, from URL.
metric() {
    { curl -sf --max-time 5 "$1" || true; } | awk -v name="$2" -v filter="${3:-}" '
        { split($1, parts, "{") }
        parts[1] == name && index($0, filter) { sum += $NF; found = 1 }
        END { if (found) printf "%.9f\n", sum; else print "nan" }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -g | head -1; }
maximum() { sort -g | tail -1; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

# Polls COMMAND until it prints a number >= TARGET; gives up after LIMIT seconds.
wait_until() {
    local target=$1 limit=$2 what=$3 value deadline=$((SECONDS + $2))
    shift 3
    while :; do
        value=$("$@" 2>/dev/null || echo nan)
        if [ "$value" != nan ] && awk -v v="$value" -v t="$target" 'BEGIN { exit !(v >= t) }'; then
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "waited ${limit}s for $what (last value: $value)"
        sleep 0.2
    done
}

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=()
    local p
    for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    STARTED=("${kept[@]+"${kept[@]}"}")
}

# --- build ---------------------------------------------------------------------------------

log "building (release)"
cargo build --release --quiet --bin tidb-host-agent --example sandbox --example sequential
AGENT_BIN=$ROOT/target/release/tidb-host-agent
SANDBOX_BIN=$ROOT/target/release/examples/sandbox
SEQUENTIAL_BIN=$ROOT/target/release/examples/sequential
if [ -n "$BEFORE_BIN" ]; then
    [ -x "$BEFORE_BIN" ] || die "BENCH_BEFORE_BIN=$BEFORE_BIN is not an executable"
    BEFORE_BIN=$(realpath "$BEFORE_BIN")
fi
# Contenders measured as "the agent": label and binary.
AGENTS=("agent:$AGENT_BIN")
[ -z "$BEFORE_BIN" ] || AGENTS+=("before:$BEFORE_BIN")

# --- configuration -------------------------------------------------------------------------

# The benchmarked host runs every component and is a cluster reporter, so every one of the
# 41 rules has its key: 40 PromQL queries per cycle plus the computed Prometheus_is_down.
agent_config() { # NAME INTERVAL_MS PING(0|1)
    local dir=$WORK/$1 targets=""
    mkdir -p "$dir/state" "$dir/out"
    if [ "$3" = 1 ]; then
        targets=$(for i in $(seq 1 "$PING_TARGETS"); do printf '"127.%d.%d.%d",' "$BLOCK" $((2 + (i - 1) / 250)) $((1 + (i - 1) % 250)); done)
        targets=${targets%,}
    fi
    cat > "$dir/config.toml" <<EOF
[agent]
interval = "$2ms"
state_dir = "$dir/state"

[log]
level = "warn"

[host]
addresses = ["$HOST_IP"]
components = ["pd", "tidb", "tikv", "tiflash", "node_exporter", "blackbox_exporter", "grafana"]
cluster_reporter = true

[prometheus]
servers = ["$PROM_A", "$PROM_B"]

[ping]
enabled = $([ "$3" = 1 ] && echo true || echo false)
targets = [$targets]
every = "$PING_EVERY"
record_file = "$dir/state/slow-ping.jsonl"

[metrics]
listen = "$AGENT_METRICS"

[[output]]
kind = "file"
format = "agent"
path = "$dir/out/alerts.txt"

[[output]]
kind = "unix"
format = "agent"
path = "$dir/out/alerts.sock"

[[output]]
kind = "file"
format = "prometheus"
path = "$dir/out/tidb_host_agent.prom"
EOF
    echo "$dir/config.toml"
}

RULES_CONFIG=$(agent_config rules "$AB_INTERVAL_MS" 0)
FOOTPRINT_CONFIG=$(agent_config footprint "$FOOTPRINT_INTERVAL_MS" 1)
"$AGENT_BIN" check -c "$FOOTPRINT_CONFIG" >/dev/null || die "the footprint config is invalid"
"$AGENT_BIN" explain -c "$RULES_CONFIG" > "$WORK/explain.txt"
RULE_QUERIES=$(grep -c '^  query:     [^n]' "$WORK/explain.txt" || true)
RULE_KEYS=$(grep -c '^  query:' "$WORK/explain.txt" || true)

# `once` with no rule at all: what callgrind counts besides the rules.
NO_RULES_CONFIG=$(agent_config norules "$AB_INTERVAL_MS" 0)
disabled=$(awk '/^[^ #]/ { key = $0 } /^  query:     [^n]/ { printf "%s\"%s\"", sep, key; sep = ", " }' "$WORK/explain.txt")
sed -i "s|^\[ping\]|[rules]\ndisable = [$disabled]\n\n[ping]|" "$NO_RULES_CONFIG"

# vmalert gets the catalog itself, without the computed rule: it is not PromQL for vmalert
# to evaluate (its `vector(0) > 1` would only add an always-empty query).
awk '/^- name: / { skip = ($3 == "prometheus") } !skip' rules/tidb.rules.yml > "$WORK/vmalert.rules.yml"
VMALERT_RULES=$(grep -c -- '- alert:' "$WORK/vmalert.rules.yml")
mkdir -p "$WORK/alertmanager"
cat > "$WORK/alertmanager/alertmanager.yml" <<'EOF'
route:
  receiver: sink
receivers:
  - name: sink
EOF

# --- sandbox and alertmanager --------------------------------------------------------------

log "starting the sandbox on block $BLOCK"
mkfifo "$WORK/sandbox.in"
"$SANDBOX_BIN" --block "$BLOCK" < "$WORK/sandbox.in" > "$WORK/sandbox.out" 2> "$WORK/sandbox.err" &
SANDBOX_PID=$!
exec 3> "$WORK/sandbox.in"
for _ in $(seq 600); do
    grep -q '^ready' "$WORK/sandbox.out" && break
    kill -0 "$SANDBOX_PID" 2>/dev/null || die "the sandbox exited: $(tail -5 "$WORK/sandbox.err")"
    sleep 0.5
done
grep -q '^ready' "$WORK/sandbox.out" || die "the sandbox was not ready within 5 minutes"
log "$(head -1 "$WORK/sandbox.out")"

prometheus-alertmanager --config.file="$WORK/alertmanager/alertmanager.yml" \
    --storage.path="$WORK/alertmanager" --web.listen-address="$ALERTMANAGER_LISTEN" \
    --cluster.listen-address= > "$WORK/alertmanager/log" 2>&1 3>&- &
STARTED+=($!)
wait_until 1 30 "alertmanager to be ready" \
    sh -c "curl -sf http://$ALERTMANAGER_LISTEN/-/ready >/dev/null && echo 1"

# Requests Prometheus served, by handler, from its own prometheus_http_requests_total.
prom_requests() { metric "$1/metrics" prometheus_http_requests_total "handler=\"$2\""; }

# --- one measured window -------------------------------------------------------------------

# Runs an agent binary on CONFIG, waits for the warm-up, measures WINDOW seconds, stops it.
# Prints one line of key=value figures.
measure_agent() { # LABEL BIN CONFIG INTERVAL_MS WINDOW_SECONDS|-CYCLES
    local label=$1 bin=$2 config=$3 interval_ms=$4 window=$5 pid
    local dir
    dir=$(dirname "$config")
    rm -rf "$dir/state"/* "$dir/out"/*
    "$bin" run -c "$config" > "$dir/$label.log" 2>&1 3>&- &
    pid=$!
    STARTED+=("$pid")
    local url=http://$AGENT_METRICS/metrics
    wait_until "$WARMUP_CYCLES" $((WARMUP_CYCLES * interval_ms / 1000 + 60)) "$label to finish its warm-up cycles" \
        metric "$url" tidb_host_agent_cycle_duration_seconds_count
    local cpu0 cycles0 sum0 evals0 qsum0 qcount0 qa0 ra0 rb0
    cpu0=$(cpu_ms "$pid")
    cycles0=$(metric "$url" tidb_host_agent_cycle_duration_seconds_count)
    sum0=$(metric "$url" tidb_host_agent_cycle_duration_seconds_sum)
    evals0=$(metric "$url" tidb_host_agent_rule_evaluations_total)
    qsum0=$(metric "$url" tidb_host_agent_query_duration_seconds_sum)
    qcount0=$(metric "$url" tidb_host_agent_query_duration_seconds_count)
    qa0=$(prom_requests "$PROM_A" /api/v1/query)
    ra0=$(prom_requests "$PROM_A" /-/ready)
    rb0=$(prom_requests "$PROM_B" /-/ready)
    local rss_series=""
    if [ "${window#-}" != "$window" ]; then
        # A number of cycles: RSS is sampled at each tenth of the way.
        local cycles=${window#-} step i
        step=$(( (cycles + 9) / 10 ))
        for i in $(seq "$step" "$step" "$cycles"); do
            wait_until $(calc "$cycles0 + $i" 0) $((step * interval_ms / 1000 * 5 + 120)) "$label to run $i cycles" \
                metric "$url" tidb_host_agent_cycle_duration_seconds_count
            rss_series+="$i:$(status_field "$pid" VmRSS),"
        done
    else
        sleep "$window"
    fi
    local cpu1 rss hwm anon file threads
    cpu1=$(cpu_ms "$pid")
    rss=$(status_field "$pid" VmRSS); hwm=$(status_field "$pid" VmHWM)
    anon=$(status_field "$pid" RssAnon); file=$(status_field "$pid" RssFile)
    threads=$(status_field "$pid" Threads)
    local cycles1 sum1 evals1 qsum1 qcount1 qa1 ra1 rb1
    cycles1=$(metric "$url" tidb_host_agent_cycle_duration_seconds_count)
    sum1=$(metric "$url" tidb_host_agent_cycle_duration_seconds_sum)
    evals1=$(metric "$url" tidb_host_agent_rule_evaluations_total)
    qsum1=$(metric "$url" tidb_host_agent_query_duration_seconds_sum)
    qcount1=$(metric "$url" tidb_host_agent_query_duration_seconds_count)
    qa1=$(prom_requests "$PROM_A" /api/v1/query)
    ra1=$(prom_requests "$PROM_A" /-/ready)
    rb1=$(prom_requests "$PROM_B" /-/ready)
    cp "$dir/out/alerts.txt" "$RAW/$label-$(basename "$dir")-alerts.txt" 2>/dev/null || true
    stop_pid "$pid"
    local cycles evals
    cycles=$(calc "$cycles1 - $cycles0" 0)
    evals=$(calc "$evals1 - $evals0" 0)
    [ "$cycles" -gt 0 ] && [ "$evals" -gt 0 ] || die "$label ran no cycle in its window (see $dir/$label.log)"
    echo "cycles=$cycles evals=$evals" \
        "cpu_ms=$(calc "$cpu1 - $cpu0" 0)" \
        "cpu_ms_per_cycle=$(calc "($cpu1 - $cpu0) / $cycles" 3)" \
        "cpu_us_per_eval=$(calc "($cpu1 - $cpu0) * 1000 / $evals" 1)" \
        "cycle_ms=$(calc "($sum1 - $sum0) * 1000 / $cycles" 2)" \
        "query_ms=$(calc "($qsum1 - $qsum0) * 1000 / ($qcount1 - $qcount0)" 2)" \
        "queries_a_per_cycle=$(calc "($qa1 - $qa0) / $cycles" 2)" \
        "ready_a_per_cycle=$(calc "($ra1 - $ra0) / $cycles" 2)" \
        "ready_b_per_cycle=$(calc "($rb1 - $rb0) / $cycles" 2)" \
        "rss_kib=$rss hwm_kib=$hwm anon_kib=$anon file_kib=$file threads=$threads" \
        "rss_series=${rss_series%,}"
}

measure_vmalert() { # WINDOW_SECONDS
    local pid url=http://$VMALERT_LISTEN/metrics
    vmalert -rule="$WORK/vmalert.rules.yml" -datasource.url="$PROM_A" \
        -notifier.url="http://$ALERTMANAGER_LISTEN" -evaluationInterval="${AB_INTERVAL_MS}ms" \
        -httpListenAddr="$VMALERT_LISTEN" -loggerLevel=WARN > "$WORK/vmalert.log" 2>&1 3>&- &
    pid=$!
    STARTED+=("$pid")
    wait_until $((WARMUP_CYCLES * VMALERT_RULES)) $((WARMUP_CYCLES * AB_INTERVAL_MS / 1000 + 60)) \
        "vmalert to finish its warm-up evaluations" metric "$url" vmalert_execution_total
    local cpu0 evals0 errors0 qa0 iters0 isum0
    cpu0=$(cpu_ms "$pid")
    evals0=$(metric "$url" vmalert_execution_total)
    errors0=$(metric "$url" vmalert_execution_errors_total)
    iters0=$(metric "$url" vmalert_iteration_duration_seconds_count)
    isum0=$(metric "$url" vmalert_iteration_duration_seconds_sum)
    qa0=$(prom_requests "$PROM_A" /api/v1/query)
    sleep "$1"
    local cpu1 rss hwm anon file threads
    cpu1=$(cpu_ms "$pid")
    rss=$(status_field "$pid" VmRSS); hwm=$(status_field "$pid" VmHWM)
    anon=$(status_field "$pid" RssAnon); file=$(status_field "$pid" RssFile)
    threads=$(status_field "$pid" Threads)
    local evals1 errors1 qa1 iters1 isum1
    evals1=$(metric "$url" vmalert_execution_total)
    errors1=$(metric "$url" vmalert_execution_errors_total)
    iters1=$(metric "$url" vmalert_iteration_duration_seconds_count)
    isum1=$(metric "$url" vmalert_iteration_duration_seconds_sum)
    qa1=$(prom_requests "$PROM_A" /api/v1/query)
    stop_pid "$pid"
    local evals
    evals=$(calc "$evals1 - $evals0" 0)
    [ "$evals" -gt 0 ] || die "vmalert evaluated nothing in its window (see $WORK/vmalert.log)"
    echo "evals=$evals errors=$(calc "$errors1 - $errors0" 0)" \
        "cpu_ms=$(calc "$cpu1 - $cpu0" 0)" \
        "cpu_ms_per_cycle=$(calc "($cpu1 - $cpu0) * $VMALERT_RULES / $evals" 3)" \
        "cpu_us_per_eval=$(calc "($cpu1 - $cpu0) * 1000 / $evals" 1)" \
        "group_iteration_ms=$(calc "($isum1 - $isum0) * 1000 / ($iters1 - $iters0)" 2)" \
        "queries_a_per_eval=$(calc "($qa1 - $qa0) / $evals" 2)" \
        "rss_kib=$rss hwm_kib=$hwm anon_kib=$anon file_kib=$file threads=$threads"
}

measure_sequential() {
    "$SEQUENTIAL_BIN" --server "$PROM_A" --explain "$WORK/explain.txt" --runs "$SEQ_RUNS" \
        --every "$(calc "$AB_INTERVAL_MS / 1000" 3)" > "$1"
    local failed
    failed=$(jq -s '[.[].failed | length] | add' "$1")
    [ "$failed" = 0 ] || die "the sequential baseline had $failed failed requests (see $1)"
    echo "requests=$(jq -s '.[0].requests' "$1")" \
        "total_ms=$(jq '.total_seconds * 1000' "$1" | median)" \
        "slowest_ms=$(jq '.slowest_seconds * 1000' "$1" | median)"
}

# `field NAME` reads NAME=value from the line on stdin.
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# Median of field NAME over the lines of FILE.
median_of() { while read -r line; do echo "$line" | field "$2"; done < "$1" | median; }
range_of() {
    local values
    values=$(while read -r line; do echo "$line" | field "$2"; done < "$1")
    echo "$(echo "$values" | minimum)–$(echo "$values" | maximum)"
}

# --- 1. footprint --------------------------------------------------------------------------

for entry in "${AGENTS[@]}"; do
    label=${entry%%:*}; bin=${entry#*:}
    log "footprint: $label, $FOOTPRINT_CYCLES cycles at ${FOOTPRINT_INTERVAL_MS} ms with $PING_TARGETS ping targets"
    measure_agent "$label" "$bin" "$FOOTPRINT_CONFIG" "$FOOTPRINT_INTERVAL_MS" "-$FOOTPRINT_CYCLES" \
        > "$RAW/footprint-$label.txt"
    log "  $(cat "$RAW/footprint-$label.txt")"
done

# --- 2-4. A/B rounds: agent(s) and vmalert alternate, then the sequential baseline ----------

for round in $(seq 1 "$ROUNDS"); do
    order=("${AGENTS[@]}" "vmalert:")
    if [ $((round % 2)) = 0 ]; then
        order=("vmalert:" "${AGENTS[@]}")
    fi
    for entry in "${order[@]}"; do
        label=${entry%%:*}; bin=${entry#*:}
        log "round $round/$ROUNDS: $label, ${AB_SECONDS}s at ${AB_INTERVAL_MS} ms"
        if [ "$label" = vmalert ]; then
            line=$(measure_vmalert "$AB_SECONDS")
        else
            line=$(measure_agent "$label" "$bin" "$RULES_CONFIG" "$AB_INTERVAL_MS" "$AB_SECONDS")
        fi
        echo "round=$round load=$(cut -d' ' -f1 /proc/loadavg) $line" >> "$RAW/ab-$label.txt"
        log "  $line"
    done
    log "round $round/$ROUNDS: sequential baseline, $SEQ_RUNS runs"
    line=$(measure_sequential "$RAW/sequential-$round.jsonl")
    echo "round=$round load=$(cut -d' ' -f1 /proc/loadavg) $line" >> "$RAW/ab-sequential.txt"
    log "  $line"
done

# --- 2. instructions: callgrind over `once` ------------------------------------------------

callgrind_once() { # BIN CONFIG OUT
    valgrind --tool=callgrind --callgrind-out-file="$3" "$1" once -c "$2" --format json \
        > "$3.json" 2> "$3.log"
    local unknown
    unknown=$(jq '[.values[] | select(.state == "unknown")] | length' "$3.json")
    [ "$unknown" = 0 ] || die "a callgrind run had $unknown unknown keys: queries timed out under valgrind ($3.log)"
    awk '/^(summary|totals):/ { print $2; exit }' "$3"
}
for entry in "${AGENTS[@]}"; do
    label=${entry%%:*}; bin=${entry#*:}
    for run in $(seq 1 "$CALLGRIND_RUNS"); do
        log "callgrind: $label, run $run/$CALLGRIND_RUNS"
        all=$(callgrind_once "$bin" "$RULES_CONFIG" "$WORK/callgrind-$label-all-$run.out")
        none=$(callgrind_once "$bin" "$NO_RULES_CONFIG" "$WORK/callgrind-$label-none-$run.out")
        echo "run=$run all=$all none=$none per_rule=$(calc "($all - $none) / $RULE_QUERIES" 0)" >> "$RAW/callgrind-$label.txt"
        log "  $(tail -1 "$RAW/callgrind-$label.txt")"
    done
done

# --- report --------------------------------------------------------------------------------

log "writing $REPORT"
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench || echo "+uncommitted")
versions="$(prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3); vmalert $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null); $(prometheus-alertmanager --version 2>&1 | head -1 | cut -d' ' -f1-3); $(rustc --version | cut -d' ' -f1-2)"

mib() { calc "$1 / 1024" 1; }
ab=$RAW/ab-agent.txt
vm=$RAW/ab-vmalert.txt
sq=$RAW/ab-sequential.txt
fp=$RAW/footprint-agent.txt
fp_line=$(cat "$fp")
fp_rss=$(echo "$fp_line" | field rss_kib); fp_hwm=$(echo "$fp_line" | field hwm_kib)
agent_rss=$(median_of "$ab" rss_kib)
agent_eval=$(median_of "$ab" cpu_us_per_eval)
vm_rss=$(median_of "$vm" rss_kib)
vm_eval=$(median_of "$vm" cpu_us_per_eval)
cycle_ms=$(median_of "$ab" cycle_ms)
seq_ms=$(median_of "$sq" total_ms)
slowest_ms=$(median_of "$sq" slowest_ms)
queries_per_cycle=$(median_of "$ab" queries_a_per_cycle)
ready_per_cycle=$(calc "$(median_of "$ab" ready_a_per_cycle) + $(median_of "$ab" ready_b_per_cycle)" 2)
requests_per_cycle=$(calc "$queries_per_cycle + $ready_per_cycle" 2)
verdict() { if awk "BEGIN { exit !($1) }"; then echo "**met**"; else echo "**missed**"; fi; }
# A typical TiKV host: tikv, node_exporter and blackbox_exporter rules, not a cluster reporter.
typical_queries=$(awk '/^  component: / { c = $2 } /^  query:     [^n]/ && (c == "tikv" || c == "node_exporter" || c == "blackbox_exporter") { n++ } END { print n + 0 }' "$WORK/explain.txt")

table_rows() { # FILE FIELDS...
    local file=$1 line f
    shift
    while read -r line; do
        printf '|'
        for f in "$@"; do printf ' %s |' "$(echo "$line" | field "$f")"; done
        printf '\n'
    done < "$file"
}

section=$WORK/section.md
{
cat <<EOF
<!-- bench/run.sh: begin (generated; edit bench/run.sh, not this part) -->
## Machine and command

- Run: $STARTED_AT, commit \`$commit\`, $(( SECONDS / 60 )) min $(( SECONDS % 60 )) s.
- Machine: $(nproc) CPUs ($cpu_model), $mem_total memory, Linux $(uname -r).
  Load average at start: $START_LOAD; at the end: $END_LOAD. The machine is shared: wall
  times (cycle, baseline) move with the load, CPU times and instruction counts much less.
- Software: $versions.
- Command: \`$COMMAND\` (defaults in the header of bench/run.sh).
- Sandbox: block $BLOCK, Prometheus A on $PROM_A and B on $PROM_B, scraping fake TiDB
  components every second. The benchmarked host is $HOST_IP with every component and cluster
  reporting on: $RULE_KEYS keys, $RULE_QUERIES PromQL rule queries per cycle; Prometheus A is local, so
  it gets the queries and both get the liveness probe.
- Every figure below is a median over $ROUNDS rounds unless it says otherwise. In each round the
  agent and vmalert run one after the other (their order alternates), then the sequential
  baseline; each agent/vmalert window is ${AB_SECONDS} s at a ${AB_INTERVAL_MS} ms interval after $WARMUP_CYCLES warm-up
  cycles. CPU is utime+stime from /proc/PID/stat (all threads, ${TICK_MS} ms ticks).

## Summary

| goal | measured | |
|---|---|---|
| RSS ≤ 8 MiB (rules, $PING_TARGETS ping targets, 3 sinks) | VmRSS $(mib "$fp_rss") MiB, VmHWM $(mib "$fp_hwm") MiB | $(verdict "$fp_rss <= 8192") |
| CPU ≤ 0.1 ms per rule evaluation | $(calc "$agent_eval / 1000" 3) ms | $(verdict "$agent_eval <= 100") |
| lighter than vmalert (~15 MiB, ~0.5 ms/eval) | RSS $(mib "$agent_rss") vs $(mib "$vm_rss") MiB; CPU/eval $(calc "$agent_eval / 1000" 3) vs $(calc "$vm_eval / 1000" 3) ms | $(verdict "$agent_rss < $vm_rss && $agent_eval < $vm_eval") |
| cycle ≥ 5× faster than sequential | cycle $cycle_ms ms vs sequential $seq_ms ms: $(calc "$seq_ms / $cycle_ms" 1)× | $(verdict "$seq_ms >= 5 * $cycle_ms") |
| cycle ≤ 1.5× the slowest single query | $cycle_ms ms vs 1.5 × $slowest_ms ms = $(calc "1.5 * $slowest_ms" 2) ms | $(verdict "$cycle_ms <= 1.5 * $slowest_ms") |

## 1. Footprint

\`tidb-host-agent run\` with the $RULE_KEYS keys, $PING_TARGETS ping targets (127.$BLOCK.2.x, every $PING_EVERY,
10 echoes each), a file sink (agent format), a unix socket sink, a file sink in the
prometheus format, and self-metrics on. $FOOTPRINT_CYCLES cycles at ${FOOTPRINT_INTERVAL_MS} ms instead of 600 at 1 s: the
same number of cycles (and of ping rounds per second of run), in a quarter of the time.

| binary | VmRSS | VmHWM | RssAnon | RssFile | threads | CPU per cycle (with ping) |
|---|---|---|---|---|---|---|
EOF
for entry in "${AGENTS[@]}"; do
    label=${entry%%:*}
    line=$(cat "$RAW/footprint-$label.txt")
    echo "| $label | $(mib "$(echo "$line" | field rss_kib)") MiB | $(mib "$(echo "$line" | field hwm_kib)") MiB | $(mib "$(echo "$line" | field anon_kib)") MiB | $(mib "$(echo "$line" | field file_kib)") MiB | $(echo "$line" | field threads) | $(echo "$line" | field cpu_ms_per_cycle) ms |"
done
echo
echo "VmRSS (KiB) along the run, by cycle: $(echo "$fp_line" | field rss_series | sed 's/,/, /g')."
echo
echo "Without ping (the A/B rounds below: rules and sinks only), the median VmRSS is $(mib "$agent_rss") MiB."
cat <<EOF

## 2. CPU

From the A/B rounds (rules and the three sinks, no ping): CPU per cycle and per rule
evaluation, the whole process's CPU divided by the cycles and by the rule evaluations it
counted (so probes, sinks, state saving and self-metrics are charged to the rules).

| round | load | cycles | rule evaluations | CPU ms | CPU ms/cycle | CPU µs/evaluation |
|---|---|---|---|---|---|---|
$(table_rows "$ab" round load cycles evals cpu_ms cpu_ms_per_cycle cpu_us_per_eval)

Median: **$(median_of "$ab" cpu_ms_per_cycle) ms per cycle, $agent_eval µs per rule evaluation**.

Instructions (valgrind --tool=callgrind, repeatable): \`tidb-host-agent once\` (start, one
cycle of $RULE_QUERIES queries, exit) against the same sandbox, and the same with every rule disabled; the
difference divided by $RULE_QUERIES is what one rule costs, including parsing and rewriting it at start.

| binary | run | once, all rules (Ir) | once, no rules (Ir) | per rule (Ir) |
|---|---|---|---|---|
EOF
for entry in "${AGENTS[@]}"; do
    label=${entry%%:*}
    while read -r line; do
        echo "| $label | $(echo "$line" | field run) | $(echo "$line" | field all) | $(echo "$line" | field none) | $(echo "$line" | field per_rule) |"
    done < "$RAW/callgrind-$label.txt"
done
cat <<EOF

## 3. Against vmalert

vmalert $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null) on the catalog (\`rules/tidb.rules.yml\` without the computed
\`Prometheus_is_down\`: $VMALERT_RULES rules, unmodified, so not host-scoped), \`-datasource.url=$PROM_A\`,
\`-evaluationInterval=${AB_INTERVAL_MS}ms\`, and a real Alertmanager as \`-notifier.url\`. Evaluations
come from its \`vmalert_execution_total\`.

| round | load | evaluations | errors | CPU ms | CPU µs/evaluation | VmRSS | VmHWM | threads |
|---|---|---|---|---|---|---|---|---|
$(while read -r line; do echo "| $(echo "$line" | field round) | $(echo "$line" | field load) | $(echo "$line" | field evals) | $(echo "$line" | field errors) | $(echo "$line" | field cpu_ms) | $(echo "$line" | field cpu_us_per_eval) | $(mib "$(echo "$line" | field rss_kib)") MiB | $(mib "$(echo "$line" | field hwm_kib)") MiB | $(echo "$line" | field threads) |"; done < "$vm")

| | agent | vmalert | ratio |
|---|---|---|---|
| VmRSS | $(mib "$agent_rss") MiB | $(mib "$vm_rss") MiB | $(calc "$vm_rss / $agent_rss" 1)× |
| VmHWM | $(mib "$(median_of "$ab" hwm_kib)") MiB | $(mib "$(median_of "$vm" hwm_kib)") MiB | |
| CPU per rule evaluation | $agent_eval µs | $vm_eval µs | $(calc "$vm_eval / $agent_eval" 1)× |
| CPU per cycle of $RULE_QUERIES rules | $(median_of "$ab" cpu_ms_per_cycle) ms | $(median_of "$vm" cpu_ms_per_cycle) ms | |

## 4. Against the seed approach

The baseline (\`bench/sequential.rs\`, run as \`target/release/examples/sequential\`) sends
what the old script sent, one request after another: the liveness probe, the two role
queries, then each of the $RULE_QUERIES rule queries as the agent sends them (from \`explain\`): $(median_of "$sq" requests) requests
to Prometheus A, over one kept-alive connection (kinder to the baseline than a new
connection per query). $SEQ_RUNS runs per round, paced at ${AB_INTERVAL_MS} ms. The agent's cycle time is its own
\`tidb_host_agent_cycle_duration_seconds\` (mean over the window: evaluation, snapshot and
hand-over to the sinks); the query time is \`tidb_host_agent_query_duration_seconds\`.

| round | load | agent cycle (ms) | agent query (ms) | sequential run (ms, median) | slowest single query (ms, median) |
|---|---|---|---|---|---|
$(paste -d' ' "$ab" "$sq" | while read -r line; do echo "| $(echo "$line" | field round | head -1) | $(echo "$line" | field load | head -1) | $(echo "$line" | field cycle_ms) | $(echo "$line" | field query_ms) | $(echo "$line" | field total_ms) | $(echo "$line" | field slowest_ms) |"; done)

Median: cycle **$cycle_ms ms**, sequential **$seq_ms ms** ($(calc "$seq_ms / $cycle_ms" 1)× faster), slowest single
query $slowest_ms ms (the cycle is $(calc "$cycle_ms / $slowest_ms" 2)× it).

## 5. Load on Prometheus

From Prometheus' own \`prometheus_http_requests_total\`, over the agent's windows: per cycle,
$queries_per_cycle \`/api/v1/query\` requests to A (one per rule; none to B while A answers) and
$ready_per_cycle \`/-/ready\` probes (one per server). So one host sends **$requests_per_cycle requests per cycle** when it
runs every component and reports cluster rules; a typical TiKV host (tikv, node_exporter and
blackbox_exporter rules, not a cluster reporter) sends $typical_queries queries + 2 probes. With component
detection on, add 2 queries per \`detect_every\` (5 min).

| hosts | interval | worst case (every component, reporter) | typical TiKV host |
|---|---|---|---|
| 1 | 15 s | $(calc "$requests_per_cycle / 15" 2) req/s | $(calc "($typical_queries + 2) / 15" 2) req/s |
| 100 | 15 s | $(calc "100 * $requests_per_cycle / 15" 0) req/s | $(calc "100 * ($typical_queries + 2) / 15" 0) req/s |
| 1,000 | 15 s | $(calc "1000 * $requests_per_cycle / 15" 0) req/s | $(calc "1000 * ($typical_queries + 2) / 15" 0) req/s |

All of it lands on the preferred server. For comparison, one vmalert evaluating the catalog for the whole cluster sends $VMALERT_RULES queries per interval
($(calc "$VMALERT_RULES / 15" 1) req/s at 15 s), however many hosts there are, but it cannot give each host its own 0/1 values.
<!-- bench/run.sh: end -->
EOF
} > "$section"

# Only the part between the markers is ours; everything else in the report (the Ping
# section of the ping benchmark, hand-written notes) is kept as it is.
if [ -f "$REPORT" ] && grep -q '^<!-- bench/run.sh: begin' "$REPORT"; then
    awk -v section="$section" '
        /^<!-- bench\/run.sh: begin/ { while ((getline line < section) > 0) print line; skip = 1; next }
        /^<!-- bench\/run.sh: end/ { skip = 0; next }
        !skip' "$REPORT" > "$WORK/report.md"
else
    {
        if [ -f "$REPORT" ]; then cat "$REPORT"; echo; else echo "# Benchmarks"; echo; fi
        cat "$section"
        grep -q '^## Ping' "$REPORT" 2>/dev/null || printf '\n## Ping\n\n(Written by the ping benchmark in bench/ping/.)\n'
    } > "$WORK/report.md"
fi
cp "$WORK/report.md" "$REPORT"
log "done in $(( SECONDS / 60 )) min $(( SECONDS % 60 )) s; report: $REPORT"
