#!/usr/bin/env python3
"""The fleet simulation of issue 16: N real agents against a real Prometheus pair; one JSON file.

bench/fleet/run.sh builds the binaries and calls this, then bench/fleet/render.py. For each
number of hosts N, one fake-exporter process (bench/fleet/exporter.rs) serves the N hosts'
components and probes on 127.250.x.y, and a Prometheus pair (Debian's prometheus, data in
/dev/shm) scrapes them as TiUP's template does, every 15 s, with TiDB's rule files loaded.
The pair and the exporter stay up while each mode runs in turn:

- `none`: no agent; the pair's own CPU, the baseline;
- a mode with agents: N agents (each with its host's address and components, both servers,
  a 15 s interval, a file sink), started staggered over one interval, warmed up, then
  measured over the window and stopped;
- `floor`: no agent; one client sends server A the fleet's request rate of `vector(1)`
  (N per interval, each on a new connection, as the agents' queries go): what the pair
  pays for the requests themselves, before any query work. A calibration, not a mode
  an agent can run.

A mode is a config fragment and an agent binary: `--mode NAME=SECTION.KEY=VALUE;…` adds or
replaces one, `--agent-for NAME=PATH` gives it another binary.

Measured over each window (--rounds windows back to back per mode; the figures are their
medians, each window's figures kept too): both Prometheus processes' CPU (/proc/PID/stat), their
`prometheus_http_requests_total` and `prometheus_http_request_duration_seconds` deltas,
the age of every agent's output file (sampled once a second), the agents' CPU and memory
(/proc/PID/smaps_rollup), the exporter's CPU and the whole machine's (/proc/stat).
"""

import argparse
import datetime
import json
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from measure import (BenchError, commit_of_tree, cpu_ms, kib_fields, load_average,  # noqa: E402
                     log, machine, median)
sys.path.insert(0, str(ROOT / "bench" / "fleet"))
import pprof  # noqa: E402

INTERVAL_S = 15
SERVERS = {"a": "127.250.9.1:9090", "b": "127.250.9.2:9090"}
# The pair's rule_files (--pair-rules): TiUP's for a cluster with PD, TiDB, TiKV, TiFlash and
# monitored hosts (the upstream files of one TiDB version), or the agent's own catalog,
# which takes each of its rules from the version that has it, so that the pair evaluates
# every rule the agent has with the same expression.
PAIR_RULES = {
    "upstream": [f"tests/data/upstream/{name}.rules.yml"
                 for name in ["node", "blacker", "bypass", "pd", "tidb", "tikv", "tiflash"]],
    "catalog": ["rules/tidb.rules.yml"],
}
# Config fragments by mode: section → lines.
MODES = {
    "none": None,
    "floor": "floor",
    "evaluate": {},
    "auto": {"rules": ['source = "auto"']},
    # `auto` as the README advises for large fleets: queries name the host's exact values.
    "auto-instances": {"rules": ['source = "auto"'], "host": ['matcher = "instances"']},
    "sequential": {"agent": ["max_concurrency = 1"], "prometheus": ["rules_per_query = 1"]},
    # `auto-instances` with the three host rules whose upstream expressions sum over every
    # instance (so whose alerts name no host) made cluster rules, as README "Rules" allows:
    # with `--pair-rules catalog`, every key of a typical host is then read from `ALERTS`.
    "auto-instances-cluster": {"rules": ['source = "auto"'] + [
        f'override."{key}".scope = "cluster"' for key in [
            "TiDB.tidb.TiDB_ddl_waiting_jobs", "TiDB.tikv.TiKV_GC_can_not_work",
            "TiDB.tikv.TiKV_approximate_region_size"]],
        "host": ['matcher = "instances"']},
}
# The agent config's sections, in order; a fragment's lines go at the end of its section.
SECTIONS = ["agent", "log", "host", "prometheus", "rules", "metrics"]
# The typical host (node_exporter, blackbox exporter and TiKV, not the cluster reporter):
# `check --connect` shows where its keys come from, and its agent's self-metrics, on this
# address, count the requests it sends.
TYPICAL_HOST = 5
TYPICAL_METRICS = "127.250.9.5:9555"


