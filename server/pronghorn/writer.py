"""The write side of one connection: gathering, backpressure and sendfile.

`ResponseWriter` is the only thing that writes to a connection's transport. It keeps three things:

* **Gathering.** The inline responses of one pass of the event loop collect in ``batch`` and leave in
  one send at the end of the pass (Worker.flush_soon): clients are woken once per burst. Every
  direct write flushes the batch first, so bytes leave in the order they were produced.
* **Backpressure.** The transport tells the connection when its buffer passes the high-water mark
  (pause_writing) and when it drained (resume_writing); ``paused`` and ``paused_since`` record it.
  The connection stops dispatching requests while ``over_limit()``, so one connection holds at most
  about the high-water mark plus one response (plus GATHER_LIMIT of gathered bodies) unsent,
  whatever its client pipelines. App threads wait on ``drained`` (see ThreadWriter).
* **sendfile.** A ``wsgi.file_wrapper`` around a real file goes out with ``os.sendfile`` on a
  duplicate of the socket's descriptor, watched for writability by the loop, once everything
  written before it has left the transport's buffer.
"""

import errno
import os
import threading
import time

__all__ = ["ResponseWriter", "ThreadWriter", "GATHER_LIMIT", "THREAD_WRITE_WINDOW"]

# Body bytes gathered in one pass before they go to the transport: past this the transport's flow
# control (pause_writing) paces the app's iterator and the dispatch of pipelined requests.
GATHER_LIMIT = 64 * 1024
# A threaded response waits for the loop once it has handed it this many bytes.
THREAD_WRITE_WINDOW = 256 * 1024
# sendfile's chunk: large enough to be cheap, small enough not to hog the loop on a fast client.
SENDFILE_CHUNK = 1 << 20


