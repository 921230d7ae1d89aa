"""--statsd-host: a UDP socket on loopback receives request metrics named as gunicorn's (so its
dashboards keep working), with the prefix and dogstatsd tags, and the master's workers gauge;
and the batching/packing of statsd.py on its own."""

import socket

from pronghorn.config import Config
from pronghorn.statsd import MAX_DATAGRAM, Statsd, parse_address
from tests.server.harness import request, serve


def udp_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    return sock


def test_a_running_server_sends_count_duration_and_status_class():
    receiver = udp_receiver()
    port = receiver.getsockname()[1]
    lines = []
    with receiver, serve("tests.server.apps:app", "--statsd-host", f"127.0.0.1:{port}",
                         "--statsd-prefix", "shop", "--dogstatsd-tags", "env:test,team:web",
                         "--enable-backlog-metric", "--access-logfile", "-") as srv:
        raw = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, _, _ = request(srv.port, raw)
        for _ in range(50):  # bounded: the harness's readiness probe is counted too
            lines += receiver.recv(65536).decode().split("\n")
            if any(line.startswith(f"shop.gunicorn.request.status.{status}:") for line in lines) \
                    and any(line.startswith("shop.gunicorn.workers:") for line in lines) \
                    and any(line.startswith("shop.gunicorn.backlog:") for line in lines):
                break
    tags = "|#env:test,team:web"
    assert f"shop.gunicorn.requests:1|c{tags}" in lines
    assert f"shop.gunicorn.request.status.{str(status)[0]}xx:1|c{tags}" in lines
    assert f"shop.gunicorn.request.status.{status}:1|c{tags}" in lines
    timers = [line for line in lines if line.startswith("shop.gunicorn.request.duration:")]
    assert timers and all(line.endswith("|ms" + tags) for line in timers)
    assert f"shop.gunicorn.workers:1|g{tags}" in lines
    backlog = [line for line in lines if line.startswith("shop.gunicorn.backlog:")]
    assert backlog and backlog[0].endswith("|h" + tags)


def test_metrics_are_packed_into_datagrams_that_fit_and_none_is_lost():
    receiver = udp_receiver()
    statsd = Statsd(Config(statsd_host="127.0.0.1:%d" % receiver.getsockname()[1]))
    for _ in range(100):
        statsd.request("200 OK", 0.001)  # no loop bound: each one is sent at once
    statsd._lines = []  # start over, batched by hand as a loop pass would
    statsd._scheduled = True
    for _ in range(100):
        statsd.request("404 Not Found", 0.002)
    statsd.flush()
    got = []
    with receiver:
        while sum(1 for line in got if line.startswith("gunicorn.request.status.404")) < 100:
            datagram = receiver.recv(65536)
            assert len(datagram) <= MAX_DATAGRAM
            got += datagram.decode().split("\n")
    assert sum(1 for line in got if line == "gunicorn.request.status.4xx:1|c") == 100


def test_a_statsd_that_is_not_there_costs_a_warning_not_an_error():
    warnings = []

    class Log:
        def warning(self, *args):
            warnings.append(args)

    statsd = Statsd(Config(statsd_host="unix:/nonexistent/statsd.sock"), Log())
    statsd.request("200 OK", 0.01)
    statsd.request("200 OK", 0.01)
    assert len(warnings) == 1  # said once


def test_error_log_lines_are_counted_as_gunicorn_does():
    receiver = udp_receiver()
    from pronghorn.logs import Logger

    log = Logger(Config(statsd_host="127.0.0.1:%d" % receiver.getsockname()[1], errorlog=None))
    log.error("boom %s", 1)
    log.critical("worse")
    with receiver:
        got = [receiver.recv(4096).decode() for _ in range(2)]
    assert got == ["gunicorn.log.error:1|c", "gunicorn.log.critical:1|c"]


def test_addresses():
    assert parse_address("127.0.0.1:8125") == (socket.AF_INET, ("127.0.0.1", 8125))
    assert parse_address("[::1]:8125") == (socket.AF_INET6, ("::1", 8125))
    assert parse_address("unix:///run/statsd.sock") == (socket.AF_UNIX, "/run/statsd.sock")
    for bad in ("localhost", "host:port", "unix:"):
        try:
            parse_address(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