def parse_mode(text):
    """NAME=SECTION.KEY=VALUE;SECTION.KEY=VALUE → (NAME, fragment)."""
    name, _, body = text.partition("=")
    fragment = {}
    for item in filter(None, body.split(";")):
        key, _, value = item.partition("=")
        section, _, key = key.partition(".")
        if section not in SECTIONS or not key or not value:
            raise SystemExit(f"--mode {text}: each item is SECTION.KEY=VALUE, SECTION in {SECTIONS}")
        fragment.setdefault(section, []).append(f"{key} = {value}")
    return name, fragment


# --- Prometheus' own metrics -----------------------------------------------------------------

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(address, names):
    """{(name, ((label, value), …)): value} of the metrics NAMES of one server."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m and m.group(1) in names:
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


HTTP_NAMES = {"prometheus_http_requests_total", "prometheus_http_request_duration_seconds_bucket",
              "prometheus_http_request_duration_seconds_sum",
              "prometheus_http_request_duration_seconds_count",
              "prometheus_tsdb_head_series", "prometheus_rule_group_last_duration_seconds"}


def delta(before, after):
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def by_label(samples, name, label, where=None):
    out = {}
    for (n, labels), value in samples.items():
        labels = dict(labels)
        if n == name and (where is None or where(labels)):
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
    return out


def quantile(q, buckets):
    """histogram_quantile over {le: cumulative count}, linear within a bucket."""
    bounds = sorted(buckets.items(), key=lambda kv: float(kv[0]))
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for le, count in bounds:
        upper = float(le)
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0)
        lower, below = upper, count
    return lower


# --- processes ---------------------------------------------------------------------------

def many_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop(processes, grace_s=15):
    """SIGTERM to each (by pid), then SIGKILL to those still running after GRACE_S."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def machine_busy_ms():
    """CPU time of the whole machine so far (every state but idle and iowait), in ms."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_or_none(pid):
    try:
        return cpu_ms(pid)
    except (OSError, IndexError, ValueError):
        return None


def agent_memory(pid):
    try:
        figures = kib_fields(f"/proc/{pid}/status", {"RssAnon": "rss_anon_kib", "VmRSS": "vm_rss_kib"})
        figures.update(kib_fields(f"/proc/{pid}/smaps_rollup", {"Pss": "pss_kib"}))
        return figures
    except OSError:
        return None


def summary(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return {"sum": sum(values), "median": statistics.median(values), "max": values[-1],
            "min": values[0], "count": len(values)}


def medians(rounds):
    """One figures dict from several windows' dicts: the median of each number."""
    first = rounds[0]
    if isinstance(first, dict):
        return {k: medians([r.get(k) for r in rounds]) for k in first}
    numbers = [r for r in rounds if isinstance(r, (int, float)) and not isinstance(r, bool)]
    if numbers and isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(numbers)
    return first


def percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


# --- one N -------------------------------------------------------------------------------

