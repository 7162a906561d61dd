#!/usr/bin/env python3
"""Renders one run of bench/measure.py into the generated part of bench/REPORT.md.

    bench/render.py [RESULT.json] [--report bench/REPORT.md] [--stdout]

RESULT defaults to the newest file in bench/results/. Only the part between the markers
is replaced; the hand-written sections around it stay as they are.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench/render.py: begin (generated from {source}; edit bench/render.py, not this part) -->"
END = "<!-- bench/render.py: end -->"

# The goals: the agent's figure at most this many times vmalert's.
GOALS = [
    ("RssAnon", ("memory", "rss_anon_kib"), 0.33),
    ("Pss", ("memory", "pss_kib"), 0.6),
    ("CPU per rule evaluation", ("cpu_us_per_eval",), 0.25),
]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(window, path):
    for key in path:
        if window is None:
            return None
        window = window.get(key)
    return window


def over_rounds(run, label, *path):
    """The median over the rounds of one contender's figure."""
    return median([get(r.get(label), path) for r in run["rounds"]])


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.2f} MiB"


def num(value, digits=2, unit=""):
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def ratio(a, b, digits=2):
    return "–" if a is None or not b else f"{a / b:.{digits}f}×"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def agents(run):
    return [label for label in run["binaries"]]


