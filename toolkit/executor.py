"""The one executor: applies the changes the roles plan, so no role runs anything itself.

A role's plan is a list of `Change`s (what, why, and the files and/or script to apply); the
executor runs one step per role through the Reporter (named, timed, ok / changed / failed):

    changed = apply(c, rep, "systemd units", plan(facts, wanted), dry=dry)

- nothing to change: the step is `ok` and nothing runs;
- `dry`: the step says what would change (the plan printed) and nothing runs, by construction;
- otherwise the changes run in order, as root (toolkit/remote.sh): the files of consecutive
  file-only changes go up together in one tar (one round trip per role); a change with files
  and a script unpacks the files and runs the script in the same round trip, or hands the tar
  to the script on stdin (`tar_on_stdin`, e.g. to keep a backup before unpacking);
- a `background` change runs in a thread on its own ssh channel; `apply_started` returns its
  future (`.result()` waits and raises its error).

A failure raises RemoteError (what failed, exit code, output), or what the change's `explain`
makes of the output (a ToolkitError with a `next:` step).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from toolkit.errors import RemoteError, ToolkitError
from toolkit.remote import build_tar, sh

UNPACK = "tar -xzf - -C / --same-owner --same-permissions --no-overwrite-dir"


@dataclass(frozen=True)
class Change:
    """One difference between the host and what is wanted, and how to put it right.

    `what`: shown after the step ("shop.service", "install nginx"); `why`: the reason, shown in
    brackets ("missing", "mode 644 -> 600"); `files`: objects with path, content, mode, owner,
    group (render.RenderedFile) to write; `script`: shell run as root after the files are
    written; `label`: names the command in an error (default: what)."""

    what: str
    why: str = ""
    files: tuple = ()
    script: str = ""
    label: str = ""
    tar_on_stdin: bool = False  # the script reads the files' tar itself
    background: bool = False
    explain: Callable[[str], ToolkitError | None] | None = field(default=None, compare=False)

    @property
    def note(self) -> str:
        return f"{self.what} ({self.why})" if self.why and self.what else self.what


def describe(changes) -> str:
    """The step's note: every change's what (why), in order."""
    return ", ".join(ch.note for ch in changes if ch.note)


def apply(c, rep, name: str, changes, dry: bool = False) -> bool:
    """One step: apply `changes` (none: ok). True when something changed (or would)."""
    changed, job = apply_started(c, rep, name, changes, dry)
    if job is not None:
        job.result()
    return changed


def apply_started(c, rep, name: str, changes, dry: bool = False) -> tuple[bool, Future | None]:
    """Like apply, but background changes are left running: (changed, future or None)."""
    changes = list(changes)
    with rep.step(name) as st:
        if not changes:
            return False, None
        st.changed(describe(changes))
        if dry:
            return True, None
        run(c, [ch for ch in changes if not ch.background])
    later = [ch for ch in changes if ch.background]
    if not later:
        return True, None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="executor")
    job = pool.submit(run, c, later)
    pool.shutdown(wait=False)
    return True, job


def run(c, changes) -> None:
    """Run changes in order; the files of consecutive file-only changes share one tar."""
    pending: list = []
    for ch in changes:
        if ch.files and not ch.script:
            pending.append(ch)
            continue
        _flush(c, pending)
        pending = []
        run_one(c, ch)
    _flush(c, pending)


def _flush(c, pending) -> None:
    if pending:
        files = [f for ch in pending for f in ch.files]
        run_one(c, Change("", files=tuple(files), label="writing files"))


def tar_of(files) -> bytes:
    return build_tar([(f.path, f.content.encode() if isinstance(f.content, str) else f.content,
                       f.mode, f.owner, f.group) for f in files])


def command_of(ch: Change) -> str:
    if not ch.files or ch.tar_on_stdin:
        return ch.script
    return UNPACK + (" && " + ch.script if ch.script else "")


def run_one(c, ch: Change) -> None:
    stdin = tar_of(ch.files) if ch.files else None
    result = sh(c, command_of(ch), stdin=stdin, check=False)
    if result.ok:
        return
    output = result.stdout + result.stderr
    error = ch.explain(output) if ch.explain else None
    raise error or RemoteError(ch.label or ch.what, result.exited, output)
