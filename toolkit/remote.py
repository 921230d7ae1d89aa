"""Small helpers over a Fabric Connection used by the roles and the release flow.

Every ssh round trip costs time (tens of milliseconds even on a fast network), so these helpers
are built to batch: `file_facts` reads the state of many files in one command, `put_if_changed`
writes every differing file in one more (a tar stream on stdin).

Commands run as root: directly when we log in as root, through `sudo -n` otherwise.
"""

from __future__ import annotations

import hashlib
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


# -- file facts ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileFact:
    """What a path looks like on the host. `sha256` is empty for directories and missing paths."""

    path: str
    exists: bool
    kind: str = ""  # "file", "dir", "link", "other"
    mode: int = 0
    owner: str = ""
    group: str = ""
    sha256: str = ""


# One line per path: path, kind, octal mode, owner, group, sha256 (files only); "-" when missing.
_FACTS_SCRIPT = r"""
for p in "$@"; do
  if [ -L "$p" ]; then k=link; elif [ -d "$p" ]; then k=dir; elif [ -f "$p" ]; then k=file;
  elif [ -e "$p" ]; then k=other; else printf '%s\t-\n' "$p"; continue; fi
  s=$(stat -c '%a %U %G' "$p")
  h=-; [ "$k" = file ] && h=$(sha256sum < "$p" | cut -d' ' -f1)
  printf '%s\t%s\t%s\t%s\n' "$p" "$k" "$s" "$h"
done
"""


def file_facts_script(paths) -> str:
    """The shell command `file_facts` runs (exposed so other scripts can batch it in)."""
    return "set -- " + " ".join(q(p) for p in paths) + "\n" + _FACTS_SCRIPT


def parse_file_facts(stdout: str) -> dict[str, FileFact]:
    facts = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[1] == "-":
            facts[parts[0]] = FileFact(parts[0], exists=False)
        elif len(parts) == 4:
            path, kind, stat, digest = parts
            mode, owner, group = stat.split(" ")
            facts[path] = FileFact(path, True, kind, int(mode, 8), owner, group,
                                   "" if digest == "-" else digest)
    return facts


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


def file_facts(c, paths) -> dict[str, FileFact]:
    """Kind, mode, owner, group and sha256 of each path, in one round trip."""
    paths = list(paths)
    if not paths:
        return {}
    return parse_file_facts(sh(c, file_facts_script(paths), what="reading file facts").stdout)


# -- writing files ------------------------------------------------------------------------------

def sha256_text(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def file_differs(fact: FileFact | None, content, mode: int, owner: str, group: str) -> str:
    """Why a file must be (re)written, or "" when it is already as wanted."""
    if fact is None or not fact.exists:
        return "missing"
    if fact.kind != "file":
        return f"is a {fact.kind}"
    if fact.sha256 != sha256_text(content):
        return "content"
    if fact.mode != mode:
        return f"mode {fact.mode:o} -> {mode:o}"
    if (fact.owner, fact.group) != (owner, group):
        return f"owner {fact.owner}:{fact.group} -> {owner}:{group}"
    return ""


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


def put_if_changed(c, files, dry: bool = False, facts: dict | None = None) -> list[tuple[str, str]]:
    """Write every file that differs (content, mode or owner) in one round trip.

    `files` are objects with path, content, mode, owner, group (render.RenderedFile).
    Returns [(path, why)] of the files written (or that would be, when `dry`).
    """
    files = list(files)
    if facts is None:
        facts = file_facts(c, [f.path for f in files])
    todo = []
    for f in files:
        why = file_differs(facts.get(f.path), f.content, f.mode, f.owner, f.group)
        if why:
            todo.append((f, why))
    if todo and not dry:
        entries = [(f.path, f.content.encode() if isinstance(f.content, str) else f.content,
                    f.mode, f.owner, f.group) for f, _ in todo]
        extract_tar(c, build_tar(entries))
    return [(f.path, why) for f, why in todo]
