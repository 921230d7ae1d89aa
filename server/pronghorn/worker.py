"""The worker process: one event loop that owns every connection of this worker.

Each accepted connection gets an `HttpConnection` (connection.py: parsing, dispatch in order,
the connection's phase and timeouts), each request an `Exchange` (exchange.py: the app call and
its body), and all writes go through the connection's `ResponseWriter` (writer.py: gathering,
backpressure, sendfile). This module is the loop around them: accepting, the once-a-second sweep,
signals and the worker's lifecycle. It reads its settings once, as a frozen `WorkerSettings`
(config.worker_settings).

Two dispatch models (settings.threads):

* ``threads == 1``: the app runs inline in the loop thread. It is the fastest (no hand-off) and, as with
  gunicorn's sync worker, the heartbeat stops while the app runs, so ``--timeout`` kills a stuck worker.
* ``threads > 1``: a pool of N threads runs the app (appthreads.py); the loop keeps reading,
  answering and timing out connections.

Slow clients never tie up the worker: a timer sweeps the connections once a second and closes those
past their deadline (see HttpConnection.check_timeouts). One sweep is cheaper than a timer per
request and is precise enough for second-granular limits.

Writes: the small responses of one pass of the loop are sent at its end (Worker.flush_soon: one
wake-up of the client per burst, not per response). The loop is uvloop when installed (measured
~3x the stdlib loop here), else asyncio; ``PRONGHORN_LOOP=asyncio`` forces it.

Accepting: every worker listens on the shared socket; with several workers, one that holds clearly
more than its share of connections pauses accepting for a moment (balance.py). ``worker_connections``
caps the connections of one worker (accepting pauses at the cap, resumes below 90%).

Lifecycle (the Worker class): TERM stops gracefully (stop accepting, finish what was received, close
idle connections once idle for STOPPING_GRACE, answering a request already on its way with
Connection: close, exit by graceful_timeout; a socket the loop accepted just before TERM is answered
too, see _stop_when_done, and an accept resume queued before TERM does not reopen the servers);
INT/QUIT exit at once; ABRT (sent by the arbiter to a stuck worker) runs the worker_abort hook and
exits; USR1 reopens the logs. The worker also leaves gracefully after max_requests (+ jitter), when
its parent changes, or above max_worker_memory.
"""

import asyncio
import os
import random
import signal
import sys
import time

from pronghorn import balance, malloc, metrics, tls, wsgi
from pronghorn.appthreads import AppThreads
from pronghorn.config import worker_settings
from pronghorn.connection import HttpConnection
from pronghorn.http.parser import Limits
from pronghorn.spool import SpoolBudget

try:
    import uvloop
except ImportError:  # pure-asyncio fallback (slower, same behaviour)
    uvloop = None

# Clears/restores asyncio's running loop around synchronous app code (one C call each).
_set_running_loop = asyncio.events._set_running_loop
# Reading /proc is cheap, but not needed every second.
MEMORY_CHECK_TICKS = 3
# Descriptors a worker needs beside its client connections: listeners, logs, the heartbeat,
# spooled request bodies, sendfile's duplicates, whatever the app opens.
SPARE_FDS = 256


class _NothingGathered:
    """Holds _flush_gathered's place in the loop's queue when only the running loop needs setting
    back (enter_app_context)."""

    batch = None


_NOTHING_GATHERED = _NothingGathered()


