"""--request-timeout with --threads: a request that runs past it gets its worker replaced
gracefully, and the error log names the request line (gunicorn #2086)."""

import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import serve  # noqa: E402
from tests.server.test_arbiter import child_pids, wait_for  # noqa: E402
from tests.server.test_fault_drills import get  # noqa: E402
from tests.server.test_metrics import free_port, samples, scrape  # noqa: E402


def test_a_request_past_the_timeout_replaces_its_worker_and_is_logged():
    metrics = free_port()
    with serve("tests.server.apps:app", "-w", "1", "--threads", "2", "--request-timeout", "1",
               "--graceful-timeout", "3", "--timeout", "60",
               "--metrics-bind", f"127.0.0.1:{metrics}") as srv:
        first = wait_for(lambda: child_pids(srv.pid))
        assert len(first) == 1
        stuck = threading.Thread(target=get, args=(srv.port, "/slow?s=8", 30), daemon=True)
        stuck.start()
        try:
            log = wait_for(lambda: "REQUEST TIMEOUT" in srv.errors() and srv.errors(), timeout=20)
            assert "GET /slow?s=8 HTTP/1.1" in log, log[-3000:]
            assert "--request-timeout 1" in log
            # a new worker serves while the old one finishes (or is cut at --graceful-timeout)
            wait_for(lambda: (lambda p: len(p) == 1 and p != first)(child_pids(srv.pid)), timeout=30)
            assert get(srv.port, "/")[0] == 200
            cause = 'pronghorn_worker_restarts_total{cause="request_timeout"}'
            # counted once the master has reaped the old worker
            restarts = wait_for(lambda: (lambda now: now if now[cause] else None)(
                samples(scrape(metrics)[2])), timeout=15, interval=0.2)
            assert restarts[cause] == 1
            assert restarts['pronghorn_worker_restarts_total{cause="crash"}'] == 0
        finally:
            stuck.join(30)


def test_quick_requests_never_trip_it():
    with serve("tests.server.apps:app", "-w", "1", "--threads", "2", "--request-timeout", "2") as srv:
        first = child_pids(srv.pid)
        for _ in range(20):
            assert get(srv.port, "/slow?s=0.05")[0] == 200
        assert child_pids(srv.pid) == first
        assert "REQUEST TIMEOUT" not in srv.errors()


def test_only_a_request_already_past_the_limit_is_reported_to_the_master():
    """The master reads the report up to a second late: a request reported while merely in
    progress (the harness's readiness probe, say) would look overdue once it is long answered."""
    import time
    from types import SimpleNamespace
    from pronghorn import metrics

    reported = []
    heartbeat = SimpleNamespace(report_oldest_request=lambda started, line: reported.append((started, line)))

    def publish(age):
        req = SimpleNamespace(method="GET", target="/slow", version="HTTP/1.1")
        exchange = SimpleNamespace(started=time.monotonic() - age, req=req)
        worker = SimpleNamespace(heartbeat=heartbeat, connections=[SimpleNamespace(exchange=exchange)],
                                 settings=SimpleNamespace(request_timeout=1.0), metrics=None)
        metrics.publish(worker)
        return reported[-1]

    assert publish(0.2) == (0.0, "")  # in progress, under the limit: nothing to act on
    started, line = publish(5.0)
    assert started > 0 and line == "GET /slow HTTP/1.1"
