"""Prometheus metrics (``--metrics-bind HOST:PORT``): counted in the workers, summed by the master.

Each worker counts its requests in plain Python ints (``WorkerMetrics.observe``, spelled out in
the connection's response_done: one list increment, no lock, no call but a clock read) and copies them once a second into its
heartbeat page (heartbeat.py: shared memory made before the fork), together with the requests in
progress at that moment. The master answers a scrape by summing the pages of its live workers with
what the exited ones last published (kept in ``Retired``, so a counter never goes down when a worker
is recycled), and adds what only it knows: workers, restarts by cause, the listen backlog.
So a scrape shows the workers' counts as of at most a second ago.

What is exposed (text format 0.0.4):

    pronghorn_requests_total{status="2xx"}          counter, by status class (1xx..5xx, other)
    pronghorn_request_duration_seconds              histogram: app call to last byte handed to the
                                                    kernel, Prometheus' default buckets
    pronghorn_requests_in_flight                    gauge (at the workers' last report)
    pronghorn_connections_open                      gauge (idem)
    pronghorn_workers / pronghorn_workers_wanted    gauges
    pronghorn_worker_restarts_total{cause=...}      counter: timeout, request_timeout, memory,
                                                    max_requests, crash
    pronghorn_listen_backlog{listener=...}          gauge: connections waiting to be accepted, and
    pronghorn_listen_backlog_limit{listener=...}    its limit (TCP listeners: TCP_INFO; a unix
                                                    socket's queue is not readable, so not shown)
"""

import bisect
import socket
import struct
import time

from pronghorn.heartbeat import METRICS_AT

__all__ = ["WorkerMetrics", "Retired", "publish", "exposition", "BUCKETS", "CAUSES"]

# Prometheus' default buckets (seconds): a histogram people's dashboards already expect.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
CAUSES = ("timeout", "request_timeout", "memory", "max_requests", "crash")
FIRST_BUCKET = len(CLASSES)  # the index of the first latency bucket in a counts list
FIRST_BOUND = BUCKETS[0]
_COUNTS = len(CLASSES) + len(BUCKETS) + 1  # the last bucket is +Inf
# counts, then the requests in flight at the last report, then the latency sum
_AREA = struct.Struct("%dqqd" % _COUNTS)
_monotonic = time.monotonic
_bisect = bisect.bisect_left


class WorkerMetrics:
    """One worker's counters, on the hot path of every response: HttpConnection.response_done
    spells ``observe`` out. Counted with callgrind (bench/RESULTS.md), each Python operation there
    costs 200-500 instructions, so the common case is one list increment: a response answered
    within the first bucket's bound is counted in ``fast`` at its status code's index (no division
    for the class, no second increment for the bucket); ``slow`` counts the others by class and
    bucket. ``totals`` folds the two once a second, for ``publish``."""

    __slots__ = ("fast", "counts", "latency_sum")

    def __init__(self):
        self.fast = [0] * 600  # by status code (0: none was sent), latency <= FIRST_BOUND
        self.counts = [0] * _COUNTS  # the other responses: by class, then by latency bucket
        self.latency_sum = 0.0

    def observe(self, code, started):
        """A response is complete: ``code`` its status (int, 0 when none was sent; wsgi.py
        allows only 100..599), ``started`` its monotonic start."""
        elapsed = _monotonic() - started
        if elapsed <= FIRST_BOUND:
            self.fast[code] += 1
        else:
            self.slow(code, elapsed)
        self.latency_sum += elapsed

    def slow(self, code, elapsed):
        counts = self.counts
        counts[code // 100] += 1
        # Prometheus' le: the first bucket whose bound is >= elapsed (+Inf past the last)
        counts[FIRST_BUCKET + _bisect(BUCKETS, elapsed)] += 1

    def totals(self):
        """[count by class] + [count by latency bucket], every response so far."""
        counts = list(self.counts)
        fast = self.fast
        for i in range(len(CLASSES)):
            counts[i] += sum(fast[i * 100:(i + 1) * 100])
        counts[FIRST_BUCKET] += sum(fast)
        return counts


def publish(worker):
    """Once a second, in the worker: its counters, and its oldest request in progress when it has
    run past --request-timeout (for the master, which replaces the worker), into its heartbeat
    page."""
    heartbeat = worker.heartbeat
    in_flight = 0
    oldest, line = 0.0, ""
    for conn in worker.connections:
        exchange = conn.exchange
        if exchange is None:
            continue
        in_flight += 1
        started = exchange.started
        if started and (not oldest or started < oldest):
            req = exchange.req
            oldest, line = started, "%s %s %s" % (req.method, req.target, req.version)
    limit = worker.settings.request_timeout
    if limit:
        # Only a request already past the limit now. The master reads this up to a second later
        # (more on a loaded machine), when a request reported as merely in progress may long be
        # answered: it would replace a worker for a request that took a few milliseconds.
        if oldest and _monotonic() - oldest <= limit:
            oldest, line = 0.0, ""
        heartbeat.report_oldest_request(oldest, line)
    metrics = worker.metrics
    if metrics is not None:
        _AREA.pack_into(heartbeat.buffer, METRICS_AT, *metrics.totals(), in_flight, metrics.latency_sum)


def read(heartbeat):
    """(counts list, in flight, latency sum) from a worker's page, or None once it is closed."""
    try:
        values = _AREA.unpack_from(heartbeat.buffer, METRICS_AT)
    except ValueError:  # the map was closed: the worker is being reaped
        return None
    return list(values[:_COUNTS]), values[_COUNTS], values[_COUNTS + 1]


class Retired:
    """What exited workers counted, so the sums never go down when a worker is replaced."""

    def __init__(self):
        self.counts = [0] * _COUNTS
        self.latency_sum = 0.0

    def add(self, heartbeat):
        """Called by the master as it reaps a worker, before its page is closed."""
        values = read(heartbeat)
        if values is None:
            return
        counts, _, latency_sum = values
        self.counts = [a + b for a, b in zip(self.counts, counts)]
        self.latency_sum += latency_sum


def exposition(arbiter):
    """The text a scrape gets (Prometheus text format 0.0.4)."""
    retired = arbiter.exits.retired
    counts, latency_sum = list(retired.counts), retired.latency_sum
    in_flight = connections = 0
    workers = list(arbiter.WORKERS.values())
    for record in workers:
        values = read(record.heartbeat)
        if values is None:
            continue
        counts = [a + b for a, b in zip(counts, values[0])]
        in_flight += values[1]
        latency_sum += values[2]
        try:
            connections += record.heartbeat.counters()[1]
        except ValueError:
            pass
    out = []
    _family(out, "pronghorn_requests_total", "counter", "Requests answered, by status class.",
            [('{status="%s"}' % name, counts[i]) for i, name in enumerate(CLASSES)])
    _histogram(out, counts[FIRST_BUCKET:], latency_sum)
    _family(out, "pronghorn_requests_in_flight", "gauge", "Requests in progress (at the workers' "
            "last report, at most a second ago).", [("", in_flight)])
    _family(out, "pronghorn_connections_open", "gauge", "Client connections open (at the workers' "
            "last report).", [("", connections)])
    _family(out, "pronghorn_workers", "gauge", "Worker processes running.", [("", len(workers))])
    _family(out, "pronghorn_workers_wanted", "gauge", "Worker processes wanted (--workers, TTIN/TTOU, "
            "pronghorn ctl worker add/remove).", [("", arbiter.num_workers)])
    _family(out, "pronghorn_worker_restarts_total", "counter", "Workers replaced, by cause.",
            [('{cause="%s"}' % cause, arbiter.exits.restarts[cause]) for cause in CAUSES])
    backlog = [(_label(sock), queued, limit) for sock, (queued, limit) in listen_backlogs(arbiter)]
    if backlog:
        _family(out, "pronghorn_listen_backlog", "gauge", "Connections waiting in a listening "
                "socket's accept queue.", [(label, queued) for label, queued, _ in backlog])
        _family(out, "pronghorn_listen_backlog_limit", "gauge", "The accept queue's limit "
                "(--backlog, capped by net.core.somaxconn).", [(lbl, lim) for lbl, _, lim in backlog])
    return "".join(out)


def _family(out, name, kind, help_text, samples):
    out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, help_text, name, kind))
    for labels, value in samples:
        out.append("%s%s %s\n" % (name, labels, _number(value)))


