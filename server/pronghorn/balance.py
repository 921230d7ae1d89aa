"""Spreading connections over the workers of one shared listening socket.

Every worker waits on the same socket, and the kernel wakes whichever it likes: under a burst
(wrk opening 50 connections, nginx after a restart) one worker's event loop often accepts nearly
all of them, and keep-alive connections then stay there, capping a 2-core box at one core.

The board is a small shared memory array made by the arbiter before it forks: slot 0 holds the
number of workers serving, slot i (one per worker) the connections that worker holds. A worker
that finds itself clearly above its share (more than SHARE_MARGIN x the average, plus SLACK)
stops accepting for PAUSE seconds, leaving new connections in the backlog for the others; it
accepts again sooner if its own connections drop. Writing a slot is one store, checking the share
a sum over a few integers, done once per accepted or closed connection, never per request.
"""

import mmap

__all__ = ["Board"]

SHARE_MARGIN = 1.25
SLACK = 2
PAUSE = 0.002


class Board:
    def __init__(self, slots):
        self.slots = slots
        self._map = mmap.mmap(-1, 8 * (slots + 1), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self._map).cast("q")
        self._free = list(range(slots, 0, -1))

    # -- the arbiter's side ---------------------------------------------------------------------

    def claim(self):
        """A free slot for a new worker, or None when all are taken (that worker then just
        accepts freely)."""
        if not self._free:
            return None
        slot = self._free.pop()
        self.view[slot] = 0
        return slot

    def release(self, slot):
        if slot is not None:
            self.view[slot] = 0
            self._free.append(slot)

    def set_serving(self, count):
        self.view[0] = count

    # -- a worker's side ------------------------------------------------------------------------

    def above_share(self, slot, mine):
        """Record that this worker holds ``mine`` connections; True if that is clearly more than
        its share."""
        view = self.view
        view[slot] = mine
        serving = view[0]
        if serving < 2:
            return False
        average = sum(view[1:]) / serving
        return mine > average * SHARE_MARGIN + SLACK

    def record(self, slot, mine):
        self.view[slot] = mine
