"""Fault drills against the real server (`python -m pronghorn`), over real sockets.

Each drill does to a running server what happens in production - a worker killed by the OOM
killer, a deploy's TERM or HUP while requests are in flight, an app that hangs or cannot be
imported - and asserts what the people using it care about: requests keep being answered, the
worker count is restored, the server stops with a clear message instead of a crash loop.

Load loops are bounded in count and in time; outcomes are asserted, never timings.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import SERVER_SRC, start  # noqa: E402
from tests.server.test_arbiter import child_pids, wait_for  # noqa: E402

DRILL_APP = '''
import os, time

VERSION = {version!r}

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
    elif path == "/raise":
        raise RuntimeError("drill: the app raised")
    elif path == "/hang":
        time.sleep(60)
    body = ("%s %d" % (VERSION, os.getpid())).encode()
    if path == "/env":
        body = repr(os.environ.get(environ["QUERY_STRING"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def write_app(directory, version="v1", name="drillapp"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(DRILL_APP.format(version=version))


def get(port, path="/", timeout=10.0):
    """One request on a new connection: (status, body text), or (None, error) if it failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: drill\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return None, repr(exc)
    if not data:
        return None, "closed without a response"
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode("latin-1")


class Load:
    """A client thread sending sequential requests (at most one in flight), bounded in count and time."""

    def __init__(self, port, max_requests=3000, max_seconds=30.0):
        self.port = port
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.results = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while (not self._stop.is_set() and len(self.results) < self.max_requests
               and time.monotonic() < deadline):
            self.results.append(get(self.port))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(self.max_seconds + 15)

    def wait_for_requests(self, count):
        wait_for(lambda: len(self.results) >= count or not self._thread.is_alive())

    def failures(self):
        return [r for r in self.results if r[0] != 200]

    def pids(self):
        return {int(body.split()[1]) for status, body in self.results if status == 200}


@pytest.fixture
def server(tmp_path):
    """Start `python -m pronghorn` on the drill app in tmp_path; stopped (and orphans killed) after."""
    started = []

    def run(*args, app="drillapp:app", chdir=None):
        if chdir is None:
            write_app(tmp_path)
            chdir = tmp_path
        srv = start(app, "--chdir", str(chdir), *args)
        started.append(srv)
        return srv
    yield run
    for srv in started:
        leftovers = child_pids(srv.pid)
        srv.stop()
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def workers_of(srv, count):
    return wait_for(lambda: (lambda p: p if len(p) == count else None)(child_pids(srv.pid)))


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(server):
    srv = server("-w", "2")
    before = workers_of(srv, 2)
    with Load(srv.port) as load:
        load.wait_for_requests(50)
        os.kill(before[0], signal.SIGKILL)
        after = wait_for(lambda: (lambda p: p if len(p) == 2 and before[0] not in p else None)(
            child_pids(srv.pid)))
        done = len(load.results)
        load.wait_for_requests(done + 50)
    # a sequential client has at most one request on the killed worker
    assert len(load.failures()) <= 1, load.failures()
    assert before[1] in after
    assert get(srv.port)[0] == 200
    assert "was sent SIGKILL" in srv.errors()


def test_term_lets_an_in_flight_slow_request_finish_then_exits_0(server):
    srv = server("-w", "1", "--graceful-timeout", "20")
    result = {}
    slow = threading.Thread(target=lambda: result.update(r=get(srv.port, "/slow?2", timeout=30)))
    slow.start()
    time.sleep(0.5)   # the request is in the app now
    assert srv.stop(signal.SIGTERM, timeout=30) == 0
    slow.join(30)
    status, body = result["r"]
    assert status == 200 and body.startswith("v1 ")


def test_hup_under_load_fails_no_request_and_replaces_every_worker(server):
    srv = server("-w", "2")
    before = set(workers_of(srv, 2))
    with Load(srv.port) as load:
        load.wait_for_requests(50)
        os.kill(srv.pid, signal.SIGHUP)
        wait_for(lambda: (lambda p: len(p) == 2 and not p & before)(set(child_pids(srv.pid))))
        done = len(load.results)
        load.wait_for_requests(done + 100)
    assert load.failures() == []
    after = set(child_pids(srv.pid))
    assert not after & before
    assert after <= load.pids()   # the new workers served part of the load


def test_an_app_that_raises_gets_500_and_the_worker_lives(server):
    srv = server("-w", "1")
    [worker] = workers_of(srv, 1)
    status, _ = get(srv.port, "/raise")
    assert status == 500
    status, body = get(srv.port, "/")
    assert status == 200 and body == f"v1 {worker}"
    assert "drill: the app raised" in srv.errors()


