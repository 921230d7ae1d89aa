"""`make bench`: pronghorn against gunicorn (sync, gthread), granian and waitress under wrk.

Every server serves the same apps (bench/apps.py) with the same number of workers on a
free 127.0.0.1 port, and wrk loads it. Rounds alternate: round 1 measures every scenario
on every server, then round 2 does it all again, and so on, so a burst of noise on the
machine lands on all servers instead of one; the table shows the median of the rounds.

Each measurement starts the server afresh, checks that it answers the scenario's request
correctly, warms it up, then runs wrk while sampling the RSS of its worker processes from
/proc. Every process started here is ended by its PID when the measurement is over, also on
Ctrl-C or an error. A server that is not installed or fails to start becomes a row with its
error, and the run goes on with the others.

    .venv/bin/python bench/run.py                    # full run (3 rounds of 10 s)
    .venv/bin/python bench/run.py --quick            # 1 round of 3 s
    .venv/bin/python bench/run.py --only hello --servers pronghorn,granian --json out.json

See bench/README.md for the method and what is fair about it.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench import apps  # noqa: E402  (the expected answers come from the apps themselves)

WORKERS = 2
WRK_THREADS = 2
WRK_CONNECTIONS = 50
WRK_TIMEOUT = "2s"
HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
RSS_SAMPLE_INTERVAL = 0.25
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: str                    # attribute of bench.apps
    threads: int = 1            # threads a worker; 1 for apps that only use CPU
    method: str = "GET"
    body_size: int = 0          # request body (POST)
    limit: float | None = None  # the best req/s possible, when the app itself sets one
    slow_clients: bool = False  # run bench/slowclients.py during the measurement

    def expected_body(self, sent: bytes) -> bytes:
        if self.app == "echo":
            return sent
        if self.app == "file1m":
            return Path(apps.ensure_bench_file()).read_bytes()
        return apps.HELLO_BODY


SLOW_CONNECTIONS = 300  # of each kind: slowloris and idle keep-alive

SCENARIOS = [
    Scenario("hello", "hello world GET, keep-alive", "hello"),
    Scenario("echo", "64 KiB POST echoed", "echo", method="POST", body_size=64 * 1024),
    # 2 workers x 4 threads, each request holding its thread 10 ms: at most 800 req/s.
    Scenario("sleep10", "app blocks 10 ms, 4 threads a worker", "sleep10", threads=4,
             limit=WORKERS * 4 / 0.010),
    Scenario("file", "1 MiB response through wsgi.file_wrapper", "file1m"),
    Scenario("slow", f"hello while {SLOW_CONNECTIONS} slowloris + {SLOW_CONNECTIONS} idle "
             "keep-alive connections are open", "hello", slow_clients=True),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


# --------------------------------------------------------------------------- servers

def venv_bin(name: str) -> str | None:
    """The console script next to this interpreter (the .venv), else one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


@dataclass(frozen=True)
class Server:
    name: str
    executable: str
    note: str
    single_process: bool = False

    def command(self, exe: str, scenario: Scenario, port: int) -> list[str]:
        app = f"bench.apps:{scenario.app}"
        threads = scenario.threads
        if self.name == "pronghorn":
            return [exe, "-w", str(WORKERS), "--threads", str(threads), "-b", f"{HOST}:{port}", app]
        if self.name == "gunicorn-sync":
            return [exe, "-w", str(WORKERS), "-k", "sync", "-b", f"{HOST}:{port}", app]
        if self.name == "gunicorn-gthread":
            return [exe, "-w", str(WORKERS), "-k", "gthread", "--threads", str(gthread_threads(threads)),
                    "-b", f"{HOST}:{port}", app]
        if self.name == "granian":
            return [exe, "--interface", "wsgi", "--workers", str(WORKERS), "--blocking-threads",
                    str(threads), "--host", HOST, "--port", str(port), "--log-level", "warning", app]
        if self.name == "waitress":
            # One process: it gets the threads of all workers together, the same concurrency.
            return [exe, f"--listen={HOST}:{port}", f"--threads={WORKERS * threads}", app]
        raise ValueError(f"no command for server {self.name!r}")


