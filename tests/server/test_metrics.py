"""Prometheus metrics on --metrics-bind: after K requests a scrape counts exactly K more, by status
class and in the latency histogram, summed over the workers by the master."""

import re
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import serve  # noqa: E402
from tests.server.test_arbiter import wait_for  # noqa: E402
from tests.server.test_fault_drills import get  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, path="/metrics"):
    """(status line, headers text, body) of one scrape."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: prometheus\r\n\r\n".encode())
        data = b""
        while len(data) < 4 * 1024 * 1024:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    status, _, headers = head.partition("\r\n")
    return status, headers, body


def samples(body):
    """{'name{labels}': value} of every sample line."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_k_requests_show_up_by_status_class_and_in_the_histogram():
    port = free_port()
    with serve("tests.server.apps:app", "-w", "2", "--metrics-bind", f"127.0.0.1:{port}") as srv:
        status, headers, body = scrape(port)
        assert status == "HTTP/1.1 200 OK"
        assert "Content-Type: text/plain; version=0.0.4" in headers
        assert "# TYPE pronghorn_request_duration_seconds histogram" in body
        # the harness's readiness probe (a 404) is counted once its worker publishes (each second)
        count = "pronghorn_request_duration_seconds_count"
        before = wait_for(lambda: (lambda now: now if now[count] >= 1 else None)(
            samples(scrape(port)[2])), timeout=15, interval=0.2)
        k_ok, k_missing = 7, 3
        for _ in range(k_ok):
            assert get(srv.port, "/")[0] == 200
        for _ in range(k_missing):
            assert get(srv.port, "/no-such-page")[0] == 404

        def counted():
            now = samples(scrape(port)[2])
            return now if now[count] - before[count] >= k_ok + k_missing else None

        now = wait_for(counted, timeout=15, interval=0.2)  # workers publish once a second
        delta = {key: now[key] - before.get(key, 0) for key in now}
        assert delta['pronghorn_requests_total{status="2xx"}'] == k_ok
        assert delta['pronghorn_requests_total{status="4xx"}'] == k_missing
        assert delta['pronghorn_requests_total{status="5xx"}'] == 0
        assert delta['pronghorn_request_duration_seconds_bucket{le="+Inf"}'] == k_ok + k_missing
        buckets = [v for key, v in now.items() if key.startswith("pronghorn_request_duration_seconds_bucket")]
        assert buckets == sorted(buckets)  # cumulative, as Prometheus reads them
        assert now["pronghorn_workers"] == 2 and now["pronghorn_workers_wanted"] == 2
        assert now['pronghorn_worker_restarts_total{cause="crash"}'] == 0
        listener = f'pronghorn_listen_backlog{{listener="http://127.0.0.1:{srv.port}"}}'
        assert now[listener] >= 0

        assert scrape(port, "/other")[0] == "HTTP/1.1 404 Not Found"


def test_counts_survive_a_worker_recycled_by_max_requests():
    port = free_port()
    with serve("tests.server.apps:app", "-w", "1", "--max-requests", "5",
               "--metrics-bind", f"127.0.0.1:{port}") as srv:
        # (the harness's readiness probe was request 1 of the first worker)
        for _ in range(12):
            assert get(srv.port, "/")[0] == 200

        def settled():
            now = samples(scrape(port)[2])
            return now if now['pronghorn_requests_total{status="2xx"}'] >= 12 else None

        now = wait_for(settled, timeout=20, interval=0.2)
        assert now['pronghorn_requests_total{status="2xx"}'] == 12  # none lost with the old workers
        assert now['pronghorn_worker_restarts_total{cause="max_requests"}'] >= 2
        assert re.search(r'pronghorn_worker_restarts_total\{cause="timeout"\} 0\n', scrape(port)[2])


def test_a_metrics_address_in_use_stops_the_start_with_a_clear_error(tmp_path):
    from tests.server.harness import start
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        try:
            srv = start("tests.server.apps:app", "--metrics-bind", f"127.0.0.1:{port}")
        except RuntimeError as exc:
            assert f"cannot listen for metrics on 127.0.0.1:{port}" in str(exc)
            assert "--metrics-bind" in str(exc)
        else:
            srv.stop()
            raise AssertionError("the server started on a taken metrics address")
    finally:
        taken.close()


def test_each_response_lands_in_its_status_class_and_latency_bucket():
    import time
    from pronghorn.metrics import BUCKETS, CLASSES, WorkerMetrics
    m = WorkerMetrics()
    now = time.monotonic()
    m.observe(200, now)          # fast: the first bucket
    m.observe(503, now - 0.3)    # 0.3 s: le="0.5"
    m.observe(404, now - 60)     # past every bound: le="+Inf" only
    m.observe(0, now)            # the app failed before any status: "other"
    m.observe(200, now)          # fast again: a second count at the same status
    totals = m.totals()
    classes = dict(zip(CLASSES, totals))
    assert classes == {"other": 1, "1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1}
    buckets = totals[len(CLASSES):]
    assert buckets[0] == 3 and buckets[BUCKETS.index(0.5)] == 1 and buckets[-1] == 1
    assert sum(buckets) == 5 and 60.3 < m.latency_sum < 61


def test_a_slow_response_is_counted_past_the_buckets_below_its_duration():
    """The app sleeps 0.3 s: its latency can only be longer, so no bucket up to 0.25 s counts it
    (the hot path's branch for responses slower than the first bucket)."""
    port = free_port()
    with serve("tests.server.apps:app", "-w", "1", "--metrics-bind", f"127.0.0.1:{port}") as srv:
        count = "pronghorn_request_duration_seconds_count"
        before = wait_for(lambda: (lambda now: now if now[count] >= 1 else None)(
            samples(scrape(port)[2])), timeout=15, interval=0.2)
        assert get(srv.port, "/slow?s=0.3")[0] == 200
        now = wait_for(lambda: (lambda now: now if now[count] > before[count] else None)(
            samples(scrape(port)[2])), timeout=15, interval=0.2)
    delta = {key: now[key] - before[key] for key in now}
    assert delta[count] == 1 and delta['pronghorn_requests_total{status="2xx"}'] == 1
    assert delta['pronghorn_request_duration_seconds_bucket{le="0.25"}'] == 0
    assert delta['pronghorn_request_duration_seconds_bucket{le="+Inf"}'] == 1
    assert delta["pronghorn_request_duration_seconds_sum"] >= 0.3
