"""Signals to the master of a real server, and the hooks that run around them.

What operators rely on: INT/QUIT stop at once, TERM waits for requests only up to
--graceful-timeout, USR1 lets logrotate move the log files, --pid and unix socket files are
cleaned up, the gunicorn-named hooks run at the moments their names promise, and --reload
restarts workers when a source file changes.
"""

import os
import signal
import socket
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import start  # noqa: E402
from tests.server.test_arbiter import child_pids, wait_for  # noqa: E402
from tests.server.test_fault_drills import get, write_app  # noqa: E402


def start_drill(tmp_path, *args, **kwargs):
    write_app(tmp_path)
    return start("drillapp:app", "--chdir", str(tmp_path), *args, **kwargs)


def in_background(func):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=func()), daemon=True)
    thread.start()
    return thread, result


def test_int_stops_at_once_without_waiting_for_slow_requests(tmp_path):
    srv = start_drill(tmp_path, "-w", "1", "--graceful-timeout", "60")
    thread, result = in_background(lambda: get(srv.port, "/slow?30", timeout=60))
    threading.Event().wait(0.5)   # the request is in the app
    assert srv.stop(signal.SIGINT, timeout=20) == 0
    thread.join(30)
    assert result["value"][0] is None      # cut, not answered after 30 s
    assert child_pids(srv.pid) == []


def test_quit_is_a_fast_stop_too(tmp_path):
    srv = start_drill(tmp_path, "-w", "2")
    assert srv.stop(signal.SIGQUIT, timeout=20) == 0


FINALIZER_APP = """
import asyncio, pathlib, time


class SlowToFinalize:
    def __del__(self):
        pathlib.Path({marker!r}).touch()   # the test sends QUIT now, while this runs
        time.sleep(3)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/finalize":
        # Later, in a loop callback of its own (as a garbage collection in the loop's code
        # would): the object is dropped at once, so its __del__ runs there.
        asyncio.get_event_loop().call_later(0.2, SlowToFinalize)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_quit_stops_a_worker_whose_signal_lands_inside_a_finalizer(tmp_path):
    # Python runs a signal handler wherever the main thread happens to be, and an exception
    # raised inside __del__ or a weakref callback (e.g. during a garbage collection in the
    # loop's own code) is printed and dropped. The worker's SystemExit was lost that way and
    # it served on until the master gave up on it (a rare hang of the QUIT drill above).
    marker = tmp_path / "in-finalizer"
    (tmp_path / "finalizerapp.py").write_text(FINALIZER_APP.format(marker=str(marker)))
    srv = start("finalizerapp:app", "--chdir", str(tmp_path), "-w", "1", "--graceful-timeout", "60")
    workers = child_pids(srv.pid)
    try:
        assert get(srv.port, "/finalize")[0] == 200
        wait_for(marker.exists)
        assert srv.stop(signal.SIGQUIT, timeout=20) == 0
        assert "Exception ignored" in srv.errors()     # the first SystemExit was indeed swallowed
    finally:
        srv.stop(signal.SIGKILL)
        for pid in workers:             # a worker that missed its QUIT outlives a killed master
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


TERM_DURING_START_CONF = """
import os, signal