def gthread_threads(threads: int) -> int:
    # gthread with one thread is the sync worker plus a queue; gunicorn's users run it with
    # a few threads, and on CPU-bound apps 4 measured no slower than 1 (bench/README.md).
    return max(threads, 4)


SERVERS = [
    Server("pronghorn", "pronghorn", "event loop per worker; app in the loop thread when --threads 1"),
    Server("gunicorn-sync", "gunicorn", "one request at a time a worker, no keep-alive"),
    Server("gunicorn-gthread", "gunicorn", "thread pool a worker (4 threads on CPU-bound apps)"),
    Server("granian", "granian", "Rust HTTP, --interface wsgi, --blocking-threads = threads"),
    Server("waitress", "waitress-serve", "single process: threads = workers x threads",
           single_process=True),
]
SERVER_NAMES = [s.name for s in SERVERS]


# --------------------------------------------------------------------------- results

@dataclass
class Measurement:
    server: str
    scenario: str
    round: int
    rps: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    error_detail: dict = field(default_factory=dict)
    rss_per_worker_mib: float = 0.0
    worker_processes: int = 0
    connections_per_worker: list = field(default_factory=list)  # half-way through, most first
    wrk_cpu: float = 0.0        # CPUs wrk itself kept busy (1.0 = one core), the load generator's cost
    slow_clients: dict | None = None
    sleep_ms: float | None = None  # limited scenarios: what time.sleep(0.010) took during the round
    failure: str | None = None  # set when the server could not be measured


class ServerFailed(Exception):
    """The server did not start, died, or answered the scenario's request wrongly."""


# --------------------------------------------------------------------------- processes

