#!/usr/bin/env python3
"""What an agent's reads outside its cycles cost the Prometheus pair, per read and per second.

    bench/fleet/background.py [--hosts 1000] [--rate 20] [--window-seconds 30] [--rounds 3]

Beside its one query a cycle, an `auto` agent reads each server's `/api/v1/rules` every 5
minutes, and with `[host] matcher = "instances"` its instance values from one server every 5
minutes (src/evaluation/sources.rs, src/discovery/instances.rs), and with `[host]
components = []` (the default) it detects components every 5 minutes. The windows of
bench/fleet/measure.py are 30 s long and mostly miss them, so they are measured here: on the
fleet's pair (the same exporter, TiUP's rule files), a client sends server A one kind of read
at `--rate` a second, each on a new connection in the agent's form, over a window; A's CPU
less B's over the window (B, asked nothing, is A's control), less that difference over idle
windows, divided by the reads, is one read's cost. `vector(1)` is the control: the cost of a
request with no work in it (`floor` in measure.py). The fleet's average cost is that times
the fleet's rate of each read (2 N / 300 s for the rules, N / 300 s for the others).
Writes bench/results/fleet-background-<date>-<commit>.json and prints a table.
"""

import argparse
import datetime
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/fleet/measure.py, under a name of its own (it imports bench/measure.py as `measure`).
_spec = importlib.util.spec_from_file_location("fleet_measure", Path(__file__).resolve().parent / "measure.py")
fleet_measure = importlib.util.module_from_spec(_spec)
sys.modules["fleet_measure"] = fleet_measure
_spec.loader.exec_module(fleet_measure)
from fleet_measure import (INTERVAL_S, ROOT, SERVERS, Fleet, PacedClient, commit_of_tree, cpu_ms,  # noqa: E402
                           load_average, log, machine, many_files, query_request)

# The agents' period for both reads (REFRESH_EVERY).
READ_EVERY_S = 300


def pattern(ip):
    """The agent's host matcher for one address, as it sends it (SPEC §3)."""
    return 'instance=~"(?:' + ip.replace(".", "\\\\.") + ')(?::[0-9]+)?"'


def kinds(fleet):
    """{kind: (make(n) for PacedClient, reads a second over the pair at the fleet's size)}."""
    ips = [h["ip"] for h in fleet.table]

    def scoped(query):
        """Request n: `query` with HOST the pattern of the fleet's n-th host, in turn."""
        return lambda n: query_request(query.replace("HOST", pattern(ips[n % len(ips)])))
    hosts = len(ips)
    return {
        "vector": (lambda n: query_request("vector(1)"), hosts / INTERVAL_S),
        "rules": (lambda n: ("/api/v1/rules?type=alert&exclude_alerts=true", None),
                  2 * hosts / READ_EVERY_S),
        "instances": (scoped("count by (instance) (up{HOST}) or count by (instance) (ALERTS{HOST})"),
                      hosts / READ_EVERY_S),
        # Component detection (`components = []`, every `detect_every`, 5 min by default):
        # its one query, and the two it replaced, for comparison.
        "detection": (scoped("count by (group) (probe_success{HOST}) or count by (job) (up{HOST})"),
                      hosts / READ_EVERY_S),
        "detection-groups": (scoped("count by (group) (probe_success{HOST})"), hosts / READ_EVERY_S),
        "detection-jobs": (scoped("count by (job) (up{HOST})"), hosts / READ_EVERY_S),
    }


def window(fleet, seconds, make, rate):
    """(A's CPU less B's in ms/s, reads sent, reads failed) over one window."""
    pids = {name: p.pid for name, p in fleet.servers.items()}
    cpu0 = {name: cpu_ms(pid) for name, pid in pids.items()}
    started = time.monotonic()
    client = PacedClient(SERVERS["a"], rate, make=make) if make else None
    time.sleep(seconds)
    if client:
        client.stop()
    elapsed = time.monotonic() - started
    cpu = {name: cpu_ms(pid) - cpu0[name] for name, pid in pids.items()}
    counts = client.counts() if client else {"sent": 0, "failed": 0}
    return (cpu["a"] - cpu["b"]) / elapsed, counts["sent"], counts["failed"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--exporter", default=str(ROOT / "target/release/examples/fleet-exporter"))
    add("--hosts", type=int, default=1000)
    add("--rate", type=float, default=20.0, help="reads a second to A in a window")
    add("--window-seconds", type=float, default=30)
    add("--rounds", type=int, default=3)
    add("--settle-seconds", type=float, default=120, help="after the pair is ready")
    add("--icmp-exporters", type=int, default=1)
    add("--pair-rules", default="upstream")
    add("--work", default="/dev/shm")
    add("--out", default=None)
    add("--kinds", default="vector,rules,instances,detection,detection-groups,detection-jobs",
        help="the reads measured, comma-separated")
    args = parser.parse_args()
    many_files()
    started = datetime.datetime.now(datetime.timezone.utc)
    tree = commit_of_tree()
    base = Path(tempfile.mkdtemp(prefix="tidb-host-agent-background.", dir=args.work))
    fleet = Fleet(args, args.hosts, base / f"n{args.hosts}")
    windows = {}
    try:
        fleet.start()
        known = kinds(fleet)
        unknown = [k for k in args.kinds.split(",") if k and k not in known]
        if unknown:
            raise SystemExit(f"background: unknown kinds {unknown}; known: {sorted(known)}")
        reads = {k: known[k] for k in args.kinds.split(",") if k}
        for round_ in range(args.rounds):
            for kind in ["idle", *reads, "idle"]:
                make = reads[kind][0] if kind in reads else None
                diff, sent, failed = window(fleet, args.window_seconds, make, args.rate)
                windows.setdefault(kind, []).append({"a_over_b_ms_per_s": diff, "sent": sent, "failed": failed})
                log(f"round {round_ + 1} {kind}: A over B {diff:.1f} ms/s, {sent} sent, {failed} failed")
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    idle = statistics.median(w["a_over_b_ms_per_s"] for w in windows["idle"])
    results = {}
    for kind, (_, fleet_rate) in reads.items():
        per_read = [(w["a_over_b_ms_per_s"] - idle) / (w["sent"] / args.window_seconds)
                    for w in windows[kind] if w["sent"]]
        cost = statistics.median(per_read)
        results[kind] = {"ms_per_read": cost, "windows_ms_per_read": per_read,
                         "fleet_reads_per_s": fleet_rate, "fleet_ms_per_s": cost * fleet_rate}
    report = {
        "schema": 1,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(sys.argv),
        "machine": {**machine(), "load_after": load_average()},
        "tree": tree,
        "setup": {"hosts": args.hosts, "rate": args.rate, "window_seconds": args.window_seconds,
                  "rounds": args.rounds, "pair_rules": args.pair_rules, "read_every_s": READ_EVERY_S},
        "idle_a_over_b_ms_per_s": idle,
        "windows": windows,
        "results": results,
    }
    out = Path(args.out) if args.out else \
        ROOT / "bench/results" / f"fleet-background-{started:%Y-%m-%dT%H%M}-{tree['commit'][:7]}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("| read | A's CPU a read | the fleet's reads a second | the fleet's cost |")
    print("|---|---|---|---|")
    for kind, r in results.items():
        print(f"| {kind} | {r['ms_per_read']:.2f} ms | {r['fleet_reads_per_s']:.2f} | "
              f"{r['fleet_ms_per_s']:.1f} ms/s |")
    print(out)


if __name__ == "__main__":
    main()
