"""The worker process: one event loop that owns every connection of this worker.

Each accepted connection gets an `HttpConnection` (an `asyncio.Protocol`). Bytes go into the sans-I/O
parser; every complete request is dispatched in order, so pipelined responses leave in request order.
A connection has at most one request in the app at a time; requests that arrive meanwhile wait in its
queue, and reading pauses when too much is waiting (no unbounded read-ahead).

Two dispatch models (cfg.threads):

* ``threads == 1``: the app runs inline in the loop thread. It is the fastest (no hand-off) and, as with
  gunicorn's sync worker, the heartbeat stops while the app runs, so ``--timeout`` kills a stuck worker.
  asyncio's running loop is cleared around the app call (and its body iteration): the app is
  synchronous code, and guards such as Django's ``async_unsafe`` must not see a running loop.
  Body iteration is resumable: when the socket's send buffer is full the loop stops pulling chunks
  and carries on when the transport drains, so a large streamed response never balloons memory.
* ``threads > 1``: a pool of N threads runs the app (at most N requests in the app at once); the
  loop keeps reading, answering and timing out connections. A thread writes through the loop and
  waits whenever the loop has not caught up with what it sent.

Slow clients never tie up the worker: a timer sweeps the connections once a second and closes those
past their deadline (header_timeout for a request head, body_timeout between body bytes, keepalive when
idle, and a response the client stopped reading for body_timeout). One sweep is cheaper than a timer
per request and is precise enough for second-granular limits.

Writes: a small response is one `transport.write` (head + body, see wsgi.py), made at the end of the
loop's pass over the ready connections (Worker.flush_soon: one wake-up of the client per burst, not per
response); the small responses to pipelined requests go out in that same send; a `wsgi.file_wrapper`
around a real file goes out with `os.sendfile` on a duplicate of the socket's descriptor, watched for
writability by the loop, once everything written before it has drained. The loop is uvloop when
installed (measured ~3x the stdlib loop here), else asyncio; ``PRONGHORN_LOOP=asyncio`` forces it.

Accepting: every worker listens on the shared socket; with several workers, one that holds clearly
more than its share of connections pauses accepting for a moment (balance.py). ``worker_connections``
caps the connections of one worker (accepting pauses at the cap, resumes below 90%).

Lifecycle (the Worker class): TERM stops gracefully (stop accepting, finish what was received, close
idle connections, exit by graceful_timeout; a socket the loop accepted just before TERM is answered
too, see _stop_when_done, and an accept resume queued before TERM does not reopen the servers);
INT/QUIT exit at once; ABRT (sent by the arbiter to a stuck worker) runs the worker_abort hook and
exits; USR1 reopens the logs. The worker also leaves gracefully after max_requests (+ jitter), when
its parent changes, or above max_worker_memory.
"""

import asyncio
import collections
import errno
import io
import os
import random
import signal
import sys
import threading
import time
import traceback

from pronghorn import balance, malloc, wsgi
from pronghorn.appthreads import AppThreads
from pronghorn.filewrapper import FileWrapper
from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import BODY, HEAD, Limits, RequestParser

try:
    from pronghorn.config import proxy_trust
except ImportError:  # the config module is optional for embedding the worker

    def proxy_trust(entries):
        return (lambda address: True) if "*" in entries else set(entries).__contains__

try:
    import uvloop
except ImportError:  # pure-asyncio fallback (slower, same behaviour)
    uvloop = None

_BytesIO = io.BytesIO
# Clears/restores asyncio's running loop around synchronous app code (one C call each).
_set_running_loop = asyncio.events._set_running_loop

# Connection phases, for the timeout sweep.
NEW = 0  # accepted, nothing received yet: header_timeout, silent close
IDLE = 1  # keep-alive, between requests: keepalive, silent close
IN_HEAD = 2  # part of a request head received: header_timeout, then 408
IN_BODY = 3  # head complete, body arriving: body_timeout between bytes, then 408
BUSY = 4  # a request is in the app or its response is being written: no timeout
CLOSING = 5  # answered and shutting down: discard input, close after a short linger

# How much a client may send ahead (pipelined requests) while a response is in progress.
MAX_QUEUED_REQUESTS = 32
MAX_READ_AHEAD = 256 * 1024
# An iterated response body is gathered with the other responses of the loop's pass up to this
# many bytes; past it, writes go to the transport, whose flow control paces the app's iterator.
GATHER_LIMIT = 64 * 1024
LINGER_SECONDS = 2.0
# While stopping, how long a just-accepted connection may take to send its request.
NEW_CONNECTION_GRACE = 1.0
# Reading /proc is cheap, but not needed every second.
MEMORY_CHECK_TICKS = 3
# A threaded response waits for the loop once it has handed it this many bytes.
THREAD_WRITE_WINDOW = 256 * 1024


def new_event_loop():
    """uvloop when it is installed (faster: see bench numbers in the worker's report), else the
    stdlib loop. PRONGHORN_LOOP=asyncio forces the stdlib loop (to compare, or to rule uvloop out
    when chasing a bug)."""
    if uvloop is not None and os.environ.get("PRONGHORN_LOOP", "auto") != "asyncio":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _is_default_hook(fn):
    """True for the config's no-op defaults, so the hot path can skip calling them at all."""
    return fn is None or getattr(fn, "__module__", "").startswith("pronghorn.")


