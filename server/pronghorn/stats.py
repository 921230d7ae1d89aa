"""--stats-file: the master's view of its workers, as JSON a deploy tool (or a person) can read.

Every STATS_INTERVAL seconds the arbiter's loop writes one JSON document, atomically (a temp file
in the same directory, then rename over the target), so a reader never sees half a file:

    {"master": {"pid": 1234, "started": 1700000000.0, "workers_wanted": 2, "generation": 0},
     "written": 1700000042.5,
     "workers": [{"pid": 1240, "age": 1, "alive_seconds": 42.4, "requests": 5120,
                  "connections": 3, "rss_bytes": 21430272, "heartbeat_age": 0.3}, ...]}

``age`` is gunicorn's worker age (a serial number: higher = spawned later); ``requests`` and
``connections`` are what the worker last reported with its heartbeat (once a second);
``rss_bytes`` comes from /proc. Times are Unix timestamps (``started``, ``written``) or seconds.
The file is removed when the server stops, so a file older than a few intervals means a master
that died without cleaning up.
"""

import json
import os
import signal
import time

__all__ = ["StatsFile", "STATS_INTERVAL", "DEFAULT_NAME", "WorkerExits", "overdue_requests",
           "snapshot"]

STATS_INTERVAL = 2.0
DEFAULT_NAME = "pronghorn-stats.json"


class StatsFile:
    def __init__(self, path, log):
        if os.path.isdir(path):
            path = os.path.join(path, DEFAULT_NAME)
        self.path = os.path.abspath(path)
        self.log = log
        self.next_due = 0.0
        self.failed = False

    def maybe_write(self, arbiter):
        now = time.monotonic()
        if now < self.next_due:
            return
        self.next_due = now + STATS_INTERVAL
        self.write(snapshot(arbiter))

    def write(self, document):
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        try:
            with open(tmp, "w") as f:
                json.dump(document, f, indent=1)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self.failed:  # once, not every two seconds
                self.log.error("cannot write --stats-file %s: %s (check the directory exists and "
                               "is writable by the server's user)", self.path, exc.strerror)
            self.failed = True
            try:
                os.unlink(tmp)
            except OSError:
                pass
        else:
            self.failed = False

    def remove(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass


def snapshot(arbiter):
    """The stats document for the arbiter's current workers."""
    now = time.monotonic()
    workers = []
    for record in sorted(arbiter.WORKERS.values(), key=lambda r: r.age):
        try:
            requests, connections = record.heartbeat.counters()
            beat = record.heartbeat.last_update()
        except ValueError:  # the map was closed: the worker is being reaped
            continue
        workers.append({
            "pid": record.pid,
            "age": record.age,
            "alive_seconds": round(now - record.spawned_at, 3),
            "booted": beat > record.spawned_at,
            "stopping": record.stopping,
            "generation": record.generation,
            "requests": requests,
            "connections": connections,
            "rss_bytes": process_rss(record.pid),
            "heartbeat_age": round(now - beat, 3),
        })
    return {
        "master": {"pid": arbiter.pid, "started": arbiter.started_at,
                   "workers_wanted": arbiter.num_workers, "generation": arbiter.generation,
                   "restarts": dict(arbiter.exits.restarts)},
        "written": time.time(),
        "workers": workers,
    }


def process_rss(pid):
    """Resident memory of a process in bytes from /proc, or None when it cannot be read."""
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class WorkerExits:
    """The master's tally of exited workers: restarts by cause (metrics.CAUSES), and what the
    exited workers had counted (metrics.Retired), so totals survive a worker's replacement."""

    def __init__(self):
        from pronghorn.metrics import CAUSES, Retired
        self.restarts = dict.fromkeys(CAUSES, 0)
        self.retired = Retired()

    def worker_exited(self, record, status, server_stopping):
        """Called as a worker is reaped, before its heartbeat page is closed."""
        self.retired.add(record.heartbeat)
        cause = restart_cause(record, status, server_stopping)
        if cause is not None:
            self.restarts[cause] += 1
        return cause


def restart_cause(record, status, server_stopping):
    """Why a worker had to be replaced, or None when it was asked to go (a reload, fewer workers,
    pronghorn ctl worker kill, a stop)."""
    if record.aborted_at is not None:
        return "timeout"
    if getattr(record, "request_timed_out", False):
        return "request_timeout"
    try:
        reason = record.heartbeat.exit_reason()
    except ValueError:
        reason = None
    if reason == "max_worker_memory":
        return "memory"
    if reason == "max_requests":
        return "max_requests"
    if record.stopping or server_stopping:
        return None
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) not in (signal.SIGTERM, signal.SIGQUIT,
                                                                signal.SIGINT):
        return "crash"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
        return "crash"
    return None


def overdue_requests(arbiter, limit):
    """[(record, request line, seconds)] for the serving workers whose oldest request in progress
    (as last reported, see metrics.publish) has run longer than ``limit`` seconds."""
    now = time.monotonic()
    found = []
    for record in list(arbiter.WORKERS.values()):
        if record.stopping:
            continue
        try:
            started, line = record.heartbeat.oldest_request()
        except ValueError:
            continue
        if started and now - started > limit:
            found.append((record, line, now - started))
    return found