class Fleet:
    def __init__(self, args, hosts, work):
        self.args, self.hosts, self.work = args, hosts, work
        self.exporter = None
        self.servers = {}
        self.table = []

    def start(self):
        self.work.mkdir(parents=True)
        rules = [str(ROOT / path) for path in PAIR_RULES[self.args.pair_rules]]
        command = [self.args.exporter, "--hosts", str(self.hosts), "--dir", str(self.work),
                   "--icmp-exporters", str(self.args.icmp_exporters)]
        for rule in rules:
            command += ["--rule-file", rule]
        self.exporter = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=open(self.work / "exporter.log", "w"), text=True)
        ready = self.exporter.stdout.readline()
        if not ready.startswith("ready"):
            raise BenchError(f"the exporter did not start: {ready!r} (see {self.work}/exporter.log)")
        log(f"N={self.hosts}: exporter {ready.strip()}")
        self.table = json.loads((self.work / "hosts.json").read_text())
        for name, address in SERVERS.items():
            data = self.work / f"data-{name}"
            data.mkdir()
            self.servers[name] = subprocess.Popen(
                ["prometheus", f"--config.file={self.work}/prometheus-{name}.yml",
                 f"--storage.tsdb.path={data}", f"--web.listen-address={address}",
                 "--storage.tsdb.retention.time=1d"],
                stdout=subprocess.DEVNULL, stderr=open(self.work / f"prometheus-{name}.log", "w"),
                preexec_fn=many_files)
        for name, address in SERVERS.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2):
                        break
                except OSError:
                    if self.servers[name].poll() is not None or time.monotonic() > deadline:
                        raise BenchError(f"prometheus {name} is not ready (see {self.work}/prometheus-{name}.log)")
                    time.sleep(0.5)
        log(f"N={self.hosts}: the pair is ready; {self.args.settle_seconds:g} s for scrapes and rules to settle")
        time.sleep(self.args.settle_seconds)

    def stop(self):
        stop([p for p in self.servers.values()] + ([self.exporter] if self.exporter else []))

    # agents ---------------------------------------------------------------------------

    def agent_config(self, index, fragment):
        host = self.table[index]
        directory = self.work / "agents" / str(index)
        (directory / "state").mkdir(parents=True, exist_ok=True)
        lines = {
            "agent": [f'interval = "{INTERVAL_S}s"', f'state_dir = "{directory}/state"'],
            "log": ['level = "warn"'],
            "host": [f'addresses = ["{host["ip"]}"]',
                     f"components = {json.dumps(host['components'])}",
                     f"cluster_reporter = {'true' if index == 0 else 'false'}"],
            "prometheus": ["servers = [" + ", ".join(f'"http://{a}"' for a in SERVERS.values()) + "]"],
            "rules": [],
            "metrics": [f'listen = "{TYPICAL_METRICS}"'] if index == self.typical() else [],
        }
        for section, extra in fragment.items():
            lines[section] = lines[section] + extra
        text = "".join(f"[{s}]\n" + "".join(f"{line}\n" for line in lines[s]) + "\n" for s in SECTIONS)
        text += f'[[output]]\nkind = "file"\nformat = "agent"\npath = "{directory}/alerts.txt"\n'
        (directory / "config.toml").write_text(text)
        return directory

    def start_agents(self, binary, fragment):
        directories = [self.agent_config(i, fragment) for i in range(self.hosts)]
        shutil.rmtree(self.work / "agents-out", ignore_errors=True)
        check = subprocess.run([binary, "check", "-c", directories[0] / "config.toml"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError(f"{binary} rejects the config: {check.stderr.strip() or check.stdout.strip()}")
        logfile = open(self.work / "agents.log", "a")
        agents = []
        started = time.monotonic()
        for i, directory in enumerate(directories):
            # Staggered over one interval, as a fleet's agents are.
            time.sleep(max(0.0, started + i * INTERVAL_S / self.hosts - time.monotonic()))
            agents.append(subprocess.Popen([binary, "run", "-c", directory / "config.toml"],
                                           stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL))
        return agents, [d / "alerts.txt" for d in directories]

    def typical(self):
        return min(TYPICAL_HOST, self.hosts - 1)

    def typical_requests(self):
        """The typical host's agent's own counts: {"SERVER ENDPOINT": requests} and its
        cycles; None without agents or when its self-metrics do not answer."""
        try:
            samples = scrape(TYPICAL_METRICS, ["tidb_host_agent_prometheus_requests_total",
                                               "tidb_host_agent_cycle_duration_seconds_count"])
        except OSError:
            return None
        requests, cycles = {}, 0.0
        for (name, labels), value in samples.items():
            labels = dict(labels)
            if name == "tidb_host_agent_prometheus_requests_total":
                requests[f"{labels.get('server')} {labels.get('endpoint')}"] = value
            else:
                cycles = value
        return {"requests": requests, "cycles": cycles}

    def sources(self, binary):
        """What `check --connect` says of a typical host's keys (node_exporter, blackbox
        exporter and TiKV only): {source (reason): [key, …]}."""
        index = self.typical()
        config = self.work / "agents" / str(index) / "config.toml"
        answer = subprocess.run([binary, "check", "--connect", "-c", config], capture_output=True,
                                text=True, timeout=60)
        keys, key = {}, None
        for line in answer.stdout.splitlines():
            if line and not line.startswith(" "):
                key = line.split(":", 1)[0]
            elif line.startswith("  source: ") and key:
                keys.setdefault(line[len("  source: "):].strip(), []).append(key)
        return {"host": self.table[index]["ip"], "components": self.table[index]["components"],
                "keys_by_source": keys}

    # one mode -------------------------------------------------------------------------

    def measure(self, mode, binary, fragment):
        agents, outputs, floor = [], [], None
        if fragment == "floor":
            floor = PacedClient(SERVERS["a"], self.hosts / INTERVAL_S)
            what = f"{self.hosts / INTERVAL_S:.1f} requests of vector(1) a second to A"
        elif fragment is not None:
            agents, outputs = self.start_agents(binary, fragment)
            what = f"{len(agents)} agents started"
        if fragment is not None:
            log(f"N={self.hosts} {mode}: {what}; warming up {self.args.warmup_seconds:g} s")
            time.sleep(self.args.warmup_seconds)
        try:
            started = time.time()
            hosts = self.hosts if floor else len(agents)
            rounds = [self.window(mode, agents, outputs, hosts) for _ in range(self.args.rounds)]
            figures = medians(rounds)
            # The middle of the measured windows, for the pair's own CPU at that time.
            figures["measured_at"] = (started + time.time()) / 2
            if self.args.profile:
                figures["profile_a"] = self.profile(mode)
            ages = [r["snapshot_age_s"] for r in rounds]
            figures["snapshot_age_s"]["max"] = max((a["max"] for a in ages if a["max"] is not None), default=None)
            figures["snapshot_age_s"]["late_agents"] = max(a["late_agents"] for a in ages)
            if len(rounds) > 1:
                figures["rounds"] = rounds
            if floor:
                figures["floor_client"] = floor.counts()
            elif fragment is not None:
                try:
                    figures["typical_host"] = self.sources(binary)
                except (OSError, subprocess.SubprocessError) as why:
                    figures["typical_host"] = {"error": str(why)}
            return figures
        finally:
            stop(agents)
            if floor:
                floor.stop()

    def profile(self, mode):
        """A's CPU over one more window, by function ({column: seconds}), from its own
        profiler; the profile is kept in the work directory."""
        seconds = int(self.args.window_seconds)
        path = self.work / f"profile-a-{mode}.pb.gz"
        url = f"http://{SERVERS['a']}/debug/pprof/profile?seconds={seconds}"
        try:
            with urllib.request.urlopen(url, timeout=seconds + 30) as answer:
                path.write_bytes(answer.read())
            table = pprof.table(path)
        except (OSError, ValueError) as why:
            return {"error": str(why)}
        log(f"N={self.hosts} {mode}: A's profile: " + ", ".join(f"{k} {v:.2f} s" for k, v in table.items()))
        return dict(table, window_s=seconds)

    def window(self, mode, agents, outputs, hosts):
        seconds = self.args.window_seconds
        pids = {name: p.pid for name, p in self.servers.items()}
        dead = [a.pid for a in agents if a.poll() is not None]
        if dead:
            raise BenchError(f"{len(dead)} agents exited before the window (see {self.work}/agents.log)")
        http0 = {name: scrape(a, HTTP_NAMES) for name, a in SERVERS.items()}
        typical0 = self.typical_requests() if agents else None
        load_start = load_average()
        t0 = time.monotonic()
        cpu0 = {name: cpu_ms(pid) for name, pid in pids.items()}
        agents_cpu0 = [cpu_or_none(a.pid) for a in agents]
        exporter_cpu0 = cpu_ms(self.exporter.pid)
        busy0 = machine_busy_ms()
        ages, missing, per_agent = [], 0, [[] for _ in outputs]
        while time.monotonic() - t0 < seconds:
            tick = time.monotonic()
            now = time.time()
            for i, path in enumerate(outputs):
                try:
                    age = now - path.stat().st_mtime
                    ages.append(age)
                    per_agent[i].append(age)
                except OSError:
                    missing += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        elapsed_ms = (time.monotonic() - t0) * 1000
        cpu = {name: cpu_ms(pid) - cpu0[name] for name, pid in pids.items()}
        agents_cpu = sum((cpu_or_none(a.pid) or b) - b for a, b in zip(agents, agents_cpu0) if b is not None)
        exporter_cpu = cpu_ms(self.exporter.pid) - exporter_cpu0
        busy = machine_busy_ms() - busy0
        http1 = {name: scrape(a, HTTP_NAMES) for name, a in SERVERS.items()}
        typical1 = self.typical_requests() if agents else None
        memory = [agent_memory(a.pid) for a in agents]
        memory = [m for m in memory if m]
        exited = sum(1 for a in agents if a.poll() is not None)

        cycles = elapsed_ms / 1000 / INTERVAL_S
        hosts = hosts or None
        diffs = {name: delta(http0[name], http1[name]) for name in SERVERS}
        not_self = lambda labels: labels.get("handler") != "/metrics"  # noqa: E731
        requests = {}
        per_server = {}
        serving_s = 0.0
        buckets = {}
        for name in SERVERS:
            for handler, n in by_label(diffs[name], "prometheus_http_requests_total", "handler",
                                       not_self).items():
                if n:
                    requests[handler] = requests.get(handler, 0.0) + n
                    per_server[name] = per_server.get(name, 0.0) + n
            serving_s += sum(by_label(diffs[name], "prometheus_http_request_duration_seconds_sum",
                                      "handler", not_self).values())
            for le, n in by_label(diffs[name], "prometheus_http_request_duration_seconds_bucket", "le",
                                  lambda labels: labels.get("handler") == "/api/v1/query").items():
                buckets[le] = buckets.get(le, 0.0) + n
        query_count = sum(by_label(diffs[name], "prometheus_http_request_duration_seconds_count",
                                   "handler", lambda labels: labels.get("handler") == "/api/v1/query")
                          .get("/api/v1/query", 0.0) for name in SERVERS)
        query_sum = sum(by_label(diffs[name], "prometheus_http_request_duration_seconds_sum",
                                 "handler", lambda labels: labels.get("handler") == "/api/v1/query")
                        .get("/api/v1/query", 0.0) for name in SERVERS)
        pair_ms_per_s = sum(cpu.values()) / elapsed_ms * 1000
        agent_p99 = [percentile(a, 0.99) for a in per_agent if a]
        figures = {
            "mode": mode,
            "agents": len(agents),
            "agents_exited": exited,
            "window_s": elapsed_ms / 1000,
            "cycles": cycles,
            "load1_before": load_start[0],
            "load1_after": load_average()[0],
            "pair_cpu_ms_per_s": pair_ms_per_s,
            "prometheus_cpu_ms_per_s": {n: c / elapsed_ms * 1000 for n, c in cpu.items()},
            "agents_cpu_ms_per_s": agents_cpu / elapsed_ms * 1000,
            "exporter_cpu_ms_per_s": exporter_cpu / elapsed_ms * 1000,
            "machine_cpu_ms_per_s": busy / elapsed_ms * 1000,
            "others_cpu_ms_per_s": (busy - sum(cpu.values()) - agents_cpu - exporter_cpu) / elapsed_ms * 1000,
            "requests_per_host_per_cycle": {h: n / hosts / cycles for h, n in requests.items()}
            if hosts else {},
            "requests_per_s": {h: n / elapsed_ms * 1000 for h, n in requests.items()},
            # Per server: the paired estimate of the agents' share (render.py) holds while B
            # is asked nothing.
            "server_requests_per_s": {name: per_server.get(name, 0.0) / elapsed_ms * 1000 for name in SERVERS},
            # The typical host's agent's own count over the window, per its own cycles.
            "typical_host_requests_per_cycle": typical_per_cycle(typical0, typical1),
            "serving_ms_per_host_per_cycle": serving_s * 1000 / hosts / cycles if hosts else None,
            "serving_ms_per_s": serving_s * 1000 / elapsed_ms * 1000,
            "query_buckets": buckets,
            "query_latency_s": {"p50": quantile(0.5, buckets), "p99": quantile(0.99, buckets),
                                "mean": query_sum / query_count if query_count else None,
                                "count": query_count},
            "snapshot_age_s": {"p50": percentile(ages, 0.5), "p99": percentile(ages, 0.99),
                               "max": max(ages) if ages else None,
                               "worst_agent_p99": max(agent_p99) if agent_p99 else None,
                               # Agents whose file was once older than an interval and a
                               # second: a cycle late or missed.
                               "late_agents": sum(1 for a in per_agent if a and max(a) > INTERVAL_S + 1),
                               "samples": len(ages), "missing": missing},
            "agent_memory_kib": {k: summary(m.get(k) for m in memory)
                                 for k in ("rss_anon_kib", "pss_kib", "vm_rss_kib")} if memory else None,
            "head_series": {n: sum(by_label(http1[n], "prometheus_tsdb_head_series", "x").values())
                            for n in SERVERS},
            "prometheus_memory_kib": {n: kib_fields(f"/proc/{pid}/status", {"VmRSS": "v"}).get("v")
                                      for n, pid in pids.items()},
        }
        log(f"N={self.hosts} {mode}: pair {pair_ms_per_s:.1f} ms/s, agents "
            f"{figures['agents_cpu_ms_per_s']:.1f} ms/s, others {figures['others_cpu_ms_per_s']:.1f} ms/s, "
            f"requests/host/cycle {sum(figures['requests_per_host_per_cycle'].values()):.2f}, "
            f"age p99 {figures['snapshot_age_s']['p99']}")
        return figures


def query_request(query):
    """(path, form body) of an instant query in the agent's form."""
    return "/api/v1/query", urllib.parse.urlencode({"query": query, "timeout": "5000ms"}).encode()


class PacedClient:
    """Sends request `make(n)` (path, form body or None for a GET; by default `vector(1)`,
    the `floor` mode's) to `address` at `rate` a second, each request on a new connection
    with the agent's form and no compression, from a few threads, until stopped."""

    def __init__(self, address, rate, threads=8, make=lambda n: query_request("vector(1)")):
        self.address, self.make = address, make
        self.rate, self.done, self.failed = rate, 0, 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.send, args=(i, threads), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def send(self, index, every):
        # Thread `index` sends requests index, index + every, …, on the common schedule.
        started, n = time.monotonic(), index
        while not self.stopping.is_set():
            time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            path, body = self.make(n)
            headers = {"Accept-Encoding": "identity"}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(f"http://{self.address}{path}", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    answer.read()
                ok = True
            except OSError:
                ok = False
            with self.lock:
                self.done += ok
                self.failed += not ok
            n += every

    def counts(self):
        with self.lock:
            return {"sent": self.done + self.failed, "failed": self.failed}

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)


def typical_per_cycle(before, after):
    """{"SERVER ENDPOINT": requests per cycle} between two `typical_requests` readings."""
    if not before or not after or after["cycles"] <= before["cycles"]:
        return None
    cycles = after["cycles"] - before["cycles"]
    return {k: (n - before["requests"].get(k, 0.0)) / cycles
            for k, n in after["requests"].items() if n - before["requests"].get(k, 0.0)}


def own_cpu_at(when, before, after):
    """The pair's CPU without agents at `when` (a time.time()): between the `none` run
    `before` and the one `after`, in proportion to the time; `before`'s without `after`."""
    if not after or after["measured_at"] <= before["measured_at"]:
        return before["pair_cpu_ms_per_s"]
    share = (when - before["measured_at"]) / (after["measured_at"] - before["measured_at"])
    return before["pair_cpu_ms_per_s"] + share * (after["pair_cpu_ms_per_s"] - before["pair_cpu_ms_per_s"])


def run_n(args, hosts, modes, base):
    fleet = Fleet(args, hosts, base / f"n{hosts}")
    results = {"hosts": hosts, "modes": {}, "errors": {}}
    try:
        fleet.start()
        for mode in modes:
            if f"{hosts}:{mode}" in args.skip:
                results["errors"][mode] = "skipped (--skip)"
                continue
            binary = args.agent_for.get(mode, args.agent)
            try:
                results["modes"][mode] = fleet.measure(mode, binary, args.modes[mode])
            except (BenchError, OSError) as why:
                log(f"N={hosts} {mode}: error: {why}")
                results["errors"][mode] = str(why)
        none = results["modes"].get("none")
        if none and len(results["modes"]) > 1:
            # The pair's own CPU grows while its head fills (chunks, then the GC's work), so
            # the modes after `none` are measured against the two `none` runs around them.
            try:
                results["modes"]["none-after"] = fleet.measure("none-after", args.agent, None)
            except (BenchError, OSError) as why:
                log(f"N={hosts} none-after: error: {why}")
                results["errors"]["none-after"] = str(why)
        after = results["modes"].get("none-after")
        for figures in results["modes"].values():
            if none and not figures["mode"].startswith("none"):
                baseline = own_cpu_at(figures["measured_at"], none, after)
                figures["pair_own_cpu_ms_per_s"] = baseline
                figures["agents_share_of_pair_ms_per_s"] = figures["pair_cpu_ms_per_s"] - baseline
    finally:
        fleet.stop()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--agent", default=str(ROOT / "target/release/tidb-host-agent"))
    add("--exporter", default=str(ROOT / "target/release/examples/fleet-exporter"))
    add("--hosts", default="100,300,1000", help="numbers of hosts, comma-separated")
    add("--modes", dest="mode_names", default="none,floor,evaluate,auto,auto-instances,sequential",
        help="modes run for each N, in this order (none: no agents)")
    add("--mode", action="append", default=[], metavar="NAME=SECTION.KEY=VALUE;…",
        help="add or replace a mode's config fragment, e.g. 'wide=prometheus.rules_per_query=40'")
    add("--agent-for", action="append", default=[], metavar="MODE=BINARY",
        help="another agent binary for one mode")
    add("--skip", default="1000:sequential", help="N:MODE pairs not run (they do not fit 2 cores)")
    add("--window-seconds", type=float, default=30, help="one measured window")
    add("--rounds", type=int, default=3, help="windows per mode, back to back; figures are their medians")
    add("--warmup-seconds", type=float, default=30, help="after the last agent started")
    add("--settle-seconds", type=float, default=45, help="after the pair is ready, before the first mode")
    add("--icmp-exporters", type=int, default=1)
    add("--pair-rules", choices=sorted(PAIR_RULES), default="upstream",
        help="the pair's rule files: TiUP's upstream ones, or the agent's catalog")
    add("--work", default="/dev/shm", help="where the pair's data and the agents' files go")
    add("--out", default=None, help="default: bench/results/fleet-<date>-<commit>.json")
    add("--keep", action="store_true", help="keep the work directory")
    add("--profile", action="store_true",
        help="after each mode's windows, one more window with a CPU profile of server A: "
             "where its CPU went (bench/fleet/pprof.py), kept apart from the measured windows")
    args = parser.parse_args()
    args.modes = dict(MODES)
    args.modes.update(parse_mode(m) for m in args.mode)
    args.agent_for = dict(x.split("=", 1) for x in args.agent_for)
    args.skip = set(filter(None, args.skip.split(",")))
    modes = [m for m in args.mode_names.split(",") if m]
    unknown = [m for m in modes if m not in args.modes]
    if unknown:
        sys.exit(f"fleet: unknown modes {unknown}; known: {sorted(args.modes)} (add one with --mode)")
    for path in (args.agent, args.exporter, *args.agent_for.values()):
        if not os.access(path, os.X_OK):
            sys.exit(f"fleet: {path} is not an executable (bench/fleet/run.sh builds them)")
    if not shutil.which("prometheus"):
        sys.exit("fleet: prometheus is missing (scripts/install-deps.sh)")
    many_files()

    started = datetime.datetime.now(datetime.timezone.utc)
    tree = commit_of_tree()
    base = Path(tempfile.mkdtemp(prefix="tidb-host-agent-fleet.", dir=args.work))
    report = {
        "schema": 1,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(sys.argv),
        "machine": {**machine(), "load_before": load_average()},
        "prometheus": subprocess.run(["prometheus", "--version"], capture_output=True,
                                     text=True).stdout.splitlines()[0],
        "tree": tree,
        "setup": {"interval_s": INTERVAL_S, "window_seconds": args.window_seconds, "rounds": args.rounds,
                  "warmup_seconds": args.warmup_seconds, "settle_seconds": args.settle_seconds,
                  "icmp_exporters": args.icmp_exporters, "pair_rules": args.pair_rules,
                  "rule_files": PAIR_RULES[args.pair_rules],
                  "modes": {m: args.modes[m] for m in modes},
                  "agent_for": args.agent_for, "skip": sorted(args.skip), "profile": args.profile},
        "runs": [],
    }
    failure = None
    try:
        for hosts in (int(x) for x in args.hosts.split(",")):
            report["runs"].append(run_n(args, hosts, modes, base))
    except (BenchError, OSError, KeyboardInterrupt) as why:
        failure = str(why) or type(why).__name__
        log(f"error: {failure}; writing what was measured")
    finally:
        if args.keep:
            log(f"work directory kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    finished = datetime.datetime.now(datetime.timezone.utc)
    report["duration_s"] = round((finished - started).total_seconds())
    report["machine"]["load_after"] = load_average()
    if failure:
        report["incomplete"] = failure
    out = Path(args.out) if args.out else \
        ROOT / "bench/results" / f"fleet-{started:%Y-%m-%dT%H%M}-{tree['commit'][:7]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    log(f"done in {report['duration_s'] // 60} min {report['duration_s'] % 60} s: {out}")
    print(out)
    if failure:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except BenchError as why:
        sys.exit(f"fleet: error: {why}")
