"""The worker's budget for request bodies spooled to disk.

The parser keeps a body in memory up to ``Limits.spool`` bytes and past that writes it to an
anonymous temporary file. --limit-request-body bounds one body, but not how many a worker holds at
once: a few hundred slow uploads could fill the disk the app and its logs live on. So each worker
has a budget (SPOOL_BUDGET_BODIES bodies of the largest allowed size); a body that would take the
worker past it is refused with 503 and its connection closed, and the worker serves on.

Accounting, without reaching into the parser: while a body arrives, the bytes fed to the parser
count once they pass the spool threshold (they are all on disk then; the part that came with the
head is not counted, at most one read's worth). When the body is complete that estimate is replaced
by the exact size of every spooled body (``Request.body_length``), held until the connection
closes the body's file (after its response, or when the request is dropped).
"""

import io

__all__ = ["SpoolBudget", "ConnectionSpool"]

# The budget in bodies of --limit-request-body; with no body limit, DEFAULT_BUDGET bytes.
SPOOL_BUDGET_BODIES = 4
DEFAULT_BUDGET = 4 << 30

_BytesIO = io.BytesIO


class SpoolBudget:
    """One per worker: bytes of request bodies on disk, and how many may be."""

    __slots__ = ("limit", "used")

    def __init__(self, body_limit):
        self.limit = body_limit * SPOOL_BUDGET_BODIES if body_limit else DEFAULT_BUDGET
        self.used = 0

    def take(self, size):
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size):
        self.used = max(0, self.used - size)  # (never below 0, whatever the estimate missed)


class ConnectionSpool:
    """One per connection: its share of the worker's budget."""

    __slots__ = ("budget", "threshold", "seen", "charged")

    def __init__(self, budget, threshold):
        self.budget = budget
        self.threshold = threshold  # the parser's Limits.spool
        self.seen = 0  # bytes fed while the body in progress was arriving
        self.charged = 0  # of those, counted against the budget

    def receiving(self, size):
        """`size` more bytes of the body in progress arrive. False: over budget, refuse it."""
        self.seen += size
        if self.seen <= self.threshold:
            return True
        more = self.seen - self.charged
        if not self.budget.take(more):
            return False
        self.charged = self.seen
        return True

    def completed(self, requests):
        """The body in progress ended with these requests: count exactly what is on disk."""
        self.budget.give_back(self.charged)
        self.seen = self.charged = 0
        for req in requests:
            body = req.body
            if type(body) is not _BytesIO and body is not None:
                # Held even past the budget: it is on disk already, and it is released when answered.
                self.budget.used += req.body_length

    def release(self, req):
        """req's body is closed: a spooled one gives its bytes back."""
        body = req.body
        if type(body) is not _BytesIO and body is not None:
            body.close()
            self.budget.give_back(req.body_length)

    def abandon(self):
        """The connection is gone mid-body: the partial body's file is the parser's garbage now."""
        self.budget.give_back(self.charged)
        self.seen = self.charged = 0
