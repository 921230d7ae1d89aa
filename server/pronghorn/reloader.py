"""--reload: notice when a source file changes, for development.

A daemon thread polls, every `interval` seconds, the files named by `files_callback()` (usually
`module_files()` plus --reload-extra-file) and calls `on_change(path)` once per change.

A file counts as changed when its identity or content stamp changes: (device, inode, size,
mtime). The paths are stat()ed through symlinks, so after a deploy switches
`/srv/app/current -> releases/N+1`, `/srv/app/current/app.py` is a different inode and counts as
changed even when the new release's file carries an older mtime (rsync -t, git checkout). A file
that disappears (an old release removed) counts as changed too. Files first seen on a later poll
(a module imported late) are only recorded.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable, Iterable

Stamp = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
MISSING: Stamp = (-1, -1, -1, -1)


def module_files() -> list[str]:
    """The source files of every loaded module (compiled .pyc mapped back to .py)."""
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.append(path)
    return files


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)  # follows symlinks: a switched `current` link gives another inode
    except OSError:
        return MISSING
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Reloader:
    """Reloader(files_callback, on_change, interval=1.0).start(); .stop() to end the thread."""

    def __init__(self, files_callback: Callable[[], Iterable[str]], on_change: Callable[[str], None],
                 interval: float = 1.0) -> None:
        self.files_callback = files_callback
        self.on_change = on_change
        self.interval = interval
        self._stamps: dict[str, Stamp] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[str]:
        """One poll: record new files, return (and report) the ones that changed since last time."""
        changed = []
        for path in dict.fromkeys(self.files_callback()):
            current = stamp(path)
            previous = self._stamps.get(path)
            self._stamps[path] = current
            if previous is None:
                if current == MISSING:
                    del self._stamps[path]  # never existed (a zip import, a typo'd extra file)
                continue
            if current != previous:
                changed.append(path)
        for path in changed:
            self.on_change(path)
        return changed

    def start(self) -> "Reloader":
        self.check()  # the baseline
        self._thread = threading.Thread(target=self._run, name="pronghorn-reloader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


def start_for(cfg, log, on_change: Callable[[str], None], interval: float = 1.0) -> Reloader | None:
    """What a worker does for --reload: watch its modules and cfg.reload_extra_files.

    Returns the started Reloader, or None when cfg.reload is off. on_change(path) is called in
    the reloader thread after the change is logged; the worker should stop from there (as
    gunicorn's does) so the arbiter starts a fresh one that imports the new code.
    """
    if not cfg.reload:
        return None
    extra = [os.path.abspath(path) for path in cfg.reload_extra_files]

    def files() -> list[str]:
        return module_files() + extra

    def changed(path: str) -> None:
        log.info("Worker reloading: %s modified", path)
        on_change(path)

    return Reloader(files, changed, interval).start()
