"""The app's system user and group: NAME, home /srv/NAME, no login shell.

The service runs as this user; it owns the releases and the shared files, never the venvs.
"""

from __future__ import annotations

from toolkit.executor import Change
from toolkit.remote import q

NOLOGIN = "/usr/sbin/nologin"


def step(wanted) -> str:
    return f"user {wanted.app}"


def plan(facts, wanted) -> list:
    """Create the group and user when missing; fix a wrong home or shell."""
    name, home = wanted.app, wanted.layout.base_dir
    todo, notes = [], []
    if name not in facts.groups:
        todo.append(f"groupadd --system {q(name)}")
        notes.append("group")
    entry = facts.passwd.get(name)
    if entry is None:
        todo.append(f"useradd --system --gid {q(name)} --home-dir {q(home)} --no-create-home "
                    f"--shell {NOLOGIN} --comment {q('pronghorn app ' + name)} {q(name)}")
        notes.append("user")
    else:
        fixes = [f"--home {q(home)}"] * (entry[5] != home) + [f"--shell {NOLOGIN}"] * (entry[6] != NOLOGIN)
        if fixes:
            todo.append(f"usermod {' '.join(fixes)} {q(name)}")
            notes.append("home/shell")
    if not todo:
        return []
    what = "created " + " and ".join(notes) if "user" in notes else "fixed " + ", ".join(notes)
    return [Change(what, script=" && ".join(todo), label=f"creating user {name}")]
