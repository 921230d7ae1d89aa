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
            assert "GET /slow?s=8 HTTP/1.1" in log
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
