"""`pronghorn ctl [--socket PATH] [--json] COMMAND`: talk to a running server's control socket.

The server must run with ``--control-socket PATH`` (control.py). The socket is taken from
``--socket``, else $PRONGHORN_CONTROL_SOCKET. Commands (gunicornc's):

    show workers | show stats | show config | show listeners
    worker add [N] | worker remove [N] | worker kill PID
    reload | reopen | shutdown [graceful|quick] | help

Output is a readable table, or the master's JSON with ``--json`` (for scripts). Exit status: 0 done,
1 the server refused the command or could not be reached (the message says why and what to do),
2 a usage error.
"""

import argparse
import json
import os
import socket
import sys

__all__ = ["main", "request"]

ENV_SOCKET = "PRONGHORN_CONTROL_SOCKET"
TIMEOUT = 10.0
MAX_REPLY = 4 * 1024 * 1024


class CtlError(Exception):
    """The server could not be reached or refused: one line for the user."""


def request(path, words, timeout=TIMEOUT):
    """Send one command to the control socket at ``path``; the master's result (a dict)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise CtlError(f"no control socket at {path}: is the server running with "
                           f"--control-socket {path}?")
        except ConnectionRefusedError:
            raise CtlError(f"nothing listens on {path}: the server that made it has stopped "
                           f"(start it again, or check --control-socket)")
        except PermissionError:
            raise CtlError(f"permission denied on {path}: the control socket is for the server's "
                           f"user only; run this as that user (sudo -u USER pronghorn ctl ...)")
        except OSError as exc:
            raise CtlError(f"cannot connect to {path}: {exc.strerror or exc}")
        sock.sendall((json.dumps({"command": words}) + "\n").encode())
        data = b""
        while len(data) < MAX_REPLY:  # bounded: one reply line, then the master closes
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise CtlError(f"the server did not answer within {timeout:.0f}s on {path}")
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise CtlError(f"the server closed {path} without a valid answer")
    if not reply.get("ok"):
        raise CtlError(reply.get("error") or "the server refused the command")
    return reply["result"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pronghorn ctl", description="Inspect and manage a running pronghorn server through "
        "its --control-socket.", epilog="commands: show workers | show stats | show config | "
        "show listeners | worker add [N] | worker remove [N] | worker kill PID | reload | reopen | "
        "shutdown [graceful|quick] | help")
    parser.add_argument("-s", "--socket", default=os.environ.get(ENV_SOCKET),
                        help=f"the server's --control-socket (default: ${ENV_SOCKET})")
    parser.add_argument("-j", "--json", action="store_true", help="print the server's JSON answer")
    parser.add_argument("command", nargs="+", help="e.g. show workers")
    return parser


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not args.socket:
        sys.stderr.write(f"pronghorn ctl: error: which server? give --socket PATH (the server's "
                         f"--control-socket) or set ${ENV_SOCKET}\n")
        raise SystemExit(2)
    try:
        result = request(args.socket, args.command)
    except CtlError as exc:
        sys.stderr.write(f"pronghorn ctl: error: {exc}\n")
        raise SystemExit(1)
    text = json.dumps(result, indent=2, sort_keys=True) if args.json else render(args.command, result)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `pronghorn ctl show config | head`: the reader left, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# -- readable output ---------------------------------------------------------------------------

def render(words, result):
    if words[:2] == ["show", "workers"]:
        return _workers_table(result)
    if words[:2] == ["show", "listeners"]:
        rows = [(entry["address"], entry["type"], entry["fd"]) for entry in result["listeners"]]
        return _table(("ADDRESS", "TYPE", "FD"), rows)
    if words[:2] == ["show", "config"]:
        width = max((len(k) for k in result), default=0)
        return "\n".join(f"{k:<{width}} = {_text(v)}" for k, v in result.items())
    if words[:1] == ["help"]:
        width = max(len(k) for k in result["commands"])
        return "\n".join(f"{k:<{width}}  {v}" for k, v in result["commands"].items())
    width = max((len(k) for k in result), default=0)
    return "\n".join(f"{k:<{width}}  {_text(v)}" for k, v in result.items())


def _workers_table(result):
    rows = []
    for w in result["workers"]:
        rss = w.get("rss_bytes")
        rows.append((w["pid"], w["age"], w.get("generation", ""), "yes" if w["booted"] else "no",
                     "yes" if w["stopping"] else "", w["requests"], w["connections"],
                     "" if rss is None else f"{rss / 1048576:.1f}", f"{w['heartbeat_age']:.1f}s ago"))
    table = _table(("PID", "AGE", "GEN", "BOOTED", "STOPPING", "REQUESTS", "CONNS", "RSS_MIB",
                    "LAST_BEAT"), rows)
    return f"{table}\n\nTotal: {result['count']} worker(s)"


def _table(header, rows):
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _text(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
