"""WSGI apps the black-box server tests run (``tests.server.apps:NAME``).

`app` routes on PATH_INFO to small apps that each exercise one part of PEP 3333; each is wrapped in
wsgiref.validate.validator, so a server that hands them a bad environ or mishandles their
iterables fails the test. `raw` routes to apps that break the rules on purpose (header injection,
bad status, hop-by-hop headers, wrong Content-Length): validator would stop those before the server
sees them, so they are not wrapped.
"""

import hashlib
import json
import os
import tempfile
import threading
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator


def _query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def hello(environ, start_response):
    body = b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello_nolength(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def echo(environ, start_response):
    """The request body back."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(body))),
    ])
    return [body]


_ENV_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
    "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI",
    "SERVER_SOFTWARE", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
    "wsgi.input_terminated", "wsgi.version",
)


def environ_json(environ, start_response):
    """Selected environ keys plus every HTTP_* key, as JSON."""
    data = {k: environ[k] for k in _ENV_KEYS if k in environ}
    data.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
    data["has_file_wrapper"] = "wsgi.file_wrapper" in environ
    data["has_errors"] = hasattr(environ.get("wsgi.errors"), "write")
    body = json.dumps(data, default=list).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def stream(environ, start_response):
    """?n=COUNT&size=BYTES chunks from a generator (no Content-Length: the server frames it)."""
    q = _query(environ)
    n, size = int(q.get("n", 5)), int(q.get("size", 10))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def chunks():
        for i in range(n):
            yield bytes([65 + i % 26]) * size

    return chunks()


def write_callable(environ, start_response):
    """Legacy write() streaming, then an iterable for the rest."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first,")
    write(b"second,")
    return [b"third"]


def empty(environ, start_response):
    start_response("204 No Content", [])
    return []


def not_modified(environ, start_response):
    start_response("304 Not Modified", [("ETag", '"x"')])
    return [b""]


class _Closing:
    """An iterable that records whether the server called close()."""

    closed = []

    def __init__(self, fail):
        self.fail = fail

    def __iter__(self):
        yield b"part1,"
        if self.fail:
            raise RuntimeError("failure after the headers were sent (expected by the test)")
        yield b"part2"

    def close(self):
        _Closing.closed.append(True)


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Closing(fail=_query(environ).get("fail") == "1")


def closed_count(environ, start_response):
    body = str(len(_Closing.closed)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def error_before(environ, start_response):
    raise RuntimeError("app failure before start_response (expected by the test)")


def exc_info_app(environ, start_response):
    """Starts a 200, then replaces it with a 503 through exc_info before any body was sent."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced response")
    except ValueError:
        import sys

        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"sorry"]


FILE_SIZE = 1 << 20


def file_bytes():
    """The deterministic 1 MiB the file app serves (tests compare against it)."""
    block = hashlib.sha256(b"pronghorn").digest() * 32  # 1 KiB
    return bytes(b ^ (i % 251) for i, b in enumerate(block)) * (FILE_SIZE // len(block))


_file_lock = threading.Lock()
_file_path = []


def _test_file():
    with _file_lock:
        if not _file_path:
            fd, path = tempfile.mkstemp(prefix="pronghorn-file-")
            with os.fdopen(fd, "wb") as f:
                f.write(file_bytes())
            _file_path.append(path)
        return _file_path[0]


def file_app(environ, start_response):
    """wsgi.file_wrapper over a real 1 MiB file (the sendfile path). ?length=N sets Content-Length."""
    q = _query(environ)
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    start_response("200 OK", headers)
    f = open(_test_file(), "rb")
    return environ["wsgi.file_wrapper"](f, 65536)


def big(environ, start_response):
    """?mb=N MiB streamed in 64 KiB chunks: a client that reads slowly exercises backpressure."""
    mb = int(_query(environ).get("mb", 8))
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(mb << 20))])
    chunk = b"x" * 65536
    return (chunk for _ in range(mb * 16))


def slow(environ, start_response):
    time.sleep(float(_query(environ).get("s", 0.2)))
    return hello(environ, start_response)


def pid(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {
    "/": hello,
    "/echo": echo,
    "/environ": environ_json,
    "/stream": stream,
    "/write": write_callable,
    "/empty": empty,
    "/not-modified": not_modified,
    "/closing": closing,
    "/closed-count": closed_count,
    "/error": error_before,
    "/exc-info": exc_info_app,
    "/big": big,
    "/slow": slow,
    "/pid": pid,
}
_VALIDATED = {path: validator(fn) for path, fn in ROUTES.items()}


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


def app(environ, start_response):
    """Validated apps by path; /file is unvalidated (validator's wrapper hides the file wrapper
    from the server, and the point is to exercise sendfile)."""
    path = environ["PATH_INFO"]
    if path == "/file":
        return file_app(environ, start_response)
    return _VALIDATED.get(path, validator(not_found))(environ, start_response)


# --- apps that break the rules on purpose (not validated) ---------------------------------------


def _raw_routes():
    def inject_value(environ, start_response):
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b"should not be sent"]

    def inject_name(environ, start_response):
        start_response("200 OK", [("X-Evil\r\nSet-Cookie", "pwned=1")])
        return [b"should not be sent"]

    def nul_value(environ, start_response):
        start_response("200 OK", [("X-Evil", "a\x00b")])
        return [b"should not be sent"]

    def bad_status(environ, start_response):
        start_response("200 OK\r\nSet-Cookie: pwned=1", [])
        return [b"should not be sent"]

    def hop_by_hop(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Keep-Alive", "timeout=99"),
                                  ("Transfer-Encoding", "chunked"), ("Connection", "close")])
        return [b"hop"]

    def too_long(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return [b"0123456789"]

    def too_short(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return iter([b"01234"])

    def no_start_response(environ, start_response):
        return []

    def str_body(environ, start_response):
        start_response("200 OK", [])
        return ["text is not bytes"]

    return {
        "/inject-value": inject_value, "/inject-name": inject_name, "/nul-value": nul_value,
        "/bad-status": bad_status, "/hop-by-hop": hop_by_hop, "/too-long": too_long,
        "/too-short": too_short, "/str-body": str_body, "/no-start-response": no_start_response,
        # Compliant, but unvalidated: validator's wrapper would hide the one-element list.
        "/nolength": hello_nolength,
    }


RAW_ROUTES = _raw_routes()


def raw(environ, start_response):
    return RAW_ROUTES.get(environ["PATH_INFO"], app)(environ, start_response)