class ProcessRegistry:
    """Every process this run started, so that each is ended by its PID whatever happens."""

    def __init__(self):
        self._procs: list[subprocess.Popen] = []

    def start(self, argv, **kwargs) -> subprocess.Popen:
        # A session of its own: Ctrl-C in the terminal reaches only this script, which then
        # stops the servers in order instead of them dying mid-request.
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
        """TERM the process, KILL it if it is still there after `timeout`, then its leftover children."""
        children = descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in children:
            # A worker its master failed to reap (or a master killed above) is ended by PID too.
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, timeout=3.0)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_table() -> dict[int, int]:
    """pid -> parent pid for every process, read from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # The command name may hold spaces and parentheses: split after the last ')'.
                    table[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return table


def descendants(pid: int) -> list[int]:
    table = process_table()
    children: dict[int, list[int]] = {}
    for child, parent in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class RssSampler(threading.Thread):
    """Samples the summed RSS of a server's workers while a measurement runs.

    Workers are the master's descendants; a single-process server (waitress) is its own
    worker. The peak of the sum, divided by the number of workers, is the figure reported.
    Half-way through it also counts the established connections each worker holds: with
    keep-alive, a split like 40/10 lasts the whole run and leaves one worker's CPU idle.
    """

    def __init__(self, master_pid: int, single_process: bool, port: int, seconds: float):
        super().__init__(daemon=True)
        self.master_pid = master_pid
        self.single_process = single_process
        self.port = port
        self.split_at = time.monotonic() + seconds / 2
        self.peak_per_worker = 0.0
        self.workers = 0
        self.connections_per_worker: list[int] = []
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            pids = self.sample()
            if not self.connections_per_worker and time.monotonic() >= self.split_at:
                self.connections_per_worker = connections_by_process(pids, self.port)
            self._done.wait(RSS_SAMPLE_INTERVAL)

    def sample(self) -> list[int]:
        pids = [] if self.single_process else descendants(self.master_pid)
        if not pids:
            pids = [self.master_pid]
        per_worker = sum(rss_bytes(p) for p in pids) / len(pids)
        if per_worker > self.peak_per_worker:
            self.peak_per_worker = per_worker
        self.workers = max(self.workers, len(pids))
        return pids

    def __enter__(self):
        self.sample()
        self.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self.join()


def connections_by_process(pids: list[int], port: int) -> list[int]:
    """Established TCP connections to `port` held by each of `pids`, most first."""
    inodes = established_socket_inodes(port)
    counts = []
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    n += 1
        except OSError:
            pass
        counts.append(n)
    return sorted(counts, reverse=True)


def established_socket_inodes(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 01 is ESTABLISHED; the inode is field 9.
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


# --------------------------------------------------------------------------- one measurement

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request_body(scenario: Scenario) -> bytes:
    return b"x" * scenario.body_size


def wait_until_ready(proc: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with status {proc.returncode} before serving: {log_tail(log_path)}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise ServerFailed(f"not listening on {HOST}:{port} after {READY_TIMEOUT:.0f} s: {log_tail(log_path)}")


def check_answer(scenario: Scenario, port: int) -> None:
    """One request before the load: a server that answers wrongly is not measured."""
    sent = request_body(scenario)
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/octet-stream"} if sent else {}
        conn.request(scenario.method, "/", body=sent or None, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise ServerFailed(f"the check request failed: {e!r}") from e
    finally:
        conn.close()
    if resp.status != 200:
        raise ServerFailed(f"the check request got status {resp.status}, expected 200")
    want = scenario.expected_body(sent)
    if body != want:
        raise ServerFailed(f"the check request got a wrong body ({len(body)} bytes, expected {len(want)})")


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


WRK_REPORT = """
-- Written by bench/run.py: prints wrk's own totals as one JSON line for the script to read.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def write_wrk_script(scenario: Scenario, workdir: Path) -> Path:
    path = workdir / f"wrk-{scenario.name}.lua"
    lines = []
    if scenario.method != "GET":
        lines.append(f'wrk.method = "{scenario.method}"')
    if scenario.body_size:
        lines.append(f'wrk.body = string.rep("x", {scenario.body_size})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    path.write_text("\n".join(lines) + WRK_REPORT)
    return path


def run_wrk(registry, port: int, script: Path, seconds: int, cpus: str | None) -> dict:
    """wrk's totals for one load run, plus the share of a CPU wrk itself used (`wrk_cpu`)."""
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency",
            "--timeout", WRK_TIMEOUT, "-s", str(script), f"http://{HOST}:{port}/"]
    # wrk is the only child reaped in this window, so the children's CPU time that grows is its own.
    before = children_cpu_seconds()
    proc = registry.start(pinned(argv, cpus), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        registry.stop(proc)
    match = re.search(r"^BENCH-JSON (\{.*\})$", out, re.M)
    if not match:
        raise ServerFailed(f"wrk printed no result: {out.strip()[-300:]}")
    result = json.loads(match.group(1))
    result["wrk_cpu"] = (children_cpu_seconds() - before) / seconds
    return result


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    # taskset execs the command, so the PID we hold is the server's (or wrk's) own.
    return ["taskset", "-c", cpus, *argv] if cpus else argv


class SlowClients:
    """bench/slowclients.py running against one server for the length of a measurement."""

    def __init__(self, registry, port: int, seconds: float):
        self.registry = registry
        argv = [sys.executable, str(REPO / "bench" / "slowclients.py"), "--host", HOST, "--port", str(port),
                "--slowloris", str(SLOW_CONNECTIONS), "--idle", str(SLOW_CONNECTIONS),
                "--seconds", str(seconds)]
        self.proc = registry.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # One reader for the whole life of the process: its `ready` and `summary` lines, by name.
        self.reports: dict[str, dict] = {}
        self.arrived = {"ready": threading.Event(), "summary": threading.Event()}
        threading.Thread(target=self._read_reports, daemon=True).start()
        self.arrived["ready"].wait(30)

    def _read_reports(self):
        for line in self.proc.stdout:
            name, _, payload = line.partition(" ")
            if name in self.arrived:
                self.reports[name] = json.loads(payload)
                self.arrived[name].set()

    def finish(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.arrived["summary"].wait(10)
        self.registry.stop(self.proc, timeout=5)
        return {"at_start": self.reports.get("ready", {}), "at_end": self.reports.get("summary", {})}


def measure(registry, server: Server, scenario: Scenario, round_no: int, args, workdir: Path) -> Measurement:
    m = Measurement(server=server.name, scenario=scenario.name, round=round_no)
    exe = venv_bin(server.executable)
    if exe is None:
        m.failure = f"{server.executable} is not installed (run scripts/bootstrap, or pip install it)"
        return m
    port = free_port()
    log_path = workdir / f"{server.name}-{scenario.name}-r{round_no}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = registry.start(pinned(server.command(exe, scenario, port), args.server_cpus),
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    slow = None
    try:
        wait_until_ready(proc, port, log_path)
        check_answer(scenario, port)
        script = write_wrk_script(scenario, workdir)
        if args.warmup:
            run_wrk(registry, port, script, args.warmup, args.wrk_cpus)
        if scenario.slow_clients:
            slow = SlowClients(registry, port, seconds=args.duration + 30)
        with RssSampler(proc.pid, server.single_process, port, args.duration) as rss, \
                SleepProbe(active=bool(scenario.limit)) as sleep_probe:
            result = run_wrk(registry, port, script, args.duration, args.wrk_cpus)
        m.sleep_ms = sleep_probe.mean_ms()
        if proc.poll() is not None:
            raise ServerFailed(f"died during the run (status {proc.returncode}): {log_tail(log_path)}")
    except ServerFailed as e:
        m.failure = str(e)
        return m
    finally:
        if slow is not None:
            m.slow_clients = slow.finish()
        registry.stop(proc)
    m.rps = result["requests"] / (result["duration_us"] / 1e6)
    m.p99_ms = result["p99_us"] / 1000
    m.error_detail = {k: result[k] for k in ("connect", "read", "write", "status", "timeout")}
    m.errors = sum(m.error_detail.values())
    m.rss_per_worker_mib = rss.peak_per_worker / 2**20
    m.worker_processes = rss.workers
    m.wrk_cpu = result["wrk_cpu"]
    m.connections_per_worker = rss.connections_per_worker
    return m


# --------------------------------------------------------------------------- the run

def run_rounds(args, scenarios, servers, registry, workdir: Path) -> list[Measurement]:
    results: list[Measurement] = []
    failed_to_start: set[tuple[str, str]] = set()
    for round_no in range(1, args.rounds + 1):
        for scenario in scenarios:
            # The order of servers turns each round, so none is always first (or last) after a pause.
            shift = (round_no - 1) % len(servers)
            for server in servers[shift:] + servers[:shift]:
                if (server.name, scenario.name) in failed_to_start:
                    continue
                progress(f"round {round_no}/{args.rounds}  {scenario.name:<8} {server.name:<17}")
                m = measure(registry, server, scenario, round_no, args, workdir)
                results.append(m)
                if m.failure:
                    progress(f"  FAILED: {m.failure}\n")
                    # The same server would fail the same way each round: it is reported, not retried.
                    failed_to_start.add((server.name, scenario.name))
                else:
                    progress(f"  {m.rps:>10,.0f} req/s  p99 {m.p99_ms:7.1f} ms  errors {m.errors}\n")
    return results


def progress(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def summarize(results: list[Measurement], scenarios, servers) -> list[dict]:
    """One row a (scenario, server): medians over the rounds, errors summed, RSS at its peak."""
    rows = []
    for scenario in scenarios:
        for server in servers:
            ms = [m for m in results if m.scenario == scenario.name and m.server == server.name]
            if not ms:
                continue
            good = [m for m in ms if not m.failure]
            row = {"scenario": scenario.name, "server": server.name, "rounds": len(good)}
            if not good:
                row["failure"] = ms[0].failure
            else:
                row.update(
                    rps=statistics.median(m.rps for m in good),
                    p99_ms=statistics.median(m.p99_ms for m in good),
                    errors=sum(m.errors for m in good),
                    rss_per_worker_mib=max(m.rss_per_worker_mib for m in good),
                    worker_processes=max(m.worker_processes for m in good),
                    wrk_cpu=statistics.median(m.wrk_cpu for m in good),
                    connections_split=most_uneven([m.connections_per_worker for m in good]),
                )
                if scenario.limit:
                    row["of_limit"] = row["rps"] / scenario.limit
                    sleeps = [m.sleep_ms for m in good if m.sleep_ms]
                    if sleeps:
                        row["sleep_ms"] = statistics.median(sleeps)
                        row["ceiling_rps"] = WORKERS * scenario.threads * 1000 / row["sleep_ms"]
                        row["of_ceiling"] = row["rps"] / row["ceiling_rps"]
                if scenario.slow_clients:
                    ends = [m.slow_clients["at_end"] for m in good if m.slow_clients]
                    if ends:
                        row["slow_clients_at_end"] = ends[-1]
            rows.append(row)
    add_ratios(rows)
    return rows


def most_uneven(splits: list[list[int]]) -> list[int]:
    """Of the rounds' connections-per-worker counts, the one whose busiest worker had the largest share."""
    splits = [sp for sp in splits if sp]
    # A split with no connections (gunicorn sync closes each one after its answer) ranks last.
    return max(splits, key=lambda sp: sp[0] / sum(sp) if sum(sp) else 0) if splits else []


def add_ratios(rows: list[dict]) -> None:
    by_key = {(r["scenario"], r["server"]): r for r in rows}
    for r in rows:
        if "rps" not in r:
            continue
        ours = by_key.get((r["scenario"], "pronghorn"))
        if ours and "rps" in ours and r["rps"] > 0 and r is not ours:
            r["pronghorn_ratio"] = ours["rps"] / r["rps"]
        hello = by_key.get(("hello", r["server"]))
        if r["scenario"] == "slow" and hello and hello.get("rps"):
            r["of_hello"] = r["rps"] / hello["rps"]


def format_table(rows: list[dict], scenarios, sleep: dict | None = None) -> str:
    out = []
    for scenario in scenarios:
        srows = [r for r in rows if r["scenario"] == scenario.name]
        if not srows:
            continue
        out.append(f"\n{scenario.name}: {scenario.title}  ({WORKERS} workers, {scenario.threads} thread(s) a worker)")
        if scenario.limit and sleep:
            out.append(f"  (time.sleep(0.010) took {sleep['sleep_10ms_mean_ms']:.2f} ms on average on this machine "
                       f"after the run: {WORKERS * scenario.threads} threads can answer at most "
                       f"{sleep['ceiling_rps']} req/s; 'of limit' is of {scenario.limit:.0f}; 'sleep ms' is what "
                       f"the same sleep took during that server's rounds, 'of ceiling' its req/s over "
                       f"{WORKERS * scenario.threads} / that)")
        extra = ("  of limit  sleep ms  of ceiling" if scenario.limit
                 else "  of hello" if scenario.slow_clients else "")
        out.append(f"  {'server':<17} {'req/s':>10} {'p99 ms':>8} {'errors':>7} {'RSS/worker MiB':>15}"
                   f" {'conns/worker':>12} {'wrk CPU':>8} {'pronghorn x':>12}{extra}")
        for r in srows:
            out.append(format_row(r, scenario))
    return "\n".join(out) + "\n"


def format_row(r: dict, scenario: Scenario) -> str:
    if "failure" in r:
        return f"  {r['server']:<17} {'FAILED':>10}  {r['failure']}"
    split = "/".join(map(str, r["connections_split"])) or "?"
    ratio = "-" if r["server"] == "pronghorn" else f"{r['pronghorn_ratio']:.2f}x" if "pronghorn_ratio" in r else "n/a"
    line = (f"  {r['server']:<17} {r['rps']:>10,.0f} {r['p99_ms']:>8.1f} {r['errors']:>7}"
            f" {r['rss_per_worker_mib']:>15.1f} {split:>12} {r['wrk_cpu']:>8.0%} {ratio:>12}")
    if scenario.limit:
        line += f"  {r['of_limit']:>8.0%}"
        if "of_ceiling" in r:
            line += f"  {r['sleep_ms']:>8.2f}  {r['of_ceiling']:>10.1%}"
    elif scenario.slow_clients:
        line += f"  {r['of_hello']:>8.0%}" if "of_hello" in r else f"  {'n/a':>8}"
    if "slow_clients_at_end" in r:
        still = r["slow_clients_at_end"].get("open", {})
        line += f"  (open at the end: {still.get('slowloris', 0)} slowloris, {still.get('idle', 0)} idle)"
    if r["rps"] == 0:
        # wrk reports no error when no request at all was answered: say it, or 0 errors would mislead.
        line += "  (no request answered: stalled)"
    return line


class SleepProbe:
    """During a round of a scenario with a limit (the 10 ms app): how long time.sleep(0.010)
    takes on this machine under that very load. The app's sleeps wake as late as this one does,
    so WORKERS x threads / this is the most the server could answer in that round. Measured in
    one thread of this process: no GIL or pool of the server's adds to it."""

    def __init__(self, active: bool):
        self.active = active
        self.spans: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(0.010)
            self.spans.append(time.perf_counter() - start)

    def __enter__(self):
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.active:
            self._thread.join(5)

    def mean_ms(self) -> float | None:
        return 1000 * sum(self.spans) / len(self.spans) if self.spans else None


def measure_sleep_ceiling(threads: int = WORKERS * 4, seconds: float = 2.0) -> dict:
    """How long time.sleep(0.010) really takes here. The kernel wakes a sleeper late by a few
    hundred microseconds on some machines (VMs), which no server can win back: `ceiling_rps`,
    `threads` sleepers back to back, is the most any server can answer. Measured in one thread,
    so no lock or GIL adds to it: the most optimistic ceiling. (The same probe as each round's.)"""
    with SleepProbe(active=True) as probe:
        time.sleep(seconds)
    mean_ms = probe.mean_ms()
    return {"sleep_10ms_mean_ms": round(mean_ms, 3), "ceiling_rps": round(threads * 1000 / mean_ms)}


def machine_facts() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": os.getloadavg()[0],
    }


def plan(args) -> str:
    """One line for the terminal before the run: what will be measured and about how long it takes."""
    runs = len(args.scenarios) * len(args.server_list) * args.rounds
    # About 3 s a measurement go to starting, checking and stopping the server.
    seconds = runs * (args.duration + args.warmup + 3)
    took = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds} s"
    return (f"measuring {len(args.scenarios)} scenario(s) x {len(args.server_list)} server(s) x "
            f"{args.rounds} round(s) = {runs} runs of {args.duration} s, about {took}")


def header(args, facts: dict) -> str:
    pin = f"servers on CPUs {args.server_cpus or 'any'}, wrk on CPUs {args.wrk_cpus or 'any'}"
    return (f"pronghorn bench  {facts['date']}  {facts['nproc']} CPUs ({facts['cpu']}), kernel {facts['kernel']}, "
            f"python {facts['python']}\n"
            f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration}s, {args.rounds} round(s), "
            f"warm-up {args.warmup} s, {pin}; median of rounds, errors summed, peak RSS;\n"
            f"'pronghorn x' = pronghorn's req/s / that server's. waitress is one process "
            f"({WORKERS} x threads threads in it).")


