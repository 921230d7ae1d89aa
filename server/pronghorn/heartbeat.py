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
_MAP_SIZE = _SLOT.size + _COUNTERS.size


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
