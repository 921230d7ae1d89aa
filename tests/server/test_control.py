"""`pronghorn ctl` against a real server's --control-socket: what an operator types to see and steer
the workers of a running server (gunicornc's commands), black-box over the unix socket."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import _env, serve  # noqa: E402
from tests.server.test_arbiter import wait_for  # noqa: E402


def ctl(sock, *words, json_out=True):
    """Run `python -m pronghorn ctl` as a user would: (exit status, stdout, stderr)."""
    cmd = [sys.executable, "-m", "pronghorn", "ctl", "--socket", str(sock)]
    cmd += (["--json"] if json_out else []) + list(words)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=_env(), cwd=REPO)
    return done.returncode, done.stdout, done.stderr


def show(sock, *words):
    status, out, err = ctl(sock, *words)
    assert status == 0, err
    return json.loads(out)


def serving_pids(sock, count):
    """The pids once exactly ``count`` booted workers serve and none is stopping, else None."""
    workers = show(sock, "show", "workers")["workers"]
    live = [w for w in workers if w["booted"] and not w["stopping"]]
    if len(live) == count and len(workers) == count:
        return sorted(w["pid"] for w in live)
    return None


def test_show_add_reload_and_config_through_the_control_socket(tmp_path):
    sock = tmp_path / "pronghorn.ctl"
    with serve("tests.server.apps:app", "-w", "2", "--control-socket", str(sock),
               "--max-requests", "777") as srv:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600  # only the server's user may steer it
        assert os.stat(sock).st_uid == os.geteuid()

        pids = wait_for(lambda: serving_pids(sock, 2))
        assert all(os.path.exists(f"/proc/{pid}") for pid in pids)

        status, table, _ = ctl(sock, "show", "workers", json_out=False)
        assert status == 0 and "PID" in table and "Total: 2 worker(s)" in table
        assert all(str(pid) in table for pid in pids)

        added = show(sock, "worker", "add")
        assert added == {"added": 1, "previous": 2, "total": 3}
        three = wait_for(lambda: serving_pids(sock, 3))
        assert set(pids) < set(three)

        assert show(sock, "reload") == {"status": "reloading"}
        # new workers first, then the old ones go; the count is the configuration's again (-w 2),
        # as with HUP
        renewed = wait_for(lambda: (lambda p: p if p and not set(p) & set(three) else None)(
            serving_pids(sock, 2)), timeout=60)
        assert len(renewed) == 2

        config = show(sock, "show", "config")
        assert config["max_requests"] == 777
        assert config["control_socket"] == str(sock)

        stats = show(sock, "show", "stats")
        assert stats["pid"] == srv.pid and stats["workers_wanted"] == 2 and stats["generation"] == 1
        assert stats["restarts"]["crash"] == 0
        listeners = show(sock, "show", "listeners")["listeners"]
        assert [entry["address"] for entry in listeners] == [f"http://127.0.0.1:{srv.port}"]

        victim = renewed[0]
        assert show(sock, "worker", "kill", str(victim)) == {"killed": victim}
        after_kill = wait_for(lambda: (lambda p: p if p and victim not in p else None)(
            serving_pids(sock, 2)), timeout=60)  # stopped gracefully, and replaced
        assert set(after_kill) - {victim} >= {renewed[1]}
        assert show(sock, "worker", "remove") == {"removed": 1, "previous": 2, "total": 1}
        wait_for(lambda: serving_pids(sock, 1), timeout=60)
        assert show(sock, "worker", "remove")["removed"] == 0  # never fewer than one

        status, _, err = ctl(sock, "worker", "kill", "1")
        assert status == 1 and "no worker with pid 1" in err
        status, _, err = ctl(sock, "frobnicate")
        assert status == 1 and "unknown command" in err

        assert show(sock, "shutdown") == {"status": "shutting down", "mode": "graceful"}
        assert srv.proc.wait(30) == 0
    assert not sock.exists()  # the master removes its socket on the way out


def test_a_missing_socket_says_what_to_check(tmp_path):
    status, out, err = ctl(tmp_path / "nothing.ctl", "show", "workers")
    assert status == 1 and out == ""
    assert f"no control socket at {tmp_path / 'nothing.ctl'}" in err
    assert "--control-socket" in err


def test_a_stale_socket_file_is_reported_as_such(tmp_path):
    import socket
    path = tmp_path / "stale.ctl"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: a server killed with -9
    status, _, err = ctl(path, "show", "workers")
    assert status == 1 and "nothing listens on" in err
