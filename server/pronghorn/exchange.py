"""One request and its response: the app call, the body iteration, sendfile, inline or in a thread.

An `Exchange` is made per request by the connection (connection.py). It holds the request, its
environ, the `wsgi.Response` being framed, and the app's body iterator while the body is still
being sent. It reports back to the connection exactly once: ``conn.response_done(exchange, keep)``
when the response is complete, or ``conn.app_failed(exchange, exc)`` when the app failed.

Inline (``--threads 1``): the app runs in the loop thread. The body iteration is resumable: when the
transport's buffer is full (the writer is paused) the exchange stops pulling chunks and
``pump()`` is called again when it drains, so a large streamed body never balloons memory.

In a thread (``--threads N``): the app runs in an app thread and writes through a ThreadWriter,
which waits for the loop whenever the client has not kept up; the end of the response is handed
to the loop with one call_soon_threadsafe (each one wakes the loop).
"""

import threading
import time

from pronghorn import wsgi
from pronghorn.filewrapper import FileWrapper
from pronghorn.writer import ThreadWriter

__all__ = ["Exchange"]


class Exchange:
    __slots__ = ("conn", "req", "env", "resp", "started", "result", "it", "starting")

    def __init__(self, conn, req, env, started):
        # Only what every request needs is set here; connection._run_inline sets the same five
        # without this call (the hot path): keep the two in step. resp is set by run_*, result
        # (the app's iterable) and starting (inside _try_sendfile: a sendfile that ends at once
        # must not recurse) only where they are used.
        self.conn = conn
        self.req = req
        self.env = env
        self.started = started  # monotonic start time, when the access log needs it (else 0)
        self.it = None  # the body iterator while an inline body is being pumped

    # --- inline ------------------------------------------------------------------------------

    def run_inline(self, keep_alive):
        """Call the app in the loop thread. Returns when the response is complete, or when its body
        waits for the client (pump() carries on) or goes out with sendfile."""
        conn = self.conn
        writer = conn.writer
        req = self.req
        batch = writer.batch  # gathering (writer.out(), spelled out: this is the hot path)
        self.resp = resp = wsgi.Response(writer.transport.write if batch is None else batch.append,
                                         conn.log, req.version, req.method == "HEAD", keep_alive)
        pre_request = conn.settings.pre_request
        if pre_request is not None:
            conn.call_hook(pre_request, conn.worker, req)
        try:
            result = conn.app(self.env, resp.start_response)
        except Exception as exc:
            conn.app_failed(self, exc)
            return
        try:
            if type(result) is list and len(result) == 1 and resp.status is not None:
                keep = resp.finish_single(result[0])
            else:
                if writer.batch is not None:
                    # An iterated body (what Flask, Django and Bottle return): gathered too while
                    # it stays small, then handed to the transport's flow control.
                    resp.out = writer.gather
                self.result = result
                if type(result) is FileWrapper and self._try_sendfile(result):
                    return
                self.it = iter(result)
                self.pump()
                return
        except Exception as exc:
            self.it = None
            wsgi.close_iterable(result, conn.log)
            conn.app_failed(self, exc)
            return
        wsgi.close_iterable(result, conn.log)
        conn.response_done(self, keep)

    def pump(self):
        """Send body chunks until the body ends or the client stops keeping up. True when the
        exchange is over (done or failed), False while it waits for the transport to drain."""
        conn = self.conn
        writer = conn.writer
        resp = self.resp
        send = resp.send_body_chunk
        try:
            for chunk in self.it:
                send(chunk)
                if writer.paused or writer.closed:
                    if writer.closed:
                        break
                    return False  # the connection's resume_writing calls pump() again
            keep = resp.finish() if not writer.closed else False
        except Exception as exc:
            self.it = None
            wsgi.close_iterable(self.result, conn.log)
            conn.app_failed(self, exc)
            return True
        self.it = None
        wsgi.close_iterable(self.result, conn.log)
        conn.response_done(self, keep)
        return True

    def abandon(self):
        """The client left mid-body: the app's iterable is still owed its close() (it may hold a
        database cursor or a file). True when this ends the exchange (an inline body was being
        pumped); a thread or a sendfile in progress ends it itself."""
        if self.it is None:
            return False
        self.it = None
        wsgi.close_iterable(self.result, self.conn.log)
        return True

    def _sendfile_possible(self):
        return self.conn.settings.sendfile and self.resp.status is not None

    def _try_sendfile(self, wrapper):
        """Send a FileWrapper'd real file with os.sendfile. False to iterate it instead."""
        if not self._sendfile_possible():
            return False
        source = wrapper.sendfile_source()
        if source is None:
            return False
        fd, offset, size = source
        head, count = self.resp.sendfile_head(size)
        conn = self.conn
        conn.writer.write(head)  # after what was gathered, so the drain check sees it all
        self.starting = True
        conn.writer.start_sendfile(fd, offset, count, self._sendfile_finished)
        self.starting = False
        return True

    def _sendfile_finished(self, ok):
        conn = self.conn
        wsgi.close_iterable(self.result, conn.log)
        if not ok:
            conn.response_cut_short(self)
            return
        conn.response_done(self, self.resp.finish())
        if not self.starting:  # finished later, from the loop: carry on with the queue
            conn.resume_queue()

    # --- in an app thread --------------------------------------------------------------------

    def run_in_thread(self, keep_alive):
        conn = self.conn
        loop = conn.worker.loop
        out = ThreadWriter(conn.writer, loop)
        req = self.req
        self.resp = resp = wsgi.Response(out.write, conn.log, req.version, req.method == "HEAD",
                                         keep_alive)
        if conn.settings.pre_request is not None:
            conn.call_hook(conn.settings.pre_request, conn.worker, req)
        result = None
        try:
            result = conn.app(self.env, resp.start_response)
            if type(result) is list and len(result) == 1 and resp.status is not None:
                keep = resp.finish_single(result[0])
            elif (type(result) is FileWrapper and self._sendfile_possible()
                  and result.sendfile_source() is not None):
                keep = self._threaded_sendfile(out, result)
            else:
                writer = conn.writer
                for chunk in result:
                    resp.send_body_chunk(chunk)
                    if writer.closed:
                        break
                keep = resp.finish() if not writer.closed else False
        except Exception as exc:
            if result is not None:
                wsgi.close_iterable(result, conn.log)
            out.flush()  # what was sent before the failure still goes out, then the close
            loop.call_soon_threadsafe(conn.app_failed, self, exc)
            return
        wsgi.close_iterable(result, conn.log)
        # One hand-back to the loop per response: the last bytes travel with the "done" call.
        loop.call_soon_threadsafe(conn.thread_response_done, self, out.take(), keep)

    def _threaded_sendfile(self, out, wrapper):
        fd, offset, size = wrapper.sendfile_source()
        head, count = self.resp.sendfile_head(size)
        out.write(head)
        out.flush()
        done = threading.Event()
        outcome = []

        def finished(ok):
            outcome.append(ok)
            done.set()

        self.conn.worker.loop.call_soon_threadsafe(self.conn.writer.start_sendfile, fd, offset, count,
                                                   finished)
        done.wait()
        if not outcome or not outcome[0]:
            return False
        return self.resp.finish()

    def elapsed(self):
        return time.monotonic() - self.started
