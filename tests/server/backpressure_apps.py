"""WSGI apps for test_backpressure.py: a large answer, the worker's pid, a body's length."""

import os

BIG = b"x" * 100_000  # about the size of a page with inline assets


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        body = BIG
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/upload":
        body = str(len(environ["wsgi.input"].read())).encode()
    else:
        body = b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
