"""The WSGI adapter: `start_response` and response framing (the environ is built in environ.py).

It knows nothing about sockets or event loops. The worker gives each `Response` an `out(bytes)`
function and gets back framed bytes through it, so the same code serves the loop thread (inline
apps) and the thread pool (``--threads N``).

Framing rules, in one place:

* status line and headers are built once, into one bytes object, and go out with the first body
  chunk (a small response is a single write);
* the app's Content-Length is used and enforced (extra bytes are cut and logged; fewer close the
  connection so the client sees the short body); otherwise a single-element list body gets a
  computed Content-Length, other bodies are chunked on HTTP/1.1 and close-delimited on HTTP/1.0;
* HEAD, 1xx, 204 and 304 responses carry no body;
* hop-by-hop headers from the app are not passed through (``Connection: close`` is honoured);
* a status or header with CR, LF or NUL, a non-token header name, or a non-latin-1 value is
  refused (`ResponseError`): the worker answers 500 and logs it; nothing is ever injected.
"""

import re
import time
from email.utils import formatdate

from pronghorn.filewrapper import FileWrapper
# The environ is built in environ.py; its names stay importable from here (wsgi.request_environ).
from pronghorn.environ import ErrorStream, base_environ, connection_environ, request_environ

SERVER_HEADER = "pronghorn"


class ResponseError(Exception):
    """The app broke the WSGI response contract (bad status, bad header, start_response misuse)."""


# --- Date header: formatted once per second, not per response -------------------------------------

_date_second = 0
_date_line = b""


