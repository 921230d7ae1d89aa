"""statsd metrics over UDP (`--statsd-host`, `--statsd-prefix`, `--dogstatsd-tags`), as gunicorn's.

The metric names are gunicorn's, so dashboards built on them keep working: per request
`gunicorn.requests` (counter), `gunicorn.request.duration` (ms timer) and
`gunicorn.request.status.200` (counter), plus the status class `gunicorn.request.status.2xx`;
`gunicorn.log.error` (and critical, warning, exception) per error-log line; the master's
`gunicorn.workers` gauge, and with --enable-backlog-metric its `gunicorn.backlog` histogram
(connections waiting in the TCP listeners' accept queues). Lines are collected in a list and sent once per event-loop pass, packed into datagrams of at
most MAX_DATAGRAM bytes, from a non-blocking socket: a statsd that is down or slow costs a
dropped datagram, never a blocked worker. The logger creates a Statsd only when --statsd-host is
set, so nothing here runs otherwise.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

MAX_DATAGRAM = 1432  # fits one Ethernet frame with IP/UDP headers; statsd reads one line per \n


def parse_address(text: str) -> tuple[int, Any]:
    """'HOST:PORT' or 'unix:PATH' (also 'unix://PATH') -> (address family, address).

    Raises ValueError with what was wrong.
    """
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise ValueError(f"'{text}' has no socket path after 'unix:'")
        return socket.AF_UNIX, path
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not HOST:PORT (e.g. 127.0.0.1:8125) or unix:PATH")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


class Statsd:
    """Collects metric lines and sends them in batches; one per worker (created before the fork,
    the socket opened lazily in the process that sends)."""

    def __init__(self, cfg: Any, log: Any = None) -> None:
        self.family, self.address = parse_address(cfg.statsd_host)
        prefix = cfg.statsd_prefix or ""
        self.prefix = prefix if not prefix or prefix.endswith(".") else prefix + "."
        tags = ",".join(t.strip() for t in (cfg.dogstatsd_tags or "").split(",") if t.strip())
        self.suffix = "|#" + tags if tags else ""
        self.log = log
        self._lines: list[str] = []
        self._sock: socket.socket | None = None
        self._pid = None
        self._loop = None
        self._loop_thread = None
        self._scheduled = False
        self._warned = False

    def bind_loop(self, loop: Any) -> None:
        """Send from this event loop, once per pass (the worker calls this as it starts)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def request(self, status: str, duration: float) -> None:
        """One finished request: status is '200 OK', duration in seconds."""
        code = status[:3]
        p, s = self.prefix, self.suffix
        self._lines += (f"{p}gunicorn.requests:1|c{s}",
                        f"{p}gunicorn.request.duration:{duration * 1000.0:.3f}|ms{s}",
                        f"{p}gunicorn.request.status.{code}:1|c{s}",
                        f"{p}gunicorn.request.status.{code[:1]}xx:1|c{s}")
        if not self._scheduled:
            self._schedule()

    def increment(self, name: str) -> None:
        self._lines.append(f"{self.prefix}{name}:1|c{self.suffix}")
        if not self._scheduled:
            self._schedule()

    def gauge(self, name: str, value: float) -> None:
        self._lines.append(f"{self.prefix}{name}:{value}|g{self.suffix}")
        if not self._scheduled:
            self._schedule()

    def histogram(self, name: str, value: float) -> None:
        self._lines.append(f"{self.prefix}{name}:{value}|h{self.suffix}")
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self.flush()  # no loop (the master, tests): send now
            return
        self._scheduled = True
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(self.flush)
        else:  # an app thread (--threads N) finished the request
            loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        """Send what was collected, packed into as few datagrams as fit."""
        self._scheduled = False
        lines, self._lines = self._lines, []
        if not lines:
            return
        packet: list[str] = []
        size = 0
        for line in lines:
            if packet and size + len(line) + 1 > MAX_DATAGRAM:
                self._send("\n".join(packet))
                packet, size = [], 0
            packet.append(line)
            size += len(line) + 1
        self._send("\n".join(packet))

    def _send(self, data: str) -> None:
        try:
            sock = self._socket()
            sock.sendto(data.encode("ascii", "replace"), self.address)
        except OSError as exc:
            # A full buffer or an absent statsd drops metrics, never a request; said once.
            if not self._warned and self.log is not None:
                self._warned = True
                self.log.warning("statsd %s: cannot send metrics: %s (further errors not logged)",
                                 self.address, exc)

    def _socket(self) -> socket.socket:
        if self._sock is None or self._pid != os.getpid():  # a fork: each process its own socket
            self._sock = socket.socket(self.family, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._pid = os.getpid()
        return self._sock

    def close(self) -> None:
        self.flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
