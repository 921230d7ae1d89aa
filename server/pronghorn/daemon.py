"""`-D/--daemon`: detach from the terminal before the master starts, as gunicorn does.

Two forks and a setsid: the command returns at once and the server runs in its own session with
no controlling terminal. stdin, stdout and stderr go to /dev/null unless
`--enable-stdio-inheritance` keeps them (so '-' logs are lost: give --error-logfile). The umask is
left alone (pronghorn keeps the inherited one unless --umask is given). Under systemd, do not use
it: Type=notify and socket activation need the process systemd started.
"""

from __future__ import annotations

import os
import sys


def daemonize(keep_stdio: bool) -> None:
    """Return in the grandchild (the daemon); the original process and the child exit 0."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)
    os.setsid()  # a new session: no controlling terminal, no SIGHUP when the shell closes
    if os.fork():
        os._exit(0)  # the session leader leaves, so a terminal can never be re-acquired
    if keep_stdio:
        os.environ["PYTHONUNBUFFERED"] = "TRUE"  # as gunicorn: output shows up as it is written
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
