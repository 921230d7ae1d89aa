"""systemd integration: sd_notify messages and socket activation (LISTEN_FDS), no systemd needed.

The tests play systemd's part themselves: a unix datagram socket bound in tmp_path (or an
abstract one) stands for NOTIFY_SOCKET, and Debian's `systemd-socket-activate` passes a
listening socket exactly as a `.socket` unit would.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from pronghorn import systemd  # noqa: E402
from tests.server.harness import start  # noqa: E402
from tests.server.test_arbiter import wait_for  # noqa: E402
from tests.server.test_fault_drills import get, write_app  # noqa: E402

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or next(
    (p for p in ("/usr/bin/systemd-socket-activate", "/lib/systemd/systemd-socket-activate")
     if os.path.exists(p)), None)


class NotifyListener:
    """The systemd end of NOTIFY_SOCKET: collects every message the server sends."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass
        return self.messages

    def wait_for(self, text, timeout=20.0):
        return wait_for(lambda: any(text in m for m in self.poll()), timeout=timeout)

    def index(self, text):
        return next(i for i, m in enumerate(self.messages) if text in m)

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    lst = NotifyListener(str(tmp_path / "notify.sock"))
    yield lst
    lst.close()


def test_notify_sends_to_a_socket_path(listener, tmp_path):
    assert systemd.notify("READY=1\nSTATUS=hi", {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert listener.poll() == ["READY=1\nSTATUS=hi"]


def test_notify_sends_to_an_abstract_socket():
    name = f"pronghorn-test-{os.getpid()}-{time.monotonic_ns()}"
    lst = NotifyListener("\0" + name)
    try:
        assert systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert lst.poll() == ["STOPPING=1"]
    finally:
        lst.close()


def test_notify_without_systemd_is_a_quiet_no_op(tmp_path):
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False


def test_server_reports_ready_reloading_and_stopping(listener, tmp_path):
    write_app(tmp_path)
    srv = start("drillapp:app", "--chdir", str(tmp_path), "-w", "2",
                env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        listener.wait_for("READY=1")
        ready = next(m for m in listener.messages if "READY=1" in m)
        assert "STATUS=serving on http://127.0.0.1:%d with 2 worker(s)" % srv.port in ready
        os.kill(srv.pid, signal.SIGHUP)
        listener.wait_for("RELOADING=1")
        wait_for(lambda: sum("READY=1" in m for m in listener.poll()) >= 2)
        assert listener.index("RELOADING=1") < len(listener.messages) - 1
        assert get(srv.port)[0] == 200
        os.kill(srv.pid, signal.SIGTTIN)
        listener.wait_for("STATUS=serving with 3 worker(s) (was 2)")
    finally:
        assert srv.stop() == 0
    listener.wait_for("STOPPING=1")


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed (apt install systemd)")
def test_socket_activation_serves_on_the_passed_socket_and_notifies(listener, tmp_path):
    write_app(tmp_path)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    log = open(tmp_path / "server.log", "wb")
    # systemd-socket-activate passes only LISTEN_* and the -E variables, like a unit's Environment=
    proc = subprocess.Popen(
        [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}",
         "-E", f"PYTHONPATH={REPO / 'server'}", "-E", f"NOTIFY_SOCKET={tmp_path / 'notify.sock'}",
         sys.executable, "-m", "pronghorn", "-w", "2", "--chdir", str(tmp_path),
         "-b", "127.0.0.1:1",       # ignored: socket activation wins over --bind
         "drillapp:app"],
        stdout=log, stderr=log)
    try:
        # the first connection makes systemd-socket-activate exec the server (as a .socket unit)
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(get(port)), timeout=30)
        assert body.startswith("v1 ")
        listener.wait_for("READY=1")
        assert proc.poll() is None
        text = (tmp_path / "server.log").read_text()
        assert "inherited fd://3" in text
        # the app (and anything it starts) does not see LISTEN_FDS/LISTEN_PID: they are not its own
        assert get(port, "/env?LISTEN_FDS") == (200, "None")
        assert get(port, "/env?LISTEN_PID") == (200, "None")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
    listener.wait_for("STOPPING=1")


def test_ready_is_sent_once_every_worker_serves(listener, tmp_path):
    """READY=1 means "serving": a request made the moment it arrives is answered. The time from
    start to READY (and to the first answered request) is printed for the report, not asserted."""
    write_app(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO / "server"), NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    log = open(tmp_path / "server.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pronghorn", "-w", "2", "--chdir", str(tmp_path),
                             "-b", f"fd://{sock.fileno()}", "drillapp:app"],
                            pass_fds=[sock.fileno()], stdout=log, stderr=log, env=env)
    sock.close()
    try:
        listener.sock.settimeout(20.0)  # one bounded wait for the first datagram
        first = listener.sock.recv(4096).decode()
        ready_after = time.monotonic() - started
        assert "READY=1" in first, first
        status, body = get(port, timeout=5.0)
        assert status == 200 and body.startswith("v1 "), (status, body)
        served_after = time.monotonic() - started
        print(f"\nstart -> READY=1 {ready_after * 1000:.0f} ms; start -> first response "
              f"{served_after * 1000:.0f} ms")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
