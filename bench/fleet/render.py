#!/usr/bin/env python3
"""Renders fleet runs of bench/fleet/measure.py into bench/REPORT.md and bench/fleet/cpu.png.

    bench/fleet/render.py [RESULT.json ...] [--report bench/REPORT.md] [--stdout]

RESULT defaults to the newest bench/results/fleet-*.json. With several files, the figures
of each (N, mode) come from the last file that has them (e.g. a later run of `auto` alone);
each mode's share of the pair's CPU is always against the `none` runs of its own file. Only
the part between this script's markers is replaced.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BEGIN = "<!-- bench/fleet/render.py: begin (generated from {source}; edit bench/fleet/render.py, not this part) -->"
END = "<!-- bench/fleet/render.py: end -->"
PLOT = ROOT / "bench/fleet/cpu.png"
MODE_ORDER = ["none", "floor", "evaluate", "auto", "auto-instances", "auto-instances-cluster",
              "sequential", "none-after"]
# The modes the goals judge: `auto`; `auto` with `[host] matcher = "instances"`; and that with
# the three host rules that sum over every instance made cluster rules.
GOAL_MODES = ["auto", "auto-instances", "auto-instances-cluster"]
# The goals of issue 16.
GOAL_REQUESTS = 1.0
GOAL_SERVING_RATIO = 0.2
GOAL_HOSTS = 1000
GOAL_SHARE_MS_PER_S = 50.0  # 5% of one core
INTERVAL_S = 15


def num(value, digits=1, unit=""):
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def verdict(met):
    return "**met**" if met else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def a_over_b(f):
    """Server A's CPU less server B's over a mode's windows (their median), in ms/s."""
    windows = [w["prometheus_cpu_ms_per_s"] for w in f.get("rounds") or [f]
               if w.get("prometheus_cpu_ms_per_s")]
    return statistics.median(w["a"] - w["b"] for w in windows) if windows else None


def paired_shares(modes):
    """{mode: the pair's CPU the agents cause, paired}: A's CPU over B's, less that
    difference without agents (between `none` and `none-after`, in proportion to the time).
    The agents ask A, the preferred server, and nothing of B, which scrapes the same targets
    and evaluates the same rules at the same time: B is A's control, so the pair's own
    swings (compaction, the GC, its head filling) cancel out of the difference."""
    none, after = modes.get("none"), modes.get("none-after")
    if not none or a_over_b(none) is None:
        return {}
    base, base_at = a_over_b(none), none.get("measured_at", 0.0)
    slope = 0.0
    if after and a_over_b(after) is not None and after.get("measured_at", 0.0) > base_at:
        slope = (a_over_b(after) - base) / (after["measured_at"] - base_at)
    return {mode: a_over_b(f) - (base + slope * (f.get("measured_at", base_at) - base_at))
            for mode, f in modes.items()
            if not mode.startswith("none") and a_over_b(f) is not None and not asks_b(f)}


def asks_b(f):
    """Whether the mode asked B enough to spoil it as A's control: more than a tenth of what
    it asked A (a failover, say); an `auto` agent's reads of B's rules stay far below.
    Files that do not say: no (their typical host asked A alone)."""
    rates = f.get("server_requests_per_s") or {}
    return rates.get("b", 0.0) > 0.1 * rates.get("a", 0.0)


def merge(files):
    """{(hosts, mode): figures} and {hosts: errors}, later files first to win."""
    figures, errors = {}, {}
    for name, result in files:
        for run in result["runs"]:
            paired = paired_shares(run["modes"])
            for mode, f in run["modes"].items():
                figures[(run["hosts"], mode)] = dict(f, source=name, paired_share_ms_per_s=paired.get(mode))
            for mode, why in run.get("errors", {}).items():
                if (run["hosts"], mode) not in figures:
                    errors[(run["hosts"], mode)] = why
    return figures, errors


def modes_of(figures, errors):
    seen = {mode for _, mode in [*figures, *errors]}
    return [m for m in MODE_ORDER if m in seen] + sorted(seen - set(MODE_ORDER))


