"""The arbiter: pronghorn's master process.

It binds the listening sockets, forks the workers, and then runs one loop that you can read
top to bottom in ``run()``:

    sleep (at most 1 s) on a self-pipe -> handle the signals that arrived -> reap dead children
    -> kill workers whose heartbeat is older than --timeout -> spawn/stop workers to keep the count

A worker's first heartbeat also writes a byte to that pipe, so the loop sees it serving at once:
READY=1 (and a reload's retirement of the old workers) follow the last worker's boot within
milliseconds rather than at the next 1 s tick.

Signal handlers do nothing but enqueue the signal and write a byte to the pipe, so all the real
work happens in the loop, never inside a handler. What each signal does:

    TERM        graceful stop: workers finish in-flight requests (up to --graceful-timeout)
    INT, QUIT   fast stop
    HUP         reload: re-read the configuration, start the new workers FIRST, and stop the old
                ones only once the new ones are serving (no failed request)
    TTIN, TTOU  one worker more / less (never fewer than one)
    USR1        reopen log files (master and workers; for logrotate)
    USR2        re-exec a new master on the same sockets (zero-downtime upgrade); this master
                keeps running until the operator sends it TERM, as with gunicorn
    WINCH       ignored and logged: gunicorn stops its workers on WINCH only when daemonized,
                and pronghorn never daemonizes
    CHLD        a child exited: it is reaped and replaced in the loop

Reload and new code (the ``current -> releases/N`` deploy layout):

* without ``--preload`` the master never imports the app. Every worker imports it after the fork,
  so workers started by HUP import whatever the ``current`` symlink points to *then*. The master
  changes directory again on HUP (to --chdir, or to the directory it was started from, spelled as
  the shell spelled it in $PWD) so that a relative import path follows the new symlink target, and
  a ``sys.path`` entry that is the resolved start directory is replaced by its symlinked spelling.
* with ``--preload`` the master imported the app before forking. On HUP it forgets every module
  imported since startup (the app's modules, not the server's or the standard library's) and
  imports the app again; if that fails, the error is logged and the old workers keep serving.

USR2 under systemd: the new master announces itself with ``MAINPID=`` and ``READY=1``; systemd
accepts that only with ``NotifyAccess=all`` in the unit (``main`` ignores the new master). With
socket activation the new master inherits the very sockets systemd passed.

A worker that exits with ``Worker.EXIT_APP_LOAD_ERROR`` (4) or ``Worker.EXIT_BOOT_ERROR`` (3)
stops the whole server with that exit status: restarting it would only fail again (no crash
loop). During a reload the rule is kinder: the old workers still serve the previous code, so the
failed reload is logged, the new workers are stopped, and the server carries on.
"""

import errno
import os
import pwd
import select
import signal
import sys
import time
from collections import deque

from pronghorn import sockets, systemd
from pronghorn.balance import Board
from pronghorn.heartbeat import Heartbeat
from pronghorn.stats import StatsFile, WorkerExits, overdue_requests
from pronghorn.statsd import Statsd