def new_event_loop():
    """uvloop when it is installed (faster: see bench numbers in the worker's report), else the
    stdlib loop. PRONGHORN_LOOP=asyncio forces the stdlib loop (to compare, or to rule uvloop out
    when chasing a bug)."""
    if uvloop is not None and os.environ.get("PRONGHORN_LOOP", "auto") != "asyncio":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


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
        self.tls_args = {}  # create_server's ssl arguments with --certfile (tls.py)
        self.tls_error = None
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
        # True while asyncio's running loop is cleared for inline app calls (connection.py),
        # until the end of the loop's pass (_flush_gathered).
        self.app_context = False
        self._read_settings(cfg)
        # Built here, in the master before the fork: the key may be readable by root only (as
        # /etc/ssl/private is), and each new worker reads renewed certificate files.
        try:
            self.tls_args = tls.server_args(cfg, self.settings.header_timeout)
        except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
            self.tls_error = str(exc)

    def __repr__(self):
        return "<Worker %s>" % self.pid

    def _read_settings(self, cfg):
        self.settings = settings = worker_settings(cfg)
        self.threads = settings.threads
        self.graceful_timeout = settings.graceful_timeout
        self.max_connections = settings.worker_connections
        if settings.max_requests > 0:
            jitter = settings.max_requests_jitter
            self.max_requests = settings.max_requests + (random.randint(0, jitter) if jitter > 0 else 0)
        else:
            self.max_requests = sys.maxsize
        self.max_memory = settings.max_worker_memory
        self.limits = Limits(
            request_line=settings.limit_request_line or 8190,
            fields=settings.limit_request_fields or 32768,
            field_size=parser_field_size(settings.limit_request_field_size),
            body=settings.limit_request_body,
        )
        self.spool_budget = SpoolBudget(settings.limit_request_body)
        # --metrics-bind: per-response counters, published once a second (metrics.py)
        self.metrics = metrics.WorkerMetrics() if settings.metrics else None
        self._publishes = settings.metrics or settings.request_timeout > 0
        self.timed = self._publishes  # (run() adds the access log's need)

    # --- lifecycle --------------------------------------------------------------------------

    def run(self):
        self.pid = os.getpid()
        self._raise_fd_limit()
        malloc.tune()  # request-sized buffers stay in the heap between requests (see malloc.py)
        if self.app is None:
            self._load_app()
        self.loop = loop = new_event_loop()
        asyncio.set_event_loop(loop)
        if self.threads > 1:
            self.app_threads = AppThreads(self.threads, self.log)
        multiprocess = self.settings.workers > 1
        self.environ = wsgi.base_environ(self.cfg, self.log, self.threads > 1, multiprocess)
        self.access_enabled = bool(getattr(self.log, "access_enabled", False))
        # Requests get a start time only when something reads it (one clock call less otherwise).
        self.timed = self.access_enabled or self._publishes
        bind_loop = getattr(self.log, "bind_loop", None)
        if bind_loop is not None:
            bind_loop(loop)  # statsd sends once per loop pass
        if self.tls_error is not None:
            self.log.error("worker %s cannot set up TLS (--certfile/--keyfile): %s", self.pid, self.tls_error)
            sys.exit(self.EXIT_BOOT_ERROR)
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

    def _raise_fd_limit(self):
        """Raise the soft RLIMIT_NOFILE to what worker_connections needs (up to the hard limit):
        the common soft default of 1024 would otherwise turn accepts into EMFILE long before
        worker_connections is reached. Logs why when it cannot."""
        try:
            import resource
        except ImportError:  # not a Unix: nothing to raise
            return
        need = self.max_connections + SPARE_FDS
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft >= need:
            return
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as exc:
                self.log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
                return
        if target < need:
            self.log.warning(
                "worker_connections %d needs about %d open files, but the hard limit is %d: "
                "raise it (ulimit -Hn, or LimitNOFILE= in the systemd unit)",
                self.max_connections, need, hard)

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
                self._protocol_factory, sock=sock, backlog=self.settings.backlog, **self.tls_args
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
        if self.heartbeat is not None and hasattr(self.heartbeat, "set_exit_reason"):
            self.heartbeat.set_exit_reason(why)  # the master counts restarts by cause
        self._stop_accepting()
        self._drain_backlog()
        # Connections between requests get a moment (STOPPING_GRACE, then the once-a-second
        # sweep closes them): a request may be on its way. Those idle for longer go now.
        self._tick_timeouts()
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

    def enter_app_context(self):
        """Synchronous app code runs next: asyncio must not report a running loop, or guards such
        as Django's async_unsafe refuse the ORM (SynchronousOnlyOperation). The loop is set back
        once at the end of this pass (_flush_gathered), not after each app call: each set is a
        C call that measured ~3% of hello world."""
        if not self.app_context:
            _set_running_loop(None)
            self.app_context = True
            if not self._to_flush:
                self._to_flush.append(_NOTHING_GATHERED)
                self.loop.call_soon(self._flush_gathered)

    def _flush_gathered(self):
        if self.app_context:  # inline apps ran in this pass: the loop is "running" again
            self.app_context = False
            _set_running_loop(self.loop)
        conns = self._to_flush
        self._to_flush = []
        for conn in conns:
            if conn.batch is not None:
                try:
                    conn.flush()
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
            await self.loop.connect_accepted_socket(self._protocol_factory, sock, **self.tls_args)
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
        self._tick_timeouts()
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

    def _tick_timeouts(self):
        now = time.monotonic()
        for conn in list(self.connections):
            conn.check_timeouts(now)

    def _notify(self):
        heartbeat = self.heartbeat
        if heartbeat is not None:
            heartbeat.notify()
            report = getattr(heartbeat, "report", None)  # (a test's stand-in may lack it)
            if report is not None:
                report(self.nr, len(self.connections))
                if self._publishes:
                    metrics.publish(self)

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
        if self._publishes and self.heartbeat is not None:
            metrics.publish(self)  # the last second's counts too, before the master reaps us
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


__all__ = ["Worker", "HttpConnection", "new_event_loop", "resident_memory"]
