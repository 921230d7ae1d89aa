"""The app's system user and group: NAME, home /srv/NAME, no login shell.

The service runs as this user; it owns the releases and the shared files, never the venvs.
"""

from __future__ import annotations

from roles import facts as facts_mod
from toolkit.remote import q, sh

NOLOGIN = "/usr/sbin/nologin"


def user_script(cfg, facts) -> tuple[str, str]:
    """(what will change, the script to do it), or ("", "") when the user is as wanted."""
    name, home = cfg.name, str(cfg.layout.base_dir)
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
        fixes = []
        if entry[5] != home:
            fixes.append(f"--home {q(home)}")
        if entry[6] != NOLOGIN:
            fixes.append(f"--shell {NOLOGIN}")
        if fixes:
            todo.append(f"usermod {' '.join(fixes)} {q(name)}")
            notes.append("home/shell")
    if not todo:
        return "", ""
    return "created " + " and ".join(notes) if "user" in notes else "fixed " + ", ".join(notes), \
        " && ".join(todo)


def ensure_user(c, cfg, rep, dry=False, facts=None) -> bool:
    """Create the app's system user and group when missing."""
    with rep.step(f"user {cfg.name}") as st:
        if facts is None:
            facts = facts_mod.gather(c, cfg)
        note, script = user_script(cfg, facts)
        if not script:
            return False
        st.changed(note)
        if not dry:
            sh(c, script, what=f"creating user {cfg.name}")
        return True