def _histogram(out, buckets, latency_sum):
    name = "pronghorn_request_duration_seconds"
    out.append("# HELP %s Time from the app call to the response's last byte handed to the "
               "kernel.\n# TYPE %s histogram\n" % (name, name))
    total = 0
    for bound, count in zip(BUCKETS + (None,), buckets):
        total += count  # Prometheus buckets are cumulative
        le = "+Inf" if bound is None else repr(bound)
        out.append('%s_bucket{le="%s"} %d\n' % (name, le, total))
    out.append("%s_sum %s\n%s_count %d\n" % (name, _number(latency_sum), name, total))


def _number(value):
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _label(sock):
    from pronghorn.sockets import describe
    name = describe(sock).replace("\\", "\\\\").replace('"', '\\"')
    return '{listener="%s"}' % name


# struct tcp_info: 8 one-byte fields, then u32s: rto, ato, snd_mss, rcv_mss, unacked, sacked.
# For a listening socket Linux reports the accept queue's length in unacked, its limit in sacked.
_TCP_INFO_QUEUE = struct.Struct("8xIIIIII")


def listen_backlogs(arbiter):
    """[(socket, (queued, limit))] for the TCP listeners whose queue the kernel reports."""
    found = []
    for sock in arbiter.listeners:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
            continue
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_QUEUE.size)
            _, _, _, _, queued, limit = _TCP_INFO_QUEUE.unpack_from(info.ljust(_TCP_INFO_QUEUE.size, b"\0"))
        except (OSError, struct.error):
            continue
        found.append((sock, (queued, limit)))
    return found


# -- the scrape endpoint: a minimal HTTP/1.x answer in the master's loop (sideband.py) ----------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def open_metrics_listener(arbiter, address):
    """Bind ``HOST:PORT`` (``[V6]:PORT``) for scrapes; a Listener for the master's Sideband.
    Raises OSError with a message saying what to fix."""
    from pronghorn.sideband import Listener
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError, IndexError) as exc:
        raise OSError(f"--metrics-bind {address}: {exc} (give HOST:PORT, e.g. 127.0.0.1:9100)")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen for metrics on {address}: {exc.strerror} (is "
                      f"another process using it? change --metrics-bind)")
    return Listener(sock, lambda data: answer_scrape(arbiter, data), "metrics " + address)


def answer_scrape(arbiter, data):
    """The reply to one HTTP request for /metrics, or None until its head is complete."""
    if b"\r\n\r\n" not in data and b"\n\n" not in data:
        return None
    parts = data.split(b"\n", 1)[0].split()
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
    path = target.split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _http(405, "Method Not Allowed", b"only GET\n", "text/plain", method == b"HEAD")
    if path not in (b"/metrics", b"/"):
        return _http(404, "Not Found", b"the metrics are at /metrics\n", "text/plain", False)
    body = exposition(arbiter).encode()
    return _http(200, "OK", body, CONTENT_TYPE, method == b"HEAD")


def _http(status, reason, body, content_type, head_only):
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, reason, content_type, len(body))).encode()
    return head if head_only else head + body