class _Sent:
    """What post_request hooks get as `resp`: the status, headers and body bytes sent."""

    __slots__ = ("status", "headers", "sent")

    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.headers
        self.sent = resp.sent


class Worker:
    EXIT_BOOT_ERROR = 3
    EXIT_APP_LOAD_ERROR = 4

    def __init__(self, age, ppid, listeners, app, cfg, log, heartbeat):
        self.age = age
        self.ppid = ppid
        self.listeners = listeners
        self.app = app
        self.cfg = cfg
        self.log = log
        self.heartbeat = heartbeat
        self.pid = None
        self.alive = True
        self.nr = 0
        self.booted = False
        self._shutting_down = False
        self.connections = set()
        self.loop = None
        self.servers = []
        self.accepting = False
        self.app_threads = None
        self._stopping_since = None
        self._ticks = 0
        self._adopting = 0  # backlog connections being handed to the loop while stopping
        self._stop_check_queued = False  # see _stop_when_done
        # Set by the arbiter before the fork (see balance.py): the shared connection board and
        # this worker's slot on it. None: accept without balancing.
        self.board = None
        self.board_slot = None
        self._balance_paused = False
        self._to_flush = []  # connections holding gathered responses (see flush_soon)
        self._read_settings(cfg)

    def __repr__(self):
        return "<Worker %s>" % self.pid

    def _read_settings(self, cfg):
        get = lambda name, default: getattr(cfg, name, default)  # noqa: E731
        self.threads = max(1, int(get("threads", 1) or 1))
        self.keepalive = float(get("keepalive", 2))
        self.header_timeout = float(get("header_timeout", 10) or 10)
        self.body_timeout = float(get("body_timeout", 30) or 30)
        self.graceful_timeout = float(get("graceful_timeout", 30))
        self.max_connections = int(get("worker_connections", 1000) or 1000)
        max_requests = int(get("max_requests", 0) or 0)
        jitter = int(get("max_requests_jitter", 0) or 0)
        if max_requests > 0:
            self.max_requests = max_requests + (random.randint(0, jitter) if jitter > 0 else 0)
        else:
            self.max_requests = sys.maxsize
        self.max_memory = int(get("max_worker_memory", 0) or 0) * 1024 * 1024
        self.use_sendfile = get("sendfile", True) is not False
        body_limit = get("limit_request_body", 0)
        self.limits = Limits(
            request_line=int(get("limit_request_line", 4094) or 8190),
            fields=int(get("limit_request_fields", 100) or 32768),
            field_size=parser_field_size(get("limit_request_field_size", 8190)),
            body=int(body_limit) if body_limit else None,
        )
        allow = get("forwarded_allow_ips", ["127.0.0.1", "::1"]) or []
        if isinstance(allow, str):
            allow = [a.strip() for a in allow.split(",") if a.strip()]
        self.forwarded_allow = allow
        self.is_trusted_proxy = proxy_trust(allow)
        secure = get("secure_scheme_headers", {}) or {}
        self.scheme_headers = {k.upper().replace("_", "-"): str(v).lower() for k, v in secure.items()}
        self.pre_request = None if _is_default_hook(get("pre_request", None)) else cfg.pre_request
        self.post_request = None if _is_default_hook(get("post_request", None)) else cfg.post_request

    # --- lifecycle --------------------------------------------------------------------------

    def run(self):
        self.pid = os.getpid()
        malloc.tune()  # request-sized buffers stay in the heap between requests (see malloc.py)
        if self.app is None:
            self._load_app()
        self.loop = loop = new_event_loop()
        asyncio.set_event_loop(loop)
        if self.threads > 1:
            self.app_threads = AppThreads(self.threads, self.log)
        multiprocess = int(getattr(self.cfg, "workers", 1) or 1) > 1
        self.environ = wsgi.base_environ(self.cfg, self.log, self.threads > 1, multiprocess)
        self.access_enabled = bool(getattr(self.log, "access_enabled", False))
        self._install_signals()
        hook = getattr(self.cfg, "post_worker_init", None)
        if hook is not None:
            hook(self)
        try:
            try:
                loop.run_until_complete(self._start_serving())
            except OSError as exc:
                self.log.error("worker %s cannot serve on its listening sockets: %s", self.pid, exc)
                sys.exit(self.EXIT_BOOT_ERROR)
            self.booted = True
            if not self.alive:
                self._stop_when_done()  # TERMed while starting: leave once what came in is answered
            # The first heartbeat goes out from inside run_forever: the arbiter forwards a USR1 that
            # came while we booted as soon as it sees this beat, so the worker is serving by then.
            loop.call_soon(self._notify)
            loop.call_later(1.0, self._tick)
            loop.run_forever()
        finally:
            self._shutdown()

    def _load_app(self):
        try:
            from pronghorn.loader import load_app

            self.app = load_app(self.cfg)
        except Exception as exc:
            # The arbiter sees exit status 4 and stops the server with this message (no crash loop).
            name = type(exc).__name__
            if name == "AppImportError":
                self.log.error("%s", exc)
            else:
                self.log.exception("failed to load the app: %s", exc)
            sys.exit(self.EXIT_APP_LOAD_ERROR)

    def _install_signals(self):
        # TERM and USR1 run as loop callbacks (safe: nothing else is running then), queued by
        # plain handlers rather than loop.add_signal_handler: uvloop forgets a signal that comes
        # while its loop is not running (before it starts, or between run_until_complete and
        # run_forever), and a worker TERMed right after it booted served on (~1 stop in 25 under
        # load). A queued callback waits for the loop instead. SA_RESTART (siginterrupt False):
        # a rotation's USR1 must not fail a system call the app is making in another thread.
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)
        # INT/QUIT/ABRT must work even while an inline app is stuck: plain handlers run between
        # bytecodes of whatever Python code is executing.
        signal.signal(signal.SIGINT, self._fast_stop)
        signal.signal(signal.SIGQUIT, self._fast_stop)
        signal.signal(signal.SIGABRT, self._abort)
        # The arbiter owns HUP/WINCH/TTIN/TTOU/USR2; a stray one (e.g. sent to the process group)
        # must not kill workers.
        for name in ("SIGHUP", "SIGWINCH", "SIGTTIN", "SIGTTOU", "SIGUSR2"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)

    def _on_term(self, signum, frame):
        self._queue_from_signal(self.begin_graceful_stop, "SIGTERM")

    def _on_usr1(self, signum, frame):
        self._queue_from_signal(self._reopen_logs)

    def _queue_from_signal(self, callback, *args):
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: the worker is on its way out already

    def _fast_stop(self, signum, frame):
        self._exit_now("worker_int", 0)

    def _abort(self, signum, frame):
        self._exit_now("worker_abort", 1)

    def _exit_now(self, hook_name, status):
        """INT/QUIT (status 0) and ABRT (status 1): run the hook, then leave at once.

        Python runs a signal handler between any two bytecodes of the main thread: also inside
        a weakref callback or a __del__ (a garbage collection in the loop's own code), where the
        SystemExit raised here is printed as "Exception ignored" and dropped. The worker then
        served on, and the master waited for it until --graceful-timeout. So the exit is also
        queued as a loop callback: if the SystemExit is lost, the loop raises it again where
        nothing can swallow it."""
        self.alive = False
        hook = getattr(self.cfg, hook_name, None)
        if hook is not None:
            try:
                hook(self)
            except Exception:
                self.log.exception("%s hook failed", hook_name)
        self._queue_from_signal(self._raise_exit, status)
        sys.exit(status)

    def _raise_exit(self, status):
        if not self._shutting_down:  # the first SystemExit got through: it is already leaving
            sys.exit(status)

    def _reopen_logs(self):
        reopen = getattr(self.log, "reopen_files", None)
        if reopen is not None:
            reopen()

    async def _start_serving(self):
        if not self.alive:
            return  # a resume queued before TERM: the stop has the final word
        self.servers = []
        for listener in self.listeners:
            # Each server owns (and will close) its socket: give it a duplicate so the original
            # stays usable to resume accepting after a pause.
            sock = listener.dup()
            sock.setblocking(False)
            server = await self.loop.create_server(
                self._protocol_factory, sock=sock, backlog=int(getattr(self.cfg, "backlog", 2048) or 2048)
            )
            if not self.alive:
                # TERM arrived while this (re)start was under way (a resume after a balance or
                # worker_connections pause): the stop already closed the servers it knew of, so this
                # one must not start taking connections the stop will not wait for.
                server.close()
                continue
            self.servers.append(server)
        self.accepting = self.alive

    def _protocol_factory(self):
        return HttpConnection(self)

    def _stop_accepting(self):
        self.accepting = False
        for server in self.servers:
            server.close()
        self.servers = []

    def connection_opened(self, conn):
        self.connections.add(conn)
        if not self.accepting:
            return
        if len(self.connections) >= self.max_connections:
            # Too many connections: leave the rest in the listen backlog (or to other workers).
            self.log.warning("worker_connections (%d) reached: pausing accept", self.max_connections)
            self._stop_accepting()
        elif self.board_slot is not None and self.board.above_share(self.board_slot, len(self.connections)):
            # Clearly more than our share: let the other workers take the next ones for a moment.
            self._stop_accepting()
            self._balance_paused = True
            self.loop.call_later(balance.PAUSE, self._resume_after_balance)

    def _resume_after_balance(self):
        self._balance_paused = False
        if self.alive and not self.accepting and len(self.connections) < self.max_connections * 0.9:
            self.accepting = True
            self.loop.create_task(self._start_serving())

    def connection_closed(self, conn):
        self.connections.discard(conn)
        if self.board_slot is not None:
            self.board.record(self.board_slot, len(self.connections))
        if not self.alive:
            self._stop_when_done()
        elif (not self.accepting and not self._balance_paused
              and len(self.connections) < self.max_connections * 0.9):
            self.accepting = True  # set now so a burst of closes starts one resume only
            self.loop.create_task(self._start_serving())

    def begin_graceful_stop(self, why):
        """Stop accepting, finish what was received, close idle connections, exit when done."""
        if not self.alive:
            return
        self.alive = False
        self._stopping_since = time.monotonic()
        self.log.info("worker %s stopping gracefully (%s)", self.pid, why)
        self._stop_accepting()
        self._drain_backlog()
        for conn in list(self.connections):
            # Idle keep-alive connections go now. Just-accepted ones get a moment (the sweep
            # closes them after NEW_CONNECTION_GRACE) since their request may be on its way.
            if conn.phase == IDLE:
                conn.close_quietly()
        self._stop_when_done()

    def flush_soon(self, conn):
        """Send conn's gathered responses at the end of this pass of the loop. The loop hands us
        every connection that became readable in one pass; answering them all before writing
        means the clients (wrk, nginx) are woken once for a burst of responses rather than once
        each, which measured +25-40% req/s on hello world with 2 workers on 2 cores. A response
        waits at most for the rest of the pass (the other ready connections' requests)."""
        if not self._to_flush:
            self.loop.call_soon(self._flush_gathered)
        self._to_flush.append(conn)

    def _flush_gathered(self):
        conns = self._to_flush
        self._to_flush = []
        for conn in conns:
            if conn.batch is not None:
                try:
                    conn._flush_batch()
                except Exception:  # one broken connection must not keep the others' responses
                    self.log.exception("writing gathered responses failed")
                    conn.abort()

    def _stop_when_done(self):
        """Stop the loop once no connection is left, but decide only after the callbacks already
        queued have run. The event loop accepts in C and queues each new connection's
        connection_made as a callback: a socket accepted just before TERM (or just before the last
        connection closed) is not yet in self.connections. Stopping at once would leave that
        callback to run after the stop decision, and the socket would be closed unanswered. A
        callback queued now runs after those, and the servers are closed, so none can follow it."""
        if not self.connections and not self._adopting and not self._stop_check_queued:
            self._stop_check_queued = True
            self.loop.call_soon(self._stop_if_done)

    def _stop_if_done(self):
        self._stop_check_queued = False
        if not self.connections and not self._adopting and self.booted:
            self.loop.stop()
        # (A TERM during start-up: stopping now would cut run_until_complete short; run() checks
        # again once the start is complete.)

    def _drain_backlog(self):
        """Accept what already waits in the listen backlog, so those clients get answers instead
        of a reset when the last copy of the socket closes (per-worker --reuse-port sockets,
        or a full stop). Returns how many were taken."""
        room = max(0, self.max_connections - len(self.connections))
        taken = 0
        for listener in self.listeners:
            listener.setblocking(False)  # never block the loop on an empty backlog
            while taken < room:
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    self.log.debug("backlog drain stopped: %s", exc)
                    break
                sock.setblocking(False)
                taken += 1
                self._adopting += 1
                self.loop.create_task(self._adopt(sock))
        if taken:
            self.log.info("worker %s took %d waiting connection(s) from the backlog", self.pid, taken)
        return taken

    async def _adopt(self, sock):
        try:
            await self.loop.connect_accepted_socket(self._protocol_factory, sock)
        except OSError:
            sock.close()
        finally:
            self._adopting -= 1
        if not self.alive:
            self._stop_when_done()

    def _tick(self):
        """Once a second: heartbeat, timeouts, parent and memory checks."""
        now = time.monotonic()
        self._notify()
        for conn in list(self.connections):
            conn.check_timeouts(now)
        if self.alive:
            if os.getppid() != self.ppid:
                self.log.info("parent changed (was %s): stopping", self.ppid)
                self.begin_graceful_stop("parent changed")
            elif self.max_memory:
                self._ticks += 1
                if self._ticks % MEMORY_CHECK_TICKS == 0:
                    self._check_memory()
        elif self._stopping_since is not None and now - self._stopping_since > self.graceful_timeout:
            self.log.warning("graceful timeout: closing %d connections", len(self.connections))
            self.loop.stop()
            return
        self.loop.call_later(1.0, self._tick)

    def _notify(self):
        heartbeat = self.heartbeat
        if heartbeat is not None:
            heartbeat.notify()
            report = getattr(heartbeat, "report", None)  # (a test's stand-in may lack it)
            if report is not None:
                report(self.nr, len(self.connections))

    def _check_memory(self):
        rss = resident_memory()
        if rss > self.max_memory:
            self.log.warning(
                "worker %s uses %d MiB, above max_worker_memory (%d MiB): recycling it",
                self.pid, rss >> 20, self.max_memory >> 20,
            )
            self.begin_graceful_stop("max_worker_memory")

    def request_done(self):
        self.nr += 1
        if self.nr >= self.max_requests:
            self.request_done_limit()

    def request_done_limit(self):
        if self.alive:
            self.log.info("max_requests (%d) reached", self.max_requests)
            self.begin_graceful_stop("max_requests")

    def _shutdown(self):
        self._shutting_down = True
        self.alive = False
        for conn in list(self.connections):
            conn.abort()
        for server in self.servers:
            server.close()
        if self.app_threads is not None:
            self.app_threads.shutdown()
        loop = self.loop
        try:
            loop.run_until_complete(asyncio.sleep(0))
        except Exception:
            pass
        loop.close()


