"""Backpressure: no client can make a worker hold an unbounded amount of response data.

A client that pipelines many requests for a large answer and never reads them is the probe: the
worker must stop producing answers while the connection is over its limit (about the transport's
high-water mark plus one response), keep serving everyone else, and drop that client once it has
read nothing for --send-timeout. Also: a request body that cannot be spooled (a full disk) gets a
507 Insufficient Storage and the worker lives on. Black-box, over real sockets, against a server subprocess.
"""

import collections
import errno
import logging
import os
import socket
import subprocess
import tempfile
import time

import pytest

from tests.server.harness import Reader, connect, request, serve

APP = "tests.server.backpressure_apps:app"
BIG_REQUEST = b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n"
PIPELINED = 10_000  # ~290 KiB of requests; answered in full they would be ~1 GB
HELLO = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
SEND_TIMEOUT = 3
WATCH_SECONDS = 4.0  # how long the stuck client's effect on the worker is watched

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def _rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for %d" % pid)


def _send_what_fits(sock, data, seconds):
    """Send as much of data as the server takes within `seconds` (it stops reading: backpressure)."""
    sock.settimeout(0.2)
    view = memoryview(data)
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(view[sent:sent + 65536])
        except socket.timeout:
            continue
    return sent


def _read_until_closed(sock, limit_seconds=30.0):
    """Bytes received until the server closes (EOF or reset); bounded by limit_seconds."""
    sock.settimeout(1.0)
    received = 0
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return received, True
        if not data:
            return received, True
        received += len(data)
    return received, False


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_client_that_pipelines_and_never_reads_holds_bounded_memory(threads):
    with serve(APP, "--threads", threads, "--send-timeout", str(SEND_TIMEOUT)) as srv:
        pid = int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2])
        before = _rss_mib(pid)
        stuck = connect(srv.port)
        # A small receive buffer, so the kernel cannot hide the answers on the client's side.
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            _send_what_fits(stuck, BIG_REQUEST * PIPELINED, 1.0)
            peak = before
            served = 0
            deadline = time.monotonic() + WATCH_SECONDS
            while time.monotonic() < deadline:
                peak = max(peak, _rss_mib(pid))
                # Everyone else is still served meanwhile.
                status, _, body = request(srv.port, HELLO)
                assert (status, body) == (200, b"Hello, world!")
                served += 1
                time.sleep(0.25)
            assert peak - before < 64, "the worker grew by %d MiB" % (peak - before)
            assert served >= 1
            # The stuck client is dropped after send_timeout: what it gets is a fraction of what
            # it asked for, then the close.
            received, closed = _read_until_closed(stuck)
            assert closed, "the server kept a client that read nothing for send_timeout"
            assert received < PIPELINED * len(b"x") * 100_000 // 10
        finally:
            stuck.close()
        # And the worker is the same worker, still serving.
        assert int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2]) == pid


@pytest.fixture
def tiny_tmpfs():
    """A 1 MiB tmpfs to spool request bodies into: a real full disk (ENOSPC)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = tempfile.mkdtemp(prefix="pronghorn-spool-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
                             capture_output=True)
    if mounted.returncode != 0:
        os.rmdir(path)
        pytest.skip("cannot mount a tmpfs here: %s" % mounted.stderr.decode(errors="replace"))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def test_a_full_disk_while_spooling_a_body_is_507_and_the_worker_lives_on(tiny_tmpfs):
    body = b"y" * (3 << 20)  # past the 1 MiB spool threshold: it goes to a temp file, which fills
    with serve(APP, env={"TMPDIR": tiny_tmpfs}) as srv:
        pid = int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2])
        with connect(srv.port) as s:
            head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
            try:
                s.sendall(head + body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and stopped reading: the answer is still readable
            status, _, body = Reader(s).response()
        assert status == 507, body  # ENOSPC: Insufficient Storage (any other OSError would be a 500)
        # A body that fits in memory is still fine, on a new connection, from the same worker.
        with connect(srv.port) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            assert Reader(s).response()[::2] == (200, b"5")
        assert int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2]) == pid
        assert "cannot store a request body" in srv.errors()


@pytest.mark.parametrize("code, status", [(errno.ENOSPC, 507), (errno.EDQUOT, 507), (errno.EIO, 500)])
def test_which_spooling_errors_are_507(code, status):
    """Only no room (a full disk, a used-up quota) is 507 Insufficient Storage; any other error
    while storing a body stays a 500. (In process: an EIO or a quota cannot be staged here.)"""
    from pronghorn.connection import HttpConnection
    from pronghorn.http.errors import HTTPError

    class Parser:
        state = None

        def feed(self, data):
            raise OSError(code, os.strerror(code))

    conn = HttpConnection.__new__(HttpConnection)
    conn.phase, conn.prelude, conn.parser = 0, None, Parser()
    conn.queue, conn.log = collections.deque(), logging.getLogger("test")
    conn.process_queue = lambda: None  # the answer itself is what the tmpfs test above sees
    conn.data_received(b"x")
    [error] = conn.queue
    assert type(error) is HTTPError and error.status == status


def _soft_open_files_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open files limit for %d" % pid)


def test_the_worker_raises_its_open_files_limit_for_worker_connections():
    """Started with the common soft limit of 1024, a worker asked for 4000 connections raises its
    own soft limit (up to the hard one) instead of failing accepts with EMFILE past ~1000."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.skip("the hard open files limit (%d) is too low to show the raise" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # inherited by the server
    try:
        with serve(APP, "--worker-connections", "4000") as srv:
            pid = int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2])
            assert _soft_open_files_limit(pid) >= 4000
            assert _soft_open_files_limit(srv.pid) == 1024  # the master's own is left alone
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_spooled_bodies_have_a_per_worker_budget():
    """With --limit-request-body 2 MB a worker spools at most 4 such bodies at once (8 MB): six
    uploads arriving together get some 503s, the others go through, and once they are answered
    the budget is free again."""
    size, arrived = 2_000_000, 1_900_000
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
    with serve(APP, "--limit-request-body", str(size)) as srv:
        clients = [connect(srv.port) for _ in range(6)]
        try:
            for s in clients:
                s.sendall(head + b"z" * arrived)
            # No body is complete yet, so the worker reads them all and must refuse one or more.
            deadline = time.monotonic() + 20
            while "spool budget" not in srv.errors():
                assert time.monotonic() < deadline, "no upload refused:\n" + srv.errors()
                time.sleep(0.05)
            statuses = []
            for s in clients:
                try:
                    s.sendall(b"z" * (size - arrived))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused and closed: its 503 is still to be read
                status, _, body = Reader(s).response()
                statuses.append(status)
                if status == 200:
                    assert body == str(size).encode()
        finally:
            for s in clients:
                s.close()
        assert 503 in statuses and 200 in statuses, statuses
        assert set(statuses) == {200, 503}, statuses
        with connect(srv.port) as s:
            s.sendall(head + b"z" * size)
            assert Reader(s).response()[::2] == (200, str(size).encode())