# --------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="pronghorn against gunicorn, granian and waitress under wrk (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="1 round of 3 s, no warm-up (unless set explicitly)")
    p.add_argument("--rounds", type=int, help="rounds over every scenario and server (default 3)")
    p.add_argument("--duration", type=int, help="seconds of wrk load a measurement (default 10)")
    p.add_argument("--warmup", type=int, help="seconds of wrk load before each measurement (default 1)")
    p.add_argument("--only", metavar="SCENARIO[,...]", help=f"scenarios to run, of: {', '.join(SCENARIO_NAMES)}")
    p.add_argument("--servers", metavar="NAME[,...]", help=f"servers to run, of: {', '.join(SERVER_NAMES)}")
    p.add_argument("--json", metavar="FILE", help="also write every measurement and the table's rows as JSON")
    p.add_argument("--server-cpus", metavar="LIST", help="pin the servers with taskset -c LIST (e.g. 0,1)")
    p.add_argument("--wrk-cpus", metavar="LIST", help="pin wrk with taskset -c LIST (e.g. 1)")
    p.add_argument("--deploy", action="store_true", help="also time deploys to a sandbox host (bench/deploy_times.py)")
    args = p.parse_args(argv)

    args.rounds = args.rounds if args.rounds is not None else 1 if args.quick else 3
    args.duration = args.duration if args.duration is not None else 3 if args.quick else 10
    args.warmup = args.warmup if args.warmup is not None else 0 if args.quick else 1
    if args.rounds < 1:
        p.error("--rounds must be 1 or more")
    if not 1 <= args.duration <= 600:
        p.error("--duration must be between 1 and 600 seconds (wrk counts whole seconds)")
    if not 0 <= args.warmup <= 60:
        p.error("--warmup must be between 0 and 60 seconds")
    args.scenarios = pick(p, "--only", args.only, SCENARIOS)
    args.server_list = pick(p, "--servers", args.servers, SERVERS)
    if shutil.which("wrk") is None:
        p.error("wrk is not installed: run scripts/bootstrap (or apt-get install wrk)")
    if (args.server_cpus or args.wrk_cpus) and shutil.which("taskset") is None:
        p.error("--server-cpus/--wrk-cpus need taskset: apt-get install util-linux")
    return args


