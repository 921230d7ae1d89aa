"""The master's own small sockets (the control socket, the metrics address), served in its loop.

The arbiter sleeps in ``select()`` on its wake-up pipe; it adds ``Sideband.fds()`` to that call and
hands the ready ones to ``Sideband.handle()``. No thread: the master forks, and a thread holding a
lock (the logging module's, say) at the fork would leave the child deadlocked.

Each listener has an ``answer(request_bytes) -> reply bytes | None`` (None: not complete yet).
Clients are non-blocking and bounded: at most MAX_CLIENTS at once, MAX_REQUEST bytes each, and
CLIENT_DEADLINE seconds to send their request; the reply (a few KiB) is sent with a short timeout,
so no client can hold the master's loop. The listening sockets are closed in every forked child
(os.register_at_fork), so a worker never keeps the control socket alive after the master is gone.
"""

import os
import socket
import time

__all__ = ["Sideband", "Listener"]

MAX_CLIENTS = 16
MAX_REQUEST = 16 * 1024
CLIENT_DEADLINE = 5.0
SEND_TIMEOUT = 1.0
_ACCEPTS_PER_WAKE = 16

_open = []  # every Sideband of this process, for the fork hook


def _close_in_child():
    for sideband in _open:
        sideband.close(in_child=True)
    _open.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class Listener:
    """A listening socket and the function that answers one request read from it."""

    def __init__(self, sock, answer, name, on_close=None):
        sock.setblocking(False)
        self.sock = sock
        self.answer = answer
        self.name = name
        self.on_close = on_close  # e.g. remove the unix socket file (not in a forked child)


class _Client:
    __slots__ = ("sock", "listener", "data", "deadline")

    def __init__(self, sock, listener):
        self.sock = sock
        self.listener = listener
        self.data = b""
        self.deadline = time.monotonic() + CLIENT_DEADLINE


class Sideband:
    def __init__(self, log):
        self.log = log
        self.listeners = {}  # fd -> Listener
        self.clients = {}  # fd -> _Client
        _open.append(self)

    def add(self, listener):
        self.listeners[listener.sock.fileno()] = listener

    def fds(self):
        """What the master's select() should wait on (stale clients are dropped first)."""
        if self.clients:
            now = time.monotonic()
            for fd, client in list(self.clients.items()):
                if now > client.deadline:
                    self._drop(fd)
        return list(self.listeners) + list(self.clients)

    def handle(self, ready):
        for fd in ready:
            if fd in self.listeners:
                self._accept(self.listeners[fd])
            elif fd in self.clients:
                self._read(fd, self.clients[fd])

    def _accept(self, listener):
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, _ = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("%s: accept failed: %s", listener.name, exc)
                return
            if len(self.clients) >= MAX_CLIENTS:
                sock.close()  # busy: the client sees the close and may retry
                continue
            sock.setblocking(False)
            self.clients[sock.fileno()] = _Client(sock, listener)

    def _read(self, fd, client):
        try:
            chunk = client.sock.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        client.data += chunk
        try:
            reply = client.listener.answer(client.data)
        except Exception:
            self.log.exception("%s: answering a request failed", client.listener.name)
            self._drop(fd)
            return
        if reply is None:
            if not chunk or len(client.data) >= MAX_REQUEST:
                self._drop(fd)  # the client closed mid-request, or sent too much
            return
        client.sock.settimeout(SEND_TIMEOUT)
        try:
            client.sock.sendall(reply)
        except OSError:
            pass
        self._drop(fd)

    def _drop(self, fd):
        client = self.clients.pop(fd, None)
        if client is not None:
            client.sock.close()

    def close(self, in_child=False):
        """Close everything; the listeners' on_close runs only in the process that opened them."""
        for fd in list(self.clients):
            self._drop(fd)
        for listener in self.listeners.values():
            listener.sock.close()
            if listener.on_close is not None and not in_child:
                listener.on_close()
        self.listeners = {}
        if self in _open:
            _open.remove(self)


def open_sideband(arbiter):
    """The master's Sideband for --control-socket and --metrics-bind, or None when neither is set.
    Raises OSError (its message says what to fix) when a socket cannot be opened."""
    cfg = arbiter.cfg
    path = None if getattr(cfg, "control_socket_disable", False) else getattr(cfg, "control_socket", None)
    address = getattr(cfg, "metrics_bind", None)
    if not path and not address:
        return None
    sideband = Sideband(arbiter.log)
    try:
        if path:
            from pronghorn.control import open_control_socket
            mode = getattr(cfg, "control_socket_mode", None)
            sideband.add(open_control_socket(arbiter, path, 0o600 if mode is None else mode))
            arbiter.log.info("Control socket: %s (pronghorn ctl --socket %s show workers)", path, path)
        if address:
            from pronghorn.metrics import open_metrics_listener
            sideband.add(open_metrics_listener(arbiter, address))
            arbiter.log.info("Metrics at: http://%s/metrics", address)
    except OSError:
        sideband.close()
        raise
    return sideband
