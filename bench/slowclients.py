"""Slow and idle clients for the benchmark's `slow` scenario (bench/run.py starts this).

Opens two kinds of connections to one server on the loopback interface and holds them
while wrk measures hello world on the same server:

- *slowloris* connections send a request head one byte every few seconds and never
  finish it. When the server closes one (a header timeout), it is reopened after a
  pause, as an attacker would.
- *idle* keep-alive connections send one complete request, read the answer and then
  sit open without a second request, as browsers do. They are not reopened when the
  server closes them: a browser only reconnects when it has something to ask.

A server that gives each connection a worker or a thread stalls; one that parks them
in an event loop keeps serving. Bounded: at most --seconds of running time, at most
MAX_CONNECTIONS connections, and only loopback addresses are accepted.

Prints `ready {json}` once every connection has been opened (or tried) and a final
`summary {json}` when the time is up or it receives SIGTERM/SIGINT.

    python bench/slowclients.py --port 8000 --slowloris 300 --idle 300 --seconds 60
"""

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
import time

MAX_CONNECTIONS = 5000
MAX_SECONDS = 900
REOPEN_PAUSE = 1.0
CONNECT_TIMEOUT = 5.0
# The trickled bytes form an endless run of header lines, so the head is never complete.
TRICKLE = b"X-Slow-Header: a\r\n"


class Stats:
    """Counters shared by every client task; printed as JSON."""

    def __init__(self):
        self.open = {"slowloris": 0, "idle": 0}
        self.closed_by_server = {"slowloris": 0, "idle": 0}
        self.reopened = 0
        self.connect_failures = 0
        self.bytes_trickled = 0

    def as_dict(self):
        return {
            "open": dict(self.open),
            "closed_by_server": dict(self.closed_by_server),
            "reopened": self.reopened,
            "connect_failures": self.connect_failures,
            "bytes_trickled": self.bytes_trickled,
        }


async def open_connection(host, port, stats):
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        stats.connect_failures += 1
        return None, None


async def server_closed_within(reader, seconds):
    """Wait up to `seconds` for the server; True if it closed or answered (either ends the request)."""
    try:
        await asyncio.wait_for(reader.read(65536), seconds)
    except asyncio.TimeoutError:
        return False
    except OSError:
        pass
    return True


async def slowloris(host, port, interval, deadline, stats, opened):
    """One slowloris client: trickles a head that never ends; reopens when the server closes it."""
    first = True
    while time.monotonic() < deadline:
        reader, writer = await open_connection(host, port, stats)
        if first:
            opened.release()
            first = False
        if writer is None:
            await asyncio.sleep(REOPEN_PAUSE)
            continue
        stats.open["slowloris"] += 1
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n")
            position = 0
            while time.monotonic() < deadline:
                if await server_closed_within(reader, min(interval, max(0.0, deadline - time.monotonic()))):
                    stats.closed_by_server["slowloris"] += 1
                    break
                if time.monotonic() >= deadline:
                    break
                writer.write(TRICKLE[position:position + 1])
                await writer.drain()
                stats.bytes_trickled += 1
                position = (position + 1) % len(TRICKLE)
        except OSError:
            stats.closed_by_server["slowloris"] += 1
        finally:
            stats.open["slowloris"] -= 1
            writer.close()
        if time.monotonic() < deadline:
            stats.reopened += 1
            await asyncio.sleep(REOPEN_PAUSE)


async def idle(host, port, deadline, stats, opened):
    """One idle keep-alive client: a single request, then silence until the deadline."""
    reader, writer = await open_connection(host, port, stats)
    opened.release()
    if writer is None:
        return
    stats.open["idle"] += 1
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await writer.drain()
        # Whatever arrives (the small hello answer) is dropped; only the end of the stream counts.
        while (remaining := deadline - time.monotonic()) > 0:
            if not await asyncio.wait_for(reader.read(65536), remaining):
                stats.closed_by_server["idle"] += 1
                break
    except asyncio.TimeoutError:
        pass
    except OSError:
        stats.closed_by_server["idle"] += 1
    finally:
        stats.open["idle"] -= 1
        writer.close()


async def run(args):
    stats = Stats()
    deadline = time.monotonic() + args.seconds
    total = args.slowloris + args.idle
    opened = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(slowloris(args.host, args.port, args.interval, deadline, stats, opened))
             for _ in range(args.slowloris)]
    tasks += [asyncio.create_task(idle(args.host, args.port, deadline, stats, opened))
              for _ in range(args.idle)]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def announce_ready():
        for _ in range(total):
            await opened.acquire()
        print("ready " + json.dumps(stats.as_dict()), flush=True)

    ready = asyncio.create_task(announce_ready())
    stopper = asyncio.create_task(stop.wait())
    everyone = asyncio.gather(*tasks)
    await asyncio.wait([stopper, everyone], timeout=args.seconds + CONNECT_TIMEOUT,
                       return_when=asyncio.FIRST_COMPLETED)
    summary = stats.as_dict()
    for task in [*tasks, ready, stopper]:
        task.cancel()
    await asyncio.gather(*tasks, ready, stopper, everyone, return_exceptions=True)
    print("summary " + json.dumps(summary), flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="loopback address of the server (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="port of the server")
    p.add_argument("--slowloris", type=int, default=300, help="slowloris connections (default 300)")
    p.add_argument("--idle", type=int, default=300, help="idle keep-alive connections (default 300)")
    p.add_argument("--interval", type=float, default=3.0, help="seconds between trickled bytes (default 3)")
    p.add_argument("--seconds", type=float, default=60.0, help="stop after this many seconds (default 60)")
    args = p.parse_args(argv)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        p.error(f"--host {args.host!r} is not a loopback address: this tool only loads servers on "
                f"127.0.0.0/8 or ::1 (use e.g. --host 127.0.0.1)")
    if args.slowloris < 0 or args.idle < 0 or args.slowloris + args.idle > MAX_CONNECTIONS:
        p.error(f"--slowloris + --idle must be between 0 and {MAX_CONNECTIONS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be more than 0 and at most {MAX_SECONDS}")
    if args.interval <= 0:
        p.error("--interval must be more than 0 seconds")
    return args


def main(argv=None):
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
