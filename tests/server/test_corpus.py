"""Conformance corpus: raw requests that must reach the app exactly as sent, or be refused.

``tests/server/corpus/valid/NAME.http`` and ``invalid/NAME.http`` hold the bytes exactly as a client
writes them on the wire (CRLFs included, no escaping); ``NAME.json`` next to each says what must happen
and why (the RFC section, and the gunicorn test case it covers, see docs/http-strictness.md):

* valid: ``requests`` lists what the application must see, in order: method, target, PATH_INFO,
  QUERY_STRING, version, header fields (names upper-cased, as the parser reports them), body, trailers.
* invalid: ``status`` is the answer; ``answered_before`` counts good requests in front of the bad one
  (answered first); ``truncated`` marks input that is only wrong because the client stops sending
  (half-closes): the parser must refuse it at EOF, and the server must answer ``status`` or just close
  (RFC 9112 §8 makes the response a MAY), never answer 2xx.

Every file runs twice: (a) through `RequestParser` in-process (whole, then one byte per feed: the result
must not depend on how the bytes were cut), and (b) black-box against a real ``python -m pronghorn``
over a loopback socket with `echo_app`, which answers with what it saw as JSON. Invalid requests must
get their 4xx/5xx and a closed connection, never a 2xx.
"""

import json
import os
import socket

import pytest

from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import RequestParser
from tests.server import harness

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def _cases(kind):
    folder = os.path.join(CORPUS, kind)
    names = sorted(name[:-len(".http")] for name in os.listdir(folder) if name.endswith(".http"))
    return [pytest.param(os.path.join(folder, name), id=name) for name in names]


VALID = _cases("valid")
INVALID = _cases("invalid")


def load(path):
    """(raw bytes, expectation dict) of one corpus case; a missing expectation file is an error."""
    with open(path + ".http", "rb") as f:
        data = f.read()
    with open(path + ".json", encoding="utf-8") as f:
        expected = json.load(f)
    return data, expected


def test_the_corpus_is_complete():
    """Every .http has its .json and the other way round, and both folders hold real cases."""
    assert len(VALID) >= 25 and len(INVALID) >= 60
    for kind in ("valid", "invalid"):
        names = os.listdir(os.path.join(CORPUS, kind))
        stems = {name.rsplit(".", 1)[0] for name in names}
        for stem in stems:
            assert stem + ".http" in names and stem + ".json" in names, f"{kind}/{stem}: needs .http and .json"


# ---------------------------------------------------------------------- (a) the parser, in-process


def _parse(data, byte_by_byte):
    """Feed `data` (whole or one byte at a time) then EOF; return the requests the app would get."""
    parser = RequestParser()
    requests = []
    pieces = [data[i:i + 1] for i in range(len(data))] if byte_by_byte else [data]
    for piece in pieces:
        requests += parser.feed(piece)
    parser.feed_eof()
    # The server reads nothing after a request that ends the connection (Connection: close, HTTP/1.0).
    for index, request in enumerate(requests):
        if not request.keep_alive:
            return requests[:index + 1]
    return requests


def _as_seen(request):
    return {
        "method": request.method, "target": request.target, "path": request.path, "query": request.query,
        "version": request.version, "headers": [list(h) for h in request.headers],
        "body": request.body.read().decode("latin-1"), "trailers": [list(t) for t in request.trailers],
    }


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("path", VALID)
def test_valid_request_is_parsed_exactly_as_sent(path, byte_by_byte):
    data, expected = load(path)
    seen = [_as_seen(request) for request in _parse(data, byte_by_byte)]
    assert seen == expected["requests"], expected["about"]


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("path", INVALID)
def test_invalid_request_is_refused_by_the_parser(path, byte_by_byte):
    data, expected = load(path)
    with pytest.raises(HTTPError) as caught:
        _parse(data, byte_by_byte)
    error = caught.value
    assert error.status == expected["status"], f"{expected['about']}: got {error}"
    assert error.reason, "an error must say what was wrong"
    if not byte_by_byte:
        assert len(error.requests) == expected.get("answered_before", 0)


