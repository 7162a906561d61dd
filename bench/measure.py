#!/usr/bin/env python3
"""Measures tidb-host-agent beside vmalert and the sequential baseline; writes one JSON file.

Everything runs against the loopback sandbox of the end-to-end tests (a real Prometheus
pair scraping fake TiDB components that serve the 41 rules' metrics). bench/run.sh builds
the binaries and calls this, then bench/render.py. Run as root: ping needs CAP_NET_RAW.

What is measured (SPEC §14, §15):
- footprint: the agent with its rules, 100 ping targets and 3 sinks, for two minutes;
- rounds: the agent (and any --compare binary) and vmalert on the same rules, one after
  the other in an order that alternates between rounds, then the sequential baseline
  (bench/sequential.rs) one request after another and all at once;
- what a request costs Prometheus by itself (trivial queries);
- instructions per cycle and per rule under callgrind.
Memory is read from /proc/PID/status and /proc/PID/smaps_rollup once a second over each
window; CPU is utime+stime from /proc/PID/stat (every thread).
"""

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
# /proc/PID/status and /proc/PID/smaps_rollup fields kept, by the JSON name (KiB).
STATUS_FIELDS = {"VmRSS": "vm_rss_kib", "VmHWM": "vm_hwm_kib", "RssAnon": "rss_anon_kib",
                 "RssFile": "rss_file_kib", "RssShmem": "rss_shmem_kib"}
ROLLUP_FIELDS = {"Pss": "pss_kib", "Pss_Anon": "pss_anon_kib", "Pss_File": "pss_file_kib"}


