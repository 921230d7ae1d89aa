"""Sans-I/O, strict HTTP/1.1 request parser (RFC 9112, RFC 9110).

`RequestParser.feed(data)` takes bytes as they come off the socket and returns every `Request` that
`data` completed (several when a client pipelines). A `Request` is returned only when complete: its body
has been read and de-chunked into memory (or a temporary file past `Limits.spool`), so the application
never waits on the network. The parser never touches a socket, which makes it easy to test byte by byte.

Strategy (read this first)
--------------------------
* Heads: find the blank line (``\r\n\r\n``) first. A head already seen (same bytes, same `Limits`
  object) is served from a bounded cache of parsed heads: every check depends only on those two, so a
  keep-alive client repeating its head costs one dict lookup plus the new objects. Otherwise the head
  is split at CRLF (one C call) and each line
  is looked up in a small cache of lines already validated (a keep-alive client repeats its request-line
  and most fields byte for byte), so the common head costs a split, a few dict hits and one small
  semantic pass over the fields. A line not in the cache is validated by a regex built from the ABNF in
  abnf.py, then cached (short lines only, bounded). No per-byte Python loop anywhere.
* When anything on that fast path fails, or a limit may be exceeded, the *reference path* walks the
  head line by line (`_check_head_line`) and raises the precise error. It is also the path used on
  partial heads: every complete line is checked as soon as it arrives and the incomplete last line is
  checked against its length limit, so a head that never ends is refused as soon as it passes a limit.
  Lines are split at LF and checked in order, the same way whether the bytes came at once or one by
  one, so the result (requests or the exact error) does not depend on how the input was cut. The tests
  check that property.
* Framing (RFC 9112 §6.3) is decided once the head is complete: Transfer-Encoding chunked, else
  Content-Length, else no body. Anything ambiguous is refused (see "Deliberate strictness").
* Bodies: a Content-Length body already in the buffer is sliced out in one go; otherwise bytes are
  appended to a `_BodySink` as they arrive. Chunked bodies run a small state machine
  (size line, data, CRLF, trailers).

Deliberate strictness (each is a documented choice, stricter than most peers)
-----------------------------------------------------------------------------
* Lines end with CRLF only: a bare LF (or a CR not followed by LF) is a 400, in heads, chunk lines and
  trailers alike (RFC 9112 §2.2 allows a recipient to accept bare LF; we do not).
* Up to `MAX_EMPTY_LINES` empty lines before a request-line are skipped (RFC 9112 §2.2); more is a 400.
* Content-Length: digits only; a second Content-Length line is a 400 even with the same value; the list
  form ``5, 5`` is a 400.
* Transfer-Encoding: every coding must be a plain token; empty list elements (``chunked ,``) are a 400;
  chunked must be last and appear once (else 400); any other coding is a 501 (none is decoded).
* Chunk lines: no whitespace right after the size digits (``5 ;ext``, ``5\\t`` are 400 although RFC 9112
  allows BWS before ``;``: implementations disagree on where such a size ends, which is what request
  smuggling feeds on). After the first ``;`` the extensions may use BWS as the ABNF says
  (``5; name = value``). At most 16 hex digits; the whole size line at most `MAX_CHUNK_LINE` bytes.
* Trailer fields are checked like header fields (same grammar, same count and size limits); those in
  `FORBIDDEN_TRAILERS` are dropped, never refused and never reported (RFC 9110 §6.5.1: framing, routing,
  authentication, request modifiers, controls and content format cannot come after the content, so a
  recipient must not merge them; RFC 9112 §7.1.2 lets it discard trailers; gunicorn and llhttp accept).
  The body has ended at the last chunk either way, so dropping them cannot change the framing.
* A second ``Content-Type`` field is a 400 (RFC 9110 §5.3: a singleton field cannot be combined, so two
  of them let a filter in front and the application read different media types), as gunicorn does.
* `Expect` with anything but ``100-continue`` is a 417 (RFC 9110 §10.1.1 allows it).
* Header names are kept as sent (upper-cased): ``Transfer_Encoding`` is not ``Transfer-Encoding``. The
  WSGI adapter must not let a name with ``_`` pose as one with ``-`` (both become ``HTTP_..._...``).
* A request-target may contain ``[`` and ``]`` (RFC 3986 gen-delims; browsers send them raw in query
  strings), but never SP, CTLs, ``"<>\\^`{|}#`` or non-ASCII; ``%`` must start a ``%HH`` escape.
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from . import abnf
from .errors import HTTPError, excerpt

__all__ = ["RequestParser", "Limits", "Request", "IDLE", "HEAD", "BODY", "HTTPError"]

# Parser states (compared with `is`).
IDLE = "IDLE"  # between requests: nothing of the next request buffered yet
HEAD = "HEAD"  # inside a partial head
BODY = "BODY"  # head complete, body not complete yet

MAX_EMPTY_LINES = 8  # empty lines tolerated before a request-line (RFC 9112 §2.2 asks for at least one)
MAX_CHUNK_LINE = 1024  # bytes in a chunk-size line, extensions included, CRLF excluded
MAX_CONTENT_LENGTH = 2**63 - 1

# RFC 9110 §6.5.1: fields that must not be sent in a trailer section; we drop them (see the docstring).
FORBIDDEN_TRAILERS = frozenset(
    {
        # message framing
        "TRANSFER-ENCODING", "CONTENT-LENGTH", "TRAILER",
        # routing and connection management
        "HOST", "CONNECTION", "KEEP-ALIVE", "PROXY-CONNECTION", "UPGRADE", "TE",
        # authentication
        "AUTHORIZATION", "PROXY-AUTHORIZATION", "COOKIE", "SET-COOKIE", "WWW-AUTHENTICATE",
        "PROXY-AUTHENTICATE",
        # request modifiers and controls
        "EXPECT", "MAX-FORWARDS", "CACHE-CONTROL", "PRAGMA", "RANGE", "IF-MATCH", "IF-NONE-MATCH",
        "IF-MODIFIED-SINCE", "IF-UNMODIFIED-SINCE", "IF-RANGE",
        # content format
        "CONTENT-TYPE", "CONTENT-ENCODING", "CONTENT-RANGE", "CONTENT-LANGUAGE", "CONTENT-LOCATION",
    }
)

_REQUEST_LINE_RE = re.compile(abnf.REQUEST_LINE)
_FIELD_LINE_RE = re.compile(abnf.FIELD_LINE)
_TOKEN_RE = re.compile(abnf.TOKEN)
_TARGET_RE = re.compile(f"[{abnf.TARGET_CHAR}]+")
_VERSION_RE = re.compile(abnf.HTTP_VERSION)
_BAD_PCT_RE = re.compile(abnf.BAD_PCT_ENCODING)
_HOST_RE = re.compile(abnf.HOST)
_AUTHORITY_RE = re.compile(abnf.AUTHORITY_FORM)
_ABSOLUTE_RE = re.compile(abnf.ABSOLUTE_FORM)
_CHUNK_LINE_RE = re.compile(abnf.CHUNK_LINE.encode("latin-1"))

# Header names the framing/semantics pass looks at; every other field is only passed on.
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING = "HOST", "CONTENT-LENGTH", "TRANSFER-ENCODING"
_CONNECTION, _EXPECT, _UPGRADE = "CONNECTION", "EXPECT", "UPGRADE"
_CONTENT_TYPE = "CONTENT-TYPE"
_SPECIAL = frozenset({_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _EXPECT, _UPGRADE,
                      _CONTENT_TYPE})

_HTTP11, _HTTP10 = "HTTP/1.1", "HTTP/1.0"

# Chunked body sub-states.
_SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3


class _NameCache(dict):
    """raw field name -> upper-cased name; a dict hit costs less than `str.upper()`, and it is bounded."""

    __slots__ = ()
    MAX = 512

    def __missing__(self, raw: str) -> str:
        upper = raw.upper()
        if len(self) < self.MAX:
            self[raw] = upper
        return upper


_NAMES = _NameCache()
# Lines already validated -> what they parse to. Lines are cached verbatim (bytes), so a cached line is
# exactly one that passed validation; the caches are bounded (cleared when full) and hold short lines only.
CACHED_LINE_MAX = 256
CACHED_LINES = 1024
_START_LINES: dict = {}
_FIELD_LINES: dict = {}
# Whole heads already parsed -> (Limits they were checked under, Request arguments). A keep-alive client
# usually sends the same head again and again; a hit skips every check, which all depend only on the
# head's bytes and the limits.
CACHED_HEAD_MAX = 1024
CACHED_HEADS = 256
_HEADS: dict = {}
_CHUNK_SIZES: dict = {}  # chunk-size lines without extensions ("1000\r") -> size
_VALID_HOSTS: set[str] = set()  # Host values already validated (bounded; hosts repeat on every request)


@dataclass(frozen=True)
class Limits:
    """Size limits, in bytes unless said otherwise (defaults are gunicorn's).

    request_line: longest request-line (CRLF excluded) -> 414 beyond.
    fields: most header fields in a head (and trailer fields in a chunked body) -> 431 beyond.
    field_size: longest field line (CRLF excluded) -> 431 beyond.
    body: largest body, None for no limit -> 413 beyond (checked on Content-Length before any body byte
          is read, and on chunked bodies as chunk sizes are announced).
    spool: bodies larger than this go to a temporary file instead of memory.
    """

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190
    body: int | None = None
    spool: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("request_line", "fields", "field_size", "spool"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Limits.{name} must be an integer >= 0, got {value!r}")
        if self.body is not None and (not isinstance(self.body, int) or self.body < 0):
            raise ValueError(f"Limits.body must be None (no limit) or an integer >= 0, got {self.body!r}")


class Request:
    """One complete HTTP request. Strings are latin-1 decoded, as PEP 3333 wants for the environ.

    headers: (NAME, value) pairs in arrival order, names upper-cased (``CONTENT-TYPE``), values stripped.
    target: the request-target as sent; raw_path / query: its path and query parts, not decoded;
    path: raw_path percent-decoded (then latin-1), i.e. PATH_INFO.
    body: a readable file object (BytesIO, or a temporary file for bodies past Limits.spool).
    content_length: the Content-Length as sent (None if absent); body_length: bytes in body (de-chunked).
    chunked: the body came with Transfer-Encoding: chunked; trailers: its trailer fields, like headers
    (fields forbidden in a trailer section dropped).
    keep_alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    expect_continue: the head had "Expect: 100-continue" (HTTP/1.1 only).
    host: the Host header, or the authority of an absolute-form target (which overrides it); None if absent.
    upgrade: the Upgrade header's value, or None.
    """

    __slots__ = (
        "method", "target", "path", "raw_path", "query", "version", "headers", "body",
        "content_length", "body_length", "chunked", "keep_alive", "expect_continue", "trailers",
        "host", "upgrade",
    )

    def __init__(self, method, target, path, raw_path, query, version, headers, content_length,
                 chunked, keep_alive, expect_continue, host, upgrade):
        self.method = method
        self.target = target
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.version = version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.host = host
        self.upgrade = upgrade
        self.body = None
        self.body_length = 0
        self.trailers = []

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {self.version} body={self.body_length}B>"


class _BodySink:
    """Collects body bytes: in memory up to `spool` bytes, then in an anonymous temporary file."""

    __slots__ = ("parts", "size", "file", "spool")

    def __init__(self, spool: int, expected: int = 0) -> None:
        self.parts: list = []
        self.size = 0
        self.spool = spool
        self.file = tempfile.TemporaryFile() if expected > spool else None

    def write(self, data) -> None:
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
            return
        self.parts.append(data)
        if self.size > self.spool:
            self.file = tempfile.TemporaryFile()
            self.file.writelines(self.parts)
            self.parts = []

    @property
    def in_memory(self) -> int:
        return 0 if self.file is not None else self.size

    def finish(self):
        if self.file is not None:
            self.file.seek(0)
            return self.file
        return io.BytesIO(b"".join(self.parts))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class RequestParser:
    """Turns a byte stream into complete `Request` objects. One parser per connection.

    After an HTTPError the parser is closed: the connection must be closed too, and any further
    `feed()` raises the same error again.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits = limits if limits is not None else Limits()
        self.state = IDLE
        self.expect_continue = False
        self._buf = bytearray()  # unconsumed bytes (a partial head, chunk line or CRLF)
        self._failed: HTTPError | None = None
        # head progress (offsets relative to the head's first byte)
        self._scan = 0  # complete head lines checked so far end here
        self._lines = 0  # how many complete head (or trailer) lines were checked
        self._empty_lines = 0
        # body progress
        self._request: Request | None = None
        self._sink: _BodySink | None = None
        self._remaining = 0  # Content-Length bytes still to come
        self._chunk_state = _SIZE
        self._chunk_left = 0
        # limits copied to attributes: the hot path reads them often
        self._max_line = limits.request_line
        self._max_fields = limits.fields
        self._max_field = limits.field_size
        self._max_body = limits.body
        self._spool = limits.spool
        self._fast_len = min(limits.request_line, limits.field_size)

    # ------------------------------------------------------------------ public API

    @property
    def buffered(self) -> int:
        """Bytes held in memory: unparsed input plus the in-memory part of a body being read."""
        sink = self._sink
        return len(self._buf) + (sink.in_memory if sink is not None else 0)

    def continue_sent(self) -> None:
        """The caller has sent ``100 Continue``: do not ask for it again."""
        self.expect_continue = False

    def feed(self, data) -> list:
        """Consume `data` (bytes or bytearray); return the requests it completed (none, one or several).

        Raises HTTPError for bad input. Requests the same call completed before the bad bytes are in
        the error's `requests` list: answer them first, then the error, then close the connection.
        """
        if self._failed is not None:
            raise HTTPError(self._failed.status, self._failed.reason)
        own = bool(self._buf)
        if own:
            self._buf += data
            data = self._buf
            self._buf = bytearray()
        elif not data:
            return []
        out: list = []
        try:
            pos = 0
            end = len(data)
            while pos < end:
                if self.state is BODY:
                    pos = self._read_body(data, pos, out)
                    if self.state is BODY:
                        break
                else:
                    pos = self._read_head(data, pos, out)
                    if self.state is HEAD:
                        break
            if pos < end:
                # Keep the buffer itself when nothing was consumed: a head arriving in small pieces
                # must not be copied again on every feed.
                self._buf = data if own and pos == 0 else bytearray(data[pos:])
        except HTTPError as error:
            error.requests = out
            self._fail(error)
            raise
        return out

    def feed_eof(self) -> list:
        """The peer closed its side. Raises HTTPError(400) if a request was left incomplete."""
        if self._failed is not None:
            raise HTTPError(self._failed.status, self._failed.reason)
        if self.state is IDLE and not self._buf:
            return []
        error = HTTPError(400, "connection closed before the request was complete "
                               f"({'head' if self.state is not BODY else 'body'} cut short)")
        self._fail(error)
        raise error

    # ------------------------------------------------------------------ heads

    def _read_head(self, data, pos: int, out: list) -> int:
        """Parse a head starting at `pos`; return the position after what was consumed."""
        if self._scan == 0:
            if data.startswith(b"\r\n", pos):
                pos = self._skip_empty_lines(data, pos)
                if pos >= len(data):
                    return pos
            search_from = pos
        else:
            search_from = pos + self._scan - 2
        end = data.find(b"\r\n\r\n", search_from)
        if end < 0:
            self.state = HEAD
            self._check_partial_head(data, pos)
            return pos
        self._scan = self._lines = self._empty_lines = 0
        head = data[pos:end]
        if type(head) is not bytes:
            head = bytes(head)
        cached = _HEADS.get(head)
        if cached is not None and cached[0] is self.limits:
            # A head seen before under the same limits: already validated, only the objects are new.
            method, target, path, raw_path, query, version, headers, length, chunked, keep_alive, \
                expect, host, upgrade = cached[1]
            request = Request(method, target, path, raw_path, query, version, list(headers), length,
                              chunked, keep_alive, expect, host, upgrade)
        else:
            request = self._parse_head(head)
        if not request.chunked and not request.content_length:  # no body to read
            request.body = io.BytesIO()
            self.state = IDLE
            out.append(request)
        else:
            self._start_body(request)
        return end + 4

    def _skip_empty_lines(self, data, pos: int) -> int:
        """Skip the empty lines RFC 9112 §2.2 lets a client send before a request-line (bounded)."""
        while data.startswith(b"\r\n", pos):
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                raise HTTPError(400, f"more than {MAX_EMPTY_LINES} empty lines before the request-line")
            pos += 2
        self.state = HEAD if pos < len(data) else IDLE
        return pos

    def _check_partial_head(self, data, pos: int) -> None:
        """Check the complete lines of an unfinished head, and the unfinished line's length."""
        start = pos + self._scan
        find = data.find
        while True:
            newline = find(b"\n", start)
            if newline < 0:
                break
            self._check_head_line(self._lines, data[start:newline])
            self._lines += 1
            start = newline + 1
        self._scan = start - pos
        self._check_partial_line(self._lines, data, start)

    def _check_partial_line(self, index: int, data, start: int) -> None:
        """Refuse an unfinished line (no LF yet) that already breaks a limit it will break when complete."""
        size = len(data) - start
        content = size - 1 if size and data[-1] == 13 else size
        if index == 0:
            if content > self._max_line:
                raise self._line_too_long()
            return
        if size and not (size == 1 and data[start] == 13) and index > self._max_fields:
            raise self._too_many_fields()
        if content > self._max_field:
            raise self._field_too_long()

    def _check_head_line(self, index: int, line):
        """Check one complete line (LF removed) of a head or trailer section; return what it holds.

        index 0 is the request-line -> (method, target, minor version); index >= 1 a field line ->
        (name, value). Checks run in a fixed order (count, length, line ending, syntax) so the first error
        found does not depend on how the input was split into feeds.
        """
        if index and index > self._max_fields:
            raise self._too_many_fields()
        crlf = line.endswith(b"\r")
        size = len(line) - 1 if crlf else len(line)
        if index == 0:
            if size > self._max_line:
                raise self._line_too_long()
        elif size > self._max_field:
            raise self._field_too_long()
        if not crlf:
            raise HTTPError(400, "line ended by a bare LF: lines must end with CRLF (\\r\\n)")
        content = bytes(line[:-1])
        if index == 0:
            return _START_LINES.get(content) or _parse_start_line(content)
        return _FIELD_LINES.get(content) or _parse_field_bytes(content)

    def _line_too_long(self) -> HTTPError:
        return HTTPError(414, f"request-line longer than {self._max_line} bytes: shorten the URL")

    def _too_many_fields(self) -> HTTPError:
        return HTTPError(431, f"more than {self._max_fields} header fields")

    def _field_too_long(self) -> HTTPError:
        return HTTPError(431, f"a header field line is longer than {self._max_field} bytes")

    def _parse_head(self, head: bytes) -> Request:
        """Parse a complete head (request-line and field lines, final CRLF CRLF excluded).

        Fast path: split at CRLF and look every line up in a cache of lines already validated (a
        keep-alive client repeats most lines verbatim); lines not cached are validated by regex. If
        anything fails, the reference path re-reads the head line by line and raises the first error.
        """
        lines = head.split(b"\r\n")
        try:
            if len(lines) > self._max_fields + 1:
                raise HTTPError(431, "")
            if len(head) > self._fast_len:
                self._check_line_lengths(lines)
            start = _START_LINES.get(lines[0])
            seen = start is not None
            if not seen:
                start = _parse_start_line(lines[0])
            del lines[0]
            get = _FIELD_LINES.get
            fields = [get(line) or _parse_field_bytes(line) for line in lines]
        except HTTPError:
            start, fields = self._parse_head_by_lines(head)
            seen = False
        request = self._build_request(start, fields)
        # Cache the head only when its request-line had been seen before: heads with ever-new URLs
        # would only churn the cache, while a repeated head is cached the second time it comes.
        if seen and len(head) <= CACHED_HEAD_MAX:
            if len(_HEADS) >= CACHED_HEADS:
                _HEADS.clear()
            r = request
            _HEADS[head] = (self.limits, (r.method, r.target, r.path, r.raw_path, r.query, r.version,
                                          tuple(r.headers), r.content_length, r.chunked, r.keep_alive,
                                          r.expect_continue, r.host, r.upgrade))
        return request

    def _check_line_lengths(self, lines: list) -> None:
        if len(lines[0]) > self._max_line or (
            len(lines) > 1 and max(map(len, lines[1:])) > self._max_field
        ):
            raise HTTPError(431, "")

    def _parse_head_by_lines(self, head: bytes):
        """The reference path: check each line in order and raise the first error found."""
        lines = (head + b"\r\n").split(b"\n")
        start = self._check_head_line(0, lines[0])
        fields = [self._check_head_line(i, line) for i, line in enumerate(lines[1:-1], 1)]
        return start, fields

    # ------------------------------------------------------------------ request semantics

    def _build_request(self, start: tuple, headers: list) -> Request:
        """Apply RFC 9112/9110 semantics to a syntactically valid head: Host, framing, connection."""
        method, target, minor, raw_path, query, path, uri_host = start
        host = content_length = upgrade = None
        hosts = content_types = 0
        te = connection = expect = None
        for name, value in headers:
            if name in _SPECIAL:
                if name == _HOST:
                    hosts += 1
                    host = value
                elif name == _CONTENT_LENGTH:
                    if content_length is not None:
                        raise HTTPError(400, "more than one Content-Length header: send exactly one")
                    content_length = value
                elif name == _TRANSFER_ENCODING:
                    te = value if te is None else f"{te},{value}"
                elif name == _CONNECTION:
                    connection = value if connection is None else f"{connection},{value}"
                elif name == _EXPECT:
                    expect = value if expect is None else f"{expect},{value}"
                elif name == _CONTENT_TYPE:
                    content_types += 1
                    if content_types > 1:
                        raise HTTPError(400, "more than one Content-Type header: send exactly one")
                else:
                    upgrade = value

        if hosts != 1:
            if hosts > 1:
                raise HTTPError(400, "more than one Host header: send exactly one")
            if minor == "1":
                raise HTTPError(400, "HTTP/1.1 request without a Host header: add 'Host: <server name>'")
        elif host not in _VALID_HOSTS:
            _check_host(host)
        if uri_host is not None:
            host = uri_host  # RFC 9112 §3.2.2: an absolute-form target's authority overrides Host

        chunked = False
        if te is not None:
            if minor == "0":
                raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request: use Content-Length")
            if content_length is not None:
                raise HTTPError(400, "both Transfer-Encoding and Content-Length: send only one")
            chunked = _check_transfer_encoding(te)
        if content_length is not None:
            content_length = self._parse_content_length(content_length)

        keep_alive = minor == "1"
        if connection is not None:
            options = {option.strip(" \t").lower() for option in connection.split(",")}
            if "close" in options:
                keep_alive = False
            elif "keep-alive" in options:
                keep_alive = True

        expect_continue = False
        if expect is not None:
            if expect.lower() != "100-continue":
                raise HTTPError(417, f"unsupported Expect {excerpt(expect)}: only '100-continue' is known")
            expect_continue = minor == "1"

        return Request(method, target, path, raw_path, query, _HTTP11 if minor == "1" else _HTTP10,
                       headers, content_length, chunked, keep_alive, expect_continue, host, upgrade)

    def _parse_content_length(self, value: str) -> int:
        if not (value.isdigit() and value.isascii()):
            raise HTTPError(400, f"invalid Content-Length {excerpt(value)}: must be decimal digits only")
        if len(value) > 19 or int(value) > MAX_CONTENT_LENGTH:
            raise HTTPError(413, "Content-Length too large")
        length = int(value)
        if self._max_body is not None and length > self._max_body:
            raise HTTPError(413, f"body of {length} bytes exceeds the limit of {self._max_body} bytes")
        return length

    # ------------------------------------------------------------------ bodies

    def _start_body(self, request: Request) -> None:
        if request.chunked:
            self._chunk_state = _SIZE
            self._lines = 0
        else:
            self._remaining = request.content_length
        self._request = request
        self.state = BODY
        self.expect_continue = request.expect_continue

    def _read_body(self, data, pos: int, out: list) -> int:
        self.expect_continue = False
        if self._request.chunked:
            return self._read_chunked(data, pos, out)
        available = len(data) - pos
        remaining = self._remaining
        if self._sink is None and available >= remaining and remaining <= self._spool:
            body = io.BytesIO(data[pos:pos + remaining])
            self._finish(body, remaining, out)
            return pos + remaining
        if self._sink is None:
            self._sink = _BodySink(self._spool, remaining)
        take = remaining if available >= remaining else available
        self._sink.write(data[pos:pos + take])
        self._remaining = remaining - take
        if self._remaining == 0:
            self._finish_from_sink(out)
        return pos + take

    def _read_chunked(self, data, pos: int, out: list) -> int:
        if self._sink is None:
            self._sink = _BodySink(self._spool)
        end = len(data)
        if self._chunk_state == _SIZE and type(data) is bytes:
            pos = self._read_whole_chunks(data, pos)
        while pos < end:
            state = self._chunk_state
            if state == _DATA:
                take = min(self._chunk_left, end - pos)
                self._sink.write(data[pos:pos + take])
                pos += take
                self._chunk_left -= take
                if self._chunk_left:
                    break
                self._chunk_state = _DATA_END
            elif state == _SIZE:
                newline = data.find(b"\n", pos)
                if newline < 0:
                    if end - pos - (data[-1] == 13) > MAX_CHUNK_LINE:
                        raise _chunk_line_too_long()
                    break
                self._read_chunk_size(data[pos:newline])
                pos = newline + 1
                left = self._chunk_left
                if self._chunk_state == _DATA and end - pos >= left + 2 \
                        and data[pos + left] == 13 and data[pos + left + 1] == 10:
                    # The whole chunk and its CRLF are here: take them in one step.
                    self._sink.write(data[pos:pos + left])
                    pos += left + 2
                    self._chunk_state = _SIZE
            elif state == _DATA_END:
                if data[pos] != 13 or (pos + 1 < end and data[pos + 1] != 10):
                    raise HTTPError(400, "chunk data not followed by CRLF: the chunk size does not match "
                                         "the data sent")
                if pos + 1 == end:
                    break
                pos += 2
                self._chunk_state = _SIZE
            else:
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._check_partial_line(self._lines + 1, data, pos)
                    break
                line = data[pos:newline]
                pos = newline + 1
                if line == b"\r":
                    self._finish_from_sink(out)
                    return pos
                self._read_trailer(line)
        return pos

    def _read_whole_chunks(self, data: bytes, pos: int) -> int:
        """Fast path: take chunks whose size line is cached and whose data and CRLF are all here.

        Stops (returning where it stopped) at anything else: the general state machine then reads
        from there, so errors and limits are handled in one place only.
        """
        sink = self._sink
        if sink.file is not None:
            return pos
        parts = sink.parts
        get = _CHUNK_SIZES.get
        find = data.find
        room = self._spool if self._max_body is None else min(self._spool, self._max_body)
        end = len(data)
        while True:
            newline = find(b"\n", pos)
            if newline < 0:
                return pos
            size = get(data[pos:newline])
            if not size:  # unknown line, or the last chunk
                return pos
            data_end = newline + 1 + size
            if data_end + 2 > end or data[data_end] != 13 or data[data_end + 1] != 10 \
                    or sink.size + size > room:
                return pos
            parts.append(data[newline + 1:data_end])
            sink.size += size
            pos = data_end + 2

    def _read_chunk_size(self, line) -> None:
        crlf = line.endswith(b"\r")
        if len(line) - crlf > MAX_CHUNK_LINE:
            raise _chunk_line_too_long()
        if not crlf:
            raise HTTPError(400, "chunk-size line ended by a bare LF: lines must end with CRLF")
        if type(line) is not bytes:
            line = bytes(line)
        size = _CHUNK_SIZES.get(line)
        if size is None:
            match = _CHUNK_LINE_RE.fullmatch(line, 0, len(line) - 1)
            if match is None:
                raise HTTPError(400, f"invalid chunk-size line {excerpt(line[:-1])}: expected hex digits "
                                     "(at most 16), then optional ';name=value' extensions; no space "
                                     "between the size and the first ';'")
            size = int(match.group(1), 16)
            if not match.group(2):
                _remember(_CHUNK_SIZES, line, size)
        if size == 0:
            self._chunk_state = _TRAILER
            return
        total = self._sink.size + size
        if self._max_body is not None and total > self._max_body:
            raise HTTPError(413, f"chunked body exceeds the limit of {self._max_body} bytes")
        self._chunk_left = size
        self._chunk_state = _DATA

    def _read_trailer(self, line) -> None:
        name, value = self._check_head_line(self._lines + 1, line)
        self._lines += 1
        if name not in FORBIDDEN_TRAILERS:  # a forbidden one is dropped, never passed on
            self._request.trailers.append((name, value))

    def _finish_from_sink(self, out: list) -> None:
        sink = self._sink
        self._sink = None
        self._finish(sink.finish(), sink.size, out)

    def _finish(self, body, size: int, out: list) -> None:
        request = self._request
        request.body = body
        request.body_length = size
        self._request = None
        self._lines = 0
        self.state = IDLE
        out.append(request)

    def _fail(self, error: HTTPError) -> None:
        self._failed = error
        self._buf = bytearray()
        self.expect_continue = False
        if self._sink is not None:
            self._sink.close()
            self._sink = None


# ---------------------------------------------------------------------- line and value checks


def _parse_start_line(line: bytes) -> tuple:
    """A request-line (CRLF excluded) -> (method, target, minor, raw_path, query, path, uri_host).

    Valid lines are cached: the next request on the connection usually repeats it byte for byte.
    """
    method, target, minor = _parse_request_line(line.decode("latin-1"))
    raw_path, query, uri_host = _split_target(method, target)
    path = raw_path
    if "%" in target:
        if _BAD_PCT_RE.search(target):
            raise HTTPError(400, f"bad percent-encoding in request-target {excerpt(target)}: "
                                 "'%' must be followed by two hex digits (write '%25' for '%')")
        if "%" in raw_path:
            path = unquote_to_bytes(raw_path).decode("latin-1")
    start = (method, target, minor, raw_path, query, path, uri_host)
    _remember(_START_LINES, line, start)
    return start


def _parse_field_bytes(line: bytes) -> tuple:
    """A field line (CRLF excluded) -> (NAME, value), validated, name upper-cased; cached if short."""
    name, value = _parse_field_line(line.decode("latin-1"))
    field = (_NAMES[name], value)
    _remember(_FIELD_LINES, line, field)
    return field


def _remember(cache: dict, line, value) -> None:
    """Cache a validated line; short lines only and a bounded number, so memory stays small."""
    if len(line) <= CACHED_LINE_MAX and type(line) is bytes:
        if len(cache) >= CACHED_LINES:
            cache.clear()
        cache[line] = value


def _parse_request_line(text: str):
    match = _REQUEST_LINE_RE.fullmatch(text)
    if match is not None:
        return match.groups()
    parts = text.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HTTPError(400, f"malformed request-line {excerpt(text)}: expected 'METHOD /path HTTP/1.1' "
                             "with single spaces")
    method, target, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise HTTPError(400, f"invalid method {excerpt(method)}: must be a token (e.g. GET, POST)")
    if _TARGET_RE.fullmatch(target) is None:
        raise HTTPError(400, f"invalid character in request-target {excerpt(target)}: percent-encode "
                             "spaces, quotes, <>\\^`{|} and non-ASCII bytes")
    if _VERSION_RE.fullmatch(version) is not None:
        raise HTTPError(505, f"HTTP version {version} is not supported: use HTTP/1.1 or HTTP/1.0")
    raise HTTPError(400, f"malformed HTTP version {excerpt(version)}: expected HTTP/1.1 or HTTP/1.0")


def _parse_field_line(text: str):
    match = _FIELD_LINE_RE.fullmatch(text)
    if match is not None:
        return match.group(1), match.group(2) or ""
    if text[:1] in (" ", "\t"):
        raise HTTPError(400, "header line starts with whitespace (obsolete line folding): "
                             "send each field on one line")
    name, colon, value = text.partition(":")
    if not colon:
        raise HTTPError(400, f"header line without ':' {excerpt(text)}: expected 'Name: value'")
    if name[-1:] in (" ", "\t"):
        raise HTTPError(400, f"whitespace between header name {excerpt(name.rstrip())} and ':' "
                             "(RFC 9112 §5.1): remove it")
    if _TOKEN_RE.fullmatch(name) is None:
        raise HTTPError(400, f"invalid header name {excerpt(name)}: must be a token")
    raise HTTPError(400, f"invalid character in the value of header {name}: control characters "
                         "(NUL, CR, LF, DEL...) are not allowed")


def _split_target(method: str, target: str):
    """(raw_path, query, host from the URI or None) for the four request-target forms of RFC 9112 §3.2."""
    if target[0] == "/":
        if method == "CONNECT":
            raise HTTPError(400, "CONNECT needs an authority-form target 'host:port'")
        raw_path, _, query = target.partition("?")
        return raw_path, query, None
    if target == "*":
        if method != "OPTIONS":
            raise HTTPError(400, "the asterisk-form target '*' is only allowed with OPTIONS")
        return "*", "", None
    if method == "CONNECT":
        if _AUTHORITY_RE.fullmatch(target) is None:
            raise HTTPError(400, f"invalid CONNECT target {excerpt(target)}: expected 'host:port'")
        return "", "", target
    match = _ABSOLUTE_RE.fullmatch(target)
    if match is None:
        raise HTTPError(400, f"invalid request-target {excerpt(target)}: expected '/path', "
                             "'http://host/path', 'host:port' (CONNECT) or '*' (OPTIONS)")
    authority, rest = match.group(2), match.group(3)
    if not authority or _HOST_RE.fullmatch(authority) is None:
        raise HTTPError(400, f"invalid host in absolute-form target {excerpt(target)}")
    raw_path, _, query = rest.partition("?")
    if raw_path[:1] not in ("", "/"):
        raise HTTPError(400, f"invalid request-target {excerpt(target)}")
    return raw_path or "/", query, authority


def _check_host(host: str) -> None:
    if _HOST_RE.fullmatch(host) is None:
        raise HTTPError(400, f"invalid Host header {excerpt(host)}: expected 'name[:port]'")
    if len(_VALID_HOSTS) < 256:
        _VALID_HOSTS.add(host)


def _check_transfer_encoding(value: str) -> bool:
    """Return True for a valid `..., chunked` list; raise for anything else (RFC 9112 §6.1, §6.3)."""
    codings = [coding.strip(" \t").lower() for coding in value.split(",")]
    for coding in codings:
        if _TOKEN_RE.fullmatch(coding) is None:
            raise HTTPError(400, f"invalid Transfer-Encoding {excerpt(value)}: expected a list of "
                                 "codings ending with 'chunked'")
    if codings[-1] != "chunked" or codings.count("chunked") > 1:
        raise HTTPError(400, f"Transfer-Encoding {excerpt(value)} does not end with a single "
                             "'chunked': the body length cannot be determined")
    if len(codings) > 1:
        raise HTTPError(501, f"transfer coding {excerpt(codings[0])} is not supported: send the body "
                             "with only 'Transfer-Encoding: chunked' or with Content-Length")
    return True


def _chunk_line_too_long() -> HTTPError:
    return HTTPError(400, f"chunk-size line longer than {MAX_CHUNK_LINE} bytes (chunk extensions too long)")
