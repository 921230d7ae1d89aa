"""Settings and secrets changed on the host (`invoke env.list/set/unset`), without editing files.

Where the values live: shared/.env is the deploy's (rendered from deploy.toml [env] and
[app] secrets, rewritten by every deploy); what `env.set` sets goes in shared/.env.local, a
file no deploy writes, read after .env by the unit (a second, optional `EnvironmentFile=-`)
and by onhost/env_exec.py (`invoke run`, the import check, manage.py during a release). So a
value set on the host survives every deploy and wins over deploy.toml's value of the same
name until `env.unset` removes it; merging into .env instead would leave the renderer unable
to tell a value set on the host from one dropped from deploy.toml.

The editing runs on the host (onhost/env_edit.py, as root): the value goes there on the ssh
channel's stdin, never on a command line, and `list` masks values there, so a secret never
comes back. A change restarts the app and health-checks it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from toolkit import onhost
from toolkit.errors import ConfigError, DeployError, RemoteError, next_task
from toolkit.remote import q, sh

LOCAL_SUFFIX = ".local"  # onhost/env_edit.py and env_exec.py say the same
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_VALUE = 64 * 1024  # a setting, not a file
NOT_THERE_EXIT = 3  # env_edit.py unset: the name was not set on the host


def local_env_file(layout) -> str:
    """shared/.env.local: the values set on the host."""
    return layout.env_file + LOCAL_SUFFIX


def check_name(arg: str) -> str:
    """`arg` as a variable name; ConfigError for NAME=VALUE (a value on the command line stays
    in the shell's history and shows in `ps`) or anything that is not a name."""
    if not arg:
        raise ConfigError("say which variable with --name, e.g. --name SECRET_KEY", next_task("env.list"))
    if "=" in arg:
        name = arg.split("=", 1)[0]
        raise ConfigError(
            "env.set takes the name only: a value on the command line stays in your shell history "
            "and shows in `ps`. Type the value when asked (it is not shown), or pipe it in",
            next_task("env.set", "--name", shlex.quote(name) if NAME.match(name) else "NAME"))
    if not NAME.match(arg):
        raise ConfigError(f"{arg!r} is not a variable name: letters, digits and _, not starting with a digit",
                          next_task("env.list"))
    return arg


def value_from(text: str, name: str) -> str:
    """The value read (stdin or the prompt), without its line end; ConfigError when it is
    empty or has several lines."""
    value = text[:-1] if text.endswith("\n") else text
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise ConfigError(f"no value given for {name} (to remove it: invoke env.unset)",
                          next_task("env.unset", "--name", name))
    if "\n" in value or "\0" in value or len(value) > MAX_VALUE:
        raise ConfigError(f"the value of {name} must be one line (at most {MAX_VALUE} characters)",
                          next_task("env.set", "--name", name))
    return value


def shown_names(cfg) -> list[str]:
    """The names whose values `env.list` shows: deploy.toml's [env] and the toolkit's own
    variables (never a secret; a value set on the host is always masked)."""
    from toolkit.render import base_env

    return sorted(n for n in base_env(cfg) if n not in cfg.secrets)


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # "deploy" (shared/.env, from deploy.toml) or "host" (env.set)
    value: str   # the value, or ******** for a secret or a value set on the host


def _edit(*args: str) -> str:
    argv = ["python3", "-c", onhost.program("env_edit"), *args]
    return " ".join(shlex.quote(a) for a in argv)


def read(c, cfg) -> list[Entry]:
    out = sh(c, _edit("list", cfg.layout.env_file, ",".join(shown_names(cfg))),
             timeout=60, what="reading the app's environment").stdout
    return [Entry(*line.split("\t", 2)) for line in out.splitlines() if line.count("\t") >= 2]


def unit_reads_local(c, cfg) -> bool:
    """Whether the host's unit reads shared/.env.local (units rendered by an older toolkit do not)."""
    out = sh(c, f"systemctl show -p EnvironmentFiles {q(cfg.layout.unit_name)}", check=False,
             timeout=30, what="reading the unit's environment files").stdout
    return local_env_file(cfg.layout) in out


def require_unit_reads_local(c, cfg) -> None:
    if not unit_reads_local(c, cfg):
        raise DeployError(f"{cfg.layout.unit_name} on this host does not read {local_env_file(cfg.layout)} "
                          "(the app is not deployed here yet, or was deployed by an older toolkit): "
                          "deploy, then set the value",
                          next_task("deploy"))


def set_value(c, cfg, name: str, value: str) -> None:
    """NAME=value in shared/.env.local; the value goes on stdin."""
    sh(c, _edit("set", cfg.layout.env_file, cfg.name, name), stdin=value.encode("utf-8"),
       timeout=60, what=f"setting {name}")


def unset_value(c, cfg, name: str) -> bool:
    """NAME out of shared/.env.local; False when it was not set there."""
    result = sh(c, _edit("unset", cfg.layout.env_file, cfg.name, name), check=False,
                timeout=60, what=f"removing {name}")
    if result.exited == NOT_THERE_EXIT:
        return False
    if result.exited != 0:
        raise RemoteError(f"removing {name}", result.exited, result.stdout + result.stderr)
    return True
