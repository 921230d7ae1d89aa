"""Small helpers over a Fabric Connection used by the executor, the facts and the release flow.

Every ssh round trip costs time (tens of milliseconds even on a fast network), so these helpers
are built to batch: `split_sections` reads back many facts printed by one script
(toolkit/facts.gather), `build_tar` + `extract_tar` write many files in one more (a tar stream
on stdin).

Commands run as root: directly when we log in as root, through `sudo -n` otherwise.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import time
from dataclasses import dataclass


from toolkit.errors import RemoteError  # noqa: F401  (raised by sh(); callers catch it from here too)


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


def sh(c, script: str, *, what: str | None = None, check: bool = True,
       stdin: bytes | None = None, timeout: float | None = None) -> Result:
    """Run a shell script as root, quietly; `stdin` bytes are fed to it.

    Uses one ssh channel directly rather than `c.run`: invoke feeds stdin in 1000-byte chunks
    with a pause between them and decodes it as text, which is slow and breaks binary data
    (the tar streams we upload).
    """
    if c.transport is None or not c.transport.is_active():
        c.open()
    chan = c.transport.open_session()
    try:
        if timeout:
            chan.settimeout(timeout)
        chan.exec_command(as_root(c, script))
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = _drain(chan)
        code = chan.recv_exit_status()
    finally:
        chan.close()
    result = Result(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code)
    if check and code != 0:
        raise RemoteError(what or script.strip().splitlines()[0][:80], code,
                          result.stdout + result.stderr)
    return result


def _drain(chan) -> tuple[bytes, bytes]:
    """Read stdout to its end, then stderr (paramiko buffers stderr meanwhile)."""
    out = chan.makefile("rb").read()
    err = chan.makefile_stderr("rb").read()
    return out, err


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