def parser_field_size(limit):
    """The parser's field-line limit for --limit-request-field_size, with gunicorn's meaning: the
    setting counts the line's CRLF too (a line fits when len(line) + 2 <= limit), and 0 means the
    default of 8190."""
    limit = int(limit or 0) or 8190
    return max(0, limit - 2)


def resident_memory():
    """Resident set size of this process in bytes (Linux /proc, else getrusage's peak)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, dispatch in order, frame the responses, time out."""

    def __init__(self, worker):
        self.worker = worker
        self.app = worker.app
        self.log = worker.log
        self.parser = RequestParser(worker.limits)
        self.transport = None
        self.queue = collections.deque()
        self.phase = NEW
        self.since = time.monotonic()
        self.busy = False
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.peer_eof = False
        self.pump = None  # the suspended body iteration of an inline response
        self.drained = None  # threading.Event for threaded writes
        self.sendfile_state = None
        self.paused_since = 0.0
        # Responses gathered until the end of the loop's pass (Worker.flush_soon): None when
        # nothing is held, and flushed before anything else is written or the connection closes.
        self.batch = None
        self.gathered = 0  # bytes of iterated bodies in the batch (see _gather)

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        worker = self.worker
        peer = transport.get_extra_info("peername")
        self.env = wsgi.connection_environ(worker.environ, peer, transport.get_extra_info("sockname"))
        if isinstance(peer, tuple):
            trusted = worker.is_trusted_proxy(peer[0])
        else:
            # A unix socket is only reachable from this host (the proxy in front): trusted, as gunicorn.
            trusted = bool(worker.forwarded_allow)
        self.scheme_headers = worker.scheme_headers if trusted else None
        worker.connection_opened(self)

    def connection_lost(self, exc):
        self.closed = True
        self.phase = CLOSING
        if self.drained is not None:
            self.drained.set()  # a thread waiting to write must not wait forever
        self._cancel_sendfile()
        if self.pump is not None:
            # The client left in the middle of a streamed body: the app's iterable is still owed
            # its close() (it may hold a database cursor or a file).
            result = self.pump[1]
            self.pump = None
            wsgi.close_iterable(result, self.log)
        self.worker.connection_closed(self)

    def pause_writing(self):
        self.write_paused = True
        self.paused_since = time.monotonic()
        if self.drained is not None:
            self.drained.clear()

    def resume_writing(self):
        self.write_paused = False
        if self.drained is not None:
            self.drained.set()
        state = self.sendfile_state
        if state is not None and state.waiting_for_drain:
            state.waiting_for_drain = False
            self.transport.set_write_buffer_limits()
            self._sendfile_step()
        elif self.pump is not None:
            _set_running_loop(None)  # the app's iterable runs: a synchronous context (see _run_inline)
            try:
                self._pump_body()
                self._resume_queue()
            finally:
                _set_running_loop(self.worker.loop)

    def data_received(self, data):
        if self.phase == CLOSING:
            return
        try:
            requests = self.parser.feed(data)
        except HTTPError as exc:
            # Requests completed before the bad bytes are answered first, in order.
            requests = getattr(exc, "requests", None)
            if requests:
                self.queue.extend(requests)
            requests = None
            self.queue.append(exc)
        if requests:
            if not self.busy and len(requests) == 1 and not self.queue and self.worker.threads == 1:
                # The common case (one request, nothing pending, inline app): no queue round trip.
                if self.batch is None:
                    self._gather_until_end_of_pass()
                self._run_inline(requests[0])
                if not self.busy and self.phase != CLOSING:
                    self._between_requests()
                return
            self.queue.extend(requests)
        if not self.busy:
            if self.queue:
                self._process_queue()
            else:
                self._update_waiting_phase()
        elif len(self.queue) > MAX_QUEUED_REQUESTS or self.parser.buffered > MAX_READ_AHEAD:
            self._pause_reading()

    def eof_received(self):
        self.peer_eof = True
        if self.batch is not None:
            self._flush_batch()  # before the transport may close (returning False below)
        try:
            self.parser.feed_eof()
        except HTTPError as exc:
            # The client half-closed mid-request. It may still be reading: it is owed the 400
            # (after the responses due before it), then the close.
            if self.phase != CLOSING:
                self.queue.append(exc)
        if self.queue and not self.busy:
            self._process_queue()
        # Keep the transport open for writing when responses are still due (half-close).
        if self.busy or self.queue:
            return True
        return False

    # --- request processing ------------------------------------------------------------------

    def _process_queue(self):
        """Dispatch queued requests in order until one is still in progress (or none are left)."""
        queue = self.queue
        threaded = self.worker.threads > 1
        if not threaded and self.batch is None:
            self._gather_until_end_of_pass()
        while queue and not self.busy and self.phase != CLOSING:
            item = queue.popleft()
            if isinstance(item, HTTPError):
                self._send_error(item.status, item.reason)
                return
            if threaded:
                self._dispatch_threaded(item)
            else:
                self._run_inline(item)
        if not self.busy and self.phase != CLOSING:
            self._between_requests()

    def _gather_until_end_of_pass(self):
        """From now on the inline responses of this connection (several, when requests are
        pipelined) collect in self.batch and leave in one send at the end of the loop's pass."""
        self.batch = []
        self.worker.flush_soon(self)

    def _gather(self, data):
        """Body bytes of an iterated response: gathered with the rest of this pass's responses
        up to GATHER_LIMIT, then written directly, so the transport's flow control (pause_writing)
        paces a large body."""
        batch = self.batch
        if batch is None:
            self.transport.write(data)
            return
        batch.append(data)
        self.gathered += len(data)
        if self.gathered > GATHER_LIMIT:
            self._flush_batch()

    def _write_now(self, data):
        """Every direct write goes through here: what was gathered in this pass goes first, so
        the bytes leave in the order they were produced."""
        if self.batch is not None:
            self._flush_batch()
        self.transport.write(data)

    def _flush_batch(self):
        """Send the gathered responses; from here on responses are written directly again.
        Called by _write_now and before the connection is closed, to keep the order."""
        batch = self.batch
        self.batch = None
        self.gathered = 0
        # A transport aborted meanwhile (a timeout, a reset seen by the loop) takes no writes.
        if batch and not self.closed and not self.transport.is_closing():
            self.transport.write(b"".join(batch))

    def _resume_queue(self):
        """After a response finished asynchronously (pump, thread, sendfile): carry on."""
        if not self.busy and self.phase != CLOSING and not self.closed:
            self._process_queue()

    def _between_requests(self):
        if self.peer_eof:
            self.close_quietly()
            return
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self._update_waiting_phase()

    def _update_waiting_phase(self):
        """Between requests: which timeout applies now, and a 100 Continue if the client waits."""
        state = self.parser.state
        now = time.monotonic()
        if state == HEAD:
            if self.phase != IN_HEAD and self.phase != NEW:
                self.since = now
            self.phase = IN_HEAD
        elif state == BODY:
            if self.parser.expect_continue:
                self._write_now(wsgi.CONTINUE)  # after the previous response
                self.parser.continue_sent()
            self.phase = IN_BODY
            self.since = now
        elif self.phase != NEW:
            if not self.worker.alive:
                self.close_quietly()
                return
            self.phase = IDLE
            self.since = now

    def _keep_alive(self, req):
        # (_run_inline has this inlined: it is on the hot path.)
        # While stopping, still answer requests already received, but close after the last one.
        return req.keep_alive and (self.worker.alive or bool(self.queue))

    def _run_inline(self, req):
        # The app is synchronous code: while it runs, asyncio must not report a running loop, or
        # guards such as Django's async_unsafe refuse the ORM (SynchronousOnlyOperation).
        _set_running_loop(None)
        try:
            self._call_app_inline(req)
        finally:
            _set_running_loop(self.worker.loop)

    def _call_app_inline(self, req):
        worker = self.worker
        self.phase = BUSY
        env = wsgi.request_environ(self.env, req, self.scheme_headers)
        batch = self.batch
        resp = wsgi.Response(self.transport.write if batch is None else batch.append, self.log,
                             req.version, req.method == "HEAD",
                             req.keep_alive and (worker.alive or bool(self.queue)))
        started = time.monotonic() if worker.access_enabled else 0.0
        if worker.pre_request is not None:
            self._call_hook(worker.pre_request, worker, req)
        try:
            result = self.app(env, resp.start_response)
        except Exception as exc:
            self._app_failed(req, resp, exc, env, started)
            return
        try:
            if type(result) is list and len(result) == 1 and resp.status is not None:
                keep = resp.finish_single(result[0])
            else:
                if batch is not None:
                    # An iterated body (what Flask, Django and Bottle return): gathered too while
                    # it stays small, then handed to the transport's flow control (_gather).
                    resp.out = self._gather
                if type(result) is FileWrapper and self._try_sendfile(req, env, resp, result, started):
                    return
                self.pump = (iter(result), result, req, env, resp, started)
                self._pump_body()
                return
        except Exception as exc:
            wsgi.close_iterable(result, self.log)
            self._app_failed(req, resp, exc, env, started)
            return
        wsgi.close_iterable(result, self.log)
        self._response_done(req, env, resp, started, keep)

    def _pump_body(self):
        """Send body chunks until the body ends or the transport asks us to wait."""
        it, result, req, env, resp, started = self.pump
        send = resp.send_body_chunk
        try:
            for chunk in it:
                send(chunk)
                if self.write_paused or self.closed:
                    # resume_writing() calls us again when the client has read enough.
                    self.busy = not self.closed
                    if self.closed:
                        break
                    return
            keep = resp.finish() if not self.closed else False
        except Exception as exc:
            self.pump = None
            wsgi.close_iterable(result, self.log)
            self._app_failed(req, resp, exc, env, started)
            return
        self.pump = None
        wsgi.close_iterable(result, self.log)
        self._response_done(req, env, resp, started, keep)

    def _response_done(self, req, env, resp, started, keep):
        worker = self.worker
        if worker.access_enabled:
            try:
                self.log.access(env, resp.status, resp.headers, resp.sent, time.monotonic() - started)
            except Exception:
                self.log.exception("access log failed")
        if worker.post_request is not None:
            self._call_hook(worker.post_request, worker, req, env, _Sent(resp))
        body = req.body
        if type(body) is not _BytesIO and body is not None:
            body.close()  # a spooled temp file: release it now, not when garbage collected
        worker.nr += 1
        if worker.nr >= worker.max_requests:
            worker.request_done_limit()
        self.busy = False
        if not keep:
            self._close_after_response()

    def _call_hook(self, hook, *args):
        try:
            hook(*args)
        except Exception:
            self.log.exception("%s hook failed", getattr(hook, "__name__", "request"))

    def _app_failed(self, req, resp, exc, env, started):
        if isinstance(exc, wsgi.ResponseError):
            self.log.error("bad response from the app for %s %s: %s", req.method, req.target, exc)
        else:
            # Formatted here: in threaded mode this runs in the loop, away from the exception.
            self.log.error("error handling %s %s\n%s", req.method, req.target,
                           "".join(traceback.format_exception(exc)).rstrip())
        self.busy = False
        if not resp.headers_sent and not self.closed:
            self._write_now(wsgi.error_response(500, ""))
            self.phase = CLOSING
            self._linger_close()
        else:
            # Headers are out: the only honest signal left is an incomplete response.
            self.close_quietly()
        if self.worker.access_enabled:
            status = resp.status if resp.headers_sent else "500 Internal Server Error"
            try:
                self.log.access(env, status, resp.headers or [], resp.sent, time.monotonic() - started)
            except Exception:
                self.log.exception("access log failed")
        self.worker.request_done()

    def _send_error(self, status, reason):
        """Answer a request the parser refused, then close (never reading what follows)."""
        if status >= 500 and status != 501 and status != 505:
            self.log.error("request refused: %s %s", status, reason)
        else:
            self.log.debug("request refused: %s %s", status, reason)
        self._write_now(wsgi.error_response(status, reason))
        self.phase = CLOSING
        self._linger_close()

    def _close_after_response(self):
        if self.queue or self.parser.buffered:
            self.phase = CLOSING
            self._linger_close()
        else:
            self.close_quietly()

    def _linger_close(self):
        """Send FIN but keep reading (and dropping) a little while: closing with unread input would
        make the kernel send RST, and the client could lose the response we just wrote."""
        if self.batch is not None:
            self._flush_batch()
        self.since = time.monotonic()
        self.queue.clear()
        if self.peer_eof:
            # Nothing more can arrive, so no reset can be provoked: a plain close sends what is
            # buffered, then FIN.
            self.transport.close()
            return
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
                return
        except (OSError, RuntimeError):
            pass
        self.transport.close()

    def close_quietly(self):
        if self.batch is not None:
            self._flush_batch()
        self.phase = CLOSING
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self):
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _pause_reading(self):
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    # --- timeouts ----------------------------------------------------------------------------

    def check_timeouts(self, now):
        phase = self.phase
        worker = self.worker
        if phase == BUSY:
            # A client that stops reading a response must not hold the connection forever.
            if self.write_paused and now - self.paused_since > worker.body_timeout:
                self.log.info("closing a connection whose client stopped reading for %ss",
                              worker.body_timeout)
                self.abort()
            return
        if phase == IDLE:
            if now - self.since > worker.keepalive:
                self.close_quietly()
        elif phase == NEW:
            if not worker.alive and now - self.since > NEW_CONNECTION_GRACE:
                self.close_quietly()  # stopping: a connection that sent nothing gets no more time
            elif now - self.since > worker.header_timeout:
                if self.parser.state == HEAD:
                    self._timed_out("request head not received within header_timeout")
                else:
                    self.close_quietly()
        elif phase == IN_HEAD:
            if now - self.since > worker.header_timeout:
                self._timed_out("request head not received within header_timeout")
        elif phase == IN_BODY:
            if now - self.since > worker.body_timeout:
                self._timed_out("no request body bytes within body_timeout")
        elif phase == CLOSING:
            if now - self.since > LINGER_SECONDS:
                self.abort()

    def _timed_out(self, why):
        self.log.debug("408 to %s: %s", self.env.get("REMOTE_ADDR"), why)
        self._send_error(408, why)

    # --- threaded dispatch -------------------------------------------------------------------

    def _dispatch_threaded(self, req):
        self.busy = True
        self.phase = BUSY
        if self.drained is None:
            self.drained = threading.Event()
            if not self.write_paused:
                self.drained.set()
        env = wsgi.request_environ(self.env, req, self.scheme_headers)
        self.worker.app_threads.submit(self._run_in_thread, req, env)

    def _run_in_thread(self, req, env):
        worker = self.worker
        loop = worker.loop
        writer = _ThreadWriter(self, loop)
        resp = wsgi.Response(writer.write, self.log, req.version, req.method == "HEAD", self._keep_alive(req))
        started = time.monotonic() if worker.access_enabled else 0.0
        if worker.pre_request is not None:
            self._call_hook(worker.pre_request, worker, req)
        result = None
        try:
            result = self.app(env, resp.start_response)
            if type(result) is list and len(result) == 1 and resp.status is not None:
                keep = resp.finish_single(result[0])
            elif (type(result) is FileWrapper and self._sendfile_possible(resp)
                  and result.sendfile_source() is not None):
                keep = self._threaded_sendfile(writer, resp, result)
            else:
                for chunk in result:
                    resp.send_body_chunk(chunk)
                    if self.closed:
                        break
                keep = resp.finish() if not self.closed else False
        except Exception as exc:
            if result is not None:
                wsgi.close_iterable(result, self.log)
            writer.flush()  # what was sent before the failure still goes out, then the close
            loop.call_soon_threadsafe(self._app_failed, req, resp, exc, env, started)
            return
        wsgi.close_iterable(result, self.log)
        # One hand-back to the loop per response: the last bytes travel with the "done" call
        # (each call_soon_threadsafe wakes the loop; two per request measured ~1% of the
        # 10 ms-app limit).
        loop.call_soon_threadsafe(self._thread_response_done, writer.take(), req, env, resp, started, keep)

    def _thread_response_done(self, data, req, env, resp, started, keep):
        if data is not None and not self.closed:
            self._write_now(data)
        self._response_done(req, env, resp, started, keep)
        self._resume_queue()

    def _threaded_sendfile(self, writer, resp, wrapper):
        fd, offset, size = wrapper.sendfile_source()
        head, count = resp.sendfile_head(size)
        writer.write(head)
        writer.flush()
        done = threading.Event()
        outcome = []

        def finished(ok):
            outcome.append(ok)
            done.set()

        self.worker.loop.call_soon_threadsafe(self._start_sendfile, fd, offset, count, finished)
        done.wait()
        if not outcome or not outcome[0]:
            return False
        return resp.finish()

    # --- sendfile ----------------------------------------------------------------------------

    def _sendfile_possible(self, resp):
        return self.worker.use_sendfile and resp.status is not None

    def _try_sendfile(self, req, env, resp, wrapper, started):
        """Inline path: send a FileWrapper'd real file with os.sendfile. False to iterate instead."""
        if not self._sendfile_possible(resp):
            return False
        source = wrapper.sendfile_source()
        if source is None:
            return False
        fd, offset, size = source
        head, count = resp.sendfile_head(size)
        self._write_now(head)  # after what was gathered, so the drain check below sees it all
        self.busy = True

        def finished(ok):
            wsgi.close_iterable(wrapper, self.log)
            if not ok:
                self.busy = False
                self.close_quietly()
                self.worker.request_done()
                return
            self._response_done(req, env, resp, started, resp.finish())
            self._resume_queue()

        self._start_sendfile(fd, offset, count, finished)
        return True

    def _start_sendfile(self, fd, offset, count, finished):
        if self.closed:
            finished(False)
            return
        if count == 0:  # HEAD, or an empty file
            finished(True)
            return
        self.sendfile_state = state = _SendfileState(fd, offset, count, finished)
        if self.transport.get_write_buffer_size():
            # The head (and earlier responses) must leave first: ask to be told when the buffer
            # is empty (resume_writing fires at low water = 0).
            state.waiting_for_drain = True
            self.transport.set_write_buffer_limits(high=0, low=0)
            if not self.write_paused:
                self.pause_writing()
        else:
            self._sendfile_step()

    def _sendfile_step(self):
        state = self.sendfile_state
        if state is None:
            return
        if state.out_fd is None:
            sock = self.transport.get_extra_info("socket")
            # A duplicate descriptor: the loop lets us watch it for writability without touching
            # the transport's own registration.
            state.out_fd = os.dup(sock.fileno())
        try:
            while state.count > 0:
                sent = os.sendfile(state.out_fd, state.fd, state.offset, min(state.count, 1 << 20))
                if sent == 0:
                    break  # the file is shorter than announced
                state.offset += sent
                state.count -= sent
        except (BlockingIOError, InterruptedError):
            if not state.watching:
                state.watching = True
                self.worker.loop.add_writer(state.out_fd, self._sendfile_step)
            return
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                self.log.warning("sendfile failed: %s", exc)
            self._end_sendfile(False)
            return
        self._end_sendfile(state.count == 0)

    def _end_sendfile(self, ok):
        state = self.sendfile_state
        self.sendfile_state = None
        if state.watching:
            self.worker.loop.remove_writer(state.out_fd)
        if state.out_fd is not None:
            os.close(state.out_fd)
        state.finished(ok)

    def _write_from_thread(self, data):
        if not self.closed:
            self._write_now(data)

    def _write_and_signal(self, data):
        if not self.closed:
            self._write_now(data)
        if self.closed or not self.write_paused:
            self.drained.set()

    def _cancel_sendfile(self):
        if self.sendfile_state is not None:
            self._end_sendfile(False)


