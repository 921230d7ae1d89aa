"""The audit trail on each host (Kamal's `audit`): one line per deploy, rollback, restart,
provision, recovery and lock action, appended to `cfg.layout.deploy_log`, and read back by
`invoke history`.

A line is tab-separated, UTC time first, so `sort` and `grep` work on the host too:

    2026-01-02T10:00:00Z  alice@laptop  deploy  20260102095940  ok

    (when, who, action, target, result) - the target is a release name or "-".

The file is root's (0600, written with umask 077 by commands that run as root): the app user
can neither read who deployed nor rewrite the record. Lines are only ever appended.
Older toolkits wrote four fields (when, who, release, result); `parse` reads those as well.

    line(action, target, result) -> str     a line for now, by this user (lock.who())
    parse(text) -> Entry | None             one line back (None: not a line of ours)
    append_script(layout, action, ...)      the shell that appends a line, to batch with others
    record(c, cfg, action, ...)             append one line now
    read(c, cfg, n) -> [Entry]              the last n lines, oldest first
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from toolkit import lock
from toolkit.remote import q, sh

ACTIONS = ("deploy", "rollback", "recover", "restart", "provision", "lock", "env", "db.restore",
           "maintenance")


@dataclass(frozen=True)
class Entry:
    when: str
    who: str
    action: str
    target: str
    result: str

    def describe(self) -> str:
        return f"{self.when}  {self.who:<24} {self.action:<9} {self.target:<16} {self.result}"


def _field(value: str) -> str:
    """One field: tabs and line breaks would split the line, so they become spaces."""
    text = " ".join(str(value).split())
    return text or "-"


def line(action: str, target: str, result: str, who: str | None = None, when: float | None = None) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: one of {', '.join(ACTIONS)}")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return "\t".join(_field(v) for v in (stamp, who or lock.who(), action, target, result))


def parse(text: str) -> Entry | None:
    fields = text.rstrip("\n").split("\t")
    if len(fields) == 5:
        return Entry(*fields)
    if len(fields) == 4:  # the older deploy log: when, who, release, result
        when, who, release, result = fields
        action = "rollback" if result.startswith("rollback") else "deploy"
        return Entry(when, who, action, release, result)
    return None


def append_script(layout, action: str, target: str, result: str) -> str:
    """Append one line as root. A symlink planted in its place is removed, not followed."""
    path = q(layout.deploy_log)
    return (f"[ -L {path} ] && rm -f {path}; "
            f"(umask 077; printf '%s\\n' {q(line(action, target, result))} >> {path}); "
            f"chown root:root {path} && chmod 0600 {path}")


def record(c, cfg, action: str, target: str, result: str) -> None:
    """Append a line now. A failure to write it is not the user's problem: it is ignored."""
    sh(c, append_script(cfg.layout, action, target, result), check=False, timeout=30,
       what="writing the audit trail")


def read(c, cfg, n: int = 20) -> list[Entry]:
    out = sh(c, f"tail -n {int(n)} {q(cfg.layout.deploy_log)} 2>/dev/null || true", timeout=30,
             what="reading the audit trail").stdout
    return [e for e in map(parse, out.splitlines()) if e is not None]