# ---------------------------------------------------------------------- (b) the real server, black-box


def echo_app(environ, start_response):
    """What the application saw, as JSON: method, raw target, PATH_INFO, query, headers, body."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {
        "method": environ["REQUEST_METHOD"], "target": environ.get("RAW_URI"), "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"], "version": environ["SERVER_PROTOCOL"],
        "headers": {key: value for key, value in environ.items()
                    if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")},
        "body": body.decode("latin-1"),
    }
    payload = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def environ_headers(request):
    """The environ keys PEP 3333 derives from the expected header fields.

    CONTENT_TYPE/CONTENT_LENGTH without HTTP_; other names HTTP_ with '-' -> '_'; repeated fields joined
    in order (Cookie with '; ', RFC 6265 §5.4; others with ', ', RFC 9110 §5.3); names spelled with '_'
    are dropped (they would collide with the '-' spelling). A de-chunked body reports its length.
    """
    environ = {}
    for name, value in request["headers"]:
        if "_" in name:
            continue
        key = name.replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            environ[key] = value
    if any(name == "TRANSFER-ENCODING" for name, _ in request["headers"]):
        environ["CONTENT_LENGTH"] = str(len(request["body"]))
    return environ


@pytest.fixture(scope="module")
def server():
    with harness.serve("tests.server.test_corpus:echo_app", "--workers", "1") as srv:
        yield srv


def _final_response(reader, method):
    """The next final response, skipping interim 1xx ones (100 Continue)."""
    while True:
        status, headers, body = reader.response(method)
        if status >= 200:
            return status, headers, body


@pytest.mark.parametrize("path", VALID)
def test_valid_request_reaches_the_app_exactly_as_sent(server, path):
    data, expected = load(path)
    with server.connect() as sock:
        sock.sendall(data)
        reader = harness.Reader(sock)
        for want in expected["requests"]:
            status, _, body = _final_response(reader, want["method"])
            assert status == 200, f"{expected['about']}: got {status} {body[:200]!r}"
            seen = json.loads(body)
            assert seen == {
                "method": want["method"], "target": want["target"], "path": want["path"], "query": want["query"],
                "version": want["version"], "headers": environ_headers(want), "body": want["body"],
            }, expected["about"]
        if ends_the_connection(expected["requests"][-1]):
            assert not reader.buf and harness.closed_by_server(sock), "nothing is answered after it"


def ends_the_connection(request):
    """RFC 9112 §9.3: 'Connection: close', or HTTP/1.0 without 'Connection: keep-alive'."""
    options = {value.lower() for name, value in request["headers"] if name == "CONNECTION"}
    return "close" in options or (request["version"] == "HTTP/1.0" and "keep-alive" not in options)


@pytest.mark.parametrize("path", INVALID)
def test_invalid_request_gets_an_error_and_a_close(server, path):
    data, expected = load(path)
    with server.connect() as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early and closed: what matters is what it answered
        if expected.get("truncated"):
            sock.shutdown(socket.SHUT_WR)  # the client gives up mid-request
        reader = harness.Reader(sock)
        for _ in range(expected.get("answered_before", 0)):
            status, _, _ = _final_response(reader, "GET")
            assert status == 200
        try:
            status, _, body = _final_response(reader, "GET")
        except (EOFError, ConnectionResetError) as exc:
            # RFC 9112 §8: for a message cut short by the client, an error response is a MAY; the
            # server may just close. Anything else must be answered.
            assert expected.get("truncated"), f"{expected['about']}: closed without an error response ({exc!r})"
            return
        assert status == expected["status"], f"{expected['about']}: got {status} {body[:200]!r}"
        assert harness.closed_by_server(sock), "the connection must be closed after an error"
