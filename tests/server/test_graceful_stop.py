"""No request lost on TERM: what `systemctl restart` does to a server behind nginx.

A bounded client loop (many concurrent short connections: connect, one request, read the whole
response, close) runs while the server gets TERM. Each attempt ends one of three ways:

* ``ok``: the full response arrived;
* ``refused``: the connect itself failed (nobody listens any more: fine for a stopped server,
  nginx retries or answers 502 without the request ever reaching an app);
* ``lost``: the kernel accepted the connection, then it was reset or closed without a response
  (what nginx turns into a 502 mid-restart). There must be none.

The loops are bounded in count and time; only outcomes are asserted.
"""

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "server")]

from tests.server.harness import _env  # noqa: E402
from tests.server.test_arbiter import child_pids, wait_for  # noqa: E402
from tests.server.test_fault_drills import get  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
CLIENTS = 16
MAX_REQUESTS = 50000
MAX_SECONDS = 30.0
REFUSED = (errno.ENOENT, errno.ECONNREFUSED)


class ClientLoop:
    """CLIENTS threads making short connections until told to stop (or the bounds are hit)."""

    def __init__(self, connect):
        self.connect = connect
        self.counts = {"ok": 0, "refused": 0, "lost": 0}
        self.lost_details = []
        # What the server side was doing, set by the test as it goes ("first server up",
        # "TERM sent", ...): each lost connection reports the phase it was opened in and the one
        # it ended in, which tells an accept-then-close at stop apart from a startup problem.
        self.phase = "starting"
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + MAX_SECONDS
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(MAX_SECONDS + 15)

    def total(self):
        return sum(self.counts.values())

    def wait_for_ok(self, n, timeout=10.0, log_path=None):
        deadline = time.monotonic() + timeout
        while self.counts["ok"] < n and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.counts["ok"] < n:
            log = open(log_path, errors="replace").read()[-4000:] if log_path else ""
            raise AssertionError("%s, wanted %d ok\n%s" % (self.counts, n, log))

    def set_phase(self, phase):
        self.phase = "%s (t=%.3fs)" % (phase, time.monotonic() - self.started)

    def _record(self, outcome, detail=None, opened_in=None):
        with self.lock:
            self.counts[outcome] += 1
            if detail is not None and len(self.lost_details) < 10:
                self.lost_details.append("%s; opened during: %s; ended during: %s" % (
                    detail, opened_in or self.phase, self.phase))

    def _run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline and self.total() < MAX_REQUESTS:
            opened_in = self.phase
            try:
                sock = self.connect()
            except OSError as exc:
                if exc.errno in REFUSED:
                    self._record("refused")
                    time.sleep(0.002)
                    continue
                self._record("lost", "connect: %r" % exc)
                continue
            with sock:
                data = b""
                try:
                    sock.sendall(REQUEST)
                    while True:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError as exc:
                    self._record("lost", "%r after %r" % (exc, data[:40]), opened_in)
                    continue
            if data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, world!"):
                self._record("ok")
            else:
                self._record("lost", "closed after %r" % data[:60], opened_in)


def unix_client(path):
    def connect():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(15.0)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock
    return connect


def tcp_client(port):
    def connect():
        return socket.create_connection(("127.0.0.1", port), timeout=15.0)
    return connect


def start_server(bind, *args, pass_fds=(), log_path, app="tests.server.apps:hello"):
    """A server on `bind`, 2 workers, --graceful-timeout 10 (later `args` override these)."""
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pronghorn", "-b", bind, "-w", "2",
                             "--graceful-timeout", "10", *args, app],
                            pass_fds=pass_fds, stdout=log, stderr=log, env=_env(), cwd=REPO)
    log.close()
    return proc


def free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def assert_nothing_lost(loop, log_path):
    with open(log_path, errors="replace") as f:
        log = f.read()
    assert loop.counts["lost"] == 0, "%s\n%s\n--- server log ---\n%s" % (
        loop.counts, "\n".join(loop.lost_details), log[-3000:])
    print("\n", loop.counts)