def date_line():
    """The `Date: ...\\r\\n` line for the current second (cached)."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = ("Date: %s\r\n" % formatdate(now, usegmt=True)).encode("ascii")
    return _date_line


# --- status and header validation (cached: apps send the same few over and over) ------------------

_STATUS_RE = re.compile(r"([1-5][0-9][0-9]) ([\t \x21-\x7e\x80-\xff]*)")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_status_cache = {}
_name_cache = {}
_CACHE_MAX = 512

_headers_cache = {}
_HEADERS_CACHE_MAX = 1024

# Hop-by-hop headers (RFC 9110 §7.6.1) are the server's business, not the app's.
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade")
)


def parse_status(status):
    """(code: int, status line bytes) for a WSGI status string, or raise ResponseError."""
    cached = _status_cache.get(status)
    if cached is not None:
        return cached
    if type(status) is not str:
        raise ResponseError("status must be a str like '200 OK', got %r" % (status,))
    m = _STATUS_RE.fullmatch(status)
    if m is None:
        raise ResponseError(
            "invalid status %r: it must be three digits (100-599), a space and a reason phrase "
            "without control characters" % (status,)
        )
    result = (int(m.group(1)), status.encode("latin-1"))
    if len(_status_cache) < _CACHE_MAX:
        _status_cache[status] = result
    return result


def header_name_lower(name):
    """The lower-cased header name after checking it is a token, or raise ResponseError."""
    lower = _name_cache.get(name)
    if lower is not None:
        return lower
    if type(name) is not str or _TOKEN_RE.fullmatch(name) is None:
        raise ResponseError("invalid response header name %r (must be an HTTP token)" % (name,))
    lower = name.lower()
    if len(_name_cache) < _CACHE_MAX:
        _name_cache[name] = lower
    return lower


# --- the response ---------------------------------------------------------------------------------

_CRLF = b"\r\n"
_SERVER_LINE = b"Server: pronghorn\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


class Response:
    """One response: `start_response`, `write`, framing, and what was sent (for logs and hooks).

    The worker creates it, passes `start_response` to the app, then feeds the body through
    `send_body_chunk` / `finish` (or `finish_single` for a one-element list body).
    """

    __slots__ = (
        "out", "log", "version", "is_head", "client_keep_alive", "status", "code", "headers",
        "status_line", "header_block", "headers_sent", "chunked", "remaining", "no_body",
        "must_close", "sent", "app_length", "close_requested", "truncated_logged", "own_headers",
    )

    def __init__(self, out, log, version, is_head, keep_alive):
        self.out = out
        self.log = log
        self.version = version
        self.is_head = is_head
        self.client_keep_alive = keep_alive
        self.status = None
        self.code = 0
        self.headers = None
        self.headers_sent = False
        self.must_close = not keep_alive
        self.sent = 0  # body bytes sent
        self.chunked = False
        self.remaining = None

    # -- the WSGI callables --

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: too late to change the response; let the error propagate.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise ResponseError("start_response() called a second time without exc_info")
        if type(headers) is not list:
            raise ResponseError("response headers must be a list of (name, value) tuples, got %s"
                                % type(headers).__name__)
        self.code, self.status_line = parse_status(status)
        self.status = status
        self.headers = headers
        try:
            cached = _headers_cache.get(tuple(headers))
        except TypeError:  # an unhashable item: the full check below names it
            cached = None
        if cached is None:
            cached = self._prepare_headers(headers)
        self.header_block, self.app_length, self.close_requested, self.own_headers = cached
        code = self.code
        self.no_body = self.is_head or code < 200 or code == 204 or code == 304
        return self.write

    def write(self, data):
        """The `write()` callable start_response returns (legacy streaming API)."""
        if self.status is None:
            raise ResponseError("write() called before start_response()")
        self.send_body_chunk(data)

    # -- header preparation --

    @staticmethod
    def _prepare_headers(headers):
        """Check the app's headers: (header block bytes, Content-Length or None, close asked,
        (add our Date?, the Server line to add or b""))."""
        lines = []
        app_length = None
        close_requested = False
        has_date = has_server = False
        for item in headers:
            if type(item) is not tuple or len(item) != 2:
                raise ResponseError("response header %r is not a (name, value) tuple" % (item,))
            name, value = item
            lower = header_name_lower(name)
            if type(value) is not str:
                raise ResponseError("value of response header %r must be a str, got %r" % (name, value))
            if lower in _HOP_BY_HOP:
                if lower == "connection" and "close" in value.lower():
                    close_requested = True
                continue
            if lower == "date":
                has_date = True
            elif lower == "server":
                has_server = True
            if lower == "content-length":
                if app_length is not None or not value.isdigit() or not value.isascii():
                    raise ResponseError("invalid or duplicate Content-Length %r from the app" % (value,))
                app_length = int(value)
            lines.append(name)
            lines.append(": ")
            lines.append(value)
            lines.append("\r\n")
        block = "".join(lines)
        count = len(lines) // 4
        # Each line ends with exactly one CRLF we added: any other CR/LF/NUL came from the app.
        if block.count("\n") != count or block.count("\r") != count or "\0" in block:
            raise ResponseError("a response header value contains CR, LF or NUL: refusing it %r" % (headers,))
        try:
            # Date and Server are added unless the app set them (both are single-valued fields).
            own = (not has_date, b"" if has_server else _SERVER_LINE)
            result = (block.encode("latin-1"), app_length, close_requested, own)
        except UnicodeEncodeError:
            raise ResponseError("response header values must be latin-1 (PEP 3333): %r" % (headers,)) from None
        # Apps send the same header lists again and again: remember the checked result. Bounded:
        # when full (e.g. many distinct Content-Lengths) it starts over.
        if len(_headers_cache) >= _HEADERS_CACHE_MAX:
            _headers_cache.clear()
        _headers_cache[tuple(headers)] = result
        return result

    def _head(self, body_length):
        """Status line + headers as bytes, deciding the framing. body_length: int if known."""
        code = self.code
        framing = b""
        if self.app_length is not None:
            self.remaining = self.app_length
        elif code < 200 or code == 204 or code == 304:
            pass  # no body, and no framing header allowed (1xx/204) or needed (304)
        elif body_length is not None:
            framing = b"Content-Length: %d\r\n" % body_length
        elif self.version == "HTTP/1.1":
            self.chunked = True
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            self.must_close = True  # HTTP/1.0, unknown length: the close delimits the body
        if self.close_requested:
            self.must_close = True
        if self.must_close:
            conn = b"Connection: close\r\n"
        elif self.version == "HTTP/1.0":
            conn = b"Connection: keep-alive\r\n"
        else:
            conn = b""
        self.headers_sent = True
        return b"".join((
            b"HTTP/1.1 ", self.status_line, _CRLF, self.header_block, framing,
            date_line() if self.own_headers[0] else b"", self.own_headers[1], conn, _CRLF,
        ))

    # -- body --

    def send_body_chunk(self, data):
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise ResponseError("response body chunks must be bytes, got %s" % type(data).__name__)
        head = None
        if not self.headers_sent:
            if not data:
                return  # PEP 3333: headers wait for the first non-empty chunk
            if self.status is None:
                raise ResponseError("the app returned body data before calling start_response()")
            head = self._head(None)
        if self.no_body:
            if head is not None:
                self.out(head)
            return
        if self.remaining is not None:
            data = self._within_length(data)
        n = len(data)
        self.sent += n
        if self.chunked:
            if not n:
                if head is not None:
                    self.out(head)
                return
            data = b"%x\r\n%b\r\n" % (n, data)
        if head is not None:
            self.out(head + data)
        elif n:
            self.out(data)

    def _within_length(self, data):
        remaining = self.remaining
        if len(data) > remaining:
            if not getattr(self, "truncated_logged", False):
                self.truncated_logged = True
                self.log.warning(
                    "app sent more body than its Content-Length (%d): extra bytes dropped", self.app_length
                )
            data = data[:remaining]
        self.remaining = remaining - len(data)
        return data

    def finish(self):
        """The body is complete: send what framing still needs. Returns True to keep the connection."""
        if self.status is None:
            raise ResponseError("the app returned without calling start_response()")
        if not self.headers_sent:
            self.out(self._head(0))
        elif self.chunked and not self.no_body:
            self.out(_LAST_CHUNK)
        if self.remaining and not self.no_body:
            self._body_fell_short()
        return not self.must_close

    def finish_single(self, data):
        """Fast path for a body that is a one-element list: one write, exact Content-Length."""
        if type(data) is not bytes:
            self.send_body_chunk(data)  # raises the proper error or converts
            return self.finish()
        if self.headers_sent:
            self.send_body_chunk(data)
            return self.finish()
        if self.app_length is not None:
            head = self._head(None)
            if not self.no_body:
                data = self._within_length(data)
        else:
            head = self._head(len(data))
        if self.no_body:
            self.out(head)
        else:
            self.sent = len(data)
            self.out(head + data)
        if self.remaining and not self.no_body:
            self._body_fell_short()
        return not self.must_close

    def _body_fell_short(self):
        # The client is waiting for bytes that will never come: only a close ends the response.
        self.log.warning(
            "app sent %d bytes but its Content-Length said %d: closing the connection",
            self.sent, self.app_length,
        )
        self.must_close = True

    def sendfile_head(self, size):
        """Head for a file body of `size` bytes (sendfile path); returns (head, bytes_to_send)."""
        if self.app_length is not None:
            head = self._head(None)
            count = min(size, self.app_length)
            self.remaining = self.app_length - count
        else:
            head = self._head(size)
            count = size
        if self.no_body:
            count = 0
        self.sent = count
        return head, count


def error_response(status, reason, version="HTTP/1.1"):
    """A short, complete `text/plain` response that closes the connection (parser errors, 500)."""
    code_reason = _REASONS.get(status, "Error")
    body = ("%d %s\n%s\n" % (status, code_reason, reason) if reason and reason != code_reason
            else "%d %s\n" % (status, code_reason)).encode("latin-1", "replace")
    return b"".join((
        b"HTTP/1.1 %d %s\r\n" % (status, code_reason.encode("ascii")),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % len(body),
        date_line(),
        b"Server: pronghorn\r\nConnection: close\r\n\r\n",
        body,
    ))


_REASONS = {
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported", 507: "Insufficient Storage",
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def close_iterable(result, log):
    """PEP 3333: the server must call the iterable's close() whatever happened."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("error closing the app's response iterable")


__all__ = [
    "Response", "ResponseError", "ErrorStream", "FileWrapper", "base_environ", "connection_environ",
    "request_environ", "error_response", "close_iterable", "date_line", "CONTINUE",
]