def extrapolate(figures, hosts_list, modes):
    """(hosts, mode) → (pair CPU, share, from N) for combinations not measured: the agents'
    share per host at the largest N measured, times N, on top of that N's `none` run."""
    out = {}
    for mode in modes:
        if mode.startswith("none") or mode == "floor":
            continue
        measured = sorted(h for h in hosts_list if (h, mode) in figures
                          and figures[(h, mode)].get("agents_share_of_pair_ms_per_s") is not None)
        if not measured:
            continue
        base_n = measured[-1]
        per_host = figures[(base_n, mode)]["agents_share_of_pair_ms_per_s"] / base_n
        for hosts in hosts_list:
            if (hosts, mode) not in figures and (hosts, "none") in figures:
                share = per_host * hosts
                out[(hosts, mode)] = (figures[(hosts, "none")]["pair_cpu_ms_per_s"] + share, share, base_n)
    return out


def mode_text(fragment):
    """A mode's config fragment as text, after its name."""
    if fragment == "floor":
        return " (no agent: `vector(1)` to A at the fleet's request rate)"
    if not fragment:
        return ""
    return f" ({'; '.join(f'[{sec}] ' + ', '.join(v) for sec, v in fragment.items())})"


def latency(f):
    q = f.get("query_latency_s") or {}
    if not q.get("count"):
        return "–"
    buckets = sorted(float(le) for le in (f.get("query_buckets") or {}))
    first = buckets[0] if buckets else None

    def one(v):
        if v is None:
            return "–"
        if first is not None and v <= first:
            return f"< {first * 1000:.0f} ms"
        return f"{v * 1000:.0f} ms"
    return f"{one(q.get('p50'))} / {one(q.get('p99'))} / {q['mean'] * 1000:.2f} ms"


def requests_text(f):
    split = f.get("requests_per_host_per_cycle") or {}
    if not split:
        return "–"
    total = sum(split.values())
    parts = ", ".join(f"{h} {n:.2f}" for h, n in sorted(split.items()))
    return f"**{total:.2f}** ({parts})"


def memory_text(f, key):
    m = (f.get("agent_memory_kib") or {}).get(key)
    if not m:
        return "–"
    return f"{m['median'] / 1024:.2f} MiB ({m['sum'] / 1048576:.2f} GiB in all)"


