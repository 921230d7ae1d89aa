"""The control socket (``--control-socket PATH``): ``pronghorn ctl`` talks to the master here.

Commands are gunicornc's: ``show workers|stats|config|listeners``, ``worker add [N]``, ``worker
remove [N]``, ``worker kill PID``, ``reload``, ``reopen``, ``shutdown [graceful|quick]``, ``help``.
Each maps onto what the master already does for a signal: reload, reopen and shutdown are queued
exactly as HUP, USR1 and TERM/INT are (the reply goes out first, then the loop acts), worker add and
remove change the wanted count as TTIN/TTOU do, worker kill stops one worker gracefully (TERM) and
the loop starts its replacement.

Wire format: the client sends one JSON line ``{"command": ["show", "workers"]}``; the master
answers one JSON line ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}`` and
closes. The socket is created mode 0600 (or --control-socket-mode) and owned by the server's user
(the one the workers run as), so only that user (and root) can connect.

Off by default. gunicorn 25+ opens one by default ($XDG_RUNTIME_DIR/gunicorn.ctl or
~/.gunicorn/gunicorn.ctl), which fails under users that cannot write there and leaves sockets in
persistent directories; pronghorn opens one only where asked (the deploy toolkit: under the run dir).
"""

import json
import os
import signal
import socket
import stat
import time

from pronghorn import sockets
from pronghorn.sideband import Listener
from pronghorn.stats import snapshot

__all__ = ["open_control_socket", "Commands", "ControlError"]

MAX_WORKERS_AT_ONCE = 64  # worker add N: a typo like 1000 must not fork-bomb the host


class ControlError(Exception):
    """A command the master refuses: the message goes back to the client."""


def open_control_socket(arbiter, path, mode=0o600):
    """Bind the control socket at ``path``; a Listener for the master's Sideband. Raises OSError
    (with a message saying what to fix) when it cannot."""
    path = os.path.abspath(path)
    _clear_stale(path, takeover=bool(arbiter.master_pid))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # never a moment with wider permissions than 0600
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot create the control socket {path}: {exc.strerror} (check "
                      f"that the directory exists and is writable by the server's user, or change "
                      f"--control-socket)")
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    uid, gid = sockets.service_ids(arbiter.cfg)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    sock.listen(16)
    identity = os.stat(path)
    commands = Commands(arbiter)

    def remove():
        # Only our own file: after USR2 the new master may have bound a fresh one at this path.
        try:
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
                os.unlink(path)
        except OSError:
            pass

    return Listener(sock, commands.answer, "control socket " + path, on_close=remove)