class _SendfileState:
    __slots__ = ("fd", "offset", "count", "finished", "out_fd", "watching", "waiting_for_drain")

    def __init__(self, fd, offset, count, finished):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.finished = finished
        self.out_fd = None
        self.watching = False
        self.waiting_for_drain = False


class _ThreadWriter:
    """Writes from an app thread through the loop, with backpressure.

    Small writes are batched; every THREAD_WRITE_WINDOW bytes the thread waits until the loop has
    written them and the transport is below its high-water mark, so a thread streaming a large
    body holds at most about one window plus the transport's buffer in memory.
    """

    __slots__ = ("conn", "loop", "pending", "pending_size")

    def __init__(self, conn, loop):
        self.conn = conn
        self.loop = loop
        self.pending = []
        self.pending_size = 0

    def write(self, data):
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= THREAD_WRITE_WINDOW:
            self.flush(wait=True)

    def take(self):
        """The bytes not yet handed to the loop (None if there are none); the caller sends them."""
        pending = self.pending
        if not pending:
            return None
        self.pending = []
        self.pending_size = 0
        return b"".join(pending) if len(pending) > 1 else pending[0]

    def flush(self, wait=False):
        data = self.take()
        if data is None:
            return
        conn = self.conn
        if conn.closed:
            return
        if wait:
            conn.drained.clear()
            self.loop.call_soon_threadsafe(conn._write_and_signal, data)
            conn.drained.wait()
        else:
            self.loop.call_soon_threadsafe(conn._write_from_thread, data)


__all__ = ["Worker", "HttpConnection", "new_event_loop", "resident_memory"]
