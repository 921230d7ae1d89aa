"""The worker's app threads: every request runs in one of N threads, a job that raises does not
shrink the pool, and a stop drops the requests no thread has started (as the old executor's
cancel_futures did) without waiting for a stuck one."""

import logging
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "server"))

from pronghorn.appthreads import AppThreads  # noqa: E402

LOG = logging.getLogger("test-appthreads")


def test_jobs_run_concurrently_in_the_named_threads():
    pool = AppThreads(3, LOG)
    barrier = threading.Barrier(3, timeout=10)   # passes only if 3 jobs run at the same time
    names = []
    done = threading.Event()

    def job():
        barrier.wait()
        names.append(threading.current_thread().name)
        if len(names) == 3:
            done.set()

    for _ in range(3):
        pool.submit(job)
    assert done.wait(10)
    assert sorted(names) == ["pronghorn-app_0", "pronghorn-app_1", "pronghorn-app_2"]
    pool.shutdown()


def test_a_job_that_raises_is_logged_and_the_thread_serves_on(caplog):
    pool = AppThreads(1, LOG)
    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="test-appthreads"):
        pool.submit(lambda: 1 / 0)
        pool.submit(ran.set)
        assert ran.wait(10)
    assert "app thread job failed" in caplog.text and "ZeroDivisionError" in caplog.text
    pool.shutdown()


def test_shutdown_drops_what_no_thread_started_and_does_not_wait():
    pool = AppThreads(1, LOG)
    release = threading.Event()
    started = threading.Event()
    later = []

    def stuck():
        started.set()
        release.wait(10)

    pool.submit(stuck)
    assert started.wait(10)
    for i in range(5):
        pool.submit(later.append, i)
    pool.shutdown()
    [thread] = pool._threads
    assert thread.is_alive() and not release.is_set()   # returned while the job is still stuck
    release.set()
    thread.join(10)
    assert not thread.is_alive()                   # it ended after its job...
    assert later == []                             # ...without starting the dropped ones