def log(message):
    print(f"{time.strftime('%H:%M:%S')} bench: {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --- /proc -------------------------------------------------------------------------------

def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_ms(pid):
    """utime + stime of a process so far, every thread (exited ones too), in ms."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def minor_faults(pid):
    return int(stat_fields(pid)[7])


def kib_fields(path, wanted):
    values = {}
    for line in Path(path).read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            values[wanted[name]] = int(rest.split()[0])
    return values


def memory(pid):
    """The memory figures of a process now (KiB) and its thread count."""
    figures = kib_fields(f"/proc/{pid}/status", {**STATUS_FIELDS, "Threads": "threads"})
    figures.update(kib_fields(f"/proc/{pid}/smaps_rollup", ROLLUP_FIELDS))
    return figures


def resident_by_mapping(pid, binary):
    """Resident and Pss KiB by kind of mapping, from /proc/PID/smaps."""
    binary = os.path.realpath(binary)
    kinds = {}
    kind = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            perms = head[1]
            name = head[5] if len(head) > 5 else ""
            if name == binary:
                kind = "binary " + ("code" if "x" in perms else "data" if "w" in perms
                                    else "read-only data")
            elif name == "[heap]":
                kind = "heap"
            elif name == "" or name.startswith("["):
                kind = "other anonymous (stacks, arenas)"
            else:
                kind = "library " + os.path.basename(name)
            kinds.setdefault(kind, {"rss_kib": 0, "pss_kib": 0, "anonymous_kib": 0})
        elif kind and head and head[0] in ("Rss:", "Pss:", "Anonymous:"):
            key = {"Rss:": "rss_kib", "Pss:": "pss_kib", "Anonymous:": "anonymous_kib"}[head[0]]
            kinds[kind][key] += int(head[1])
    return [dict(mapping=k, **v) for k, v in
            sorted(kinds.items(), key=lambda kv: -kv[1]["rss_kib"]) if v["rss_kib"] > 0]


def established_connections(pid, port):
    out = subprocess.run(["ss", "-tnp", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    return out.count(f"pid={pid},")


def load_average():
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def pid_listening_as(argument):
    """The pid of the process with ARGUMENT among its command-line arguments."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argument.encode() in args:
                return int(entry.name)
    raise BenchError(f"no process runs with {argument}")


# --- metrics over HTTP ---------------------------------------------------------------------

def metric(url, name, label_filter=""):
    """Sum of the samples of metric NAME whose line contains LABEL_FILTER, or None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if re.split(r"[{ ]", line, maxsplit=1)[0] == name and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def wait_until(what, limit_s, probe, target):
    deadline = time.monotonic() + limit_s
    while True:
        value = probe()
        if value is not None and value >= target:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"waited {limit_s}s for {what} (last value: {value})")
        time.sleep(0.2)


# --- processes -----------------------------------------------------------------------------

class Processes:
    """Processes this script started; stopped by pid, each on its own."""

    def __init__(self):
        self.running = []

    def start(self, args, log_path):
        with open(log_path, "w") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.running.append(process)
        return process

    def stop(self, process, grace_s=10):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self):
        for process in list(reversed(self.running)):
            self.stop(process)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per(numerator, denominator, scale=1.0):
    return numerator * scale / denominator if denominator else None


# --- the bench -----------------------------------------------------------------------------

class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.processes = Processes()
        block = args.block
        self.host_ip = f"127.{block}.1.1"
        self.prom_a = f"http://127.{block}.1.1:9090"
        self.prom_b = f"http://127.{block}.1.2:9090"
        self.agent_metrics = f"127.{block}.1.1:9555"
        self.vmalert_listen = f"127.{block}.1.10:8880"
        self.alertmanager_listen = f"127.{block}.1.10:9093"
        self.sandbox = None
        self.prom_a_pid = None
        self.prom_idle_ms_per_s = 0.0
        # Filled as the run goes, so that a failed run still leaves its figures.
        self.results = {}

    # configuration ------------------------------------------------------------------

    def agent_config(self, name, interval_ms, ping, disable=()):
        """A config for the benchmarked host: every component, cluster reporter, 3 sinks."""
        directory = self.work / name
        (directory / "state").mkdir(parents=True, exist_ok=True)
        (directory / "out").mkdir(exist_ok=True)
        targets = ""
        if ping:
            targets = ", ".join(
                f'"127.{self.args.block}.{2 + i // 250}.{1 + i % 250}"'
                for i in range(self.args.ping_targets))
        rules = f"[rules]\ndisable = [{', '.join(json.dumps(k) for k in disable)}]\n\n" \
            if disable else ""
        (directory / "config.toml").write_text(f"""\
[agent]
interval = "{interval_ms}ms"
state_dir = "{directory}/state"

[log]
level = "warn"

[host]
addresses = ["{self.host_ip}"]
components = ["pd", "tidb", "tikv", "tiflash", "node_exporter", "blackbox_exporter", "grafana"]
cluster_reporter = true

[prometheus]
servers = ["{self.prom_a}", "{self.prom_b}"]

{rules}[ping]
enabled = {"true" if ping else "false"}
targets = [{targets}]
every = "{self.args.ping_every}"
record_file = "{directory}/state/slow-ping.jsonl"

[metrics]
listen = "{self.agent_metrics}"

[[output]]
kind = "file"
format = "agent"
path = "{directory}/out/alerts.txt"

[[output]]
kind = "unix"
format = "agent"
path = "{directory}/out/alerts.sock"

[[output]]
kind = "file"
format = "prometheus"
path = "{directory}/out/tidb_host_agent.prom"
""")
        return directory / "config.toml"

    def prepare(self):
        agent = self.args.agent
        self.rules_config = self.agent_config("rules", self.args.interval_ms, ping=False)
        self.footprint_config = self.agent_config(
            "footprint", self.args.footprint_interval_ms, ping=True)
        subprocess.run([agent, "check", "-c", self.footprint_config], check=True,
                       stdout=subprocess.DEVNULL)
        self.explain = self.work / "explain.txt"
        self.explain.write_text(subprocess.run(
            [agent, "explain", "-c", self.rules_config], check=True, capture_output=True,
            text=True).stdout)
        # Keys are unindented lines; a PromQL rule has a query that is not "none".
        self.keys, self.promql_keys, component = [], [], {}
        key = None
        for line in self.explain.read_text().splitlines():
            if line and not line.startswith((" ", "#")):
                key = line.strip()
                self.keys.append(key)
            elif line.startswith("  component: "):
                component[key] = line.split()[1]
            elif line.startswith("  query:") and not line.split(None, 1)[1].startswith("none"):
                self.promql_keys.append(key)
        typical = [k for k in self.promql_keys
                   if component.get(k) in ("tikv", "node_exporter", "blackbox_exporter")]
        self.typical_tikv_rules = len(typical)
        self.no_rules_config = self.agent_config(
            "norules", self.args.interval_ms, ping=False, disable=self.promql_keys)
        self.callgrind_config = self.agent_config("callgrind", 1000, ping=False)
        # vmalert gets the catalog without the computed Prometheus_is_down (not PromQL).
        catalog, skip = [], False
        for line in (ROOT / "rules/tidb.rules.yml").read_text().splitlines():
            if line.startswith("- name: "):
                skip = line.split()[2] == "prometheus"
            if not skip:
                catalog.append(line)
        self.vmalert_rules = self.work / "vmalert.rules.yml"
        self.vmalert_rules.write_text("\n".join(catalog) + "\n")
        self.vmalert_rule_count = sum(1 for line in catalog if "- alert:" in line)
        self.rules_per_query = int(re.search(
            r"^rules_per_query\s*=\s*(\d+)", (ROOT / "config.example.toml").read_text(),
            re.M).group(1))

    # sandbox ------------------------------------------------------------------------

    def start_sandbox(self):
        log(f"starting the sandbox on block {self.args.block}")
        self.sandbox = subprocess.Popen(
            [self.args.sandbox, "--block", str(self.args.block)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=open(self.work / "sandbox.err", "w"), text=True)
        ready = self.sandbox.stdout.readline()
        if not ready.startswith("ready"):
            raise BenchError(f"the sandbox did not start: {ready!r} (see {self.work}/sandbox.err)")
        log(ready.strip())
        self.prom_a_pid = pid_listening_as(f"--web.listen-address={self.prom_a[7:]}")
        am = self.work / "alertmanager"
        am.mkdir()
        (am / "alertmanager.yml").write_text("route:\n  receiver: sink\nreceivers:\n  - name: sink\n")
        self.processes.start(
            ["prometheus-alertmanager", f"--config.file={am}/alertmanager.yml",
             f"--storage.path={am}", f"--web.listen-address={self.alertmanager_listen}",
             "--cluster.listen-address="], am / "log")
        wait_until("alertmanager to be ready", 30,
                   lambda: 1 if self.http_ok(f"http://{self.alertmanager_listen}/-/ready") else None, 1)
        # Prometheus A's CPU while nobody queries it, subtracted from each window's.
        log(f"measuring Prometheus A at rest for {self.args.prom_idle_seconds}s")
        cpu0, t0 = cpu_ms(self.prom_a_pid), time.monotonic()
        time.sleep(self.args.prom_idle_seconds)
        self.prom_idle_ms_per_s = (cpu_ms(self.prom_a_pid) - cpu0) / (time.monotonic() - t0)

    def stop_sandbox(self):
        self.processes.stop_all()
        if self.sandbox and self.sandbox.poll() is None:
            try:
                self.sandbox.stdin.write("quit\n")
                self.sandbox.stdin.close()
                self.sandbox.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.sandbox.terminate()
                self.sandbox.wait()

    @staticmethod
    def http_ok(url):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            return False

    def prom_requests(self, server, handler):
        return metric(f"{server}/metrics", "prometheus_http_requests_total",
                      f'handler="{handler}"') or 0.0

    # windows ------------------------------------------------------------------------

    def window(self, pid, seconds, binary=None):
        """Samples memory (and connections to Prometheus) once a second for SECONDS."""
        samples, connections = [], []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            samples.append(memory(pid))
            connections.append(established_connections(pid, 9090))
        result = {
            "samples": len(samples),
            "memory": {k: median([s.get(k) for s in samples]) for k in samples[-1]},
            "memory_max": {k: max(s.get(k, 0) for s in samples) for k in samples[-1]},
            "connections_to_prometheus": statistics.mean(connections),
        }
        result["memory"]["vm_hwm_kib"] = samples[-1]["vm_hwm_kib"]
        if binary:
            result["mappings"] = resident_by_mapping(pid, binary)
        return result

    def agent_counters(self):
        url = f"http://{self.agent_metrics}/metrics"
        return {
            "cycles": metric(url, "tidb_host_agent_cycle_duration_seconds_count"),
            "cycle_s": metric(url, "tidb_host_agent_cycle_duration_seconds_sum"),
            "evals": metric(url, "tidb_host_agent_rule_evaluations_total"),
            "query_s": metric(url, "tidb_host_agent_query_duration_seconds_sum"),
            "queries": metric(url, "tidb_host_agent_query_duration_seconds_count"),
            "query_a": self.prom_requests(self.prom_a, "/api/v1/query"),
            "ready_a": self.prom_requests(self.prom_a, "/-/ready"),
            "ready_b": self.prom_requests(self.prom_b, "/-/ready"),
        }

    def prom_cpu_since(self, cpu0, t0):
        """Prometheus A's CPU (ms) on queries since CPU0 at T0: less its CPU at rest."""
        return cpu_ms(self.prom_a_pid) - cpu0 - self.prom_idle_ms_per_s * (time.monotonic() - t0)

    def measure_agent(self, label, binary, config, interval_ms, seconds, mappings=False):
        directory = config.parent
        for sub in ("state", "out"):
            shutil.rmtree(directory / sub)
            (directory / sub).mkdir()
        process = self.processes.start([binary, "run", "-c", config],
                                       directory / f"{label}.log")
        url = f"http://{self.agent_metrics}/metrics"
        warmup = self.args.warmup_cycles
        wait_until(f"{label} to run its {warmup} warm-up cycles",
                   warmup * interval_ms / 1000 + 60,
                   lambda: metric(url, "tidb_host_agent_cycle_duration_seconds_count"), warmup)
        c0 = self.agent_counters()
        cpu0, faults0, t0 = cpu_ms(process.pid), minor_faults(process.pid), time.monotonic()
        pcpu0 = cpu_ms(self.prom_a_pid)
        sampled = self.window(process.pid, seconds, binary if mappings else None)
        cpu1, faults1 = cpu_ms(process.pid), minor_faults(process.pid)
        prom_ms = self.prom_cpu_since(pcpu0, t0)
        elapsed = time.monotonic() - t0
        c1 = self.agent_counters()
        self.processes.stop(process)
        d = {k: c1[k] - c0[k] for k in c0}
        if not d["cycles"] or not d["evals"]:
            raise BenchError(f"{label} ran no cycle in its window (see {directory}/{label}.log)")
        cpu = cpu1 - cpu0
        return {
            "seconds": elapsed,
            "cycles": d["cycles"],
            "evals": d["evals"],
            "cpu_ms": cpu,
            "cpu_ms_per_cycle": per(cpu, d["cycles"]),
            "cpu_us_per_eval": per(cpu, d["evals"], 1000),
            "minor_faults_per_cycle": per(faults1 - faults0, d["cycles"]),
            "cycle_ms": per(d["cycle_s"], d["cycles"], 1000),
            "query_ms": per(d["query_s"], d["queries"], 1000),
            "queries_a_per_cycle": per(d["query_a"], d["cycles"]),
            "ready_a_per_cycle": per(d["ready_a"], d["cycles"]),
            "ready_b_per_cycle": per(d["ready_b"], d["cycles"]),
            "prom_cpu_ms_per_cycle": per(prom_ms, d["cycles"]),
            **sampled,
        }

    def measure_vmalert(self, seconds):
        url = f"http://{self.vmalert_listen}/metrics"
        interval_ms = self.args.interval_ms
        process = self.processes.start(
            ["vmalert", f"-rule={self.vmalert_rules}", f"-datasource.url={self.prom_a}",
             f"-notifier.url=http://{self.alertmanager_listen}",
             f"-evaluationInterval={interval_ms}ms", f"-httpListenAddr={self.vmalert_listen}",
             "-loggerLevel=WARN"], self.work / "vmalert.log")
        rules = self.vmalert_rule_count
        wait_until("vmalert to finish its warm-up evaluations",
                   self.args.warmup_cycles * interval_ms / 1000 + 60,
                   lambda: metric(url, "vmalert_execution_total"), self.args.warmup_cycles * rules)

        def counters():
            return {
                "evals": metric(url, "vmalert_execution_total"),
                "errors": metric(url, "vmalert_execution_errors_total") or 0.0,
                "iterations": metric(url, "vmalert_iteration_duration_seconds_count"),
                "iteration_s": metric(url, "vmalert_iteration_duration_seconds_sum"),
                "query_a": self.prom_requests(self.prom_a, "/api/v1/query"),
            }
        c0 = counters()
        cpu0, faults0, t0 = cpu_ms(process.pid), minor_faults(process.pid), time.monotonic()
        pcpu0 = cpu_ms(self.prom_a_pid)
        sampled = self.window(process.pid, seconds)
        cpu1, faults1 = cpu_ms(process.pid), minor_faults(process.pid)
        prom_ms = self.prom_cpu_since(pcpu0, t0)
        elapsed = time.monotonic() - t0
        c1 = counters()
        self.processes.stop(process)
        d = {k: c1[k] - c0[k] for k in c0}
        if not d["evals"]:
            raise BenchError(f"vmalert evaluated nothing in its window (see {self.work}/vmalert.log)")
        cpu = cpu1 - cpu0
        cycles = d["evals"] / rules
        return {
            "seconds": elapsed,
            "cycles": cycles,
            "evals": d["evals"],
            "errors": d["errors"],
            "cpu_ms": cpu,
            "cpu_ms_per_cycle": per(cpu, cycles),
            "cpu_us_per_eval": per(cpu, d["evals"], 1000),
            "minor_faults_per_cycle": per(faults1 - faults0, cycles),
            "group_iteration_ms": per(d["iteration_s"], d["iterations"], 1000),
            "queries_a_per_cycle": per(d["query_a"], cycles),
            "prom_cpu_ms_per_cycle": per(prom_ms, cycles),
            **sampled,
        }

    def measure_sequential(self, explain, at_once=False):
        out = self.work / f"sequential-{time.monotonic_ns()}.jsonl"
        pcpu0, t0 = cpu_ms(self.prom_a_pid), time.monotonic()
        with open(out, "w") as lines:
            subprocess.run(
                [self.args.sequential, "--server", self.prom_a, "--explain", explain,
                 "--runs", str(self.args.seq_runs), "--every", str(self.args.interval_ms / 1000)]
                + (["--at-once"] if at_once else []), stdout=lines, check=True)
        prom_ms = self.prom_cpu_since(pcpu0, t0)
        runs = [json.loads(line) for line in out.read_text().splitlines()]
        failed = sum(len(r["failed"]) for r in runs)
        if failed:
            raise BenchError(f"the sequential baseline had {failed} failed requests (see {out})")
        return {
            "runs": len(runs),
            "requests": runs[0]["requests"],
            "total_ms": median([r["total_seconds"] * 1000 for r in runs]),
            "slowest_ms": median([r["slowest_seconds"] * 1000 for r in runs]),
            "prom_cpu_ms_per_run": prom_ms / len(runs),
        }

    # callgrind ----------------------------------------------------------------------

    def callgrind_daemon(self, binary):
        """Instructions of the daemon in steady state: zeroed after the warm-up, dumped later."""
        out = self.work / "callgrind-daemon"
        url = f"http://{self.agent_metrics}/metrics"
        process = self.processes.start(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", binary, "run",
             "-c", self.callgrind_config], self.work / "callgrind-daemon.log")
        cycles = lambda: metric(url, "tidb_host_agent_cycle_duration_seconds_count")
        wait_until("the agent under callgrind to run its warm-up cycles", 300, cycles,
                   self.args.warmup_cycles)
        c0 = cycles()
        subprocess.run(["callgrind_control", "-z", str(process.pid)], capture_output=True, check=True)
        time.sleep(self.args.callgrind_seconds)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], capture_output=True, check=True)
        c1 = cycles()
        self.processes.stop(process, grace_s=30)
        ir = callgrind_total(Path(f"{out}.{process.pid}.1"))
        n = c1 - c0
        return {"cycles": n, "instructions": ir, "per_cycle": ir / n,
                "per_eval": ir / n / len(self.promql_keys)}

    def callgrind_once(self, binary, config, name):
        out = self.work / f"callgrind-{name}.out"
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "once",
             "-c", config, "--format", "json"], capture_output=True, text=True, check=True)
        unknown = [v for v in json.loads(result.stdout)["values"] if v.get("state") == "unknown"]
        if unknown:
            raise BenchError(f"{len(unknown)} keys unknown under callgrind: queries timed out")
        return callgrind_total(out)

    # the whole run -------------------------------------------------------------------

    def run(self):
        args = self.args
        agents = {"agent": args.agent, **dict(c.split("=", 1) for c in args.compare)}
        results = self.results
        results.update(footprint={}, rounds=[])
        for label, binary in agents.items():
            log(f"footprint: {label}, {args.footprint_seconds}s at {args.footprint_interval_ms} ms "
                f"with {args.ping_targets} ping targets")
            results["footprint"][label] = self.measure_agent(
                label, binary, self.footprint_config, args.footprint_interval_ms,
                args.footprint_seconds, mappings=True)
            log_figures(results["footprint"][label])
        for n in range(1, args.rounds + 1):
            order = [*agents, "vmalert"] if n % 2 else ["vmalert", *agents]
            row = {"round": n}
            results["rounds"].append(row)
            for label in order:
                log(f"round {n}/{args.rounds}: {label}, {args.window_seconds}s at {args.interval_ms} ms")
                if label == "vmalert":
                    row[label] = self.measure_vmalert(args.window_seconds)
                else:
                    row[label] = self.measure_agent(label, agents[label], self.rules_config,
                                                    args.interval_ms, args.window_seconds)
                row[label]["load1"] = load_average()[0]
                log_figures(row[label])
            log(f"round {n}/{args.rounds}: sequential baseline, {args.seq_runs} runs, "
                "one after another and all at once")
            row["sequential"] = self.measure_sequential(self.explain)
            row["at_once"] = self.measure_sequential(self.explain, at_once=True)
            row["sequential"]["load1"] = load_average()[0]
        # What a request costs Prometheus by itself: as many queries that select nothing.
        trivial = self.work / "trivial.txt"
        header = self.explain.read_text().splitlines()[0]
        trivial.write_text(header + "\n" + "".join(
            f"\ntrivial{i}\n  query:     vector(0) > 1\n" for i in range(len(self.promql_keys))))
        log("sequential baseline with trivial queries")
        results["trivial"] = self.measure_sequential(trivial)
        if args.callgrind_seconds > 0:
            log(f"callgrind: the daemon over {args.callgrind_seconds}s, then `once` with all rules and none")
            results["callgrind"] = {
                "daemon": self.callgrind_daemon(args.agent),
                "once_all_rules": self.callgrind_once(args.agent, self.rules_config, "all"),
                "once_no_rules": self.callgrind_once(args.agent, self.no_rules_config, "none"),
            }
            c = results["callgrind"]
            c["once_per_rule"] = (c["once_all_rules"] - c["once_no_rules"]) / len(self.promql_keys)


