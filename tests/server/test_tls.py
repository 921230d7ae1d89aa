"""TLS on the event loop: --certfile/--keyfile with a self-signed certificate made by openssl here.
An ssl client gets its 200 (wsgi.url_scheme https, a file_wrapper body intact though sendfile is
off); plain HTTP to the TLS port is closed without an answer and the server serves on."""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

from tests.server.apps import file_bytes
from tests.server.harness import REPO, Reader, Server, _env
from tests.server.test_gunicorn_flags import make_certificate

START_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    make_certificate(cert, key)
    return str(cert), str(key)


def client_context(cert):
    context = ssl.create_default_context(cafile=cert)
    return context


def tls_request(port, cert, raw, method="GET"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        with client_context(cert).wrap_socket(plain, server_hostname="localhost") as s:
            s.sendall(raw)
            return Reader(s).response(method)


def start_tls(app, cert, key, *args):
    """The harness's start(), but ready means an answer over TLS (its plain probe gets none)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="pronghorn-tls-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "pronghorn", "-b", "fd://%d" % listener.fileno(),
           "--certfile", cert, "--keyfile", key, *args, app]
    proc = subprocess.Popen(cmd, pass_fds=[listener.fileno()], stdout=log, stderr=log, env=_env(), cwd=REPO)
    log.close()
    listener.close()
    server = Server(proc, port, "127.0.0.1", log.name)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited before serving:\n" + server.errors())
        try:
            tls_request(port, cert, b"GET /ready HTTP/1.0\r\n\r\n")
            return server
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError("server did not answer over TLS:\n" + server.errors())


@pytest.fixture(scope="module")
def tls_server(certificate):
    server = start_tls("tests.server.apps:app", *certificate)
    yield server
    server.stop()
    os.unlink(server._stderr_path)


def test_an_ssl_client_gets_200_over_https(tls_server, certificate):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as plain:
        with client_context(certificate[0]).wrap_socket(plain, server_hostname="localhost") as s:
            reader = Reader(s)
            for _ in range(2):  # keep-alive works through TLS
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body = reader.response()
                assert (status, body) == (200, b"Hello, world!")


def test_the_app_sees_https_and_a_file_body_arrives_whole(tls_server, certificate):
    _, _, body = tls_request(tls_server.port, certificate[0],
                             b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert json.loads(body)["wsgi.url_scheme"] == "https"
    # wsgi.file_wrapper: sendfile would bypass OpenSSL, so it must be off under TLS
    status, _, body = tls_request(tls_server.port, certificate[0],
                                  b"GET /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == file_bytes()


def test_plain_http_to_the_tls_port_is_closed_and_the_server_serves_on(tls_server, certificate):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        try:
            for _ in range(10):  # bounded: a close comes within a few reads
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1 200" not in received
    status, _, _ = tls_request(tls_server.port, certificate[0], b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert "Traceback" not in tls_server.errors()


def test_a_key_that_does_not_match_stops_the_server_with_a_message(tmp_path, certificate):
    other_cert, other_key = tmp_path / "c.pem", tmp_path / "k.pem"
    make_certificate(other_cert, other_key)
    proc = subprocess.run([sys.executable, "-m", "pronghorn", "-b", "127.0.0.1:0", "--certfile",
                           certificate[0], "--keyfile", str(other_key), "tests.server.apps:hello"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "cannot set up TLS (--certfile/--keyfile)" in proc.stderr


def test_the_ssl_context_hook_shapes_the_context(tmp_path, certificate):
    conf = tmp_path / "tls13.conf.py"
    conf.write_text(
        "def ssl_context(config, default_ssl_context_factory):\n"
        "    import ssl\n"
        "    context = default_ssl_context_factory()\n"
        "    context.minimum_version = ssl.TLSVersion.TLSv1_3\n"
        "    return context\n")
    server = start_tls("tests.server.apps:app", *certificate, "-c", str(conf))
    try:
        old = client_context(certificate[0])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
            with pytest.raises(ssl.SSLError):
                old.wrap_socket(plain, server_hostname="localhost")
        status, _, _ = tls_request(server.port, certificate[0], b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200
    finally:
        server.stop()
