"""Run a pronghorn server in a subprocess on a free loopback port, and talk raw HTTP to it.

Black-box tests elsewhere reuse this:

    with serve("tests.server.apps:hello", "--keep-alive", "2") as srv:
        status, headers, body = request(srv.port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")

The listening socket is bound here (port 0: the kernel picks a free port, no race) and handed to
the server as ``-b fd://N``. Two ways to run the server:

* ``cli`` (default): ``python -m pronghorn -b fd://N ...`` — the real thing, arbiter and all.
* ``direct``: one `Worker` run straight in the subprocess (no arbiter), built from the real config
  and logger. Set ``PRONGHORN_HARNESS=direct`` to use it, e.g. to tell a worker bug from an arbiter one.

Every wait here is bounded; a server that does not come up raises with its stderr.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_SRC = os.path.join(REPO, "server")
START_TIMEOUT = 20.0


class Server:
    """A running server subprocess: `.port`, `.pid`, `.stop()`, `.errors()` (its stderr so far)."""

    def __init__(self, proc, port, host, stderr_path):
        self.proc = proc
        self.port = port
        self.host = host
        self.pid = proc.pid
        self._stderr_path = stderr_path

    def connect(self, timeout=10.0):
        """A new client socket to this server (TCP or unix)."""
        if self.host.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.host[len("unix:"):])
            return s
        return socket.create_connection((self.host, self.port), timeout=timeout)

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def errors(self):
        with open(self._stderr_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal the server (TERM: graceful) and wait; SIGKILL it if it outlives `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _env():
    env = dict(os.environ)
    paths = [SERVER_SRC, REPO]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PRONGHORN_CMD_ARGS", None)
    env.pop("WEB_CONCURRENCY", None)
    return env


def start(app, *args, mode=None, host="127.0.0.1", env=None, cwd=None):
    """Start a server for `app` ("module:attr") with extra CLI `args`; returns a ready Server."""
    mode = mode or os.environ.get("PRONGHORN_HARNESS", "cli")
    if host.startswith("unix:"):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(host[len("unix:"):])
        port = None
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        port = listener.getsockname()[1]
    listener.listen(128)
    fd = listener.fileno()
    fd_args = ["-b", "fd://%d" % fd, *args, app]
    if mode == "direct":
        cmd = [sys.executable, os.path.abspath(__file__), "direct", *fd_args]
    else:
        cmd = [sys.executable, "-m", "pronghorn", *fd_args]
    stderr = tempfile.NamedTemporaryFile(prefix="pronghorn-test-", suffix=".log", delete=False)
    full_env = _env()
    if env:
        full_env.update(env)
    proc = subprocess.Popen(cmd, pass_fds=[fd], stdout=stderr, stderr=stderr, env=full_env,
                            cwd=cwd or REPO)
    stderr.close()
    listener.close()  # the child has its own copy
    server = Server(proc, port, host, stderr.name)
    try:
        _wait_ready(server)
    except Exception:
        server.stop(signal.SIGKILL)
        raise
    return server


def _wait_ready(server):
    """Until one request gets any response. The socket is bound already, so connects succeed at
    once; a response proves a worker is serving."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("server exited with %s before serving:\n%s"
                               % (server.proc.returncode, server.errors()))
        try:
            with server.connect(timeout=1.0) as s:
                s.sendall(b"GET /__harness_ready__ HTTP/1.0\r\n\r\n")
                if s.recv(16):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not answer within %ss:\n%s" % (START_TIMEOUT, server.errors()))


@contextlib.contextmanager
def serve(app, *args, **kwargs):
    server = start(app, *args, **kwargs)
    try:
        yield server
    finally:
        server.stop()
        try:
            os.unlink(server._stderr_path)
        except OSError:
            pass


# --- a raw HTTP client (so tests see exactly the bytes on the wire) --------------------------


def connect(port, host="127.0.0.1", timeout=10.0):
    return socket.create_connection((host, port), timeout=timeout)


class Reader:
    """Reads HTTP responses off a socket, one at a time (pipelining-aware)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()  # appended in place: big bodies must not be copied per recv

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _line(self):
        start = 0
        while True:
            end = self.buf.find(b"\r\n", start)
            if end >= 0:
                break
            start = max(0, len(self.buf) - 1)
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def head(self):
        """(status: int, reason, headers: list[(lower name, value)])."""
        line = self._line()
        version, status, reason = line.decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1", line
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return int(status), reason, headers

    def response(self, method="GET"):
        """(status, headers as dict of lower names, body bytes); 100 Continue is returned as is."""
        status, _, header_list = self.head()
        headers = {}
        for name, value in header_list:
            headers[name] = headers[name] + ", " + value if name in headers else value
        if method == "HEAD" or status in (204, 304) or status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    return status, headers, body
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n"
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]))
        return status, headers, self.rest()

    def rest(self):
        """Everything until the server closes."""
        while True:
            try:
                self._fill()
            except EOFError:
                data = bytes(self.buf)
                self.buf.clear()
                return data


def request(port, raw, method="GET", host="127.0.0.1"):
    """Send one raw request on a new connection; return (status, headers, body)."""
    with connect(port, host) as s:
        s.sendall(raw)
        return Reader(s).response(method)


def closed_by_server(sock, timeout=10.0):
    """True when the server closes the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def _run_direct(argv):
    """`harness.py direct ARGS...`: one Worker in this process, no arbiter."""
    sys.path[:0] = [SERVER_SRC, REPO]
    from pronghorn.config import load_config
    from pronghorn.logs import Logger
    from pronghorn.worker import Worker

    cfg = load_config(argv, environ={})
    log = Logger(cfg)
    listeners = []
    for bind in cfg.bind:
        fd = int(bind[len("fd://"):])
        listeners.append(socket.socket(fileno=fd))
    worker = Worker(1, os.getppid(), listeners, None, cfg, log, None)
    worker.run()


if __name__ == "__main__" and sys.argv[1:2] == ["direct"]:
    _run_direct(sys.argv[2:])