def render(run, source):
    m, s, sw = run["machine"], run["setup"], run["software"]
    labels = agents(run)
    out = [BEGIN.format(source=source), ""]
    add = out.append

    add("## The run")
    add("")
    tree = run["tree"]
    add(f"- {run['started_at']}, {run['duration_s'] // 60} min {run['duration_s'] % 60} s, "
        f"tree at `{tree['commit'][:10]}`"
        + (" with uncommitted changes" if tree["uncommitted_changes"] else "") + ".")
    loads = [r[label]["load1"] for r in run["rounds"] for label in ("agent", "vmalert")
             if label in r and "load1" in r[label]]
    add(f"- Machine: {m['cores']} cores ({m['cpu_model']}), {m['mem_total_kib'] / 1048576:.1f} GiB, "
        f"Linux {m['kernel']}; shared with other builds and tests. Load average before: "
        f"{' '.join(f'{x:.2f}' for x in m['load_before'])}; after: "
        f"{' '.join(f'{x:.2f}' for x in m['load_after'])}"
        + (f"; 1-minute load at the end of each window: {min(loads):.2f}–{max(loads):.2f}" if loads else "")
        + ".")
    add(f"- Software: {sw['prometheus']}; vmalert {sw['vmalert']}; {sw['alertmanager']}; {sw['rustc']}.")
    for label, b in run["binaries"].items():
        sections = b["sections"]
        add(f"- `{label}`: {b['description']}; {b['bytes'] / 1048576:.2f} MiB file, .text "
            f"{sections.get('.text', 0) / 1048576:.2f} MiB, .rodata {sections.get('.rodata', 0) / 1048576:.2f} MiB.")
    add(f"- Sandbox block {s['block']}: Prometheus A {s['prometheus_a']} and B {s['prometheus_b']}, "
        f"scraping fake TiDB components every second. The benchmarked host {s['host']} runs every "
        f"component and reports the cluster rules: {s['keys']} keys, {s['promql_rules']} PromQL rules "
        f"a cycle in batches of up to {s['rules_per_query']}. vmalert evaluates the same "
        f"{s['vmalert_rules']} rules (the catalog without the computed Prometheus_is_down), "
        f"unscoped, against A, notifying a real Alertmanager.")
    add(f"- {s['rounds']} round{'s' if s['rounds'] != 1 else ''}; in each, every agent binary and vmalert run one after the other "
        f"(the order alternates) for {s['window_seconds']:g} s at a {s['interval_ms']} ms interval "
        f"after {s['warmup_cycles']} warm-up cycles, then the sequential baseline ({s['seq_runs']} runs "
        f"one request after another, {s['seq_runs']} all at once). Memory is the median of one "
        "sample a second over each window; figures below are medians over the rounds.")
    add(f"- Command: `{run['command']}`.")
    if run.get("incomplete"):
        add(f"- **Incomplete run:** {run['incomplete']}.")
    add("")

    add("## Goals: the agent against vmalert")
    add("")
    rows, misses = [], []
    for name, path, goal in GOALS:
        a, v = over_rounds(run, "agent", *path), over_rounds(run, "vmalert", *path)
        fmt = mib if path[0] == "memory" else lambda x: num(x, 1, " µs")
        met = a is not None and v and a / v <= goal
        rows.append([name, fmt(a), fmt(v), ratio(a, v), f"≤ {goal}×", "**met**" if met else "**missed**"])
        if a is not None and v and not met:
            misses.append(f"{name} misses by {fmt(a - goal * v)}: the goal is {fmt(goal * v)} "
                          f"({goal} × vmalert's), {a / (goal * v):.2f}× that measured.")
    add(table(["", "agent", "vmalert", "agent / vmalert", "goal", ""], rows))
    add("")
    for miss in misses:
        add(f"- {miss}")
    if misses:
        add("")

    add("## Memory")
    add("")
    add("Rules and the three sinks, no ping (the rounds):")
    add("")
    fields = [("RssAnon (private: heap, stacks, written data)", "rss_anon_kib"),
              ("Pss (shared pages divided among their users)", "pss_kib"),
              ("Pss of anonymous pages", "pss_anon_kib"), ("Pss of file pages", "pss_file_kib"),
              ("VmRSS", "vm_rss_kib"), ("RssFile", "rss_file_kib"), ("VmHWM (peak)", "vm_hwm_kib")]
    rows = []
    for name, key in fields:
        values = [over_rounds(run, label, "memory", key) for label in labels]
        v = over_rounds(run, "vmalert", "memory", key)
        rows.append([name, *map(mib, values), mib(v), ratio(values[0], v)])
    rows.append(["threads", *(num(over_rounds(run, label, "memory", "threads"), 0) for label in labels),
                 num(over_rounds(run, "vmalert", "memory", "threads"), 0), ""])
    add(table(["", *(f"`{label}`" for label in labels), "vmalert", "agent / vmalert"], rows))
    add("")
    footprint = run.get("footprint", {})
    if footprint:
        add(f"With {s['ping_targets']} ping targets (a round every {s['ping_every']}) as well, "
            f"{s['footprint_seconds']:g} s at {s['footprint_interval_ms']} ms:")
        add("")
        rows = []
        for name, key in fields[:1] + fields[1:2] + fields[4:5] + fields[6:]:
            rows.append([name, *(mib(get(footprint.get(label), ("memory", key))) for label in labels)])
        rows.append(["RssAnon, highest sample",
                     *(mib(get(footprint.get(label), ("memory_max", "rss_anon_kib"))) for label in labels)])
        rows.append(["CPU per cycle", *(num(get(footprint.get(label), ("cpu_ms_per_cycle",)), 2, " ms")
                                        for label in labels)])
        rows.append(["minor page faults per cycle",
                     *(num(get(footprint.get(label), ("minor_faults_per_cycle",)), 1) for label in labels)])
        add(table(["", *(f"`{label}`" for label in labels)], rows))
        add("")
        mappings = get(footprint.get("agent"), ("mappings",))
        if mappings:
            add("Where the agent's resident pages are at the end of that window (/proc/PID/smaps):")
            add("")
            add(table(["mapping", "resident", "Pss", "anonymous"],
                      [[x["mapping"], f"{x['rss_kib']:,} KiB", f"{x['pss_kib']:,} KiB",
                        f"{x['anonymous_kib']:,} KiB"] for x in mappings]))
            add("")
    for label in labels[1:]:
        d_rounds = [get(r.get(label), ("memory", "rss_anon_kib")) for r in run["rounds"]]
        a_rounds = [get(r.get("agent"), ("memory", "rss_anon_kib")) for r in run["rounds"]]
        pairs = [(a, b) for a, b in zip(a_rounds, d_rounds) if a is not None and b is not None]
        if pairs:
            add(f"`{label}` − `agent`, RssAnon by round: "
                + ", ".join(f"{b - a:+,.0f} KiB" for a, b in pairs)
                + (f"; with ping: {get(footprint.get(label), ('memory', 'rss_anon_kib')) - get(footprint.get('agent'), ('memory', 'rss_anon_kib')):+,.0f} KiB"
                   if label in footprint and "agent" in footprint else "") + ".")
            add("")

    add("## CPU")
    add("")
    add("utime + stime of the whole process (every thread) over each window, divided by the "
        "cycles and by the rule evaluations counted (the agent's "
        "`tidb_host_agent_rule_evaluations_total`, vmalert's `vmalert_execution_total`), so probes, "
        "sinks, notifications and self-metrics are charged to the rules.")
    add("")
    rows = [
        ["CPU per rule evaluation", *(num(over_rounds(run, x, "cpu_us_per_eval"), 1, " µs") for x in labels),
         num(over_rounds(run, "vmalert", "cpu_us_per_eval"), 1, " µs"),
         ratio(over_rounds(run, "agent", "cpu_us_per_eval"), over_rounds(run, "vmalert", "cpu_us_per_eval"))],
        [f"CPU per cycle of {s['promql_rules']} rules", *(num(over_rounds(run, x, "cpu_ms_per_cycle"), 2, " ms") for x in labels),
         num(over_rounds(run, "vmalert", "cpu_ms_per_cycle"), 2, " ms"),
         ratio(over_rounds(run, "agent", "cpu_ms_per_cycle"), over_rounds(run, "vmalert", "cpu_ms_per_cycle"))],
        ["minor page faults per cycle", *(num(over_rounds(run, x, "minor_faults_per_cycle"), 1) for x in labels),
         num(over_rounds(run, "vmalert", "minor_faults_per_cycle"), 1), ""],
    ]
    add(table(["", *(f"`{x}`" for x in labels), "vmalert", "agent / vmalert"], rows))
    add("")
    cg = run.get("callgrind")
    if cg:
        add(f"Instructions (callgrind, user space only, independent of the load): the daemon runs "
            f"**{cg['daemon']['per_cycle']:,.0f} per cycle, {cg['daemon']['per_eval']:,.0f} per rule "
            f"evaluation** ({cg['daemon']['cycles']:.0f} cycles at 1 s). `once` (start, one cycle, exit) "
            f"runs {cg['once_all_rules']:,} with every rule and {cg['once_no_rules']:,} with none: "
            f"{cg['once_per_rule']:,.0f} per rule, most of it loading, parsing and rewriting the rule.")
        add("")

    add("## Cycle time and the sequential baseline")
    add("")
    cycle = over_rounds(run, "agent", "cycle_ms")
    seq = over_rounds(run, "sequential", "total_ms")
    slowest = over_rounds(run, "sequential", "slowest_ms")
    at_once = over_rounds(run, "at_once", "total_ms")
    prom_cycle = over_rounds(run, "agent", "prom_cpu_ms_per_cycle")
    requests = over_rounds(run, "sequential", "requests")
    add(table(["", "median"], [
        ["agent cycle (its own `cycle_duration_seconds`)", num(cycle, 2, " ms")],
        ["agent query (`query_duration_seconds`)", num(over_rounds(run, "agent", "query_ms"), 2, " ms")],
        [f"sequential baseline: {requests:.0f} requests one after another", num(seq, 2, " ms")],
        ["its slowest single request", num(slowest, 2, " ms")],
        ["the same requests all at once", num(at_once, 2, " ms")],
        ["sequential / agent cycle", ratio(seq, cycle, 1)],
        ["agent cycle / slowest single request", ratio(cycle, slowest, 1)],
        [f"Prometheus CPU per agent cycle / {m['cores']} cores (the floor of any client here)",
         num(prom_cycle / m["cores"] if prom_cycle else None, 2, " ms")],
    ]))
    add("")

    add("## Load on Prometheus")
    add("")
    qa = over_rounds(run, "agent", "queries_a_per_cycle")
    probes = (over_rounds(run, "agent", "ready_a_per_cycle") or 0) + (over_rounds(run, "agent", "ready_b_per_cycle") or 0)
    trivial = run.get("trivial")
    add(table(["per cycle", "agent", "vmalert", "sequential baseline"], [
        ["queries to A", num(qa, 1), num(over_rounds(run, "vmalert", "queries_a_per_cycle"), 1),
         num(requests - 1 if requests else None, 0)],
        ["readiness probes (A and B)", num(probes, 1), "0", "1"],
        ["Prometheus A's CPU (less its CPU at rest)", num(prom_cycle, 2, " ms"),
         num(over_rounds(run, "vmalert", "prom_cpu_ms_per_cycle"), 2, " ms"),
         num(over_rounds(run, "sequential", "prom_cpu_ms_per_run"), 2, " ms")],
        ["connections held to Prometheus (mean)", num(over_rounds(run, "agent", "connections_to_prometheus"), 1),
         num(over_rounds(run, "vmalert", "connections_to_prometheus"), 1), "1"],
    ]))
    add("")
    if trivial and qa:
        per_request = trivial["prom_cpu_ms_per_run"] * 1000 / trivial["requests"]
        total = qa + probes
        typical = -(-s["typical_tikv_rules"] // s["rules_per_query"]) + 2
        add(f"A request that selects nothing (`vector(0) > 1`) costs Prometheus {per_request:,.0f} µs "
            f"of CPU. At a 15 s interval, 100 hosts like this one send {100 * total / 15:.0f} requests/s "
            f"and cost Prometheus {100 * prom_cycle / 15000:.2f} cores; 100 typical TiKV hosts "
            f"({s['typical_tikv_rules']} rules, {typical} requests a cycle) send {100 * typical / 15:.0f} requests/s. "
            "(This sandbox's series are few; a real cluster's queries cost more.)")
        add("")

    add("## Every round")
    add("")
    rows = []
    for r in run["rounds"]:
        row = [r["round"], num(get(r.get("agent"), ("load1",)), 2)]
        for label in [*labels, "vmalert"]:
            w = r.get(label)
            row += [num(get(w, ("cpu_us_per_eval",)), 1), mib(get(w, ("memory", "rss_anon_kib"))),
                    mib(get(w, ("memory", "pss_kib")))]
        row += [num(get(r.get("agent"), ("cycle_ms",)), 2), num(get(r.get("sequential"), ("total_ms",)), 2),
                num(get(r.get("at_once"), ("total_ms",)), 2)]
        rows.append(row)
    header = ["round", "load"]
    for label in [*labels, "vmalert"]:
        header += [f"{label} µs/eval", f"{label} RssAnon", f"{label} Pss"]
    header += ["agent cycle ms", "sequential ms", "at once ms"]
    add(table(header, rows))
    add("")
    add(END)
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", nargs="?")
    parser.add_argument("--report", default=str(ROOT / "bench/REPORT.md"))
    parser.add_argument("--stdout", action="store_true", help="print the generated part only")
    args = parser.parse_args()
    if args.result:
        result = Path(args.result)
    else:
        results = sorted((ROOT / "bench/results").glob("*.json"))
        if not results:
            sys.exit("render: no bench/results/*.json; run bench/run.sh first")
        result = results[-1]
    run = json.loads(result.read_text())
    try:
        source = result.resolve().relative_to(ROOT)
    except ValueError:
        source = result
    generated = render(run, source)
    if args.stdout:
        sys.stdout.write(generated)
        return
    report = Path(args.report)
    text = report.read_text() if report.exists() else "# Benchmarks\n\n## Analysis\n"
    lines = text.splitlines(keepends=True)
    begin = next((i for i, x in enumerate(lines) if x.startswith("<!-- bench/render.py: begin")), None)
    end = next((i for i, x in enumerate(lines) if x.startswith(END)), None)
    if begin is None or end is None or end < begin:
        # No generated part yet: it goes after the title.
        title = 1 if lines and lines[0].startswith("# ") else 0
        lines[title:title] = ["\n", generated, "\n"]
    else:
        lines[begin:end + 1] = [generated]
    report.write_text("".join(lines))
    print(f"render: {report} from {result}")


if __name__ == "__main__":
    main()