def post_worker_init(worker):
    # The first worker is TERMed after its handlers are in place but before its event loop
    # runs (the moment a master's stop can catch a worker that has just booted).
    marker = {marker!r}
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGTERM)
"""


def test_a_term_that_comes_while_a_worker_starts_is_not_lost(tmp_path):
    marker = tmp_path / "first-worker"
    (tmp_path / "conf.py").write_text(TERM_DURING_START_CONF.format(marker=str(marker)))
    srv = start_drill(tmp_path, "-w", "1", "-c", str(tmp_path / "conf.py"), "--graceful-timeout", "60")
    try:
        first = int(marker.read_text())
        # It stops gracefully (not after --graceful-timeout), and the master replaces it.
        wait_for(lambda: f"worker {first} stopping gracefully (SIGTERM)" in srv.errors(), timeout=20,
                 context=srv.errors)
        wait_for(lambda: first not in child_pids(srv.pid), timeout=20, context=srv.errors)
        assert get(srv.port)[0] == 200
    finally:
        assert srv.stop(signal.SIGTERM) == 0


def test_term_gives_up_on_a_request_after_graceful_timeout(tmp_path):
    srv = start_drill(tmp_path, "-w", "1", "--graceful-timeout", "1", "--timeout", "0")
    thread, result = in_background(lambda: get(srv.port, "/slow?30", timeout=60))
    threading.Event().wait(0.5)
    assert srv.stop(signal.SIGTERM, timeout=25) == 0
    thread.join(30)
    assert result["value"][0] is None
    assert "still running after --graceful-timeout" in srv.errors() or \
        "graceful timeout" in srv.errors()


def test_term_removes_the_pidfile_and_the_unix_socket(tmp_path):
    pidfile = tmp_path / "run" / "app.pid"
    pidfile.parent.mkdir()
    sock = tmp_path / "app.sock"
    srv = start_drill(tmp_path, "-w", "1", "--pid", str(pidfile), "-b", f"unix:{sock}")
    assert pidfile.read_text().strip() == str(srv.pid)
    assert sock.exists()
    assert srv.stop(signal.SIGTERM) == 0
    assert not pidfile.exists()
    assert not sock.exists()
    assert list(pidfile.parent.iterdir()) == []     # no temp file left from the atomic write


def test_usr1_reopens_the_log_files_after_logrotate_moved_them(tmp_path):
    access = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    srv = start_drill(tmp_path, "-w", "2", "--access-logfile", str(access),
                      "--access-logformat", "%(p)s %(r)s")
    try:
        assert get(srv.port)[0] == 200
        wait_for(lambda: access.exists() and "GET / " in access.read_text())
        workers = {f"<{pid}>" for pid in child_pids(srv.pid)}
        access.rename(rotated)                      # what logrotate does
        os.kill(srv.pid, signal.SIGUSR1)

        # each worker reopens when it handles the signal: poll until both write to the new file.
        # Several connections open at once, so both workers take some (one at a time, the same
        # worker can win every accept for a while on a busy machine).
        def both_workers_in_new_file():
            probes = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(8)]
            try:
                for probe in probes:
                    probe.sendall(b"GET /probe HTTP/1.1\r\nHost: drill\r\nConnection: close\r\n\r\n")
                for probe in probes:
                    while probe.recv(65536):
                        pass
            finally:
                for probe in probes:
                    probe.close()
            text = access.read_text() if access.exists() else ""
            return all(worker in text for worker in workers)
        wait_for(both_workers_in_new_file)
        old_size = rotated.stat().st_size
        for _ in range(20):
            assert get(srv.port, "/after-rotate")[0] == 200
        wait_for(lambda: access.read_text().count("/after-rotate") == 20)
        assert rotated.stat().st_size == old_size   # nothing more went to the moved file
    finally:
        assert srv.stop() == 0


HOOKS = '''
LOG = {log!r}

def _write(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")

def on_starting(server): _write("on_starting")
def when_ready(server): _write("when_ready %d" % len(server.WORKERS))
def pre_fork(server, worker): _write("pre_fork %d" % worker.age)
def post_fork(server, worker): _write("post_fork %d" % worker.age)
def child_exit(server, worker): _write("child_exit %d" % worker.age)
def worker_exit(server, worker): _write("worker_exit %d" % worker.age)
def on_reload(server): _write("on_reload")
def nworkers_changed(server, new, old): _write("nworkers_changed %d %d" % (old, new))
def on_exit(server): _write("on_exit")
'''


def test_hooks_run_at_the_moments_their_names_promise(tmp_path):
    log = tmp_path / "hooks.log"
    config = tmp_path / "hooks.conf.py"
    config.write_text(HOOKS.format(log=str(log)))
    srv = start_drill(tmp_path, "-w", "1", "-c", str(config))
    wait_for(lambda: log.exists() and "when_ready" in log.read_text())
    os.kill(srv.pid, signal.SIGTTIN)
    wait_for(lambda: "post_fork 2" in log.read_text())
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: "child_exit 2" in log.read_text())
    assert srv.stop() == 0
    lines = log.read_text().splitlines()
    assert lines[:4] == ["on_starting", "pre_fork 1", "post_fork 1", "when_ready 1"] or \
        lines[:4] == ["on_starting", "pre_fork 1", "when_ready 1", "post_fork 1"]
    assert "nworkers_changed 1 2" in lines
    # HUP: on_reload, then the new generation - back to the configured single worker (age 3),
    # as TTIN's change does not outlive a reload - starts before the old ones (1, 2) exit
    reload_at = lines.index("on_reload")
    assert lines.index("pre_fork 3") > reload_at
    assert lines.index("post_fork 3") < lines.index("child_exit 1")
    assert "pre_fork 4" not in lines
    assert {"worker_exit 1", "worker_exit 2", "worker_exit 3"} <= set(lines)
    assert lines[-1] == "on_exit"


def rewrite_until(write, predicate, attempts=10):
    """Write a file, and write it again until ``predicate`` holds: the reloader polls once a
    second and only notices changes to files it has already seen, so one write can land before
    a fresh worker has recorded the file."""
    for _ in range(attempts):
        write()
        try:
            return wait_for(predicate, timeout=3)
        except AssertionError:
            continue
    raise AssertionError(f"no reload after {attempts} writes")


def test_reload_flag_restarts_the_worker_when_the_app_file_changes(tmp_path):
    srv = start_drill(tmp_path, "-w", "1", "--reload", "--graceful-timeout", "5")
    app_file = tmp_path / "drillapp.py"
    try:
        assert get(srv.port)[1].startswith("v1 ")
        rewrite_until(lambda: write_app(tmp_path, version="v2"),
                      lambda: get(srv.port)[1].startswith("v2 "))
        # a syntax error does not stop a development server: it waits for the fix
        rewrite_until(lambda: app_file.write_text("def app(:\n"),
                      lambda: "keeps retrying" in srv.errors())
        rewrite_until(lambda: write_app(tmp_path, version="v3"),
                      lambda: get(srv.port)[1].startswith("v3 "))
    finally:
        assert srv.stop(timeout=40) == 0, srv.errors()
