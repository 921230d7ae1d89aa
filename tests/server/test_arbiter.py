"""The arbiter's worker management, driven with a tiny fake worker (no HTTP involved).

The master runs for real in a subprocess (real fork, real signals, real heartbeats); only the
worker class is replaced by ``FakeWorker`` below, so these tests pin the master's own logic:
spawning the configured count, replacing a dead worker, TTIN/TTOU, the no-crash-loop rule for a
worker that cannot load the app, killing a worker whose heartbeat stops, the pid file, and HUP
starting new workers before the old ones stop. The same behaviours against the real worker and
real HTTP traffic are in test_fault_drills.py.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SERVER_SRC = str(Path(__file__).resolve().parents[2] / "server")
sys.path.insert(0, SERVER_SRC)

from pronghorn.heartbeat import Heartbeat  # noqa: E402

DRIVER = textwrap.dedent('''
    import os, signal, sys, time
    sys.path.insert(0, {server_src!r})
    from pronghorn.arbiter import Arbiter
    from pronghorn.config import load_config

    MARKS = {marks!r}

    def mark(name):
        try:
            open(os.path.join(MARKS, name), "w").close()
        except OSError:   # a worker running as --user nobody cannot write here
            pass

    class FakeWorker:
        """Beats its heart until TERM; behaviour chosen by FAKE_MODE."""
        def __init__(self, age, ppid, listeners, app, cfg, log, heartbeat):
            self.age, self.ppid, self.listeners, self.app = age, ppid, listeners, app
            self.cfg, self.log, self.heartbeat = cfg, log, heartbeat
            self.pid = None

        def run(self):
            mode = os.environ.get("FAKE_MODE", "ok")
            if mode == "appfail":
                self.log.error("cannot import module 'nosuchmodule' (fake worker)")
                sys.exit(4)
            if mode == "crash":
                raise RuntimeError("fake worker crashed")
            stop = []
            signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
            signal.signal(signal.SIGQUIT, lambda *a: sys.exit(0))
            signal.signal(signal.SIGUSR1, lambda *a: mark("usr1-%d" % os.getpid()))
            stuck = mode == "stuck-first" and self.age == 1
            mark("gen-%s-%d" % (os.environ.get("FAKE_GEN", "1"), os.getpid()))
            while not stop:
                if not stuck:
                    self.heartbeat.notify()
                time.sleep(0.05)
            mark("exit-%d" % os.getpid())

    cfg = load_config(sys.argv[1:])
    Arbiter(cfg, worker_class=FakeWorker, argv=sys.argv[1:]).run()
''')


def child_pids(ppid):
    """Live (not zombie) children of ``ppid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == ppid:
            pids.append(int(entry))
    return sorted(pids)


