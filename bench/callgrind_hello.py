"""Instructions per hello-world request in one pronghorn worker, counted by callgrind.

On a shared, busy machine wall-clock numbers move by more than the few percent a feature costs;
instruction counts do not. This runs ``pronghorn -w 1 bench.apps:hello`` (plus the flags given)
under ``valgrind --tool=callgrind`` twice: once serving BASE keep-alive GETs, once BASE + REQUESTS,
sent by a client that runs natively: one at a time on one connection (quiet), or with
``--connections N`` in rounds of one request on each of N connections (loaded: the worker finds
several requests ready in one pass of its loop). The difference between the worker's two totals
(fork to exit, so start-up and shut-down cancel out), divided by REQUESTS, is the instructions
(Ir) a request costs. (callgrind_control cannot reach a forked worker, so its
counters cannot simply be zeroed after a warm-up.)

    .venv/bin/python bench/callgrind_hello.py                        # metrics off
    .venv/bin/python bench/callgrind_hello.py --metrics-bind 127.0.0.1:0
    .venv/bin/python bench/callgrind_hello.py --connections 16 -- --metrics-bind 127.0.0.1:0
    .venv/bin/python bench/callgrind_hello.py --requests 4000 --repeat 3 -- --access-logfile /dev/null

The worker's once-a-second timer (heartbeat, metrics publishing) runs during the measurement too,
so the longer run's extra seconds are in the difference: runs repeat within about +-300
instructions (0.5 %), more on a busier machine. ``--metrics-bind 127.0.0.1:0`` lets the master
pick a free port.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_many(port, count, deadline, connections=1):
    """``count`` keep-alive GETs on ``connections`` connections: in rounds, one request sent on
    each connection, then every answer read whole (so with several connections the worker finds
    several requests ready in one pass of its loop, as under load)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    bufs = [b""] * connections
    try:
        done = 0
        while done < count:
            if time.monotonic() > deadline:
                raise SystemExit("the server under callgrind is too slow: gave up")
            active = range(min(connections, count - done))
            for i in active:
                socks[i].sendall(REQUEST)
            for i in active:
                bufs[i] = read_response(socks[i], bufs[i])
            done += len(active)
    finally:
        for s in socks:
            s.close()


def read_response(s, buf):
    """Read one whole response (Content-Length framed) from s; return what followed it."""
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(re.search(rb"(?i)content-length: *(\d+)", buf[:head_end]).group(1))
            if len(buf) >= head_end + 4 + length:
                assert buf.startswith(b"HTTP/1.1 200"), buf[:80]
                return buf[head_end + 4 + length:]
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        buf += chunk


def wait_listening(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not start under callgrind")


def worker_pid(master, deadline):
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.5)
    raise SystemExit("no worker appeared")


def worker_instructions(flags, requests, connections=1):
    """Total instructions (Ir) the worker executed from its fork to its exit, having served
    ``requests`` GETs (plus the one readiness probe)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pronghorn-callgrind-") as tmp:
        out = os.path.join(tmp, "cg.%p")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, "-m", "pronghorn", "-w", "1", "-b", f"127.0.0.1:{port}",
               "--timeout", "600", "--graceful-timeout", "5", *flags, "bench.apps:hello"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "server"), REPO]),
                   PYTHONHASHSEED="0")  # the same dict layouts, run after run
        env.pop("PRONGHORN_CMD_ARGS", None)
        env.pop("WEB_CONCURRENCY", None)
        with open(os.path.join(tmp, "stderr"), "w") as err:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 300
            wait_listening(port, deadline)
            worker = worker_pid(proc.pid, deadline)
            get_many(port, requests, deadline + 600, connections)
        finally:
            proc.terminate()
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        path = os.path.join(tmp, f"cg.{worker}")
        try:
            with open(path) as f:
                found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
        except OSError:
            found = None
        if not found:
            with open(os.path.join(tmp, "stderr")) as f:
                raise SystemExit(f"no callgrind totals for worker {worker}:\n{f.read()[-2000:]}")
        return int(found.group(1))


def measure(flags, requests, base, connections=1):
    """Instructions per request: the difference between a worker that served ``base + requests``
    and one that served ``base``, so start-up and shut-down cancel out."""
    few = worker_instructions(flags, base, connections)
    many = worker_instructions(flags, base + requests, connections)
    return (many - few) / requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=1,
                        help="send on this many connections at once (1: quiet; 16: as under load)")
    parser.add_argument("--base", type=int, default=300, help="requests in the shorter run")
    parser.add_argument("--repeat", type=int, default=3, help="report the median of this many")
    parser.add_argument("flags", nargs="*", help="pronghorn flags (after --)")
    args, extra = parser.parse_known_args()
    flags = args.flags + extra
    results = []
    for _ in range(args.repeat):
        results.append(measure(flags, args.requests, args.base, args.connections))
        print(f"{results[-1]:,.0f} instructions per request  ({args.requests} requests; "
              f"{args.connections} connection(s); flags: {' '.join(flags) or 'none'})", flush=True)
    if args.repeat > 1:
        print(f"median {sorted(results)[len(results) // 2]:,.0f}")


if __name__ == "__main__":
    main()
