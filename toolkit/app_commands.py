"""Commands in the app's world (`invoke run`, `manage`, `shell`): what runs, where, as whom.

A command runs on the host as the app user (runuser, never root: the app's own files and
database stay the app's), in the live release's folder (`current` resolved once, so a deploy
switching meanwhile does not move it), with the release's venv first on PATH and the app's
environment (shared/.env, then shared/.env.local) read on the host by onhost/env_exec.py: no
value of it is ever on a command line. The same way release_commands.as_app runs the import
check, with stdout and stderr kept apart and stdin left to the command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from toolkit import onhost
from toolkit.errors import ConfigError, DeployError, next_task
from toolkit.remote import q, sh


def command_after_dashes(argv: list[str]) -> list[str]:
    """The words after the first `--` of the command line, as typed (invoke itself keeps only
    their text joined by spaces, which loses `sh -c 'exit 3'`'s quoting)."""
    return list(argv[argv.index("--") + 1:]) if "--" in argv else []


def manage_argv(cfg, args: list[str]) -> list[str]:
    """Django's `python manage.py ARGS`; ConfigError for an app of another framework."""
    if not cfg.django:
        raise ConfigError(
            f"`invoke manage` runs Django's manage.py, and {cfg.name} is a {cfg.framework} app; "
            f"run its commands with `invoke run`",
            next_task("run", "--", *(["flask", "--app", cfg.wsgi] if cfg.framework == "flask" else ["python"]),
                      "--help"))
    return ["python", "manage.py", *args]


def shell_argv(cfg) -> list[str]:
    """The framework's interactive shell: Django's, Flask's (app loaded), else plain Python."""
    if cfg.django:
        return ["python", "manage.py", "shell"]
    if cfg.framework == "flask":
        return ["flask", "--app", cfg.wsgi, "shell"]
    return ["python"]


@dataclass(frozen=True)
class Live:
    release_dir: str  # the resolved releases/TS folder `current` points to


def live_release(c, cfg) -> Live:
    """The live release's folder; DeployError when the app is not deployed there yet."""
    current = cfg.layout.current_dir
    out = sh(c, f"d=$(readlink -e {q(current)}) && [ -x \"$d/.venv/bin/python\" ] && echo \"$d\"",
             check=False, timeout=30, what="finding the live release").stdout.strip()
    if not out.startswith(cfg.layout.releases_dir + "/"):
        raise DeployError(f"{cfg.name} has no live release on this host yet", next_task("deploy"))
    return Live(out)


def as_app_line(cfg, live: Live, argv: list[str]) -> str:
    """The shell line running `argv` as the app user in the live release, in its environment."""
    python = f"{live.release_dir}/.venv/bin/python"
    inner = [python, "-c", onhost.program("env_exec"), cfg.layout.env_file, *argv]
    # exec: the command's exit code is the line's, and a hangup reaches it directly
    return f"cd {q(live.release_dir)} && exec runuser -u {q(cfg.name)} -- " + " ".join(map(shlex.quote, inner))


def wants_tty(stdin, stdout) -> bool:
    """A terminal on the host when this is a person at one (both ends are terminals): a pipe
    or a file keeps its bytes and stderr apart, as with `ssh` without -t."""
    return _isatty(stdin) and _isatty(stdout)


def _isatty(stream) -> bool:
    try:
        return bool(stream and stream.isatty())
    except (AttributeError, ValueError):
        return False
