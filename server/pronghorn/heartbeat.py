"""A cheap heartbeat from a worker to the arbiter, across the fork.

The arbiter must notice a worker that is stuck (an app call that never returns, a busy loop)
and kill it after ``--timeout`` seconds. The worker proves it is alive by calling
``notify()`` from its event loop at least once a second; the arbiter reads ``last_update()``.

How: a small shared memory map (one 8-byte double, the ``time.monotonic()`` of the last
beat) created by the arbiter *before* the fork, so parent and child see the same page.
``notify()`` is a single ``struct.pack_into`` - no system call at all, which is cheaper than
gunicorn's ``fchmod`` on a temp file. The map is anonymous (``MAP_SHARED``), so nothing is
left on disk; when ``cfg.worker_tmp_dir`` is given we back it by an unlinked file in that
directory instead (some hardened hosts prefer memory they can account per directory), which
behaves the same.

``time.monotonic()`` on Linux is CLOCK_MONOTONIC, shared by all processes of the machine, so
the values written by the worker compare directly with the arbiter's clock.

The same page carries what the worker publishes once a second for the master to read: its
request and connection counts (--stats-file, ``pronghorn ctl``), its oldest request in progress
once past --request-timeout (start time and request line), why it is leaving (max-requests, memory:
the restart cause in the metrics) and its metrics counters (metrics.py owns that area's layout).
Each field is written by the worker only and read by the master only: no lock is needed, a
reader at worst sees a value one second old.
"""

import mmap
import os
import struct
import tempfile
import time

__all__ = ["Heartbeat"]

_SLOT = struct.Struct("d")
# After the beat: requests served and connections open, written by the worker once a second
# (for --stats-file); the master only reads them.
_COUNTERS = struct.Struct("qq")
_COUNTERS_AT = _SLOT.size
# The oldest request in progress, once past --request-timeout: its monotonic start (0: none) and
# its request line.
_OLDEST = struct.Struct("d200p")
_OLDEST_AT = _COUNTERS_AT + _COUNTERS.size
# Why the worker is leaving on its own (EXIT_REASONS), 0 while it serves.
_REASON = struct.Struct("q")
_REASON_AT = _OLDEST_AT + _OLDEST.size
METRICS_AT = 512  # metrics.py's counters from here to the end of the page
_MAP_SIZE = mmap.PAGESIZE
EXIT_REASONS = {"max_requests": 1, "max_worker_memory": 2}


class Heartbeat:
    """One worker's heartbeat slot. Made by the arbiter, inherited by the worker's fork."""

    def __init__(self, tmp_dir=None):
        self._fd = None
        if tmp_dir:
            self._fd = self._make_unlinked_file(tmp_dir)
            self._map = mmap.mmap(self._fd, _MAP_SIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        else:
            self._map = mmap.mmap(-1, _MAP_SIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        self._wake_fd = None
        self.notify()

    def wake_master_on_first_beat(self, fd):
        """In the worker: write one byte to ``fd`` (the arbiter's wake-up pipe) at the first beat
        after this call, so the arbiter sees the worker serving at once instead of at its next
        loop tick (a Type=notify unit's READY=1 waits for that)."""
        self._wake_fd = fd

    def _wake_master(self):
        fd, self._wake_fd = self._wake_fd, None
        try:
            os.write(fd, b"!")
        except OSError:
            pass  # the pipe is full (the arbiter is waking anyway) or gone
        finally:
            os.close(fd)

    @staticmethod
    def _make_unlinked_file(tmp_dir):
        try:
            fd, path = tempfile.mkstemp(prefix="pronghorn-hb-", dir=tmp_dir)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the worker heartbeat file in "
                          f"--worker-tmp-dir {tmp_dir!r}: {exc.strerror} (check that the "
                          f"directory exists and is writable, or leave --worker-tmp-dir unset)")
        os.unlink(path)
        os.ftruncate(fd, _MAP_SIZE)
        return fd

    def notify(self):
        """Called by the worker: "I am alive now"."""
        _SLOT.pack_into(self._map, 0, time.monotonic())
        if self._wake_fd is not None:
            self._wake_master()

    def report(self, requests, connections):
        """Called by the worker (once a second): its counters, for the master's stats file."""
        _COUNTERS.pack_into(self._map, _COUNTERS_AT, requests, connections)

    def counters(self):
        """Called by the master: (requests served, connections open) as last reported."""
        return _COUNTERS.unpack_from(self._map, _COUNTERS_AT)

    def report_oldest_request(self, started, line):
        """Called by the worker (once a second): the oldest request in progress past
        --request-timeout (started 0: none)."""
        _OLDEST.pack_into(self._map, _OLDEST_AT, started, line.encode("latin-1", "replace")[:199])

    def oldest_request(self):
        """Called by the master: (monotonic start, request line) of the oldest request in
        progress as last reported, or (0.0, "") when there was none."""
        started, line = _OLDEST.unpack_from(self._map, _OLDEST_AT)
        return started, line.decode("latin-1")

    def set_exit_reason(self, why):
        """Called by the worker as it starts to leave on its own: why (a key of EXIT_REASONS)."""
        code = EXIT_REASONS.get(why)
        if code is not None:
            _REASON.pack_into(self._map, _REASON_AT, code)

    def exit_reason(self):
        """Called by the master once the worker exited: a key of EXIT_REASONS, or None."""
        code = _REASON.unpack_from(self._map, _REASON_AT)[0]
        return next((why for why, c in EXIT_REASONS.items() if c == code), None)

    @property
    def buffer(self):
        """The shared page itself (metrics.py packs its counters at METRICS_AT)."""
        return self._map

    def last_update(self):
        """Called by the arbiter: the monotonic time of the worker's last beat."""
        return _SLOT.unpack_from(self._map, 0)[0]

    def age(self):
        """Seconds since the last beat."""
        return time.monotonic() - self.last_update()

    def close(self):
        """Release the map (the arbiter does this once the worker is reaped)."""
        if not self._map.closed:
            self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None