def wait_for(predicate, timeout=30.0, interval=0.05, context=None):
    """Poll until ``predicate()`` is truthy (returns its value) or fail after ``timeout``
    (a bound for a loaded machine, not a speed requirement); ``context()`` adds to the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    extra = "\n" + context() if context else ""
    raise AssertionError(f"condition not met within {timeout}s: {predicate}{extra}")


class Master:
    """A running arbiter subprocess with the fake worker."""

    def __init__(self, tmp_path, args, mode="ok", env=None, bind=True):
        self.marks = tmp_path / "marks"
        self.marks.mkdir(exist_ok=True)
        script = tmp_path / "driver.py"
        script.write_text(DRIVER.format(server_src=SERVER_SRC, marks=str(self.marks)))
        self.app_module = tmp_path / "fakeapp.py"
        self.app_module.write_text("def app(environ, start_response):\n    pass\n")
        full_env = dict(os.environ, FAKE_MODE=mode, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.stderr_path = tmp_path / "master.log"
        self.stderr = open(self.stderr_path, "wb")
        argv = (["-b", f"unix:{tmp_path / 's.sock'}"] if bind else []) + ["--chdir", str(tmp_path)]
        argv += args + ["fakeapp:app"]
        self.proc = subprocess.Popen([sys.executable, str(script)] + argv, cwd=tmp_path,
                                     env=full_env, stdout=self.stderr, stderr=self.stderr)

    def workers(self):
        return child_pids(self.proc.pid)

    def wait_workers(self, count):
        return wait_for(lambda: (lambda p: p if len(p) == count else None)(self.workers()),
                        context=lambda: f"workers now: {self.workers()}\n{self.log()}")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        finally:
            self.stderr.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in child_pids(self.proc.pid):
            os.kill(pid, signal.SIGKILL)
        self.stderr.close()


@pytest.fixture
def master(tmp_path):
    started = []

    def start(args, mode="ok", env=None, bind=True):
        m = Master(tmp_path, args, mode, env, bind)
        started.append(m)
        return m
    yield start
    for m in started:
        m.close()


def test_spawns_the_configured_workers_and_replaces_a_killed_one(master):
    m = master(["-w", "3"])
    first = m.wait_workers(3)
    os.kill(first[0], signal.SIGKILL)
    after = wait_for(lambda: (lambda p: p if len(p) == 3 and first[0] not in p else None)(m.workers()),
                     context=m.log)
    assert set(first[1:]) <= set(after)
    assert "was sent SIGKILL" in m.log()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_ttin_adds_and_ttou_removes_one_worker_never_below_one(master):
    m = master(["-w", "1"])
    [only] = m.wait_workers(1)
    m.signal(signal.SIGTTIN)
    two = m.wait_workers(2)
    m.signal(signal.SIGTTOU)
    # TTOU stops the oldest worker: the first one
    wait_for(lambda: m.workers() == [p for p in two if p != only])
    m.signal(signal.SIGTTOU)
    time.sleep(1.5)
    assert len(m.workers()) == 1
    assert "TTOU ignored" in m.log()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_a_worker_that_cannot_load_the_app_stops_the_server_with_exit_4(master):
    m = master(["-w", "2"], mode="appfail")
    assert m.wait_exit() == 4
    log = m.log()
    assert "nosuchmodule" in log
    assert "the app could not be loaded" in log
    # no crash loop: at most the two first workers were ever booted
    assert log.count("Booting worker") <= 2


def test_a_crashing_worker_is_replaced_not_fatal(master, tmp_path):
    m = master(["-w", "1"], mode="crash")
    wait_for(lambda: m.log().count("Booting worker") >= 3)
    assert m.proc.poll() is None
    assert "fake worker crashed" in m.log()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_a_worker_without_heartbeat_is_killed_after_timeout_and_replaced(master):
    m = master(["-w", "1", "--timeout", "1"], mode="stuck-first")
    [stuck] = m.wait_workers(1)
    wait_for(lambda: (lambda p: p if p and stuck not in p else None)(m.workers()))
    assert f"WORKER TIMEOUT (pid:{stuck})" in m.log()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_term_stops_workers_gracefully_and_removes_the_pidfile(master, tmp_path):
    pidfile = tmp_path / "app.pid"
    m = master(["-w", "2", "--pid", str(pidfile)])
    workers = m.wait_workers(2)
    assert pidfile.read_text().strip() == str(m.proc.pid)
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    # the fake worker marks a graceful exit only when it got TERM and left its loop
    for pid in workers:
        assert (m.marks / f"exit-{pid}").exists()
    assert not pidfile.exists()
    assert not (tmp_path / "s.sock").exists()


def test_hup_starts_new_workers_before_stopping_the_old_ones(master):
    m = master(["-w", "2"])
    old = m.wait_workers(2)
    m.signal(signal.SIGHUP)
    new = wait_for(lambda: (lambda p: p if len(p) == 2 and not set(p) & set(old) else None)(m.workers()))
    log = m.log()
    # the new workers were booting before any old one was told to stop
    booted_new = max(log.index(f"Booting worker with pid: {pid}") for pid in new)
    for pid in old:
        assert (m.marks / f"exit-{pid}").exists()
    assert booted_new < log.index("Reload complete")
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_hup_rebinds_when_the_config_file_changes_the_address(master, tmp_path):
    conf = tmp_path / "pronghorn.conf.py"
    conf.write_text(f"bind = ['unix:{tmp_path / 'a.sock'}']\nworkers = 1\n")
    m = master(["-c", str(conf)], bind=False)
    m.wait_workers(1)
    assert (tmp_path / "a.sock").exists()
    conf.write_text(f"bind = ['unix:{tmp_path / 'b.sock'}']\nworkers = 2\n")
    m.signal(signal.SIGHUP)
    wait_for(lambda: (tmp_path / "b.sock").exists() and not (tmp_path / "a.sock").exists(),
             context=m.log)
    m.wait_workers(2)          # the new worker count from the file as well
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not (tmp_path / "b.sock").exists()


def test_hup_with_a_broken_config_keeps_running_on_the_old_one(master, tmp_path):
    conf = tmp_path / "pronghorn.conf.py"
    conf.write_text("workers = 2\n")
    m = master(["-c", str(conf)])
    workers = m.wait_workers(2)
    conf.write_text("workers = 'many'\n")
    m.signal(signal.SIGHUP)
    wait_for(lambda: "Reload failed: the configuration is invalid" in m.log(), context=m.log)
    assert "workers" in m.log().split("Reload failed")[1].splitlines()[0]
    assert m.workers() == workers
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_usr2_whose_new_master_fails_leaves_the_old_one_in_charge(master, tmp_path):
    conf = tmp_path / "pronghorn.conf.py"
    conf.write_text("workers = 1\n")
    pidfile = tmp_path / "app.pid"
    m = master(["-c", str(conf), "--pid", str(pidfile)])
    [worker] = m.wait_workers(1)
    conf.write_text("worker = 1\n")          # a typo: the new master will refuse to start
    m.signal(signal.SIGUSR2)
    wait_for(lambda: "this master keeps serving" in m.log(), context=m.log)
    assert "unknown setting 'worker'" in m.log()
    assert pidfile.read_text().strip() == str(m.proc.pid)
    assert not (tmp_path / "app.pid.oldbin").exists()
    assert m.workers() == [worker]
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_relative_chdir_is_entered_again_on_hup(master, tmp_path):
    (tmp_path / "sub").mkdir()
    m = master(["-w", "1", "--chdir", "sub"])      # relative to where the server was started
    [old] = m.wait_workers(1)
    assert os.readlink(f"/proc/{m.proc.pid}/cwd") == str(tmp_path / "sub")
    m.signal(signal.SIGHUP)
    wait_for(lambda: (lambda p: p if p and old not in p else None)(m.workers()), context=m.log)
    assert os.readlink(f"/proc/{m.proc.pid}/cwd") == str(tmp_path / "sub")
    assert "cannot change directory" not in m.log()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_usr2_hands_the_unix_socket_to_the_new_master_and_keeps_its_file(master, tmp_path):
    import socket as socketlib
    m = master(["-w", "1"])
    [old_worker] = m.wait_workers(1)
    m.signal(signal.SIGUSR2)
    new_master = wait_for(lambda: next((p for p in m.workers() if p != old_worker and child_pids(p)),
                                       None), context=m.log)
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    try:
        path = tmp_path / "s.sock"
        assert path.exists()          # the old master did not remove the new master's socket file
        with socketlib.socket(socketlib.AF_UNIX) as client:
            client.connect(str(path))
        assert len(child_pids(new_master)) == 1
    finally:
        os.kill(new_master, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{new_master}").exists() or
                 Path(f"/proc/{new_master}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    wait_for(lambda: not (tmp_path / "s.sock").exists())   # the last master out removes it


def test_usr1_reaches_every_worker(master):
    m = master(["-w", "2"])
    workers = m.wait_workers(2)
    # the fake workers mark "gen-" once their handlers are in place
    wait_for(lambda: all(list(m.marks.glob(f"gen-*-{pid}")) for pid in workers))
    m.signal(signal.SIGUSR1)
    wait_for(lambda: all((m.marks / f"usr1-{pid}").exists() for pid in workers))
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_winch_is_ignored_with_a_reason(master):
    m = master(["-w", "1"])
    workers = m.wait_workers(1)
    m.signal(signal.SIGWINCH)
    wait_for(lambda: "SIGWINCH ignored" in m.log())
    assert m.workers() == workers
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_int_is_a_fast_stop(master):
    m = master(["-w", "2"])
    m.wait_workers(2)
    m.signal(signal.SIGINT)
    assert m.wait_exit() == 0
    assert m.workers() == []


def test_bind_error_is_one_clear_line_and_exit_1(master, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a socket")
    m = master(["-b", f"unix:{blocker}"])
    assert m.wait_exit() == 1
    assert "exists and is not a socket" in m.log()


def test_a_second_server_with_the_same_pidfile_is_refused(master, tmp_path):
    pidfile = tmp_path / "app.pid"
    first = master(["-w", "1", "--pid", str(pidfile)])
    first.wait_workers(1)
    (tmp_path / "second").mkdir()
    second = Master(tmp_path / "second", ["-w", "1", "--pid", str(pidfile)])
    try:
        assert second.wait_exit() == 1
        assert f"names a running process ({first.proc.pid})" in second.log()
    finally:
        second.close()
    assert pidfile.read_text().strip() == str(first.proc.pid)
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0


def _ids(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    gid = int(next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1])
    return uid, gid


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_workers_drop_to_user_and_group_the_master_does_not(master, tmp_path):
    import pwd
    nobody = pwd.getpwnam("nobody")
    m = master(["-w", "1", "-u", "nobody"])
    [worker] = m.wait_workers(1)
    # without -g the user's own group, not root's
    wait_for(lambda: _ids(worker) == (nobody.pw_uid, nobody.pw_gid))
    assert _ids(m.proc.pid) == (0, 0)
    # the unix socket is the service user's, so a proxy in its group can reach it
    assert (tmp_path / "s.sock").stat().st_uid == nobody.pw_uid
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


# -- the heartbeat itself -----------------------------------------------------------------------

@pytest.mark.parametrize("tmp_dir", [None, "tmp"])
def test_heartbeat_written_by_a_child_is_seen_by_the_parent(tmp_path, tmp_dir):
    hb = Heartbeat(str(tmp_path) if tmp_dir else None)
    before = hb.last_update()
    pid = os.fork()
    if pid == 0:
        time.sleep(0.01)
        hb.notify()
        os._exit(0)
    os.waitpid(pid, 0)
    assert hb.last_update() > before
    assert hb.age() < 5
    hb.close()
    assert list(tmp_path.iterdir()) == []   # the backing file is unlinked at once


def test_heartbeat_in_a_missing_directory_says_what_to_do(tmp_path):
    with pytest.raises(OSError, match="worker-tmp-dir"):
        Heartbeat(str(tmp_path / "missing"))


# -- unit tests of small decisions (no processes) ---------------------------------------------

class _ListLog:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda msg, *args: self.lines.append((level, msg % args if args else msg))


class _InertWorker:
    def __init__(self, age, ppid, listeners, app, cfg, log, heartbeat):
        self.age = age


def test_a_failed_fork_is_logged_and_retried_later_not_fatal(monkeypatch):
    import errno
    from pronghorn.arbiter import Arbiter
    from pronghorn.config import Config

    def no_more_processes():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_more_processes)
    log = _ListLog()
    arbiter = Arbiter(Config(workers=2), log=log, worker_class=_InertWorker, argv=[])
    arbiter.load_worker_class()
    arbiter.manage_workers()
    assert arbiter.WORKERS == {}
    assert arbiter.spawn_not_before > time.monotonic()
    assert any(level == "error" and "cannot fork a worker" in text for level, text in log.lines)
    assert sum("cannot fork" in text for _, text in log.lines) == 1   # gave up for this round


def test_service_ids_use_the_users_own_group_when_no_group_is_given():
    import pwd
    from pronghorn.config import load_config
    from pronghorn.sockets import service_ids
    nobody = pwd.getpwnam("nobody")
    assert service_ids(load_config(["-u", "nobody", "x:app"], environ={})) == (nobody.pw_uid, nobody.pw_gid)
    assert service_ids(load_config(["x:app"], environ={})) == (None, None)
    assert service_ids(load_config(["-u", "nobody", "-g", "0", "x:app"], environ={})) == (nobody.pw_uid, 0)


def test_stats_file_shows_each_worker_and_is_removed_on_stop(tmp_path):
    import json
    from tests.server.harness import request, serve
    path = tmp_path / "stats.json"

    def stats():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet (a reader never sees half a file)
            return None

    with serve("tests.server.apps:hello", "-w", "2", "--stats-file", str(path)) as srv:
        for _ in range(6):
            assert request(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")[0] == 200

        # The file is rewritten every 2 s, and a worker counts as booted from its first heartbeat
        # after spawning: on a loaded machine one worker can serve all 6 requests before the other
        # has beaten once. So wait (bounded) for a document in which both workers are up and the
        # requests are counted, then check everything below on that document.
        def settled():
            d = stats()
            if (d and len(d["workers"]) == 2 and all(w["booted"] for w in d["workers"])
                    and sum(w["requests"] for w in d["workers"]) >= 6):
                return d
            return None
        doc = wait_for(settled, timeout=30, context=lambda: "last stats file: %r" % (stats(),))
        assert doc["master"]["pid"] == srv.pid and doc["master"]["workers_wanted"] == 2
        assert doc["master"]["started"] <= doc["written"]
        assert sorted(w["pid"] for w in doc["workers"]) == child_pids(srv.pid)
        for worker in doc["workers"]:
            assert worker["booted"] and worker["rss_bytes"] > 1 << 20
            assert worker["heartbeat_age"] < 30 and worker["connections"] >= 0
        assert not list(tmp_path.glob("*.tmp"))
    assert not path.exists()
