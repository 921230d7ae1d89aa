"""One client connection: parse, dispatch in order, pace by the client, time out.

`HttpConnection` is the asyncio Protocol of one accepted socket. Bytes go into the sans-I/O parser;
every complete request becomes an `Exchange` (exchange.py), dispatched one at a time and in order,
so pipelined responses leave in request order. All writes go through the connection's
`ResponseWriter` (writer.py).

Where the connection is, is one explicit `Phase`; the timeout sweep (check_timeouts, once a second
from the worker) reads it:

    NEW --bytes--> IN_HEAD --head--> IN_BODY --body--> BUSY --response done--> IDLE / IN_HEAD ...
                                                        |  ^
                     client not reading, requests wait  v  |  transport drained
                                                      BLOCKED
    any --error, close, timeout--> CLOSING --transport gone--> CLOSED

Backpressure: while the writer is over its limit (the transport's buffer above its high-water
mark), no further request is dispatched (BLOCKED) and reading is paused, so a client that
pipelines requests and never reads holds at most about the high-water mark plus one response.
If it reads nothing for send_timeout it is dropped. Reading also pauses when too many requests
wait (MAX_QUEUED_REQUESTS / MAX_READ_AHEAD) while one is in the app.

PROXY protocol (--proxy-protocol v1/v2/auto): the first bytes of a connection go through a
`ProxyPrelude` (http/proxy_protocol.py) until it has decided; a header from a peer in
--proxy-allow-from rebuilds the connection's environ with the client's address, one from any
other peer is a 403, a malformed one a 400 (then the close). Without a header every byte is HTTP.
While it waits the connection is NEW, so --header-timeout bounds the wait. With the mode off,
`self.prelude` is None from the start and costs data_received one `is not None` check.
"""

import asyncio
import collections
import enum
import errno
import io
import time
import traceback

from pronghorn import wsgi
from pronghorn.exchange import Exchange
from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import BODY, HEAD, RequestParser
from pronghorn.http.parser import IDLE as IDLE_PARSER
from pronghorn.http.proxy_protocol import NEED_MORE, ProxyPrelude, ProxyProtocolError
from pronghorn.metrics import FIRST_BOUND as _FIRST_BOUND
from pronghorn.spool import ConnectionSpool
from pronghorn.writer import GATHER_LIMIT, ResponseWriter

__all__ = ["HttpConnection", "Phase"]


class Phase(enum.IntEnum):
    NEW = 0  # accepted, nothing received yet: header_timeout, silent close
    IDLE = 1  # keep-alive, between requests: keepalive, silent close
    IN_HEAD = 2  # part of a request head received: header_timeout, then 408
    IN_BODY = 3  # head complete, body arriving: body_timeout between bytes, then 408
    BUSY = 4  # a request is in the app or its response is being written: send_timeout if stalled
    BLOCKED = 5  # responses wait for the client to read: requests wait, reading paused; send_timeout
    CLOSING = 6  # answered and shutting down: discard input, close after a short linger
    CLOSED = 7  # the transport is gone


NEW, IDLE, IN_HEAD, IN_BODY, BUSY, BLOCKED, CLOSING, CLOSED = Phase

# How much a client may send ahead (pipelined requests) while a response is in progress.
MAX_QUEUED_REQUESTS = 32
MAX_READ_AHEAD = 256 * 1024
LINGER_SECONDS = 2.0
# While stopping, how long a connection between requests (just accepted, or idle after a response)
# may take to send its next one, which is then answered with Connection: close. A keep-alive client
# that just got a response often sends the next request at once (wrk, a proxy's pool): closing
# under it would lose that request (the client sees a reset; browsers retry idempotent ones only).
STOPPING_GRACE = 1.0

# A full disk or a used-up quota while spooling a body: 507 (RFC 4918 §11.5); any other OSError is a 500.
_NO_ROOM = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)

_BytesIO = io.BytesIO
_new = object.__new__
_monotonic = time.monotonic
# Clears asyncio's running loop for synchronous app code (see Worker.enter_app_context).
_set_running_loop = asyncio.events._set_running_loop