def pick(parser, flag: str, value: str | None, known: list):
    """The named items of `known`, in the order given; every name checked."""
    if not value:
        return list(known)
    by_name = {k.name: k for k in known}
    chosen = []
    for name in (n.strip() for n in value.split(",")):
        if name not in by_name:
            parser.error(f"{flag}: unknown name {name!r}; choose from {', '.join(by_name)}")
        chosen.append(by_name[name])
    return chosen


def run_deploy_times() -> None:
    script = REPO / "bench" / "deploy_times.py"
    subprocess.run([sys.executable, str(script)], cwd=REPO, check=False)


def stop_on_sigterm(signum, frame):
    # Turned into KeyboardInterrupt so the same finally-block ends every server.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    apps.ensure_bench_file()
    facts = machine_facts()
    registry = ProcessRegistry()
    results: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pronghorn-bench-") as tmp:
            progress(plan(args) + "\n")
            results = run_rounds(args, args.scenarios, args.server_list, registry, Path(tmp))
    except KeyboardInterrupt:
        progress("\ninterrupted: stopping every server started\n")
        return 130
    finally:
        registry.stop_all()
    if any(s.limit for s in args.scenarios):
        progress("measuring how long time.sleep(0.010) takes here (2 s)\n")
        facts["sleep"] = measure_sleep_ceiling()
    rows = summarize(results, args.scenarios, args.server_list)
    print(header(args, facts))
    print(format_table(rows, args.scenarios, facts.get("sleep")))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": facts,
            "settings": {"workers": WORKERS, "wrk_threads": WRK_THREADS, "wrk_connections": WRK_CONNECTIONS,
                         "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
                         "server_cpus": args.server_cpus, "wrk_cpus": args.wrk_cpus},
            "rows": rows,
            "measurements": [m.__dict__ for m in results],
        }, indent=2))
    if args.deploy:
        run_deploy_times()
    return 0


if __name__ == "__main__":
    sys.exit(main())
