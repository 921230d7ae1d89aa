"""The value checks of deploy.toml's [processes] and [schedule] tables (config_schema.py uses them).

[processes] is Procfile-like: `worker = "celery -A mysite worker"`, each entry a long-running
process (roles/processes.py makes it the unit APP-worker.service). [schedule] entries are
`name = { command = "...", on = "daily" }`, run by a systemd timer (roles/schedule.py); `on` is
an OnCalendar= expression, checked with `systemd-analyze calendar` when this machine has it
(else a character check only: the host's systemd still refuses a bad one at daemon-reload).

A command is a shell command line, as in a Procfile: it runs under /bin/sh in the release's
folder with the venv first on PATH and shared/.env in the environment, so `$VAR` expands there.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from toolkit.config_checks import Invalid

# A unit name part: systemd allows more, but these also read well in `invoke logs --process`.
PROCESS_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}\Z")
# The characters OnCalendar= expressions are made of ("Mon..Fri *-*-* 04:00:00", "*:*:0/10", "daily").
CALENDAR_RE = re.compile(r"^[A-Za-z0-9*:/,.~ +-]{1,100}\Z")
CALENDAR_WORDS = ("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
                  "quarterly", "semiannually")
NAME_HELP = "a letter, then letters, digits, '_' or '-' (at most 40)"


def command(value, what: str = "the command"):
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what}: expected a command line in quotes, like \"celery -A mysite worker\"")
    if any(ch in value for ch in "\n\r\0"):
        raise Invalid(f"{what}: expected one line")
    return value.strip()


# APP-NAME.service names the toolkit's own units use ([database] backups: APP-backup).
RESERVED = ("backup",)


def _name(name) -> str:
    if not PROCESS_NAME_RE.match(name):
        raise Invalid(f"{name!r} is not a valid name ({NAME_HELP}; it becomes part of a unit name)")
    if name in RESERVED:
        raise Invalid(f"{name!r} is the name of one of the toolkit's own units; pick another")
    return name


def processes_table(value):
    if not isinstance(value, dict):
        raise Invalid('expected a table of NAME = "command", like worker = "celery -A mysite worker"')
    return {_name(name): command(cmd, name) for name, cmd in value.items()}


@functools.lru_cache(maxsize=64)
def _systemd_refuses(expression: str) -> str:
    """systemd-analyze's complaint about an OnCalendar= expression ("" when it is fine or when
    this machine cannot tell)."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return ""
    try:
        result = subprocess.run([tool, "calendar", expression], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["invalid"])[-1]


def calendar(value, what: str = "on"):
    if not isinstance(value, str) or not CALENDAR_RE.match(value.strip()):
        raise Invalid(f"{what}: expected a systemd OnCalendar= expression like \"daily\", \"hourly\", "
                      "\"*-*-* 03:30:00\" or \"Mon..Fri 09:00\" (man systemd.time)")
    value = value.strip()
    refused = "" if value in CALENDAR_WORDS else _systemd_refuses(value)
    if refused:
        raise Invalid(f"{what} = \"{value}\": systemd-analyze calendar says: {refused} "
                      "(try `systemd-analyze calendar 'EXPRESSION'`; man systemd.time)")
    return value


def schedule_table(value):
    if not isinstance(value, dict):
        raise Invalid('expected a table of NAME = { command = "...", on = "daily" }')
    out = {}
    for name, entry in value.items():
        _name(name)
        if not isinstance(entry, dict) or set(entry) != {"command", "on"}:
            raise Invalid(f"{name}: expected {{ command = \"...\", on = \"daily\" }} (exactly those two keys)")
        out[name] = {"command": command(entry["command"], f"{name}.command"),
                     "on": calendar(entry["on"], f"{name}.on")}
    return out


processes_table.allowed = 'a table of NAME = "command" (NAME: ' + NAME_HELP + ")"
schedule_table.allowed = 'a table of NAME = { command = "...", on = "OnCalendar expression" }'