class _Sent:
    """What post_request hooks get as `resp`: the status, headers and body bytes sent."""

    __slots__ = ("status", "headers", "sent")

    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.headers
        self.sent = resp.sent


class HttpConnection(asyncio.Protocol):
    def __init__(self, worker):
        self.worker = worker
        self.settings = settings = worker.settings
        self.inline = settings.threads == 1  # the app runs in the loop thread
        self.post_request = settings.post_request
        self.app = worker.app
        self.log = worker.log
        self.parser = RequestParser(worker.limits)
        self.spool = ConnectionSpool(worker.spool_budget, worker.limits.spool)
        self.transport = None
        self.writer = None
        self.queue = collections.deque()  # requests (and a final HTTPError) waiting their turn
        self.phase = NEW
        self.since = time.monotonic()  # when the current phase's timeout started counting
        self.exchange = None  # the request in progress past its app call (body, sendfile, thread)
        self.read_paused = False
        self.peer_eof = False
        self.prelude = None  # the PROXY protocol header still being read (see connection_made)

    @property
    def closed(self):
        return self.phase is CLOSED

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        worker = self.worker
        self.writer = ResponseWriter(transport, worker.loop, self.log, worker.flush_soon)
        peer = transport.get_extra_info("peername")
        # (Whether the peer is a trusted proxy travels in this environ: see environ.py.)
        self.env = wsgi.connection_environ(worker.environ, peer, transport.get_extra_info("sockname"))
        mode = self.settings.proxy_protocol
        if mode != "off":
            self.prelude = ProxyPrelude(mode, worker.environ.proxy.may_send_proxy_protocol(peer))
        worker.connection_opened(self)

    def connection_lost(self, exc):
        self.phase = CLOSED
        self.writer.connection_lost()
        exchange = self.exchange
        if exchange is not None and exchange.abandon():
            self._release(exchange)  # (a thread or a sendfile releases its own when it ends)
        self._drop_queue()
        self.spool.abandon()
        self.worker.connection_closed(self)

    def pause_writing(self):
        self.writer.pause()

    def resume_writing(self):
        if self.writer.resume():
            return  # a sendfile was waiting for the buffer to drain: it runs now
        exchange = self.exchange
        if exchange is not None and exchange.it is not None:
            self.worker.enter_app_context()  # the app's iterable runs: a synchronous context
            if exchange.pump():
                self.resume_queue()
        elif self.phase is BLOCKED:
            self.phase = IDLE
            self.resume_queue()

    def data_received(self, data):
        phase = self.phase
        if phase >= CLOSING:
            return
        if self.prelude is not None:
            data = self._proxy_prelude(data)
            if not data:
                return
        parser = self.parser
        if parser.state is BODY and not self.spool.receiving(len(data)):
            self._refuse_body()
            return
        try:
            requests = parser.feed(data)
        except HTTPError as exc:
            # Requests completed before the bad bytes are answered first, in order.
            if exc.requests:
                if self.spool.seen:
                    self.spool.completed(exc.requests)
                self.queue.extend(exc.requests)
            requests = None
            self.queue.append(exc)
        except OSError as exc:
            # Spooling a large body to disk failed (a full disk, a quota: 507; anything else: 500):
            # this request cannot be served, the worker and its other connections can.
            self.log.error("cannot store a request body: %s", exc)
            requests = None
            if exc.errno in _NO_ROOM:
                self.queue.append(HTTPError(507, "no room on the server's disk for the request body"))
            else:
                self.queue.append(HTTPError(500, "cannot store the request body"))
        if requests:
            if self.spool.seen:
                self.spool.completed(requests)
            writer = self.writer
            if (len(requests) == 1 and phase < BUSY and self.inline and not self.queue
                    and not writer.paused):
                # The common case (one request, nothing pending, inline app): no queue round trip.
                if writer.batch is None:
                    writer.gather_until_end_of_pass()
                self._run_inline(requests[0])
                if self.phase < BUSY:
                    self._between_requests()
                return
            self.queue.extend(requests)
        if phase is BUSY or phase is BLOCKED:
            if (phase is BLOCKED or len(self.queue) > MAX_QUEUED_REQUESTS
                    or parser.buffered > MAX_READ_AHEAD):
                self._pause_reading()
        elif self.queue:
            self.process_queue()
        else:
            self._update_waiting_phase()

    def _proxy_prelude(self, data):
        """The first bytes of a connection while --proxy-protocol is on: the HTTP bytes that follow
        the PROXY header (all of them when there is none), or None while it is still incomplete or
        after it was refused (answered 400 or 403, then the close)."""
        try:
            result = self.prelude.feed(data)
        except ProxyProtocolError as exc:
            self.prelude = None
            self.log.info("refusing a PROXY protocol header from %s: %s",
                          self.env.get("REMOTE_ADDR") or "a unix socket peer", exc.reason)
            self._send_error(exc.status, exc.reason)
            return None
        if result is NEED_MORE:
            return None  # still NEW: header_timeout bounds the wait
        self.prelude = None
        header, data = result
        if header is not None:
            transport = self.transport
            self.env = wsgi.connection_environ(self.worker.environ, transport.get_extra_info("peername"),
                                               transport.get_extra_info("sockname"), header)
        return data

    def _refuse_body(self):
        """The worker's budget for spooled bodies is used up (spool.py): this body is refused,
        after the responses due before it; nothing more is read from this connection."""
        queue = self.queue
        if queue and type(queue[-1]) is HTTPError:
            return  # refused already: the error waits its turn
        self.log.warning("refusing a request body: the worker's spool budget (%d MiB) is used up",
                         self.spool.budget.limit >> 20)
        self._pause_reading()
        queue.append(HTTPError(503, "too many large request bodies at once: try again later"))
        if self.phase < BUSY:
            self.process_queue()

    def eof_received(self):
        self.peer_eof = True
        if self.writer.batch is not None:
            self.writer.flush()  # before the transport may close (returning False below)
        try:
            self.parser.feed_eof()
        except HTTPError as exc:
            # The client half-closed mid-request. It may still be reading: it is owed the 400
            # (after the responses due before it), then the close.
            if self.phase < CLOSING:
                self.queue.append(exc)
        if self.queue and self.phase < BUSY:
            self.process_queue()
        # Keep the transport open for writing when responses are still due (half-close).
        return self.phase is BUSY or self.phase is BLOCKED or bool(self.queue)

    # --- dispatch ----------------------------------------------------------------------------

    def process_queue(self):
        """Dispatch queued requests in order until one is in progress, the client falls behind
        reading the responses, or none are left."""
        queue = self.queue
        writer = self.writer
        threaded = self.worker.threads > 1
        if not threaded and writer.batch is None:
            writer.gather_until_end_of_pass()
        while queue and self.phase < BUSY:
            if writer.over_limit():
                # The client does not read what is due: no more responses until it does
                # (resume_writing), and no more requests read meanwhile.
                self.phase = BLOCKED
                self.since = time.monotonic()
                self._pause_reading()
                return
            item = queue.popleft()
            if isinstance(item, HTTPError):
                self._send_error(item.status, item.reason)
                return
            if threaded:
                self._dispatch_threaded(item)
            else:
                self._run_inline(item)
        if self.phase < BUSY:
            self._between_requests()

    def resume_queue(self):
        """After a response finished asynchronously (body pump, thread, sendfile): carry on."""
        if self.phase < BUSY:
            self.process_queue()

    def _keep_alive(self, req):
        # While stopping, still answer requests already received, but close after the last one.
        return req.keep_alive and (self.worker.alive or bool(self.queue))

    def _new_exchange(self, req):
        """The request's Exchange, or None when its environ cannot be built (conflicting proxy
        headers from a trusted peer, see proxy_trust.py): then it is answered with the error."""
        try:
            env = wsgi.request_environ(self.env, req)
        except HTTPError as exc:
            self._refuse_request(req, exc)
            return None
        self.phase = BUSY
        worker = self.worker
        exchange = Exchange(self, req, env, time.monotonic() if worker.timed else 0.0)
        self.exchange = exchange
        return exchange

    def _refuse_request(self, req, exc):
        self.spool.release(req)
        self._send_error(exc.status, exc.reason)

    def _run_inline(self, req):
        # _new_exchange spelled out: this is the hot path, and a call less is measurable.
        worker = self.worker
        try:
            env = wsgi.request_environ(self.env, req)
        except HTTPError as exc:
            self._refuse_request(req, exc)
            return
        self.phase = BUSY
        # Exchange(self, req, env, started) spelled out: its __init__ frame measured ~1.5% of a
        # hello-world request.
        self.exchange = exchange = _new(Exchange)
        exchange.conn = self
        exchange.req = req
        exchange.env = env
        exchange.started = _monotonic() if worker.timed else 0.0
        exchange.it = None
        if not worker.app_context:
            # Worker.enter_app_context spelled out (the hot path): the callers gathered, so the
            # end-of-pass callback that sets the loop back is queued already.
            _set_running_loop(None)
            worker.app_context = True
        exchange.run_inline(req.keep_alive and (worker.alive or bool(self.queue)))

    def _dispatch_threaded(self, req):
        exchange = self._new_exchange(req)
        if exchange is None:
            return
        self.writer.thread_event()  # created here, in the loop, before the thread can wait on it
        self.worker.app_threads.submit(exchange.run_in_thread, self._keep_alive(req))

    def thread_response_done(self, exchange, data, keep):
        """In the loop: an app thread finished its response; data is its last unsent bytes."""
        if data is not None and self.phase is not CLOSED:
            self.writer.write(data)
        self.response_done(exchange, keep)
        self.resume_queue()

    def response_done(self, exchange, keep):
        # (On the hot path: a call less here is measurable on hello world.)
        worker = self.worker
        resp = exchange.resp
        writer = self.writer
        if writer.batch is not None:
            # Pipelined responses meet the transport's flow control past GATHER_LIMIT.
            writer.gathered += resp.sent
            if writer.gathered > GATHER_LIMIT:
                writer.flush()
        if worker.access_enabled:
            try:
                self.log.access(exchange.env, resp.status, resp.headers, resp.sent, exchange.elapsed())
            except Exception:
                self.log.exception("access log failed")
        metrics = worker.metrics
        if metrics is not None:
            # WorkerMetrics.observe spelled out: the hot path (see there)
            elapsed = _monotonic() - exchange.started
            if elapsed <= _FIRST_BOUND:
                metrics.fast[resp.code] += 1
            else:
                metrics.slow(resp.code, elapsed)
            metrics.latency_sum += elapsed
        post_request = self.post_request
        if post_request is not None:
            self.call_hook(post_request, worker, exchange.req, exchange.env, _Sent(resp))
        body = exchange.req.body
        if type(body) is not _BytesIO and body is not None:
            self.spool.release(exchange.req)  # a temp file: closed now, not when garbage collected
        self.exchange = None
        worker.nr += 1
        if worker.nr >= worker.max_requests:
            worker.request_done_limit()
        if self.phase is BUSY:
            self.phase = IDLE  # (refined by _between_requests)
        if not keep:
            self._close_after_response()

    def response_cut_short(self, exchange):
        """A sendfile that could not finish: the response is incomplete, the only signal is a close."""
        self._release(exchange)
        self.close_quietly()

    def _release(self, exchange):
        self.spool.release(exchange.req)  # a spooled temp file: closed now, not when garbage collected
        if self.exchange is exchange:
            self.exchange = None
        self.worker.request_done()

    def call_hook(self, hook, *args):
        try:
            hook(*args)
        except Exception:
            self.log.exception("%s hook failed", getattr(hook, "__name__", "request"))

    def app_failed(self, exchange, exc):
        req, resp = exchange.req, exchange.resp
        if isinstance(exc, wsgi.ResponseError):
            self.log.error("bad response from the app for %s %s: %s", req.method, req.target, exc)
        else:
            # Formatted here: in threaded mode this runs in the loop, away from the exception.
            self.log.error("error handling %s %s\n%s", req.method, req.target,
                           "".join(traceback.format_exception(exc)).rstrip())
        if self.phase is BUSY:
            self.phase = IDLE
        if not resp.headers_sent and self.phase is not CLOSED:
            self.writer.write(wsgi.error_response(500, ""))
            self.phase = CLOSING
            self._linger_close()
        else:
            # Headers are out: the only honest signal left is an incomplete response.
            self.close_quietly()
        if self.worker.metrics is not None:
            self.worker.metrics.observe(resp.code if resp.headers_sent else 500, exchange.started)
        if self.worker.access_enabled:
            status = resp.status if resp.headers_sent else "500 Internal Server Error"
            try:
                self.log.access(exchange.env, status, resp.headers or [], resp.sent, exchange.elapsed())
            except Exception:
                self.log.exception("access log failed")
        self._release(exchange)

    # --- between requests --------------------------------------------------------------------

    def _between_requests(self):
        if self.peer_eof:
            self.close_quietly()
            return
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.parser.state is IDLE_PARSER and self.worker.alive:
            # The common case of _update_waiting_phase, spelled out (the hot path): keep-alive.
            self.phase = IDLE
            self.since = time.monotonic()
            return
        self._update_waiting_phase()

    def _update_waiting_phase(self):
        """Between requests: which timeout applies now, and a 100 Continue if the client waits."""
        state = self.parser.state
        now = time.monotonic()
        if state == HEAD:
            if self.phase is not IN_HEAD and self.phase is not NEW:
                self.since = now
            self.phase = IN_HEAD
        elif state == BODY:
            if self.parser.expect_continue:
                self.writer.write(wsgi.CONTINUE)  # after the previous response
                self.parser.continue_sent()
            self.phase = IN_BODY
            self.since = now
        elif self.phase is not NEW:
            if not self.worker.alive:
                self.close_quietly()
                return
            self.phase = IDLE
            self.since = now

    def _pause_reading(self):
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    # --- closing -----------------------------------------------------------------------------

    def _send_error(self, status, reason):
        """Answer a request the parser refused, then close (never reading what follows)."""
        if status >= 500 and status != 501 and status != 505:
            self.log.error("request refused: %s %s", status, reason)
        else:
            self.log.debug("request refused: %s %s", status, reason)
        self.writer.write(wsgi.error_response(status, reason))
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
        if self.writer.batch is not None:
            self.writer.flush()
        self.since = time.monotonic()
        self._drop_queue()
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

    def _drop_queue(self):
        """Requests that will not be answered: their spooled bodies go now."""
        for item in self.queue:
            if type(item) is not HTTPError:
                self.spool.release(item)
        self.queue.clear()

    def close_quietly(self):
        if self.writer is not None and self.writer.batch is not None:
            self.writer.flush()
        if self.phase is CLOSED or self.transport is None:
            return
        self.phase = CLOSING
        self.transport.close()

    def abort(self):
        if self.transport is not None and self.phase is not CLOSED:
            self.transport.abort()

    # --- timeouts ----------------------------------------------------------------------------

    def check_timeouts(self, now):
        phase = self.phase
        settings = self.settings
        if phase is BUSY or phase is BLOCKED:
            # A client that stops reading its responses must not hold the connection (and the
            # responses due to it) forever.
            if self.writer.stalled_for(now) > settings.send_timeout:
                self.log.info("closing a connection whose client read nothing for %ss (send_timeout)",
                              settings.send_timeout)
                self.abort()
        elif phase is IDLE:
            if now - self.since > settings.keepalive or (
                    not self.worker.alive and now - self.since > STOPPING_GRACE):
                self.close_quietly()  # (stopping: an idle client gets no more time)
        elif phase is NEW:
            if not self.worker.alive and now - self.since > STOPPING_GRACE:
                self.close_quietly()  # stopping: a connection that sent nothing gets no more time
            elif now - self.since > settings.header_timeout:
                if self.parser.state == HEAD:
                    self._timed_out("request head not received within header_timeout")
                else:
                    self.close_quietly()
        elif phase is IN_HEAD:
            if now - self.since > settings.header_timeout:
                self._timed_out("request head not received within header_timeout")
        elif phase is IN_BODY:
            if now - self.since > settings.body_timeout:
                self._timed_out("no request body bytes within body_timeout")
        elif phase is CLOSING:
            if now - self.since > LINGER_SECONDS:
                self.abort()

    def _timed_out(self, why):
        self.log.debug("408 to %s: %s", self.env.get("REMOTE_ADDR"), why)
        self._send_error(408, why)
