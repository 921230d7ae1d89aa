"""Errors raised by the HTTP request parser.

The parser raises exactly one kind of exception for bad input: `HTTPError`, carrying the status code the
server should answer with and a reason a person can act on. The worker turns it into a short response
(``Connection: close``) and closes the connection: after an error the byte stream can no longer be framed
safely, so nothing more is read from it.
"""


class HTTPError(Exception):
    """A request the server refuses: ``status`` (400, 413, 414, 417, 431, 501, 505) and a ``reason``.

    ``requests`` lists the complete requests the failing ``feed()`` call had parsed before the error.
    ``reason`` says what was wrong and, where it helps, what the client should send instead. It never
    echoes more than a short excerpt of the offending bytes, so error responses and logs stay small.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        # Set by RequestParser.feed(): the requests that same call completed before the bad bytes, so
        # the caller can answer them (in order) before the error.
        self.requests: list = []

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"HTTPError({self.status!r}, {self.reason!r})"


def excerpt(value, limit: int = 40) -> str:
    """A short, printable excerpt of offending input for an error reason."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    text = repr(value[:limit])
    return text + ("..." if len(value) > limit else "")