__all__ = ["Arbiter", "Pidfile", "HaltServer"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BOOT_ERROR = 3
EXIT_APP_LOAD_ERROR = 4

# After SIGABRT a stuck worker gets this long to run its worker_abort hook and exit before SIGKILL.
ABORT_GRACE = 5.0
LOOP_TIMEOUT = 1.0
MAX_QUEUED_SIGNALS = 10
MAX_RESPAWN_DELAY = 10.0


class HaltServer(Exception):
    """Raised inside the loop to stop the server with ``exit_code`` after ``reason`` is logged."""

    def __init__(self, reason, exit_code=EXIT_ERROR):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class Pidfile:
    """The --pid file: written atomically, removed on exit only if it still names us."""

    def __init__(self, path):
        self.path = path

    def create(self, pid):
        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{pid}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(f"{pid}\n")
            os.rename(tmp, self.path)
        except OSError as exc:
            raise HaltServer(f"cannot write the pid file {self.path!r}: {exc.strerror} "
                             f"(check that {directory!r} exists and is writable, or change --pid)")

    def refuse_if_running(self, ignore=()):
        """Another live server already owns this pid file: refuse rather than take it over."""
        try:
            with open(self.path) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return
        if pid and pid != os.getpid() and pid not in ignore and _alive(pid):
            raise HaltServer(f"the pid file {self.path} names a running process ({pid}): is "
                             f"pronghorn already running? Stop it (kill -TERM {pid}) or use another --pid")

    def rename(self, new_path):
        """Move the file (USR2 moves it to ``.oldbin``); later calls act on the new name."""
        try:
            os.rename(self.path, new_path)
        except OSError:
            pass
        self.path = new_path

    def unlink(self, pid):
        try:
            with open(self.path) as f:
                if f.read().strip() != str(pid):
                    return          # a newer master owns it now
            os.unlink(self.path)
        except OSError:
            pass


class WorkerRecord:
    """What the arbiter knows about one forked worker."""

    def __init__(self, worker, pid, heartbeat, generation):
        self.worker = worker
        self.pid = pid
        self.heartbeat = heartbeat
        self.generation = generation
        self.age = worker.age
        self.spawned_at = heartbeat.last_update()
        self.stopping = False       # told to exit (TERM) by us
        self.aborted_at = None      # when we sent SIGABRT for a timeout
        self.reopen_pending = False # USR1 arrived while it was booting

    def __getattr__(self, name):
        # hooks written for gunicorn read server.WORKERS[pid].alive, .nr, ...: the worker's own
        if name == "worker":
            raise AttributeError(name)
        return getattr(self.worker, name)

    def booted(self):
        """True once the worker has beaten its heart at least once (it is serving)."""
        return self.heartbeat.last_update() > self.spawned_at


class Arbiter:
    """The master process. ``Arbiter(cfg).run()`` never returns: it exits with a status."""

    SIGNALS = [signal.SIGHUP, signal.SIGQUIT, signal.SIGINT, signal.SIGTERM, signal.SIGTTIN,
               signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH]

    def __init__(self, cfg, log=None, worker_class=None, argv=None):
        self.cfg = cfg
        self.log = log if log is not None else self._make_logger(cfg)
        self._worker_class = worker_class
        # HUP re-reads the configuration from the very same command line: the argv given to
        # cli.main() (kept on cfg by load_config, even when empty), sys.argv only as a last resort
        if argv is None:
            argv = getattr(cfg, "argv", None)
        self.argv = list(argv) if argv is not None else sys.argv[1:]
        self.pid = None
        self.app = None
        self.listeners = []
        self.listeners_by_bind = {}
        self.inherited_listeners = False
        self.WORKERS = {}               # pid -> WorkerRecord (gunicorn's name, used by hooks)
        self.num_workers = int(cfg.workers)
        self.worker_age = 0
        self.generation = 0
        self.reload_in_progress = False
        self.ready_sent = False
        self.boot_failures = 0
        self.spawn_not_before = 0.0
        self.reexec_pid = 0             # the new master we started with USR2
        self.master_pid = 0             # the old master that started us with USR2
        self.pidfile = None
        self.signal_queue = deque()
        self.pipe = None
        self.stopping = False
        self.launch_dir = None          # where we were started (as the shell spelled it)
        self.start_dir = None           # the app directory: --chdir, or launch_dir
        self.modules_before_app = None
        self.started_at = time.time()
        # Room for TTIN and a reload's second generation; a worker beyond it accepts unbalanced.
        self.board = Board(max(64, 4 * self.num_workers))
        stats_path = getattr(cfg, "stats_file", None)
        self.stats_file = StatsFile(stats_path, self.log) if stats_path else None
        self.exits = WorkerExits()      # restarts by cause, what exited workers counted (metrics)
        self.sideband = None            # --control-socket and --metrics-bind (sideband.py)

    # -- public names hooks may use (gunicorn's) ----------------------------------------------------

    @property
    def LISTENERS(self):
        return self.listeners

    @property
    def proc_name(self):
        return getattr(self.cfg, "proc_name", None) or "pronghorn"

    # -- the whole life of the master ---------------------------------------------------------------

    def run(self):
        """Start, then loop until a stop signal or a fatal worker exit; exits the process."""
        if getattr(self.cfg, "daemon", False):
            from pronghorn.daemon import daemonize
            daemonize(getattr(self.cfg, "enable_stdio_inheritance", False))
        try:
            self.start()
            while True:
                self.maybe_promote()
                self.handle_signals()
                self.reap_workers()
                self.murder_workers()
                self.replace_overdue_workers()
                self.manage_workers()
                if self.stats_file is not None:
                    self.stats_file.maybe_write(self)
                self.sleep()
        except HaltServer as halt:
            self.halt(halt.reason, halt.exit_code)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            self.stop(graceful=False)
            self.exit(EXIT_OK)
        except Exception:
            self.log.exception("Unhandled exception in the master loop; stopping the server")
            self.stop(graceful=False)
            self.exit(EXIT_ERROR)

    def start(self):
        self.pid = os.getpid()
        self.log.info("Starting pronghorn %s", _version())
        from pronghorn.config import no_effect_warnings
        for line in no_effect_warnings(self.cfg):
            self.log.warning("%s", line)
        self.set_proc_title("master")
        self.detect_old_master()
        pidfile = getattr(self.cfg, "pidfile", None)
        pidfile = os.path.abspath(pidfile) if pidfile else None   # relative to where we started
        try:
            self.change_directory()
        except OSError as exc:
            raise HaltServer(f"--chdir {self.cfg.chdir!r}: {exc.strerror} (give an existing directory)")
        umask = getattr(self.cfg, "umask", None)
        if umask is not None:
            # Only when asked: the umask the service was started with (systemd's UMask=) is the
            # operator's choice for the files the app creates, and the workers inherit it.
            os.umask(int(umask))
        if pidfile:
            self.pidfile = Pidfile(pidfile)
            self.pidfile.refuse_if_running(ignore=(self.master_pid,))
            self.pidfile.create(self.pid)
        for key, value in _raw_env(self.cfg).items():
            os.environ[key] = value
        self.init_signals()
        self.load_worker_class()
        self.open_listeners()
        self.open_sideband()
        self.cfg.on_starting(self)
        if getattr(self.cfg, "preload_app", False):
            self.preload_app()
        self.log.info("Using worker: pronghorn (event loop, %d thread(s) for the app)",
                      int(getattr(self.cfg, "threads", 1) or 1))
        if self.master_pid:
            # we are the new master of a USR2 upgrade: systemd must follow us (NotifyAccess=all)
            systemd.notify(f"MAINPID={self.pid}")

    def detect_old_master(self):
        if os.environ.get(sockets.REEXEC_FD_VAR):
            self.master_pid = os.getppid()

    def change_directory(self):
        """Enter --chdir (relative to where we were started) and remember it *as spelled*, so
        that a reload can enter it again and follow a re-pointed ``current`` symlink."""
        if self.launch_dir is None:
            self.launch_dir = _logical_cwd()
        chdir = getattr(self.cfg, "chdir", None)
        target = os.path.join(self.launch_dir, chdir) if chdir else self.launch_dir
        os.chdir(target)
        self.start_dir = target
        _respell_sys_path(self.start_dir)

    def open_listeners(self):
        self.inherited_listeners = self._has_inherited_fds()
        try:
            self.listeners_by_bind = sockets.create_listener_groups(self.cfg, self.log)
        except sockets.BindError as exc:
            raise HaltServer(str(exc))
        self._flatten_listeners()

    def _flatten_listeners(self):
        self.listeners = [s for group in self.listeners_by_bind.values() for s in group]

    def _has_inherited_fds(self):
        env = os.environ
        return bool(env.get(sockets.REEXEC_FD_VAR)) or (
            env.get("LISTEN_PID") == str(os.getpid()) and bool(env.get("LISTEN_FDS")))

    def refuse_new_connections(self):
        """Full stop: the TCP sockets we bound ourselves stop taking new connections, and keep the
        queued ones for the workers to answer (see sockets.refuse_new_connections). Not on sockets
        someone else keeps for the next server: systemd's (socket activation) or a USR2 twin's."""
        if self.reexec_pid or (self.master_pid and _alive(self.master_pid)):
            return
        for sock in self._sockets_we_bound():
            if sockets.refuse_new_connections(sock):
                self.log.info("Refusing new connections on %s (queued ones are still answered)",
                              sockets.describe(sock))

    def _sockets_we_bound(self):
        """Ours (or bound by the old master that handed them to us): all but the fd:// ones,
        which belong to whoever gave them (systemd)."""
        return [sock for bind, group in self.listeners_by_bind.items()
                if not bind.startswith("fd://") for sock in group]

    def close_listeners(self):
        """Close our copies of the sockets; remove the unix socket files we bound ourselves,
        unless another master (USR2, either direction) still serves on them."""
        other_master = self.reexec_pid or (self.master_pid and _alive(self.master_pid))
        for bind, group in self.listeners_by_bind.items():
            sockets.close_listeners(group, unlink=bind.startswith("unix:") and not other_master)
        self.listeners_by_bind = {}
        self.listeners = []

    def preload_app(self):
        """--preload: import the app once in the master, before any fork (exit 4 if it fails)."""
        self.modules_before_app = set(sys.modules)
        error = self._import_app()
        if error:
            raise HaltServer(error, EXIT_APP_LOAD_ERROR)

    def _import_app(self):
        """Import the app into ``self.app``; returns an error message or None."""
        from pronghorn.loader import AppImportError, load_app
        try:
            self.app = load_app(self.cfg)
        except AppImportError as exc:
            return str(exc)
        except Exception as exc:  # an app module that raises anything while importing
            self.log.exception("Error while loading the app %s", getattr(self.cfg, "app_uri", ""))
            return f"cannot load the app {getattr(self.cfg, 'app_uri', '')!r}: {exc!r}"
        return None

    # -- signals ----------------------------------------------------------------------------------

    def init_signals(self):
        if self.pipe:
            for fd in self.pipe:
                os.close(fd)
        self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for sig in self.SIGNALS:
            signal.signal(sig, self._enqueue_signal)
        signal.signal(signal.SIGCHLD, self._wake_on_child)

    def _enqueue_signal(self, signum, frame):
        if len(self.signal_queue) < MAX_QUEUED_SIGNALS:
            self.signal_queue.append(signum)
        self.wakeup()

    def _wake_on_child(self, signum, frame):
        self.wakeup()

    def wakeup(self):
        try:
            os.write(self.pipe[1], b".")
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EINTR):
                raise

    def sleep(self, timeout=LOOP_TIMEOUT):
        """Wait for a signal, a child's exit, or ``timeout`` seconds."""
        try:
            waiting = [self.pipe[0]] + (self.sideband.fds() if self.sideband is not None else [])
            ready, _, _ = select.select(waiting, [], [], timeout)
            if self.pipe[0] in ready:
                while os.read(self.pipe[0], 4096):
                    pass
            if ready and self.sideband is not None:
                self.sideband.handle(ready)   # control commands and scrapes, in the loop
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EINTR):
                raise

    def handle_signals(self):
        while self.signal_queue:
            signum = self.signal_queue.popleft()
            name = signal.Signals(signum).name
            handler = getattr(self, "handle_" + name[3:].lower())
            self.log.info("Handling signal: %s", name[3:].lower())
            handler()

    def handle_term(self):
        self.stop(graceful=True)
        self.exit(EXIT_OK)

    def handle_int(self):
        self.stop(graceful=False)
        self.exit(EXIT_OK)

    handle_quit = handle_int

    def handle_hup(self):
        self.reload()

    def handle_ttin(self):
        self.set_num_workers(self.num_workers + 1)

    def handle_ttou(self):
        if self.num_workers <= 1:
            self.log.info("TTOU ignored: already down to one worker")
            return
        self.set_num_workers(self.num_workers - 1)

    def handle_usr1(self):
        self.log.reopen_files()
        for record in list(self.WORKERS.values()):
            if record.booted():
                self.kill_worker(record.pid, signal.SIGUSR1)
            else:
                # still booting: it ignores USR1 until its handlers are in; tell it once it serves
                record.reopen_pending = True

    def handle_usr2(self):
        self.reexec()

    def handle_winch(self):
        self.log.info("SIGWINCH ignored: gunicorn stops its workers on WINCH only when it runs as a "
                      "daemon, and pronghorn never daemonizes (a terminal resize must not stop it)")

    def set_num_workers(self, new):
        old, self.num_workers = self.num_workers, new
        self.log.info("Number of workers: %d -> %d", old, new)
        systemd.notify(f"STATUS=serving with {new} worker(s) (was {old})")
        self.cfg.nworkers_changed(self, new, old)

    # -- workers ----------------------------------------------------------------------------------

    def load_worker_class(self):
        """Import the worker before binding anything, so a broken install fails at once."""
        if self._worker_class is None:
            try:
                from pronghorn.worker import Worker
            except ImportError as exc:
                raise HaltServer(f"cannot import the pronghorn worker: {exc} (reinstall pronghorn: "
                                 f"pip install --force-reinstall pronghorn)", EXIT_BOOT_ERROR)
            self._worker_class = Worker
        self.worker_class = self._worker_class

    def current_workers(self):
        """Workers of the current generation that we have not told to stop."""
        return [r for r in self.WORKERS.values()
                if r.generation == self.generation and not r.stopping]

    def manage_workers(self):
        """Keep exactly num_workers live workers; retire the previous generation after a reload."""
        if self.stopping:
            return
        current = self.current_workers()
        if len(current) < self.num_workers and time.monotonic() >= self.spawn_not_before:
            for _ in range(self.num_workers - len(current)):
                if self.spawn_worker() is None:
                    break
        if len(current) > self.num_workers:
            oldest_first = sorted(current, key=lambda r: r.age)
            for record in oldest_first[:len(current) - self.num_workers]:
                self.stop_worker(record, signal.SIGTERM)
        current = self.current_workers()
        self.board.set_serving(len(current))
        statsd = getattr(self.log, "statsd", None)
        if isinstance(statsd, Statsd):  # (tests hand the arbiter stand-in loggers)
            statsd.gauge("gunicorn.workers", len(current))  # gunicorn's gauge, each master pass
            if getattr(self.cfg, "enable_backlog_metric", False):
                from pronghorn.metrics import listen_backlogs
                statsd.histogram("gunicorn.backlog", sum(q for _, (q, _) in listen_backlogs(self)))
        if self.boot_failures and any(r.booted() for r in current):
            self.boot_failures = 0
        self.forward_pending_reopens()
        if all(r.booted() for r in current):
            self.retire_previous_generations()
            if not self.ready_sent:
                self.announce_ready()

    def forward_pending_reopens(self):
        for record in list(self.WORKERS.values()):
            if record.reopen_pending and record.booted():
                record.reopen_pending = False
                self.kill_worker(record.pid, signal.SIGUSR1)

    def retire_previous_generations(self):
        old = [r for r in self.WORKERS.values() if r.generation < self.generation and not r.stopping]
        for record in old:
            self.stop_worker(record, signal.SIGTERM)
        if self.reload_in_progress:
            self.reload_in_progress = False
            self.log.info("Reload complete: %d new worker(s) serving", len(self.current_workers()))

    def announce_ready(self):
        self.ready_sent = True
        count = len(self.current_workers())
        where = ", ".join(sockets.describe(s) for s in self.listeners)
        systemd.notify(f"READY=1\nSTATUS=serving on {where} with {count} worker(s)")
        self.cfg.when_ready(self)

    def spawn_worker(self):
        self.worker_age += 1
        heartbeat = Heartbeat(getattr(self.cfg, "worker_tmp_dir", None))
        worker = self.worker_class(self.worker_age, self.pid, self.listeners, self.app,
                                   self.cfg, self.log, heartbeat)
        slot = self.board.claim()
        worker.board, worker.board_slot = (self.board, slot) if slot is not None else (None, None)
        self.cfg.pre_fork(self, worker)
        # The arbiter's handlers only queue a signal for the arbiter's loop. In a child just
        # forked they would swallow a QUIT or TERM meant for the new worker (the stop then waited
        # for the kill at graceful_timeout), so signals wait, blocked, until the child has reset
        # its handlers (reset_signals_for_worker restores this mask).
        self._mask_before_fork = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask_before_fork)
            # out of processes or memory: keep serving with the workers we have, try again later
            heartbeat.close()
            self.log.error("cannot fork a worker: %s (check `ulimit -u` and free memory)", exc.strerror)
            self.back_off_respawning()
            return None
        if pid == 0:
            self.become_worker(worker, heartbeat)   # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask_before_fork)
        worker.pid = pid
        self.WORKERS[pid] = WorkerRecord(worker, pid, heartbeat, self.generation)
        self.log.info("Booting worker with pid: %d", pid)
        return pid

    def become_worker(self, worker, heartbeat):
        """In the child: the hooks, the privilege drop, then the worker's own loop. Never returns."""
        code = EXIT_OK
        try:
            try:
                # Booted = first heartbeat: it wakes our loop so READY=1 (and a reload's switch
                # to the new workers) happens as soon as every worker serves.
                heartbeat.wake_master_on_first_beat(os.dup(self.pipe[1]))
                self.reset_signals_for_worker()
                self._close_others_heartbeats(heartbeat)
                worker.pid = os.getpid()
                self.set_proc_title("worker")
                self.cfg.post_fork(self, worker)
                drop_privileges(*sockets.service_ids(self.cfg))
            except Exception as exc:
                self.log.exception("Worker failed to boot: %s", exc)
                code = EXIT_BOOT_ERROR
            else:
                if getattr(self.cfg, "reload", False):
                    self.start_reloader()
                worker.run()
        except SystemExit as exc:
            code = _exit_status(exc.code)
        except BaseException:
            self.log.exception("Exception in worker process")
            code = EXIT_ERROR
        finally:
            try:
                self.cfg.worker_exit(self, worker)
            except Exception:
                self.log.exception("worker_exit hook failed")
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)

    def start_reloader(self):
        """--reload (development): a changed source file stops this worker gracefully; the
        master then starts a fresh one, which imports the new code."""
        from pronghorn.reloader import Reloader, module_files
        extra = list(getattr(self.cfg, "reload_extra_files", None) or [])

        def restart(path):
            self.log.info("%s changed; restarting the worker", path)
            os.kill(os.getpid(), signal.SIGTERM)

        Reloader(lambda: module_files() + extra, restart).start()

    def reset_signals_for_worker(self):
        """Stop signals keep their default action (a booting worker may just die); the others are
        ignored until the worker installs its own handlers - a USR1 sent by logrotate while a
        worker boots must not kill it."""
        for sig in self.SIGNALS + [signal.SIGCHLD]:
            stop = sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
            signal.signal(sig, signal.SIG_DFL if stop else signal.SIG_IGN)
        # Blocked since before the fork (spawn_worker): a stop signal that came meanwhile acts now.
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask_before_fork)
        for fd in self.pipe:
            os.close(fd)
        self.pipe = None
        self.signal_queue.clear()

    def _close_others_heartbeats(self, mine):
        for record in self.WORKERS.values():
            if record.heartbeat is not mine:
                record.heartbeat.close()

    def stop_worker(self, record, sig):
        record.stopping = True
        self.kill_worker(record.pid, sig)

    def signal_workers(self, sig):
        for pid in list(self.WORKERS):
            self.kill_worker(pid, sig)

    def kill_worker(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            record = self.WORKERS.pop(pid, None)
            if record is not None:
                record.heartbeat.close()
                self.board.release(getattr(record.worker, "board_slot", None))

    def reap_workers(self):
        """Collect every exited child; a worker that could not load the app halts the server."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.reexec_pid:
                self.reexec_failed(status)
                continue
            record = self.WORKERS.pop(pid, None)
            if record is None:
                continue
            booted = record.booted()
            self.exits.worker_exited(record, status, self.stopping)
            record.heartbeat.close()
            self.board.release(getattr(record.worker, "board_slot", None))
            self.report_worker_exit(record, status)
            self.cfg.child_exit(self, record.worker)
            self.check_fatal_exit(record, status)
            if not booted and not record.stopping and not self.stopping:
                self.back_off_respawning()

    def back_off_respawning(self):
        """A worker that dies before serving would die again at once: wait longer each time
        (0.1 s doubling up to 10 s) instead of forking in a tight loop."""
        self.boot_failures += 1
        cap = 2.0 if getattr(self.cfg, "reload", False) else MAX_RESPAWN_DELAY
        delay = min(0.1 * 2 ** (self.boot_failures - 1), cap)
        self.spawn_not_before = time.monotonic() + delay
        if self.boot_failures > 1:
            self.log.warning("Workers keep exiting before they serve (%d in a row); next attempt "
                             "in %.1fs (the reason is logged above)", self.boot_failures, delay)

    def report_worker_exit(self, record, status):
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name
            if sig == signal.SIGKILL and record.aborted_at is None and not self.stopping:
                self.log.error("Worker (pid:%d) was sent SIGKILL! Perhaps out of memory? "
                               "(check `dmesg` for the OOM killer)", record.pid)
            elif record.stopping or self.stopping:
                self.log.info("Worker exiting (pid: %d) after %s", record.pid, name)
            else:
                self.log.error("Worker (pid:%d) was killed by %s", record.pid, name)
            return
        code = os.WEXITSTATUS(status)
        if code == 0:
            self.log.info("Worker exiting (pid: %d)", record.pid)
        else:
            self.log.error("Worker (pid:%d) exited with code %d", record.pid, code)

    def check_fatal_exit(self, record, status):
        if not os.WIFEXITED(status):
            return
        code = os.WEXITSTATUS(status)
        if code not in (EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR):
            return
        what = "the app could not be loaded" if code == EXIT_APP_LOAD_ERROR else "worker failed to boot"
        if record.generation == self.generation and self.reload_in_progress and self._old_workers_alive():
            self.abandon_reload(what)
            return
        if self.stopping:
            return
        if getattr(self.cfg, "reload", False):
            self.log.error("The worker could not start (%s); --reload is on, so pronghorn keeps "
                           "retrying: fix the code and it will pick it up", what)
            return
        raise HaltServer(f"Shutting down: {what} in worker {record.pid} (exit code {code}); "
                         f"the reason is logged above. Restarting it would fail the same way.", code)

    def _old_workers_alive(self):
        return any(r.generation < self.generation for r in self.WORKERS.values())

    def abandon_reload(self, what):
        """A reload's new workers cannot start: keep serving with the old ones."""
        self.log.error("Reload failed: %s; still serving with the previous workers "
                       "(fix the problem, then send HUP again)", what)
        for record in list(self.WORKERS.values()):
            if record.generation == self.generation:
                self.stop_worker(record, signal.SIGTERM)
        self.generation -= 1
        self.num_workers = len(self.current_workers()) or 1
        self.reload_in_progress = False
        systemd.notify(f"READY=1\nSTATUS=reload failed ({what}); serving the previous version")

    def murder_workers(self):
        """SIGABRT a worker whose heartbeat is older than --timeout; SIGKILL it if that is ignored."""
        timeout = getattr(self.cfg, "timeout", 0) or 0
        if not timeout:
            return
        now = time.monotonic()
        for record in list(self.WORKERS.values()):
            if record.aborted_at is not None:
                if now - record.aborted_at > ABORT_GRACE:
                    self.log.error("Worker (pid:%d) did not exit after SIGABRT; sending SIGKILL", record.pid)
                    self.kill_worker(record.pid, signal.SIGKILL)
                continue
            if now - record.heartbeat.last_update() <= timeout:
                continue
            self.log.critical("WORKER TIMEOUT (pid:%d): no heartbeat for %ds (--timeout %s); "
                              "killing it", record.pid, int(now - record.heartbeat.last_update()), timeout)
            record.aborted_at = now
            self.kill_worker(record.pid, signal.SIGABRT)

    def replace_overdue_workers(self):
        """--request-timeout (threaded workers): a worker whose oldest request in progress has run
        past it is replaced gracefully (TERM: its other requests finish, a new worker starts now)."""
        limit = getattr(self.cfg, "request_timeout", 0) or 0
        if not limit:
            return
        for record, line, age in overdue_requests(self, limit):
            self.log.error("REQUEST TIMEOUT (pid:%d): %r has run for %.0fs (--request-timeout %s); "
                           "replacing the worker gracefully", record.pid, line, age, limit)
            record.request_timed_out = True
            self.stop_worker(record, signal.SIGTERM)

    def open_sideband(self):
        from pronghorn.sideband import open_sideband
        try:
            self.sideband = open_sideband(self)
        except OSError as exc:
            raise HaltServer(exc.strerror or str(exc))

    # -- reload (HUP) -----------------------------------------------------------------------------

    def reload(self):
        # MONOTONIC_USEC lets newer systemd (Type=notify-reload) match the reload to its request
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading")
        old_cfg = self.cfg
        try:
            new_cfg = self.read_config_again()
        except SystemExit as exc:     # a ConfigError printed as a usage error
            return self._reload_refused(f"the configuration is invalid (exit {exc.code})")
        except Exception as exc:
            return self._reload_refused(f"the configuration is invalid: {exc}")
        self.cfg = new_cfg
        self.cfg.on_reload(self)
        error = self._reload_logger(old_cfg)
        if error:
            self.cfg = old_cfg
            return self._reload_refused(error)
        self.change_directory_for_reload()
        if getattr(self.cfg, "preload_app", False):
            self.forget_app_modules()
            error = self._import_app()
            if error:
                self.cfg = old_cfg
                return self._reload_refused(f"the app could not be re-imported: {error}")
        self._rebind_if_changed(old_cfg)
        self.set_num_workers_quietly(int(self.cfg.workers))
        self.generation += 1
        self.reload_in_progress = True
        self.ready_sent = False
        self.log.info("Reloading: starting %d new worker(s) before stopping the old ones",
                      self.num_workers)
        self.manage_workers()

    def read_config_again(self):
        """The command line read again from where it was first read: relative paths in it
        (-c, --chdir, --pid) mean the same as at startup."""
        from pronghorn.config import load_config
        os.chdir(self.launch_dir)
        try:
            return load_config(self.argv)
        finally:
            os.chdir(self.start_dir)

    def _reload_refused(self, why):
        self.log.error("Reload failed: %s; still running with the previous configuration and workers", why)
        systemd.notify(f"READY=1\nSTATUS=reload failed: {why}")

    def set_num_workers_quietly(self, new):
        if new != self.num_workers:
            self.set_num_workers(new)

    _LOGGER_KEYS = ("errorlog", "accesslog", "loglevel", "access_log_format", "capture_output",
                    "logconfig", "logconfig_json", "logconfig_dict", "syslog", "syslog_addr",
                    "syslog_prefix", "syslog_facility", "disable_redirect_access_to_syslog",
                    "statsd_host", "statsd_prefix", "dogstatsd_tags")

    def _reload_logger(self, old_cfg):
        """A new logger when a logging setting changed, else the files reopened. Returns why the
        reload must be refused (a logging config that cannot be applied), or None."""
        if not any(getattr(old_cfg, k, None) != getattr(self.cfg, k, None) for k in self._LOGGER_KEYS):
            self.log.reopen_files()
            return None
        from pronghorn.logs import Logger, LogConfigError
        try:
            self.log = Logger(self.cfg)
        except LogConfigError as err:  # the running server keeps its logs, as its config
            return str(err)
        return None

    def change_directory_for_reload(self):
        """Enter the app directory again *by name*, following a re-pointed ``current`` symlink."""
        try:
            self.change_directory()
        except OSError as exc:
            self.log.warning("cannot change directory to --chdir %s on reload: %s (staying in %s)",
                             self.cfg.chdir, exc.strerror, os.getcwd())
        import importlib
        importlib.invalidate_caches()

    def forget_app_modules(self):
        """Drop the app's own modules imported since startup so that --preload's HUP imports the
        new code. Libraries (site-packages) and the standard library stay loaded: a new venv
        needs USR2 (a new master), as with gunicorn."""
        if self.modules_before_app is None:
            return
        for name in set(sys.modules) - self.modules_before_app:
            if _is_app_module(sys.modules.get(name)):
                del sys.modules[name]

    def _rebind_if_changed(self, old_cfg):
        if list(old_cfg.bind) == list(self.cfg.bind):
            return
        if self.inherited_listeners:
            self.log.warning("--bind changed, but the sockets were inherited (systemd or USR2): "
                             "keeping them; change the .socket unit instead")
            return
        keep, fresh = {}, []
        try:
            for bind in self.cfg.bind:
                if bind in self.listeners_by_bind:
                    keep[bind] = self.listeners_by_bind[bind]
                elif bind not in keep:
                    keep[bind] = sockets.open_bind(bind, self.cfg, self.log)
                    fresh.extend(keep[bind])
        except sockets.BindError as exc:
            sockets.close_listeners(fresh, unlink=True)
            self.log.error("Reload: cannot bind the new address, keeping the old ones: %s", exc)
            return
        for bind, group in self.listeners_by_bind.items():
            if bind not in keep:
                sockets.close_listeners(group, unlink=bind.startswith("unix:"))
        for sock in fresh:
            self.log.info("Listening at: %s (%d)", sockets.describe(sock), self.pid)
        self.listeners_by_bind = keep
        self._flatten_listeners()

    # -- USR2: a new master on the same sockets ---------------------------------------------------

    def reexec(self):
        if self.reexec_pid:
            self.log.warning("USR2 ignored: a new master (pid %d) is already running", self.reexec_pid)
            return
        if self.master_pid:
            self.log.warning("USR2 ignored: this master was itself started by USR2 and the old "
                             "master (pid %d) is still running; stop it first (TERM)", self.master_pid)
            return
        if self.pidfile is not None:
            self.pidfile.rename(self.pidfile.path + ".oldbin")
        self.cfg.pre_exec(self)
        command = _reexec_command()
        fds = [sock.fileno() for sock in self.listeners]
        bound = [sock.fileno() for sock in self._sockets_we_bound()]
        pid = os.fork()
        if pid:
            self.reexec_pid = pid
            self.log.info("USR2: started a new master (pid %d) on the same sockets; send TERM to "
                          "this one (pid %d) once the new one serves", pid, self.pid)
            return
        # child: become the new master
        try:
            for sock in self.listeners:
                sock.set_inheritable(True)
            env = dict(os.environ)
            env[sockets.REEXEC_FD_VAR] = ",".join(str(fd) for fd in fds)
            env[sockets.REEXEC_BOUND_VAR] = ",".join(str(fd) for fd in bound)
            for sig in self.SIGNALS + [signal.SIGCHLD]:
                signal.signal(sig, signal.SIG_DFL)
            # the command line is relative to where we were started (a relative --chdir, say)
            os.chdir(self.launch_dir)
            env["PWD"] = self.launch_dir
            os.execve(command[0], command, env)
        except BaseException as exc:
            try:
                sys.stderr.write(f"pronghorn: USR2 re-exec of {command!r} failed: {exc}\n")
            finally:
                os._exit(EXIT_ERROR)

    def reexec_failed(self, status):
        """The new master exited: the old one (us) is in charge again."""
        self.log.warning("The new master (pid %d) exited (status %d); this master keeps serving",
                         self.reexec_pid, status)
        self.reexec_pid = 0
        if self.pidfile is not None and self.pidfile.path.endswith(".oldbin"):
            self.pidfile.rename(self.pidfile.path[:-len(".oldbin")])
            self.pidfile.create(self.pid)

    def maybe_promote(self):
        """After USR2, the new master notices when the old one is gone and stops deferring to it."""
        if self.master_pid and os.getppid() != self.master_pid:
            self.log.info("The old master (pid %d) has exited; this master is in charge", self.master_pid)
            self.master_pid = 0
            self.set_proc_title("master")

    # -- stopping ---------------------------------------------------------------------------------

    def stop(self, graceful=True):
        """Stop every worker: TERM (graceful) or QUIT (fast), then KILL after --graceful-timeout."""
        if self.stopping:
            return
        self.stopping = True
        systemd.notify("STOPPING=1\nSTATUS=stopping")
        self.refuse_new_connections()
        self.close_listeners()
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        self.signal_workers(sig)
        deadline = time.monotonic() + float(getattr(self.cfg, "graceful_timeout", 30) or 0)
        while self.WORKERS and time.monotonic() < deadline:
            self._reap_quietly()
            if not self.WORKERS:
                break
            if graceful and any(s in (signal.SIGINT, signal.SIGQUIT) for s in self.signal_queue):
                self.log.info("Fast stop requested during a graceful stop")
                self.signal_queue.clear()
                graceful = False
                self.signal_workers(signal.SIGQUIT)
            self.sleep(0.1)
        if self.WORKERS:
            self.log.warning("%d worker(s) still running after --graceful-timeout; sending SIGKILL",
                             len(self.WORKERS))
            self.signal_workers(signal.SIGKILL)
            while self.WORKERS:
                self._reap_quietly()
                self.sleep(0.05)

    def _reap_quietly(self):
        """Reaping while stopping: exit codes are reported but never halt (we are halting)."""
        self.reap_workers()

    def halt(self, reason, exit_code):
        if exit_code:
            self.log.error("%s", reason)
        else:
            self.log.info("%s", reason)
        self.stop(graceful=True)
        self.exit(exit_code)

    def exit(self, code):
        if self.pidfile is not None:
            self.pidfile.unlink(self.pid)
        if self.stats_file is not None:
            self.stats_file.remove()
        if self.sideband is not None:
            self.sideband.close()
        try:
            self.cfg.on_exit(self)
        except Exception:
            self.log.exception("on_exit hook failed")
        self.log.info("Shutting down: Master")
        sys.exit(code)

    # -- small helpers ----------------------------------------------------------------------------

    def set_proc_title(self, role):
        try:
            from setproctitle import setproctitle
        except ImportError:
            return
        setproctitle(f"pronghorn: {role} [{self.proc_name}]")

    @staticmethod
    def _make_logger(cfg):
        from pronghorn.logs import Logger, LogConfigError
        try:
            return Logger(cfg)
        except LogConfigError as err:  # a bad --log-config file: one line, as any bad setting
            sys.stderr.write(f"pronghorn: error: {err}\n")
            raise SystemExit(EXIT_ERROR) from None


def drop_privileges(uid, gid):
    """Become --user/--group in a worker (gunicorn does it in the worker too; the master keeps its
    identity so it can bind low ports and re-exec). ``None`` leaves that id unchanged; see
    sockets.service_ids for how the config's values map to these."""
    if gid is not None and os.getegid() != gid:
        account = None
        if uid is not None:
            try:
                account = pwd.getpwuid(uid)
            except KeyError:
                pass
        if account is not None:
            os.initgroups(account.pw_name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
    if uid is not None and os.geteuid() != uid:
        os.setuid(uid)


def _exit_status(code):
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return EXIT_ERROR


def _library_dirs():
    import sysconfig
    dirs = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


def _is_app_module(module):
    """True for a module loaded from a file outside the standard library and site-packages."""
    path = getattr(module, "__file__", None)
    if not path:
        return False
    if getattr(module, "__name__", "").startswith("pronghorn"):
        return False
    return not os.path.realpath(path).startswith(_library_dirs())


def _raw_env(cfg):
    """-e KEY=VALUE settings, set in the master's environment so every worker inherits them."""
    pairs = {}
    for item in getattr(cfg, "raw_env", None) or []:
        key, _, value = item.partition("=")
        if key:
            pairs[key] = value
    return pairs


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _logical_cwd():
    """The current directory as the shell spelled it ($PWD), if that still names the same place.

    The kernel keeps the resolved path; $PWD keeps ``/srv/app/current`` - the spelling a reload
    needs to follow the symlink to a new release.
    """
    cwd = os.getcwd()
    pwd_env = os.environ.get("PWD")
    if pwd_env and os.path.isabs(pwd_env):
        try:
            if os.path.samefile(pwd_env, cwd):
                return pwd_env
        except OSError:
            pass
    return cwd


def _respell_sys_path(start_dir):
    """Make a sys.path entry that is the resolved start directory use the symlinked spelling.

    ``python -m pronghorn`` run in /srv/app/current puts the *resolved* release directory on
    sys.path; workers forked after a HUP would import the old release from it.
    """
    if not start_dir:
        return
    real = os.path.realpath(start_dir)
    if real == start_dir:
        return
    for index, entry in enumerate(sys.path):
        if entry and entry != start_dir and os.path.realpath(entry) == real and os.path.isabs(entry):
            sys.path[index] = start_dir


def _reexec_command():
    """The command line that started this master, to run it again (USR2)."""
    orig = list(getattr(sys, "orig_argv", []) or [])
    if orig:
        return [sys.executable] + orig[1:]
    return [sys.executable, "-m", "pronghorn"] + sys.argv[1:]


def _version():
    try:
        from pronghorn import __version__
        return __version__
    except ImportError:
        return "?"
