"""Small helpers over a Fabric Connection used by the executor, the facts and the release flow.

Every ssh round trip costs time (tens of milliseconds even on a fast network), so these helpers
are built to batch: `split_sections` reads back many facts printed by one script
(toolkit/facts.gather), `build_tar` + `extract_tar` write many files in one more (a tar stream
on stdin).

Commands run as root: directly when we log in as root, through `sudo -n` otherwise. Every
command has a timeout (a hung `migrate` must not hold the deploy lock forever), and long ones
run so that they stop on the host when we stop waiting (`sh(..., stoppable=True)`).
"""

from __future__ import annotations

import io
import shlex
import socket
import tarfile
import time
from dataclasses import dataclass


# RemoteError is raised by sh(); callers catch it from here too
from toolkit.errors import DeployError, RemoteError  # noqa: F401


def as_root(c, script: str) -> str:
    """The command line that runs `script` with sh as root on this connection."""
    cmd = "sh -c " + shlex.quote(script)
    if (c.user or "") != "root":
        cmd = "sudo -n " + cmd
    return cmd


@dataclass
class Result:
    """What a remote command gave back (the same field names as invoke's Result)."""

    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0


DEFAULT_TIMEOUT = 900  # seconds; steps that should be quick pass their own, shorter one


class StepTimeout(DeployError):
    """A remote step ran past its timeout: stopped on the host when it ran `stoppable` (or read
    stdin, which ends with the channel), given up on otherwise."""

    def __init__(self, what: str, timeout: float, stopped: bool = True):
        super().__init__(f"{what} did not finish within {timeout:g} s and "
                         + ("was stopped" if stopped else "was given up on (it may still run on the host)"),
                         "find out what it waits for (a prompt, the network, a lock), fix that, "
                         "then run the same command again")
        self.what, self.timeout = what, timeout


def sh(c, script: str, *, what: str | None = None, check: bool = True,
       stdin: bytes | None = None, timeout: float = DEFAULT_TIMEOUT, stoppable: bool = False) -> Result:
    """Run a shell script as root, quietly; `stdin` bytes are fed to it.

    `timeout` bounds the whole step (StepTimeout names `what` when it expires). `stoppable`
    runs it on a pseudo-terminal, so closing the channel - a timeout, Ctrl-C, a killed or
    disconnected client - hangs the terminal up and the command (pip, migrate) dies with it
    instead of running on unattended. Without one, sshd leaves a command running after its
    client is gone. A pty merges stderr into stdout and cannot carry binary stdin, so it is
    for long commands whose output is text.

    Uses one ssh channel directly rather than `c.run`: invoke feeds stdin in 1000-byte chunks
    with a pause between them and decodes it as text, which is slow and breaks binary data
    (the tar streams we upload).
    """
    if stoppable and stdin:
        raise ValueError("a stoppable command runs on a pty, which cannot carry binary stdin")
    if c.transport is None or not c.transport.is_active():
        c.open()
    what = what or script.strip().splitlines()[0][:80]
    chan = c.transport.open_session()
    try:
        if stoppable:
            chan.get_pty(term="dumb")  # dumb: no colours, no pager
        chan.exec_command(as_root(c, script))
        if stdin:
            chan.sendall(stdin)
        if not stoppable:  # a pty has no half-close; nothing is read from it anyway
            chan.shutdown_write()
        out, err, code = _collect(chan, time.monotonic() + timeout)
    except TimeoutError:
        raise StepTimeout(what, timeout, stopped=stoppable or bool(stdin)) from None
    finally:
        chan.close()  # on a pty: the hangup that stops the command if it still runs
    result = Result(_text(out, stoppable), _text(err, stoppable), code)
    if check and code != 0:
        raise RemoteError(what, code, result.stdout + result.stderr)
    return result


def _collect(chan, deadline: float) -> tuple[bytes, bytes, int]:
    """Read stdout to its end, then stderr (paramiko buffers stderr meanwhile), then the exit
    code; TimeoutError once `deadline` (time.monotonic()) passes."""
    out, err = bytearray(), bytearray()
    for recv, buf in ((chan.recv, out), (chan.recv_stderr, err)):
        while True:
            chan.settimeout(_left(deadline))
            try:
                data = recv(65536)
            except socket.timeout:
                raise TimeoutError from None
            if not data:
                break
            buf += data
    if not chan.status_event.wait(_left(deadline)):
        raise TimeoutError
    return bytes(out), bytes(err), chan.recv_exit_status()


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _text(data: bytes, from_pty: bool) -> str:
    text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n") if from_pty else text  # a pty writes CR LF


def q(value) -> str:
    """Quote one value for the remote shell."""
    return shlex.quote(str(value))


# -- reading several facts at once -------------------------------------------------------------

def split_sections(stdout: str, strip: bool = False) -> dict[str, list[str]]:
    """The output of a script that reads several facts in one round trip, each part headed by a
    line `@@NAME`: {NAME: its lines}. With strip, lines are stripped and blank ones dropped."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            current = sections[line[2:]] = []
        elif current is not None:
            if strip:
                line = line.strip()
                if not line:
                    continue
            current.append(line)
    return sections


# -- writing files ------------------------------------------------------------------------------

def build_tar(entries) -> bytes:
    """A gzip tar of (absolute path, bytes, mode, owner, group) entries, paths made relative to /."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path, data, mode, owner, group in entries:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            info.uname, info.gname = owner, group
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def extract_tar(c, tar_bytes: bytes, dest: str = "/", what: str = "writing files") -> None:
    """Unpack a gzip tar on the host under `dest`, keeping modes and owners (by name)."""
    script = (f"mkdir -p {q(dest)} && tar -xzf - -C {q(dest)} --same-owner --same-permissions "
              "--no-overwrite-dir")
    sh(c, script, what=what, stdin=tar_bytes)
