"""PEP 3333 behaviour: the environ apps see, start_response/exc_info, close(), proxy headers.

Black-box tests run a server in a subprocess with the validated apps of tests/server/apps.py;
a few unit tests drive `pronghorn.wsgi.Response` directly for contract details that are awkward
to provoke over a socket.
"""

import json
import os
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "server")]

from pronghorn import wsgi  # noqa: E402
from tests.server.harness import Reader, connect, request, serve  # noqa: E402


@pytest.fixture(scope="module")
def srv():
    with serve("tests.server.apps:app") as server:
        yield server


def environ_of(port, raw, host="127.0.0.1"):
    status, headers, body = request(port, raw, host=host)
    assert status == 200, body
    return json.loads(body)


def test_environ_has_every_pep3333_key(srv):
    with connect(srv.port) as s:
        client_port = s.getsockname()[1]
        s.sendall(b"GET /environ?a=1&b=%20 HTTP/1.1\r\nHost: example.test:81\r\nUser-Agent: t\r\n\r\n")
        status, _, body = Reader(s).response()
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["RAW_URI"] == "/environ?a=1&b=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(srv.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == str(client_port)
    assert env["SERVER_SOFTWARE"].startswith("pronghorn/")
    assert env["HTTP_HOST"] == "example.test:81" and env["HTTP_USER_AGENT"] == "t"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is False and env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["has_file_wrapper"] and env["has_errors"]
    assert "CONTENT_LENGTH" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_path_info_is_percent_decoded(srv):
    env = environ_of(srv.port, b"GET /envir%6Fn HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["PATH_INFO"] == "/environ" and env["RAW_URI"] == "/envir%6Fn"


def test_content_headers_have_no_http_prefix(srv):
    raw = (b"POST /environ HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 2\r\n\r\nhi")
    env = environ_of(srv.port, raw)
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_chunked_request_gets_a_content_length(srv):
    raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    # echo reads exactly CONTENT_LENGTH bytes (as Django does): it must see the decoded length.
    status, headers, body = request(srv.port, raw)
    assert body == b"abcde"


def test_duplicate_headers_are_joined(srv):
    raw = (b"GET /environ HTTP/1.1\r\nHost: t\r\nX-Multi: a\r\nX-Multi: b\r\n"
           b"Cookie: x=1\r\nCookie: y=2\r\n\r\n")
    env = environ_of(srv.port, raw)
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "x=1; y=2"


def test_header_names_with_underscores_are_dropped(srv):
    # X_User and X-User would both be HTTP_X_USER: the underscore spelling could spoof a header a
    # proxy sets, so it never reaches the app.
    env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: t\r\nX_User: evil\r\n\r\n")
    assert "HTTP_X_USER" not in env


def test_proxy_scheme_header_trusted_from_allowed_peer(srv):
    # 127.0.0.1 is in the default --forwarded-allow-ips.
    env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"


def test_proxy_scheme_header_ignored_from_other_peers():
    with serve("tests.server.apps:app", "--forwarded-allow-ips", "10.1.2.3") as srv:
        env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert env["wsgi.url_scheme"] == "http"


def test_proxy_scheme_header_trusted_from_allowed_network():
    with serve("tests.server.apps:app", "--forwarded-allow-ips", "10.0.0.0/8,127.0.0.0/8") as srv:
        env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: t\r\nX-Forwarded-Ssl: on\r\n\r\n")
    assert env["wsgi.url_scheme"] == "https"


def test_script_name_comes_from_the_environment():
    with serve("tests.server.apps:app", env={"SCRIPT_NAME": "/mount"}) as srv:
        env = environ_of(srv.port, b"GET /mount/environ HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["SCRIPT_NAME"] == "/mount" and env["PATH_INFO"] == "/environ"


def test_threads_set_multithread():
    with serve("tests.server.apps:app", "--threads", "3") as srv:
        env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["wsgi.multithread"] is True


def test_unix_socket_serves_and_sets_remote_addr():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        with serve("tests.server.apps:app", host="unix:" + path) as srv:
            with srv.connect() as s:
                s.sendall(b"GET /environ HTTP/1.1\r\nHost: t\r\n\r\n")
                status, _, body = Reader(s).response()
    env = json.loads(body)
    assert status == 200
    assert env["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in env


def _ipv6_loopback():
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_listener_sets_addresses():
    with serve("tests.server.apps:app", host="::1") as srv:
        env = environ_of(srv.port, b"GET /environ HTTP/1.1\r\nHost: [::1]\r\n\r\n", host="::1")
    assert env["REMOTE_ADDR"] == "::1" and env["SERVER_NAME"] == "::1"
    assert env["SERVER_PORT"] == str(srv.port)


def test_exc_info_replaces_a_response_not_yet_sent(srv):
    status, headers, body = request(srv.port, b"GET /exc-info HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (status, body) == (503, b"sorry")


def test_iterable_close_is_called(srv):
    def closed():
        return int(request(srv.port, b"GET /closed-count HTTP/1.1\r\nHost: t\r\n\r\n")[2])

    before = closed()
    assert request(srv.port, b"GET /closing HTTP/1.1\r\nHost: t\r\n\r\n")[2] == b"part1,part2"
    request(srv.port, b"GET /closing?fail=1 HTTP/1.0\r\n\r\n")  # fails mid-body: still closed
    assert closed() == before + 2


# --- unit tests of the response contract (no sockets) -----------------------------------------


class _Log:
    def __init__(self):
        self.lines = []

    def warning(self, msg, *args):
        self.lines.append(msg % args)

    error = debug = info = warning


def make_response(version="HTTP/1.1", head=False, keep_alive=True):
    out = []
    return wsgi.Response(out.append, _Log(), version, head, keep_alive), out


def test_start_response_twice_without_exc_info_is_an_error():
    resp, _ = make_response()
    resp.start_response("200 OK", [])
    with pytest.raises(wsgi.ResponseError):
        resp.start_response("200 OK", [])


def test_exc_info_after_headers_sent_reraises_the_apps_error():
    resp, out = make_response()
    resp.start_response("200 OK", [])
    resp.send_body_chunk(b"x")
    try:
        raise KeyError("original")
    except KeyError:
        with pytest.raises(KeyError, match="original"):
            resp.start_response("500 Oops", [], sys.exc_info())


@pytest.mark.parametrize("status", ["200", "OK", "20 OK", "600 Nope", "200 OK\r\nX: y", "200  \x00", b"200 OK"])
def test_invalid_status_is_refused(status):
    resp, _ = make_response()
    with pytest.raises(wsgi.ResponseError):
        resp.start_response(status, [])


@pytest.mark.parametrize("headers", [
    [("X-A", "1\r\nX-B: 2")], [("X A", "1")], [("X-A:", "1")], [("X-A", "\n")], [("X-A", 1)],
    [("X-A", "snowman \u2603")], [("X-A",)], ("X-A", "1"), [("Content-Length", "-1")],
    [("Content-Length", "1"), ("Content-Length", "1")],
])
def test_invalid_headers_are_refused(headers):
    resp, _ = make_response()
    with pytest.raises(wsgi.ResponseError):
        resp.start_response("200 OK", headers)


def test_small_response_is_one_write_with_content_length():
    resp, out = make_response()
    resp.start_response("200 OK", [("Content-Type", "text/plain")])
    assert resp.finish_single(b"hello") is True
    assert len(out) == 1
    head, body = out[0].split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n")
    assert body == b"hello"


def test_http10_stream_closes_and_is_not_chunked():
    resp, out = make_response("HTTP/1.0", keep_alive=True)
    resp.start_response("200 OK", [])
    resp.send_body_chunk(b"a")
    resp.send_body_chunk(b"b")
    assert resp.finish() is False
    data = b"".join(out)
    assert b"Transfer-Encoding" not in data and b"Connection: close\r\n" in data
    assert data.endswith(b"\r\n\r\nab")


def test_head_response_sends_no_body_but_keeps_the_length():
    resp, out = make_response(head=True)
    resp.start_response("200 OK", [])
    resp.finish_single(b"hello")
    assert b"Content-Length: 5\r\n" in out[0] and out[0].endswith(b"\r\n\r\n")


def test_headers_wait_for_the_first_non_empty_chunk():
    resp, out = make_response()
    resp.start_response("200 OK", [])
    resp.send_body_chunk(b"")
    assert out == []
    resp.send_body_chunk(b"abc")
    resp.finish()
    assert b"".join(out).endswith(b"3\r\nabc\r\n0\r\n\r\n")


def test_error_response_is_complete_and_closes():
    data = wsgi.error_response(413, "body larger than 10 bytes")
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"Connection: close" in head
    assert b"Content-Length: %d" % len(body) in head


# --- worker lifecycle and hooks ------------------------------------------------------------------


def _pids(srv, count):
    pids = []
    for _ in range(count):
        status, _, body = request(srv.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status == 200
        pids.append(int(body))
    return pids


def test_max_requests_recycles_the_worker():
    with serve("tests.server.apps:app", "--max-requests", "3") as srv:
        pids = _pids(srv, 12)
    # Every request was answered, by several workers in turn. Each serves its 3, plus at most the
    # one connection this sequential client may already have waiting in the backlog when the
    # worker stops (a stopping worker answers those rather than let them be dropped).
    assert len(set(pids)) >= 3
    assert all(pids.count(p) <= 4 for p in set(pids))


def test_max_worker_memory_recycles_the_worker():
    # 1 MiB is below any Python process: the worker is recycled after its next memory check.
    with serve("tests.server.apps:app", "--max-worker-memory", "1") as srv:
        first = _pids(srv, 1)[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pids(srv, 1)[0] == first:
            time.sleep(0.5)
        assert _pids(srv, 1)[0] != first
        assert "max_worker_memory" in srv.errors()


def test_access_log_line_per_request():
    with serve("tests.server.apps:app", "--access-logfile", "-") as srv:
        request(srv.port, b"GET /environ?q=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: ua-test\r\n\r\n")
        request(srv.port, b"GET /error HTTP/1.1\r\nHost: t\r\n\r\n")
        request(srv.port, b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "/missing" not in srv.errors():
            time.sleep(0.1)
        log = srv.errors()
    assert '"GET /environ?q=1 HTTP/1.1" 200' in log and "ua-test" in log
    assert '"GET /missing HTTP/1.1" 404' in log
    assert '"GET /error HTTP/1.1" 500' in log  # failed requests are logged too


def test_pre_and_post_request_hooks_are_called(tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(
        "import sys\n"
        "def pre_request(worker, req):\n"
        "    sys.stderr.write('PRE %s %s\\n' % (req.method, req.path)); sys.stderr.flush()\n"
        "def post_request(worker, req, environ, resp):\n"
        "    sys.stderr.write('POST %s %s %s\\n' % (req.path, resp.status, resp.sent)); sys.stderr.flush()\n"
    )
    with serve("tests.server.apps:app", "-c", str(conf)) as srv:
        request(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "POST / " not in srv.errors():
            time.sleep(0.1)
        log = srv.errors()
    assert "PRE GET /\n" in log
    assert "POST / 200 OK 13\n" in log


def test_app_date_and_server_headers_replace_ours():
    resp, out = make_response()
    resp.start_response("200 OK", [("Server", "custom"), ("Date", "Thu, 01 Jan 2015 00:00:00 GMT")])
    resp.finish_single(b"x")
    head = out[0].split(b"\r\n\r\n")[0]
    assert head.count(b"Date:") == 1 and b"Date: Thu, 01 Jan 2015" in head
    assert head.count(b"Server:") == 1 and b"Server: custom" in head


def test_date_and_server_headers_added_otherwise():
    resp, out = make_response()
    resp.start_response("200 OK", [])
    resp.finish_single(b"x")
    assert b"\r\nDate: " in out[0] and b"\r\nServer: pronghorn\r\n" in out[0]
