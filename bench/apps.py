"""The WSGI apps of the benchmark: the same callables are served by every server.

Each scenario of bench/run.py names one of these by `bench.apps:NAME`. They are kept
as small as a WSGI app can be, so the numbers measure the server, not the app:

- `hello`     a 13-byte text response (keep-alive throughput, per-request overhead)
- `echo`      returns the request body it was sent (the 64 KiB POST scenario)
- `sleep10`   blocks its thread for 10 ms, as an app waiting on a database would
- `file1m`    a 1 MiB file through `wsgi.file_wrapper` (sendfile where the server has it)

Every app answers with a Content-Length, so no server has to fall back to chunked
encoding or closing the connection to frame a response.
"""

import os
import tempfile
import time

HELLO_BODY = b"Hello, world!"
FILE_SIZE = 1024 * 1024
# One file for every worker of every server; rewritten only when missing or the wrong size.
FILE_PATH = os.path.join(tempfile.gettempdir(), "pronghorn-bench-1mib.bin")


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO_BODY)))])
    return [HELLO_BODY]


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def sleep10(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO_BODY)))])
    return [HELLO_BODY]


def file1m(environ, start_response):
    f = open(ensure_bench_file(), "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(FILE_SIZE))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, 65536)
    return _read_in_blocks(f)


def _read_in_blocks(f, block=65536):
    # Only for a server without wsgi.file_wrapper (PEP 3333 makes it optional).
    with f:
        while chunk := f.read(block):
            yield chunk


def ensure_bench_file(path=FILE_PATH, size=FILE_SIZE):
    """Return the path of the 1 MiB file, writing it first if it is missing or truncated."""
    try:
        if os.path.getsize(path) == size:
            return path
    except OSError:
        pass
    # Written under a unique name and renamed, so a worker never serves a half-written file.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pronghorn-bench-")
    with os.fdopen(fd, "wb") as out:
        out.write(bytes(range(256)) * (size // 256))
    os.replace(tmp, path)
    return path