def _clear_stale(path, takeover):
    """A socket file left by a server that is gone is removed; one a live server answers on is
    refused (unless we are its USR2 successor, which takes it over); anything else is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"--control-socket {path} exists and is not a socket: remove it or choose "
                      f"another path")
    if not takeover:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            pass  # nobody listens: stale
        else:
            raise OSError(f"--control-socket {path} is in use by a running server: stop it, or "
                          f"give this one another path")
        finally:
            probe.close()
    os.unlink(path)


class Commands:
    """The commands, run in the master's loop (never in a signal handler)."""

    def __init__(self, arbiter):
        self.arbiter = arbiter

    def answer(self, data):
        """The Sideband's answer function: None until a whole line came, then the reply bytes."""
        if b"\n" not in data:
            return None
        try:
            request = json.loads(data.split(b"\n", 1)[0])
            words = [str(w) for w in request["command"]]
            reply = {"ok": True, "result": self.run(words)}
        except ControlError as exc:
            reply = {"ok": False, "error": str(exc)}
        except (ValueError, KeyError, TypeError):
            reply = {"ok": False, "error": 'a request is one JSON line: {"command": ["show", "workers"]}'}
        return (json.dumps(reply, default=str) + "\n").encode()

    def run(self, words):
        table = {
            ("show", "workers"): self.show_workers, ("show", "stats"): self.show_stats,
            ("show", "config"): self.show_config, ("show", "listeners"): self.show_listeners,
            ("worker", "add"): self.worker_add, ("worker", "remove"): self.worker_remove,
            ("worker", "kill"): self.worker_kill, ("reload",): self.reload,
            ("reopen",): self.reopen, ("shutdown",): self.shutdown, ("help",): self.help,
        }
        for size in (2, 1):
            handler = table.get(tuple(words[:size]))
            if handler is not None:
                return handler(*words[size:])
        raise ControlError(f"unknown command {' '.join(words)!r}; try: help")

    # -- show -------------------------------------------------------------------------------

    def show_workers(self):
        workers = snapshot(self.arbiter)["workers"]
        return {"workers": workers, "count": len(workers)}

    def show_stats(self):
        arbiter = self.arbiter
        doc = snapshot(arbiter)
        workers = doc["workers"]
        return {
            "pid": arbiter.pid,
            "uptime": round(time.time() - arbiter.started_at, 3),
            "workers": len(workers),
            "workers_wanted": arbiter.num_workers,
            "generation": arbiter.generation,
            "requests": sum(w["requests"] for w in workers),
            "connections": sum(w["connections"] for w in workers),
            "restarts": dict(arbiter.exits.restarts),
        }

    def show_config(self):
        from pronghorn.config import format_value
        values = getattr(self.arbiter.cfg, "values", None)
        settings = values() if callable(values) else {}
        return {name: _plain(value, format_value) for name, value in sorted(settings.items())}

    def show_listeners(self):
        listeners = []
        for sock in self.arbiter.listeners:
            kind = {socket.AF_UNIX: "unix", socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}
            listeners.append({"address": sockets.describe(sock), "fd": sock.fileno(),
                              "type": kind.get(sock.family, "other")})
        return {"listeners": listeners, "count": len(listeners)}

    # -- workers ----------------------------------------------------------------------------

    def worker_add(self, count="1"):
        count = _count(count)
        arbiter = self.arbiter
        old = arbiter.num_workers
        arbiter.set_num_workers(old + count)  # as TTIN; the loop spawns them
        arbiter.wakeup()
        return {"added": count, "previous": old, "total": arbiter.num_workers}

    def worker_remove(self, count="1"):
        count = _count(count)
        arbiter = self.arbiter
        old = arbiter.num_workers
        new = max(1, old - count)  # as TTOU: never fewer than one
        if new != old:
            arbiter.set_num_workers(new)
            arbiter.wakeup()
        return {"removed": old - new, "previous": old, "total": new}

    def worker_kill(self, pid=None):
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            raise ControlError("worker kill needs a worker's PID (see: show workers)")
        record = self.arbiter.WORKERS.get(pid)
        if record is None:
            raise ControlError(f"no worker with pid {pid} (see: show workers)")
        self.arbiter.stop_worker(record, signal.SIGTERM)  # graceful; the loop replaces it
        self.arbiter.wakeup()
        return {"killed": pid}

    # -- like the signals -------------------------------------------------------------------

    def _queue(self, sig):
        self.arbiter.signal_queue.append(sig)
        self.arbiter.wakeup()

    def reload(self):
        self._queue(signal.SIGHUP)
        return {"status": "reloading"}

    def reopen(self):
        self._queue(signal.SIGUSR1)
        return {"status": "reopening"}

    def shutdown(self, mode="graceful"):
        if mode not in ("graceful", "quick"):
            raise ControlError("shutdown takes graceful (the default) or quick")
        self._queue(signal.SIGTERM if mode == "graceful" else signal.SIGINT)
        return {"status": "shutting down", "mode": mode}

    def help(self):
        return {"commands": HELP}


HELP = {
    "show workers": "the workers: pid, age, requests, connections, memory, last heartbeat",
    "show stats": "the master: uptime, workers, requests, restarts by cause",
    "show config": "every setting's current value",
    "show listeners": "the listening sockets",
    "worker add [N]": "N more workers (default 1), as TTIN",
    "worker remove [N]": "N fewer workers (default 1, never below 1), as TTOU",
    "worker kill PID": "stop one worker gracefully; a new one replaces it",
    "reload": "reload the configuration and the app, new workers first (as HUP)",
    "reopen": "reopen the log files (as USR1)",
    "shutdown [graceful|quick]": "stop the server (as TERM, or INT for quick)",
}


def _count(text):
    try:
        count = int(text)
    except (TypeError, ValueError):
        raise ControlError(f"expected a number of workers, got {text!r}")
    if not 1 <= count <= MAX_WORKERS_AT_ONCE:
        raise ControlError(f"the number of workers must be 1..{MAX_WORKERS_AT_ONCE}, got {count}")
    return count


def _plain(value, format_value):
    """A setting's value as JSON can carry it (hooks and other objects as their text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(v, (str, int, float)) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return format_value(value)
