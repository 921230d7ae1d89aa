"""Talking to systemd: the sd_notify protocol (``Type=notify`` units).

systemd passes ``NOTIFY_SOCKET`` (a unix datagram socket path, or an abstract name starting
with ``@``) to a ``Type=notify`` service. The service sends newline-separated ``KEY=VALUE``
lines to it: ``READY=1`` once it serves, ``RELOADING=1`` / ``STOPPING=1`` around a reload or a
stop, ``STATUS=...`` free text shown by ``systemctl status``, ``MAINPID=`` after a re-exec.

Without ``NOTIFY_SOCKET`` every call is a no-op, so the server never needs to know whether it
runs under systemd. Errors are swallowed (and reported as False): a status message must never
take the server down.
"""

import os
import socket

__all__ = ["notify", "notify_socket_address"]


def notify_socket_address(environ=None):
    """The address to send notifications to, or None when not running under systemd.

    An ``@`` prefix means a Linux abstract socket: the name starts with a NUL byte.
    """
    environ = os.environ if environ is None else environ
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    if path.startswith("@"):
        return "\0" + path[1:]
    return path


def notify(state, environ=None):
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=serving"``) to systemd.

    Returns True when a datagram was sent, False when there is nowhere to send it or the send
    failed.
    """
    address = notify_socket_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False