def test_an_app_that_cannot_be_imported_stops_the_server_quickly(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pronghorn", "-w", "2", "-b", f"unix:{tmp_path / 's.sock'}",
         "--chdir", str(tmp_path), "no_such_drill_module:app"],
        env=dict(os.environ, PYTHONPATH=SERVER_SRC), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert "no_such_drill_module" in proc.stderr
    assert proc.stderr.count("Booting worker") <= 2     # no respawn loop
    assert not (tmp_path / "s.sock").exists()


def test_preload_of_an_unimportable_app_exits_before_any_fork(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pronghorn", "--preload", "-b", f"unix:{tmp_path / 's.sock'}",
         "--chdir", str(tmp_path), "no_such_drill_module:app"],
        env=dict(os.environ, PYTHONPATH=SERVER_SRC), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert "no_such_drill_module" in proc.stderr
    assert "Booting worker" not in proc.stderr


def test_a_worker_stuck_beyond_timeout_is_killed_and_replaced(server):
    srv = server("-w", "1", "--timeout", "3")
    [stuck] = workers_of(srv, 1)
    status, _ = get(srv.port, "/hang", timeout=40)
    assert status is None or status >= 500       # the client is not left hanging forever
    wait_for(lambda: (lambda p: p if p and stuck not in p else None)(child_pids(srv.pid)), timeout=30)
    assert f"WORKER TIMEOUT (pid:{stuck})" in srv.errors()
    assert get(srv.port)[0] == 200


def test_ttin_and_ttou_change_the_worker_count(server):
    srv = server("-w", "2")
    workers_of(srv, 2)
    os.kill(srv.pid, signal.SIGTTIN)
    workers_of(srv, 3)
    # one at a time: the kernel merges a second identical signal sent before the first is handled
    os.kill(srv.pid, signal.SIGTTOU)
    workers_of(srv, 2)
    os.kill(srv.pid, signal.SIGTTOU)
    workers_of(srv, 1)
    assert get(srv.port)[0] == 200


def test_usr2_starts_a_new_master_on_the_same_port(server, tmp_path):
    pidfile = tmp_path / "app.pid"
    srv = server("-w", "1", "--pid", str(pidfile))
    [old_worker] = workers_of(srv, 1)
    os.kill(srv.pid, signal.SIGUSR2)
    # the new master is a child of the old one that has children (its own workers)
    new_master = wait_for(lambda: next((p for p in child_pids(srv.pid)
                                        if p != old_worker and child_pids(p)), None), timeout=30)
    new_workers = workers_of_pid(new_master, 1)
    assert (tmp_path / "app.pid.oldbin").read_text().strip() == str(srv.pid)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_master))
    try:
        assert srv.stop(signal.SIGTERM) == 0          # the operator retires the old master
        with Load(srv.port, max_requests=20) as load:
            load.wait_for_requests(20)
        assert load.failures() == []
        assert load.pids() == set(new_workers)
    finally:
        os.kill(new_master, signal.SIGTERM)
        wait_for(lambda: not _alive(new_master), timeout=30)
    assert not pidfile.exists()


def workers_of_pid(pid, count):
    return wait_for(lambda: (lambda p: p if len(p) == count else None)(child_pids(pid)))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_hup_follows_a_current_symlink_to_the_new_release(server, tmp_path):
    """The deploy layout: /srv/app/current -> releases/N. Without --preload, HUP serves release N+1."""
    write_app(tmp_path / "releases" / "1", version="release-1")
    write_app(tmp_path / "releases" / "2", version="release-2")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases" / "1")
    srv = server("-w", "1", chdir=current)
    assert get(srv.port)[1].startswith("release-1 ")
    tmp_link = tmp_path / "current.new"
    tmp_link.symlink_to(tmp_path / "releases" / "2")
    tmp_link.rename(current)                       # the atomic switch a deploy makes
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: get(srv.port)[1].startswith("release-2 "), timeout=30)


def test_hup_with_preload_reimports_the_app(server, tmp_path):
    srv = server("-w", "1", "--preload")
    assert get(srv.port)[1].startswith("v1 ")
    write_app(tmp_path, version="v2")
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: get(srv.port)[1].startswith("v2 "), timeout=30)


def test_a_reload_that_cannot_import_the_app_keeps_the_old_workers(server, tmp_path):
    srv = server("-w", "1")
    [worker] = workers_of(srv, 1)
    (tmp_path / "drillapp.py").write_text("raise ImportError('drill: broken release')\n")
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: "Reload failed" in srv.errors(), timeout=30)
    assert srv.proc.poll() is None
    assert get(srv.port) == (200, f"v1 {worker}")
