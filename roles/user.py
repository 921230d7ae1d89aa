"""The app's system user and group: NAME, home /srv/NAME, no login shell.

The service runs as this user. It owns only what it writes (shared/media, shared/data, its
logs and shared/.env), never code it runs: releases, venvs and the server config are root's
(roles/layout.py, toolkit/privilege.py). Its venvs are built by a second user, NAME-build
(privilege.build_user), made by the venv build itself the first time it is needed.
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
