"""Slow and idle clients must never tie up a worker: timeouts, slowloris, slow readers, graceful stop.

Only outcomes are asserted (a response arrives, a connection gets closed); waits are bounded so a
broken server fails the test instead of hanging it. Timeouts are set small (1 s) to keep this quick.
"""

import os
import signal
import socket
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "server")]

from tests.server.harness import Reader, closed_by_server, connect, request, serve  # noqa: E402

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module", params=["1", "2"], ids=["inline", "threads2"])
def srv(request):
    with serve("tests.server.apps:app", "--threads", request.param, "--keep-alive", "1",
               "--header-timeout", "1", "--body-timeout", "1") as server:
        yield server


def test_idle_keep_alive_connection_is_closed_quietly(srv):
    with connect(srv.port) as s:
        s.sendall(GET)
        reader = Reader(s)
        assert reader.response()[0] == 200
        assert closed_by_server(s, timeout=10)
        assert reader.buf == b""  # nothing was sent before the close


def test_silent_new_connection_is_closed_without_a_response(srv):
    with connect(srv.port) as s:
        s.settimeout(10)
        assert s.recv(100) == b""


def test_partial_head_gets_408(srv):
    with connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        status, headers, body = Reader(s).response()
        assert status == 408 and headers["connection"] == "close"
        assert closed_by_server(s)


def test_stalled_body_gets_408(srv):
    with connect(srv.port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        status, headers, _ = Reader(s).response()
        assert status == 408
        assert closed_by_server(s)


def test_head_trickled_past_header_timeout_gets_408(srv):
    # Each byte resets no timer: the whole head must arrive within header_timeout.
    with connect(srv.port) as s:
        deadline = time.monotonic() + 8
        got = b""
        s.settimeout(0.3)
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 200:
            try:
                s.sendall(bytes([byte]))
                got = s.recv(1000)
            except socket.timeout:
                continue
            except OSError:
                break
            if got or time.monotonic() > deadline:
                break
        assert got.startswith(b"HTTP/1.1 408 ")


def test_slowloris_does_not_block_other_clients(srv):
    """50 connections trickling headers while a normal client keeps getting answers."""
    attackers = []
    stop = threading.Event()

    def trickle(sock):
        try:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            while not stop.wait(0.2):
                sock.sendall(b"X-a: b\r\n")
        except OSError:
            pass  # closed by the server's header timeout: expected

    try:
        for _ in range(50):
            s = connect(srv.port)
            attackers.append(s)
            threading.Thread(target=trickle, args=(s,), daemon=True).start()
        answered = 0
        for _ in range(30):
            status, _, body = request(srv.port, GET)
            answered += status == 200 and body == b"Hello, world!"
            time.sleep(0.05)
        assert answered == 30
    finally:
        stop.set()
        for s in attackers:
            s.close()


def test_slow_reader_of_a_big_response_does_not_block_others(srv):
    with connect(srv.port) as slow:
        slow.sendall(b"GET /big?mb=32 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)  # let the server fill the socket buffers
        # The worker is not stuck writing 32 MiB: others are served meanwhile.
        for _ in range(10):
            assert request(srv.port, GET)[2] == b"Hello, world!"
        status, headers, body = Reader(slow).response()
        assert status == 200 and len(body) == 32 << 20


@pytest.mark.parametrize("threads", ["1", "2"])
def test_graceful_stop_finishes_in_flight_request(threads):
    server_ctx = serve("tests.server.apps:app", "--graceful-timeout", "10", "--threads", threads)
    srv = server_ctx.__enter__()
    try:
        idle = connect(srv.port)
        idle.sendall(GET)
        assert Reader(idle).response()[0] == 200
        with connect(srv.port) as s:
            s.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.3)  # the request is in the app now
            srv.proc.send_signal(signal.SIGTERM)
            status, headers, body = Reader(s).response()
            assert (status, body) == (200, b"Hello, world!")
            # Then the connection is closed: the worker is leaving.
            assert closed_by_server(s)
        assert closed_by_server(idle)  # idle keep-alive connections are closed at once
        idle.close()
        assert srv.proc.wait(20) == 0
    finally:
        server_ctx.__exit__(None, None, None)


def _rss_mib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_response_to_a_client_that_does_not_read_stays_out_of_memory(srv):
    """200 MiB streamed to a client that reads nothing: the worker holds a buffer, not the body."""
    worker_pid = int(request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")[2])
    before = _rss_mib(worker_pid)
    with connect(srv.port) as s:
        s.sendall(b"GET /big?mb=200 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.7)  # let the server run into backpressure (body_timeout is 1 s)
        growth = _rss_mib(worker_pid) - before
        assert request(srv.port, GET)[2] == b"Hello, world!"
    assert growth < 50, "worker grew by %d MiB" % growth


def test_client_that_stops_reading_is_disconnected(srv):
    """A response stalled because the client reads nothing is dropped after body_timeout."""
    with connect(srv.port) as s:
        s.sendall(b"GET /big?mb=200 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(3)
        received = 0
        s.settimeout(10)
        try:
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                received += len(data)
        except ConnectionResetError:
            pass
    assert received < 200 << 20


def test_connections_waiting_in_the_backlog_are_answered_on_stop():
    """Clients that connected while the (inline) worker was busy sit in the listen backlog; a
    graceful stop answers them rather than dropping them."""
    with serve("tests.server.apps:app", "--graceful-timeout", "10") as srv:
        busy = connect(srv.port)
        busy.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)  # the worker's loop is inside the app now
        waiting = []
        for _ in range(5):
            s = connect(srv.port)
            s.sendall(GET)
            waiting.append(s)
        srv.proc.send_signal(signal.SIGTERM)
        assert Reader(busy).response()[0] == 200
        for s in waiting:
            status, _, body = Reader(s).response()
            assert (status, body) == (200, b"Hello, world!")
            s.close()
        busy.close()
        assert srv.proc.wait(20) == 0