@pytest.mark.parametrize("threads", ["1", "4"])
def test_restart_on_a_kept_socket_loses_no_request(tmp_path, threads):
    """systemd socket activation: systemd holds the socket across the restart, so connections
    that arrive while no server runs wait in the backlog for the next one."""
    path = str(tmp_path / "app.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)
    fd = listener.fileno()
    log_path = str(tmp_path / "server.log")
    first = start_server(f"fd://{fd}", "--threads", threads, pass_fds=[fd], log_path=log_path)
    try:
        with ClientLoop(unix_client(path)) as loop:
            loop.wait_for_ok(200, timeout=20)
            loop.set_phase("TERM sent to the first server")
            assert stop(first) == 0
            loop.set_phase("first server exited, none running")
            second = start_server(f"fd://{fd}", "--threads", threads, pass_fds=[fd], log_path=log_path)
            loop.set_phase("second server started")
            try:
                before = loop.counts["ok"]
                loop.wait_for_ok(before + 200, timeout=20, log_path=log_path)
            finally:
                loop.stop.set()
                for t in loop.threads:
                    t.join(30)
                assert stop(second) == 0
    finally:
        if first.poll() is None:
            first.kill()
        listener.close()
    assert loop.counts["refused"] == 0  # the socket never stopped listening
    assert_nothing_lost(loop, log_path)


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_stop_answers_every_accepted_connection(tmp_path, kind):
    """The server's own socket: after TERM a client is either answered or refused, never reset."""
    log_path = str(tmp_path / "server.log")
    if kind == "unix":
        path = str(tmp_path / "app.sock")
        proc = start_server(f"unix:{path}", log_path=log_path)
        connect = unix_client(path)
    else:
        port = free_port()
        proc = start_server(f"127.0.0.1:{port}", log_path=log_path)
        connect = tcp_client(port)
    try:
        with ClientLoop(connect) as loop:
            loop.wait_for_ok(200, timeout=20)
            loop.set_phase("TERM sent")
            assert stop(proc) == 0
            loop.set_phase("server exited")
            time.sleep(0.3)  # a few refused attempts after the stop, then end the loop
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_nothing_lost(loop, log_path)


# A worker whose TERM lands between the event loop's accept and the connection_made it queues
# for that socket. The loop calls the protocol factory inside its accept, before queueing
# connection_made, so a stop queued from the factory runs first: the exact order of the race
# seen once under the client loop above (a socket accepted, then closed without an answer).
TERM_RIGHT_AFTER_ACCEPT = r"""
import logging, os, socket, sys, types
from pronghorn.worker import Worker
from tests.server.apps import hello

class TermRightAfterAccept(Worker):
    def _protocol_factory(self):
        if self.alive and self.booted:  # (booted: the loop runs forever, past its start-up)
            self.loop.call_soon(self.begin_graceful_stop, "TERM right after an accept")
        return super()._protocol_factory()

    def _notify(self):  # first called from inside run_forever: the test may connect now
        open(sys.argv[1] + ".serving", "a").close()
        super()._notify()

listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(16)
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
cfg = types.SimpleNamespace(workers=1, graceful_timeout=10)
TermRightAfterAccept(0, os.getppid(), [listener], hello, cfg, logging.getLogger("worker"), None).run()
"""


def test_term_between_accept_and_connection_made_still_answers(tmp_path):
    path = str(tmp_path / "w.sock")
    proc = subprocess.Popen([sys.executable, "-c", TERM_RIGHT_AFTER_ACCEPT, path], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Connect only once the loop runs forever: a connection accepted during start-up (it
        # could wait in the backlog) would not get the TERM, and the worker would serve on.
        deadline = time.monotonic() + 15
        while not os.path.exists(path + ".serving"):
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not start"
            time.sleep(0.02)
        sock = unix_client(path)()
        with sock:
            # The request follows a moment after the connect, well inside the 1 s a stopping
            # worker gives a just-accepted connection: the stop must wait for it, not close it.
            time.sleep(0.2)
            data = b""
            try:
                sock.sendall(REQUEST)
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError as exc:
                data += b" [%r]" % exc
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = out.decode(errors="replace")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, world!"), (
        "accepted, then closed after %r\n--- worker log ---\n%s" % (data[:60], log))
    assert proc.returncode == 0, log


# A worker that paused accepting (balance.py, or worker_connections) queues a task that resumes
# it. If TERM arrives before that task runs, the resume must not reopen the servers the stop just
# closed: a stopping worker that keeps accepting keeps getting new clients and never finishes.
# The listener is the test's own (as systemd's): what the worker did not take stays in its backlog.
TERM_WHILE_A_RESUME_IS_QUEUED = r"""
import logging, os, socket, sys, types
from pronghorn.worker import Worker
from tests.server.apps import hello

class TermWhileAResumeIsQueued(Worker):
    def _protocol_factory(self):
        if self.alive and not hasattr(self, "armed"):
            self.armed = True
            self.loop.call_later(0.1, self.pause_then_term)
        return super()._protocol_factory()

    def pause_then_term(self):
        self._stop_accepting()
        self.loop.create_task(self._start_serving())  # what a resume after a pause queues
        self.begin_graceful_stop("TERM while a resume is queued")
        # Only now has the stop drained the backlog: a client that connects after this line is
        # one the stop must leave to the next server.
        self.log.info("TERM handled")

listener = socket.socket(fileno=int(sys.argv[1]))
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
cfg = types.SimpleNamespace(workers=1, graceful_timeout=10)
TermWhileAResumeIsQueued(0, os.getppid(), [listener], hello, cfg, logging.getLogger("worker"), None).run()
"""


def test_a_stopping_worker_does_not_resume_accepting(tmp_path):
    path = str(tmp_path / "kept.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()
    proc = subprocess.Popen([sys.executable, "-c", TERM_WHILE_A_RESUME_IS_QUEUED, str(fd)], pass_fds=[fd],
                            env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watchdog = threading.Timer(30, proc.kill)  # bounded even if the worker never stops
    watchdog.start()
    log = []
    try:
        first = unix_client(path)()
        first.sendall(REQUEST[:16])  # half a head: the stop must wait for the rest of it
        while not any("TERM handled" in line for line in log):
            line = proc.stderr.readline().decode(errors="replace")
            assert line, "the worker exited before stopping:\n%s" % "".join(log)
            log.append(line)
        late = unix_client(path)()  # arrives after TERM: for the next server, not this one
        late.sendall(REQUEST)
        time.sleep(0.3)  # (gives a wrongly resumed server the chance to take it)
        first.sendall(REQUEST[16:])
        answer = b""
        while chunk := first.recv(65536):
            answer += chunk
        log.append(proc.communicate(timeout=20)[1].decode(errors="replace"))
        assert answer.endswith(b"Hello, world!"), "first client got %r\n%s" % (answer[:60], "".join(log))
        listener.setblocking(False)
        try:
            waiting, _ = listener.accept()
        except BlockingIOError:
            raise AssertionError("the stopping worker took a connection that came after TERM\n%s"
                                 % "".join(log)) from None
        waiting.close()
        late.close()
        first.close()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert proc.returncode == 0, "".join(log)


def _log_has(log_path, text):
    with open(log_path, errors="replace") as f:
        return text in f.read()


@pytest.mark.parametrize("upgraded", [False, True], ids=["bound-here", "inherited-by-usr2"])
def test_a_stopping_server_completes_no_new_handshake_on_its_own_port(tmp_path, upgraded):
    """While the last requests finish, a connect to the server's own TCP port must not be
    accepted by the kernel: no worker will take it, and the close at the end would reset it.
    After a USR2 upgrade the new master owns the sockets the old one bound, and does the same."""
    port = free_port()
    log_path = str(tmp_path / "server.log")
    proc = start_server(f"127.0.0.1:{port}", "-w", "1", "--graceful-timeout", "20", log_path=log_path,
                        app="tests.server.apps:app")
    masters = [proc.pid]   # and the new one after a USR2
    try:
        wait_for(lambda: get(port)[0] == 200)
        master = proc.pid
        if upgraded:
            [old_worker] = wait_for(lambda: child_pids(proc.pid))
            os.kill(proc.pid, signal.SIGUSR2)
            master = wait_for(lambda: next((p for p in child_pids(proc.pid)     # the new master,
                                            if p != old_worker and child_pids(p)), None))  # serving
            masters.append(master)
            assert stop(proc) == 0                       # the old master retires
            assert get(port)[0] == 200
        slow = {}
        client = threading.Thread(target=lambda: slow.update(response=get(port, "/slow?s=4", timeout=30)))
        client.start()
        time.sleep(0.5)                                   # the request is in the app
        os.kill(master, signal.SIGTERM)
        wait_for(lambda: _log_has(log_path, "Refusing new connections on http://127.0.0.1:%d" % port))
        late = socket.socket()
        late.settimeout(1.0)
        try:
            with pytest.raises((socket.timeout, ConnectionRefusedError)):
                late.connect(("127.0.0.1", port))         # the SYN is dropped: never accepted
        finally:
            late.close()
        client.join(30)
        assert slow["response"][0] == 200          # the request in flight still finished
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        for pid in masters[1:]:            # the USR2 master (TERMed above unless the test failed first)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

