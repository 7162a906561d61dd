#!/usr/bin/env python3
"""The alert flood: a real Alertmanager holding N alerts, the agent forwarding every one
of them to an exec target, and its keys written to a file every interval. Measures what
the operator pays for: the longest gap between two rewrites of the keys file (against the
interval), the agent's peak memory (VmHWM) and RssAnon, and what it forwarded and dropped.

Writes one JSON file (bench/results/flood-<date>-<commit>.json); bench/render.py does not
read it: the report quotes it by hand. Needs Debian's prometheus-alertmanager.

    bench/flood.py [--agent target/release/tidb-host-agent] [--alerts 20000]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (BenchError, Processes, cpu_ms, load_average, log, memory,  # noqa: E402
                     metric, wait_until)

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
IP = "127.0.9.1"
AM_PORT, AM_GOSSIP, METRICS_PORT = 19093, 19094, 19555


def post_alerts(count, batch=1000):
    """COUNT distinct firing alerts, posted in batches to Alertmanager's v2 API."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ends = (now + datetime.timedelta(hours=1)).isoformat()
    for start in range(0, count, batch):
        alerts = [{
            "labels": {"alertname": "Flood", "instance": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:20180",
                       "level": "warning", "n": str(i)},
            "annotations": {"summary": f"flood alert {i}"},
            "startsAt": now.isoformat(), "endsAt": ends,
        } for i in range(start, min(count, start + batch))]
        request = urllib.request.Request(
            f"http://{IP}:{AM_PORT}/api/v2/alerts", data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()


def alert_count():
    with urllib.request.urlopen(f"http://{IP}:{AM_PORT}/api/v2/alerts", timeout=30) as answer:
        return len(json.loads(answer.read()))


def agent_config(work, interval, max_alerts):
    return f"""
[agent]
interval = "{interval}"
state_dir = "{work}/state"

[host]
addresses = ["127.0.0.1"]
components = ["tikv"]
cluster_reporter = false

[prometheus]
servers = ["http://127.0.0.1:1"]
down_after = 1
on_no_data = "zero"

[metrics]
listen = "{IP}:{METRICS_PORT}"

[[output]]
kind = "file"
format = "plain"
path = "{work}/alerts.txt"

[alertmanager]
servers = ["http://{IP}:{AM_PORT}"]
poll_interval = "{interval}"
{f"max_alerts = {max_alerts}" if max_alerts else ""}

[[alertmanager.forward]]
kind = "exec"
name = "true"
command = ["/bin/true", "{{{{ alertname }}}}"]
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default=str(ROOT / "target/release/tidb-host-agent"))
    parser.add_argument("--alerts", type=int, default=20000)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60, help="how long the agent runs")
    parser.add_argument("--max-alerts", type=int, default=0,
                        help="[alertmanager] max_alerts; 0 leaves it out: the agent's default")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    interval = args.interval_ms / 1000
    processes = Processes()
    work = Path(tempfile.mkdtemp(prefix="flood-"))
    result = {"alerts": args.alerts, "interval_s": interval, "seconds": args.seconds,
              "max_alerts": args.max_alerts or None,
              "agent": args.agent, "load_average_before": load_average(),
              "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()}
    try:
        (work / "am").mkdir()
        (work / "alertmanager.yml").write_text(
            "route:\n  receiver: sink\n  group_wait: 1s\n  group_interval: 1h\n"
            "  repeat_interval: 24h\nreceivers:\n- name: sink\n")
        processes.start([ALERTMANAGER, f"--config.file={work}/alertmanager.yml",
                         f"--storage.path={work}/am", f"--web.listen-address={IP}:{AM_PORT}",
                         f"--cluster.listen-address={IP}:{AM_GOSSIP}"], work / "am.log")
        wait_until("Alertmanager", 30, lambda: 1 if metric(
            f"http://{IP}:{AM_PORT}/metrics", "alertmanager_alerts") is not None else None, 1)
        started = time.monotonic()
        post_alerts(args.alerts)
        result["post_s"] = round(time.monotonic() - started, 2)
        result["alerts_in_alertmanager"] = alert_count()
        log(f"{result['alerts_in_alertmanager']} alerts in Alertmanager")

        (work / "config.toml").write_text(agent_config(work, f"{args.interval_ms}ms", args.max_alerts))
        agent = processes.start([args.agent, "-c", str(work / "config.toml"), "run"],
                                work / "agent.log")
        keys = work / "alerts.txt"
        cpu_start, wall_start = cpu_ms(agent.pid), time.monotonic()
        last_change, gaps, hwm, anon = None, [], 0, []
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if agent.poll() is not None:
                raise BenchError(f"the agent exited: {(work / 'agent.log').read_text()[-2000:]}")
            try:
                mtime = keys.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            now = time.monotonic()
            if mtime is not None and mtime != last_change:
                if last_change is not None:
                    gaps.append(now - changed_at)
                last_change, changed_at = mtime, now
            figures = memory(agent.pid)
            hwm = max(hwm, figures["vm_hwm_kib"])
            anon.append(figures["rss_anon_kib"])
            time.sleep(0.02)
        cpu_share = (cpu_ms(agent.pid) - cpu_start) / ((time.monotonic() - wall_start) * 1000)
        url = f"http://{IP}:{METRICS_PORT}/metrics"
        result.update({
            "cpu_share_of_a_core": round(cpu_share, 3),
            "keys_rewrites": len(gaps) + 1,
            "max_gap_s": round(max(gaps), 3) if gaps else None,
            "max_gap_over_interval": round(max(gaps) / interval, 2) if gaps else None,
            "vm_hwm_kib": hwm,
            "rss_anon_kib_max": max(anon),
            "rss_anon_kib_end": anon[-1],
            "delivered": metric(url, "tidb_host_agent_forward_deliveries_total", 'result="ok"'),
            "failed": metric(url, "tidb_host_agent_forward_deliveries_total", 'result="error"'),
            "dropped": {reason: metric(url, "tidb_host_agent_forward_dropped_total",
                                       f'reason="{reason}"')
                        for reason in ("spool_full", "alerts_over_max", "undeliverable")},
            "spool_files": sum(1 for p in (work / "state/spool").glob("*.event")),
            "load_average_after": load_average(),
        })
    finally:
        processes.stop_all()
    out = Path(args.out) if args.out else ROOT / "bench/results" / (
        f"flood-{datetime.datetime.now().strftime('%Y-%m-%dT%H%M')}-{result['commit']}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(json.dumps(result, indent=2))
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