def callgrind_total(path):
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no total in {path}")


def log_figures(figures):
    shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()
             if k in ("cycles", "cpu_us_per_eval", "cycle_ms", "total_ms")}
    shown.update({k: figures["memory"][k] for k in ("rss_anon_kib", "pss_kib", "vm_rss_kib")
                  if "memory" in figures})
    log(f"  {shown}")


# --- facts about the run -------------------------------------------------------------------

def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def first_line(args):
    out = command_output(args)
    return out.splitlines()[0] if out else ""


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    return {
        "cores": os.cpu_count(),
        "cpu_model": model.group(1) if model else "",
        "mem_total_kib": kib_fields("/proc/meminfo", {"MemTotal": "m"})["m"],
        "kernel": os.uname().release,
        "clock_tick_ms": TICK_MS,
    }


def software():
    return {
        "prometheus": first_line(["prometheus", "--version"]),
        "vmalert": command_output(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"]),
        "alertmanager": first_line(["prometheus-alertmanager", "--version"]),
        "rustc": first_line(["rustc", "--version"]),
    }


def binary_facts(path, description):
    """A measured binary: path, size, and the sizes of the sections that become resident."""
    sections = {}
    for line in command_output(["size", "-A", path]).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (".text", ".rodata", ".data.rel.ro", ".rela.dyn",
                                           ".eh_frame", ".data", ".bss"):
            sections[parts[0]] = int(parts[1])
    return {"path": str(path), "description": description, "bytes": os.path.getsize(path),
            "sections": sections}


def commit_of_tree():
    head = command_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "src",
                            "Cargo.toml", "Cargo.lock", "bench"], check=False).returncode != 0
    return {"commit": head, "uncommitted_changes": dirty}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--agent", default=str(ROOT / "target/release/tidb-host-agent"))
    add("--sandbox", default=str(ROOT / "target/release/examples/sandbox"))
    add("--sequential", default=str(ROOT / "target/release/examples/sequential"))
    add("--compare", action="append", default=[], metavar="LABEL=BINARY",
        help="another agent binary measured beside this one (footprint and rounds)")
    add("--describe", action="append", default=[], metavar="LABEL=TEXT",
        help="what a --compare binary is, for the report")
    add("--block", type=int, default=0, help="sandbox block: hosts 127.B.1.1, .2 and .10")
    add("--rounds", type=int, default=5)
    add("--window-seconds", type=float, default=30, help="measured window per contender per round")
    add("--interval-ms", type=int, default=250, help="evaluation interval in the rounds")
    add("--warmup-cycles", type=int, default=8)
    add("--seq-runs", type=int, default=40, help="sequential baseline runs per round")
    add("--footprint-seconds", type=float, default=120)
    add("--footprint-interval-ms", type=int, default=250)
    add("--ping-targets", type=int, default=100)
    add("--ping-every", default="1s")
    add("--prom-idle-seconds", type=float, default=10)
    add("--callgrind-seconds", type=float, default=20, help="0: no callgrind")
    add("--out", default=None, help="default: bench/results/<date>-<commit>.json")
    add("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    if os.geteuid() != 0:
        sys.exit("bench: run as root (ping needs CAP_NET_RAW)")
    for tool in ("vmalert", "prometheus-alertmanager", "valgrind", "callgrind_control", "ss", "size"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (scripts/install-deps.sh; apt-get install valgrind binutils)")
    for path in (args.agent, args.sandbox, args.sequential,
                 *(c.split("=", 1)[1] for c in args.compare)):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is not an executable (cargo build --release --examples)")
    descriptions = dict(d.split("=", 1) for d in args.describe)

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    tree = commit_of_tree()
    work = Path(tempfile.mkdtemp(prefix="tidb-host-agent-bench."))
    bench = Bench(args, work)
    failure = None
    try:
        bench.prepare()
        bench.start_sandbox()
        bench.run()
    except (BenchError, subprocess.CalledProcessError, OSError, KeyboardInterrupt) as why:
        failure = str(why) or type(why).__name__
        log(f"error: {failure}; writing what was measured")
    finally:
        bench.stop_sandbox()
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    finished = datetime.datetime.now(datetime.timezone.utc)

    report = {
        "schema": 1,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round((finished - started).total_seconds()),
        "command": shlex.join(sys.argv),
        "machine": {**machine(), "load_before": load_before, "load_after": load_average()},
        "software": software(),
        "tree": tree,
        "binaries": {
            "agent": binary_facts(args.agent, f"this tree, {tree['commit'][:7]}"),
            **{label: binary_facts(path, descriptions.get(label, path))
               for label, path in (c.split("=", 1) for c in args.compare)},
        },
        "setup": {
            "block": args.block,
            "prometheus_a": bench.prom_a,
            "prometheus_b": bench.prom_b,
            "host": bench.host_ip,
            "keys": len(getattr(bench, "keys", [])),
            "promql_rules": len(getattr(bench, "promql_keys", [])),
            "rules_per_query": getattr(bench, "rules_per_query", None),
            "typical_tikv_rules": getattr(bench, "typical_tikv_rules", None),
            "vmalert_rules": getattr(bench, "vmalert_rule_count", None),
            "rounds": args.rounds,
            "window_seconds": args.window_seconds,
            "interval_ms": args.interval_ms,
            "warmup_cycles": args.warmup_cycles,
            "seq_runs": args.seq_runs,
            "footprint_seconds": args.footprint_seconds,
            "footprint_interval_ms": args.footprint_interval_ms,
            "ping_targets": args.ping_targets,
            "ping_every": args.ping_every,
            "callgrind_seconds": args.callgrind_seconds,
            "prometheus_idle_cpu_ms_per_s": bench.prom_idle_ms_per_s,
        },
        **bench.results,
    }
    if failure:
        report["incomplete"] = failure
    out = Path(args.out) if args.out else \
        ROOT / "bench/results" / f"{started:%Y-%m-%dT%H%M}-{tree['commit'][:7]}.json"
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
        sys.exit(f"bench: error: {why}")
