"""The toolkit's errors, each with the step the person should take next.

Every error a task can end with is a `ToolkitError`: a message saying what went wrong, a
`next_step` (printed as `next: ...`, a command that works when pasted as printed) and optional
`details` (output from the host, a journal). Tasks turn them into that output in one place
(toolkit/tasking.explain).

A `next_step` that names a task is written with `next_task("lock.release")`: it holds the
placeholders HOST and APP, filled by `fill_next` with the host and app folder of the command
being run, so the hint works from wherever the person ran it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

HOST = "<host>"
APP = "<app>"


class ToolkitError(Exception):
    """Something stopped the task. `next_step`: what to type next; `details`: extra output."""

    def __init__(self, message: str, next_step: str = "", details: str = ""):
        super().__init__(message)
        self.next_step = next_step
        self.details = details


class ConfigError(ToolkitError):
    """deploy.toml (or an override) is wrong; the message says where, what and what is allowed."""


class HostError(ToolkitError):
    """A host could not be used (cannot connect, unknown name, unsupported system)."""


class DeployError(ToolkitError):
    """A deploy, rollback or provisioning step stopped."""


class LockHeld(DeployError):
    """Another deploy holds the host's deploy lock."""


class RemoteError(ToolkitError):
    """A command on the host failed. The message carries its exit code and last lines of output."""

    def __init__(self, what: str, exit_code: int, output: str):
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{what} failed (exit {exit_code})" + (f":\n{tail}" if tail else ""))
        self.exit_code = exit_code
        self.output = output


def invoke_program() -> str:
    """How the person started invoke: `invoke` when that is on PATH, else the path they typed
    (e.g. `.venv/bin/invoke`), so a printed command runs when pasted."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "invoke"
    if os.path.basename(argv0) != "invoke":
        return "invoke"
    on_path = shutil.which("invoke")
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "invoke"
    if os.path.isabs(argv0):
        try:
            relative = os.path.relpath(argv0)
        except ValueError:
            return argv0
        return relative if not relative.startswith("../../") else argv0
    return argv0


def next_task(task: str, *args: str) -> str:
    """`invoke TASK --host <host> --app <app> ARGS`: a hint naming a task, filled by fill_next."""
    return " ".join([f"invoke {task} --host {HOST} --app {APP}", *args])


def fill_next(text: str, host: str, app: str = ".") -> str:
    """`text` with the placeholders of next_task filled for this command line."""
    if not text:
        return text
    text = text.replace("invoke ", invoke_program() + " ") if text.startswith("invoke ") or " invoke " in text \
        or "`invoke " in text else text
    if app in ("", "."):
        text = text.replace(f" --app {APP}", "")
    return text.replace(HOST, shlex.quote(host)).replace(APP, shlex.quote(app))