class ResponseWriter:
    __slots__ = ("transport", "loop", "log", "flush_soon", "batch", "gathered", "paused",
                 "paused_since", "closed", "drained", "sendfile")

    def __init__(self, transport, loop, log, flush_soon):
        self.transport = transport
        self.loop = loop
        self.log = log
        self.flush_soon = flush_soon  # Worker.flush_soon: flush(self) at the end of the loop's pass
        # Responses gathered until the end of the loop's pass: None when nothing is held.
        self.batch = None
        self.gathered = 0  # body bytes in the batch
        self.paused = False  # the transport's buffer is above its high-water mark
        self.paused_since = 0.0
        self.closed = False  # the connection is lost: nothing more is written
        self.drained = None  # threading.Event for app threads (threaded mode only)
        self.sendfile = None  # the _Sendfile in progress

    # --- gathering ---------------------------------------------------------------------------

    def gather_until_end_of_pass(self):
        """From now on responses collect in the batch; they leave in one send at the end of the
        loop's pass (several responses when requests are pipelined)."""
        self.batch = []
        self.flush_soon(self)

    def gather(self, data):
        """Body bytes of an iterated response: gathered up to GATHER_LIMIT, then written, so the
        transport's flow control paces a large body."""
        batch = self.batch
        if batch is None:
            self.transport.write(data)
            return
        batch.append(data)
        self.gathered += len(data)
        if self.gathered > GATHER_LIMIT:
            self.flush()

    def write(self, data):
        """A direct write: what was gathered goes first, to keep the order."""
        if self.batch is not None:
            self.flush()
        self.transport.write(data)

    def flush(self):
        """Send the gathered responses; from here on responses are written directly again."""
        batch = self.batch
        self.batch = None
        self.gathered = 0
        # A transport aborted meanwhile (a timeout, a reset seen by the loop) takes no writes.
        if batch and not self.closed and not self.transport.is_closing():
            self.transport.write(b"".join(batch))

    def abort(self):
        if not self.closed:
            self.transport.abort()

    # --- backpressure ------------------------------------------------------------------------

    def over_limit(self):
        """True while the client is not keeping up: no more responses should be produced."""
        return self.paused

    def pause(self):
        self.paused = True
        self.paused_since = time.monotonic()
        if self.drained is not None:
            self.drained.clear()

    def resume(self):
        """The transport drained. True when a sendfile was waiting for it (and now runs)."""
        self.paused = False
        if self.drained is not None:
            self.drained.set()
        state = self.sendfile
        if state is not None and state.waiting_for_drain:
            state.waiting_for_drain = False
            self.transport.set_write_buffer_limits()
            self._sendfile_step()
            return True
        return False

    def stalled_for(self, now):
        """Seconds the client has read nothing of what is due (0 when it keeps up)."""
        return now - self.paused_since if self.paused else 0.0

    def connection_lost(self):
        self.closed = True
        if self.drained is not None:
            self.drained.set()  # a thread waiting to write must not wait forever
        if self.sendfile is not None:
            self._end_sendfile(False)

    # --- writes from app threads -------------------------------------------------------------

    def thread_event(self):
        """The Event app threads wait on: set while the transport is below its high-water mark."""
        if self.drained is None:
            self.drained = threading.Event()
            if not self.paused:
                self.drained.set()
        return self.drained

    def write_from_thread(self, data):
        if not self.closed:
            self.write(data)

    def write_and_signal(self, data):
        if not self.closed:
            self.write(data)
        if self.closed or not self.paused:
            self.drained.set()

    # --- sendfile ----------------------------------------------------------------------------

    def start_sendfile(self, fd, offset, count, finished):
        """Send count bytes of fd from offset, after what is buffered; finished(ok) at the end."""
        if self.closed:
            finished(False)
            return
        if count == 0:  # HEAD, or an empty file
            finished(True)
            return
        self.sendfile = state = _Sendfile(fd, offset, count, finished)
        if self.transport.get_write_buffer_size():
            # The head (and earlier responses) must leave first: ask to be told when the buffer
            # is empty (resume_writing fires at low water = 0).
            state.waiting_for_drain = True
            self.transport.set_write_buffer_limits(high=0, low=0)
            if not self.paused:
                self.pause()
        else:
            self._sendfile_step()

    def _sendfile_step(self):
        state = self.sendfile
        if state is None:
            return
        if state.out_fd is None:
            # A duplicate descriptor: the loop lets us watch it for writability without touching
            # the transport's own registration.
            state.out_fd = os.dup(self.transport.get_extra_info("socket").fileno())
        before = state.count
        try:
            while state.count > 0:
                sent = os.sendfile(state.out_fd, state.fd, state.offset, min(state.count, SENDFILE_CHUNK))
                if sent == 0:
                    break  # the file is shorter than announced
                state.offset += sent
                state.count -= sent
        except (BlockingIOError, InterruptedError):
            if not state.watching:
                state.watching = True
                self.loop.add_writer(state.out_fd, self._sendfile_step)
            # The client is not keeping up: the send timeout counts from its last progress, as
            # for a paused transport (a sendfile never fills the transport's buffer).
            if not self.paused or state.count != before:
                self.paused_since = time.monotonic()
                self.paused = True
            return
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                self.log.warning("sendfile failed: %s", exc)
            self._end_sendfile(False)
            return
        self._end_sendfile(state.count == 0)

    def _end_sendfile(self, ok):
        state = self.sendfile
        self.sendfile = None
        if state.watching:
            self.loop.remove_writer(state.out_fd)
            self.paused = False  # (set by the step above, not by the transport)
        if state.out_fd is not None:
            os.close(state.out_fd)
        state.finished(ok)


class _Sendfile:
    __slots__ = ("fd", "offset", "count", "finished", "out_fd", "watching", "waiting_for_drain")

    def __init__(self, fd, offset, count, finished):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.finished = finished
        self.out_fd = None
        self.watching = False
        self.waiting_for_drain = False


class ThreadWriter:
    """Writes from an app thread through the loop, with backpressure.

    Small writes are batched; every THREAD_WRITE_WINDOW bytes the thread waits until the loop has
    written them and the transport is below its high-water mark, so a thread streaming a large
    body holds at most about one window plus the transport's buffer in memory.
    """

    __slots__ = ("writer", "loop", "pending", "pending_size")

    def __init__(self, writer, loop):
        self.writer = writer
        self.loop = loop
        self.pending = []
        self.pending_size = 0
        writer.thread_event()

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
        writer = self.writer
        if writer.closed:
            return
        if wait:
            writer.drained.clear()
            self.loop.call_soon_threadsafe(writer.write_and_signal, data)
            writer.drained.wait()
        else:
            self.loop.call_soon_threadsafe(writer.write_from_thread, data)