def plot(figures, extra, hosts_list, modes):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("render: matplotlib is missing (apt-get install python3-matplotlib); no plot",
              file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for mode in modes:
        points = []
        for hosts in hosts_list:
            if (hosts, mode) in figures:
                points.append((hosts, figures[(hosts, mode)]["pair_cpu_ms_per_s"] / 10, False))
            elif (hosts, mode) in extra:
                points.append((hosts, extra[(hosts, mode)][0] / 10, True))
        if not points:
            continue
        measured = [(x, y) for x, y, e in points if not e]
        line = ax.plot([x for x, _ in measured], [y for _, y in measured], marker="o", label=mode)[0]
        guessed = [p for p in points if p[2]]
        if guessed and measured:
            xs = [measured[-1][0]] + [x for x, _, _ in guessed]
            ys = [measured[-1][1]] + [y for _, y, _ in guessed]
            ax.plot(xs, ys, linestyle="--", marker="x", color=line.get_color(),
                    label=f"{mode} (extrapolated)")
    ax.set_xlabel("hosts (agents)")
    ax.set_ylabel("Prometheus pair CPU, % of one core")
    ax.set_title("The pair's CPU against the fleet's size (15 s interval)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT)
    return True


def goal_rows(figures, hosts_list, mode):
    """The goals of issue 16 as `mode` meets them."""
    rows = []
    for hosts in hosts_list:
        measured, evaluate = figures.get((hosts, mode)), figures.get((hosts, "evaluate"))
        if measured:
            typical = measured.get("typical_host_requests_per_cycle")
            host = measured.get("typical_host", {}).get("host", "the typical host")
            average = sum(measured["requests_per_host_per_cycle"].values())
            average_goal, average_verdict = f"≤ {GOAL_REQUESTS:g}", verdict(average <= GOAL_REQUESTS)
            if typical is not None:
                # The goal is a host's: the typical host's own count judges it.
                own = sum(typical.values())
                rows.append([f"N={hosts}: `{mode}` requests to the pair per cycle on {host} "
                             "(its agent's own count)",
                             f"{own:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in sorted(typical.items()))})",
                             f"≤ {GOAL_REQUESTS:g}", verdict(own <= GOAL_REQUESTS)])
                average_goal, average_verdict = f"≤ {GOAL_REQUESTS:g} on a typical host", ""
            rows.append([f"N={hosts}: `{mode}` requests per host per cycle, fleet average (Prometheus' count, "
                         "every host)", f"{average:.2f}", average_goal, average_verdict])
            if evaluate and evaluate.get("serving_ms_per_host_per_cycle"):
                ratio = measured["serving_ms_per_host_per_cycle"] / evaluate["serving_ms_per_host_per_cycle"]
                same = measured["source"] == evaluate["source"]
                rows.append([f"N={hosts}: Prometheus serving time per cycle, `{mode}` / `evaluate`"
                             + ("" if same else " (different runs)"),
                             f"{ratio:.2f}×", f"≤ {GOAL_SERVING_RATIO}×",
                             verdict(ratio <= GOAL_SERVING_RATIO)])
    measured = figures.get((GOAL_HOSTS, mode))
    if measured and measured.get("paired_share_ms_per_s") is not None:
        share = measured["paired_share_ms_per_s"]
        rows.append([f"N={GOAL_HOSTS}: the pair's CPU caused by `{mode}` agents (paired: A over B)",
                     f"{share / 10:.1f}% of a core" + share_beside(measured), "≤ 5%",
                     verdict(share <= GOAL_SHARE_MS_PER_S)])
    if measured:
        age = measured["snapshot_age_s"]
        late = age.get("late_agents")
        rows.append([f"N={GOAL_HOSTS}: `{mode}` agents' snapshot age at p99 (every agent, every sample)"
                     + (f"; {late} agents once more than {INTERVAL_S + 1} s old" if late is not None else ""),
                     num(age["p99"], 2, " s"), f"≤ {INTERVAL_S} s",
                     verdict(age["p99"] is not None and age["p99"] <= INTERVAL_S and not late)])
    return rows


def run_name(path):
    """A result file's time, as the text names runs: `fleet-2026-12-05T1350-36d2a18.json` → 1350."""
    stem = Path(path).name.split("T", 1)[-1]
    return stem.split("-", 1)[0]


def share_beside(f):
    """The other estimate of a share, for beside the paired one."""
    own = f.get("agents_share_of_pair_ms_per_s")
    return "" if own is None else f" ({own / 10:.1f}% against the pair's own)"


def render(files, source):
    figures, errors = merge(files)
    hosts_list = sorted({h for h, _ in [*figures, *errors]})
    modes = modes_of(figures, errors)
    extra = extrapolate(figures, hosts_list, modes)
    out = [BEGIN.format(source=source), ""]
    add = out.append

    add("### The runs")
    add("")
    for name, r in files:
        m = r["machine"]
        s = r["setup"]
        add(f"- `{name}`: {r['started_at']}, {r['duration_s'] // 60} min {r['duration_s'] % 60} s, tree at "
            f"`{r['tree']['commit'][:10]}`" + (" with uncommitted changes" if r['tree']['uncommitted_changes'] else "")
            + f"; {m['cores']} cores ({m['cpu_model']}), {m['mem_total_kib'] / 1048576:.1f} GiB; {r['prometheus']}. "
            f"Load average before {' '.join(f'{x:.2f}' for x in m['load_before'])}, after "
            f"{' '.join(f'{x:.2f}' for x in m.get('load_after', []))}. "
            + (f"Median of {s['rounds']} windows of {s['window_seconds']:g} s" if s.get("rounds", 1) > 1
               else f"One window of {s['window_seconds']:g} s")
            + f" per mode after {s['warmup_seconds']:g} s of warm-up; "
            f"modes: " + ", ".join(f"`{k}`" + mode_text(frag) for k, frag in s["modes"].items())
            + (f"; not run: {', '.join(s['skip'])}" if s.get("skip") else "")
            + (f"; the pair's rules: `{s['pair_rules']}` ({', '.join(Path(f).name for f in s['rule_files'])})"
               if s.get("pair_rules") else "")
            + f". Command: `{r['command']}`."
            + (f" **Incomplete:** {r['incomplete']}." if r.get("incomplete") else ""))
    add("")

    add("### Goals")
    add("")
    rows = [row for mode in GOAL_MODES for row in goal_rows(figures, hosts_list, mode)]
    floor = figures.get((GOAL_HOSTS, "floor"))
    if rows and floor and floor.get("paired_share_ms_per_s") is not None:
        rows.append([f"N={GOAL_HOSTS}: beside it, the pair's CPU caused by the fleet's requests alone "
                     "(`floor`: one `vector(1)` a host a cycle, no agent; paired)",
                     f"{floor['paired_share_ms_per_s'] / 10:.1f}% of a core" + share_beside(floor), "", ""])
    if rows:
        add(table(["goal (issue 16)", "measured", "goal", ""], rows))
    else:
        add("No run of `auto` yet: the goals are not measured.")
    if not figures.get((GOAL_HOSTS, "auto")):
        add("")
        add(f"`auto` at N={GOAL_HOSTS} is not measured here: the N={GOAL_HOSTS} goals are open.")
    add("")

    add("### Figures")
    add("")
    add("The pair's CPU is both Prometheus processes' utime + stime over "
        "the window (1000 ms/s is one core). The agents' share of it is estimated two ways. "
        "*Against the pair's own*: the pair's CPU less its CPU without agents at the same time, "
        "between the `none` run before the modes and the `none-after` run after them, in "
        "proportion to the time (the pair's own CPU grows while its head fills), or the `none` run "
        "alone in files without `none-after`; the pair's own CPU moves by 30–60 ms/s from one "
        "window to the next at N=1000, and this estimate carries all of it. *Paired*: server A's "
        "CPU less server B's, less that difference in the `none` runs (interpolated the same "
        "way). Every agent asks A, its preferred server, and nothing of B (failover, both "
        "healthy), while B scrapes the same targets and evaluates the same rules at the same "
        "time, so B is A's control and the pair's own swings cancel out: the paired estimate "
        "moves by about ±10 ms/s between windows, and the goals are judged on it. Requests per host per cycle count every handler but `/metrics`, both "
        "servers. Serving time is the sum of `prometheus_http_request_duration_seconds_sum` "
        "over those handlers. Query latency is `/api/v1/query`'s histogram delta, p50 / p99 / mean; "
        "Prometheus' buckets start at 100 ms, so a quantile in the first bucket reads \"< 100 ms\". "
        "Snapshot age: now − the output file's mtime, sampled once a second for every agent "
        "(an agent rewrites it every cycle, so it ranges over one interval plus the cycle's "
        "time); p99 over all samples, and the worst agent's p99 (about its largest sample). Memory: the median agent (and all agents "
        "summed) at the end of the window. Other processes: the machine's busy CPU "
        "(/proc/stat) less the pair, the agents and the exporter — the load beside the figures.")
    add("")
    rows = []
    for hosts in hosts_list:
        for mode in modes:
            f = figures.get((hosts, mode))
            if f:
                share = f.get("agents_share_of_pair_ms_per_s")
                age = f["snapshot_age_s"]
                rows.append([
                    hosts, f"`{mode}`", num(f["pair_cpu_ms_per_s"], 1, " ms/s"),
                    (f"{num(f.get('paired_share_ms_per_s'), 1, ' ms/s')} / {num(share, 1, ' ms/s')}"
                     if not mode.startswith("none") else ""),
                    requests_text(f) if not mode.startswith("none") else "",
                    num(f.get("serving_ms_per_host_per_cycle"), 2, " ms") if not mode.startswith("none") else "",
                    latency(f),
                    f"{num(age['p99'], 2, ' s')} / {num(age['worst_agent_p99'], 2, ' s')}" if age["samples"] else "–",
                    memory_text(f, "rss_anon_kib"), memory_text(f, "pss_kib"),
                    num(f["agents_cpu_ms_per_s"], 1, " ms/s") if not mode.startswith("none") else "",
                    num(f["exporter_cpu_ms_per_s"], 1, " ms/s"),
                    # /proc/stat's ticks and the processes' own differ by ~10 ms/s.
                    f"{num(f['others_cpu_ms_per_s'], 0, ' ms/s') if f['others_cpu_ms_per_s'] > 10 else '≈ 0'}"
                    f" (load {f['load1_after']:.2f})",
                ])
            elif (hosts, mode) in extra:
                pair, share, base_n = extra[(hosts, mode)]
                rows.append([hosts, f"`{mode}`", f"*{num(pair, 1, ' ms/s')}* (extrapolated)",
                             f"*{num(share, 1, ' ms/s')}* (N={base_n}'s share per host × {hosts})",
                             *["–"] * 9])
            elif (hosts, mode) in errors:
                rows.append([hosts, f"`{mode}`", f"not measured: {errors[(hosts, mode)]}", *[""] * 10])
    add(table(["N", "mode", "pair CPU", "agents' share: paired / against the pair's own", "requests / host / cycle",
               "serving / host / cycle", "query p50 / p99 / mean", "snapshot age p99 / worst agent",
               "agent RssAnon", "agent Pss", "agents' own CPU", "exporter CPU", "other processes"],
              rows))
    add("")
    if any(mode == "floor" for _, mode in figures):
        add("`floor` has no agents: its share is what a client sending A one `vector(1)` a host "
            "a cycle, each on a new connection, costs the pair; its requests and serving time "
            "are per host of the fleet it stands for.")
        add("")
    if extra:
        add("*Extrapolated* rows were not run (they do not fit this 2-core machine, or were left "
            "out): the agents' share of the pair's CPU per host at the largest N measured for that "
            "mode, times N, added to the `none` run at N. Prometheus' cost per query grows with "
            "its series (more hosts, more series), so the figure is a lower bound.")
        add("")
    # A run without profiles does not hide an earlier run's: the last file with one wins.
    profiles = {(run["hosts"], mode): (name, f["profile_a"]) for name, result in files
                for run in result["runs"] for mode, f in run["modes"].items()
                if "total" in f.get("profile_a", {})}
    profiled = [(h, m, *profiles[(h, m)]) for h in hosts_list for m in modes if (h, m) in profiles]
    if profiled:
        columns = [k for k in profiled[0][3] if k != "window_s"]
        add("Where server A's CPU went: its own CPU profile (`/debug/pprof/profile`) over one more "
            "window after each mode's measured ones, read by `bench/fleet/pprof.py`: the CPU "
            "seconds of the samples whose stack holds each function, so the columns overlap "
            "(postings, label values and regex match are part of select series; regex compile "
            "is part of parse query, which is part of HTTP requests). From the last run that "
            "profiled each mode, named by its time.")
        add("")
        add(table(["N", "mode", "run", "window"] + columns,
                  [[h, f"`{m}`", run_name(name), f"{p['window_s']} s"] + [f"{p[c]:.2f} s" for c in columns]
                   for h, m, name, p in profiled]))
        add("")
    sources = [(h, m, figures[(h, m)]["typical_host"]) for h in hosts_list for m in modes
               if (h, m) in figures and "keys_by_source" in figures[(h, m)].get("typical_host", {})
               and m not in ("evaluate", "sequential")]
    if sources:
        hosts, mode, typical = sources[-1]
        add(f"Where a typical host's keys come from in `{mode}` (N={hosts}, host {typical['host']}: "
            f"{', '.join(typical['components'])}), as `check --connect` says:")
        add("")
        by_source = {source: keys if isinstance(keys, list) else [] for source, keys
                     in typical["keys_by_source"].items()}
        add(table(["source", "keys", ""], [
            [source, len(keys), ", ".join(f"`{k.split('.')[-1]}`" for k in keys) if len(keys) <= 12 else ""]
            for source, keys in sorted(by_source.items(), key=lambda kv: -len(kv[1]))]))
        add("")
    if plot(figures, extra, hosts_list, modes):
        add(f"![The pair's CPU against N, one line per mode]({PLOT.relative_to(ROOT / 'bench')})")
        add("")
    add(END)
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*")
    parser.add_argument("--report", default=str(ROOT / "bench/REPORT.md"))
    parser.add_argument("--stdout", action="store_true", help="print the generated part only")
    args = parser.parse_args()
    paths = [Path(p) for p in args.results]
    if not paths:
        found = sorted((ROOT / "bench/results").glob("fleet-2*.json"))
        if not found:
            sys.exit("render: no bench/results/fleet-*.json; run bench/fleet/run.sh first")
        paths = found[-1:]

    def name(path):
        try:
            return str(path.resolve().relative_to(ROOT))
        except ValueError:
            return str(path)
    files = [(name(p), json.loads(p.read_text())) for p in paths]
    generated = render(files, ", ".join(n for n, _ in files))
    if args.stdout:
        sys.stdout.write(generated)
        return
    report = Path(args.report)
    lines = report.read_text().splitlines(keepends=True)
    begin = next((i for i, x in enumerate(lines) if x.startswith("<!-- bench/fleet/render.py: begin")), None)
    end = next((i for i, x in enumerate(lines) if x.startswith(END)), None)
    if begin is None or end is None or end < begin:
        lines += ["\n## Fleet simulation (issue 16, `bench/fleet/run.sh`)\n\n", generated]
    else:
        lines[begin:end + 1] = [generated]
    report.write_text("".join(lines))
    print(f"render: {report} from {', '.join(n for n, _ in files)}")


if __name__ == "__main__":
    main()
