"""The app's directories on the host, Capistrano-style (every path from the host layout):

    /srv/NAME/                root:root 0755
      releases/               root:root 0755   one folder per release (releases/TIMESTAMP),
                                   root:NAME 0750 inside (toolkit/privilege.py): the app reads
                                   its code and never owns it
      shared/                 root:NAME 0751   kept across releases; root's, so the app cannot
                                   replace .env or pronghorn.conf.py; others may only pass
                                   through (nginx, to media/)
        media/                NAME:www-data 2750   uploads: the app writes them with UMask=0027,
                                   so files are 0640; setgid keeps them (and new folders)
                                   in group www-data, whom nginx runs as: nginx reads them,
                                   other users cannot
        data/                 NAME:NAME 0750   the app's other state (e.g. a sqlite database)
      venvs/                  root:root 0755   one venv per requirements hash; the app cannot alter it
      wheels/                 root:root 0755   the uploaded pronghorn server wheels
    /var/log/NAME/            NAME:adm  0750   only with access_log = "file"

media/, data/ and the log folder are the app's: the app could have replaced one with a symbolic
link, and `install -d` would follow it (chown'ing its target to the app). Such a path is refused
with an error naming it, never "fixed"; root only creates them, in folders root owns.
"""

from __future__ import annotations

from roles.files import basename
from toolkit.executor import Change
from toolkit.privilege import planted_link_error
from toolkit.remote import q


def step(wanted) -> str:
    return "folders under " + wanted.layout.base_dir


def wanted_dirs(wanted) -> list[tuple[str, int, str, str]]:
    """(path, mode, owner, group), parents before children."""
    lay, app = wanted.layout, wanted.app
    dirs = [
        (lay.base_dir, 0o755, "root", "root"),
        (lay.releases_dir, 0o755, "root", "root"),
        (lay.shared_dir, 0o751, "root", app),
        (lay.media_dir, 0o2750, app, "www-data"),
        (lay.data_dir, 0o750, app, app),
        (lay.venvs_dir, 0o755, "root", "root"),
        (lay.wheels_dir, 0o755, "root", "root"),
    ]
    return dirs + ([(lay.log_dir, 0o750, app, "adm")] if wanted.access_log == "file" else [])


def app_writable(wanted) -> dict[str, str]:
    """{path: what it is} of the folders the app itself writes in (and could plant links in)."""
    lay = wanted.layout
    return {lay.media_dir: "uploads", lay.data_dir: "the app's data", lay.log_dir: "the app's logs"}


def plan(facts, wanted) -> list:
    """Create or fix each folder whose kind, mode or owner differs; refuse an app folder that is
    a link (or not a folder)."""
    fixes, script = [], []
    writable = app_writable(wanted)
    for path, mode, owner, group in wanted_dirs(wanted):
        fact = facts.fact(path)
        if fact.exists and fact.kind != "dir":
            if path in writable or fact.kind == "link":
                raise planted_link_error(path, writable.get(path, "a folder of the app"), fact.kind)
        if fact.exists and fact.kind == "dir" and fact.mode == mode and \
                (fact.owner, fact.group) == (owner, group):
            continue
        fixes.append(path)
        script.append(f"install -d -m {mode:o} -o {owner} -g {group} {q(path)}")
        if fact.exists and fact.kind == "dir":
            script += _migrations(wanted, path, fact, group)
    if not fixes:
        return []
    return [Change(", ".join(basename(p) for p in fixes), script=" && ".join(script),
                   label="creating the app's folders")]


def _migrations(wanted, path: str, fact, group: str) -> list[str]:
    """What a folder made by an older toolkit needs besides its own mode and owner."""
    lay, app = wanted.layout, wanted.app
    if path == lay.media_dir and fact.group != group:
        # Uploads made before: into the group nginx reads with, folders setgid like media/.
        # -h and -P: nothing in there is followed.
        return [f"chgrp -R -h {group} {q(path)}",
                f"find -P {q(path)} -mindepth 1 -type d -exec chmod g+s {{}} +"]
    if path == lay.releases_dir and fact.owner != "root":
        # Releases the app owned: root's from now on (chown first: see privilege.seal_tree).
        # Their files stay readable by others, so the live one's static files are still served.
        return [f"find -P {q(path)} -mindepth 1 -maxdepth 1 -exec chown -R -h root:{q(app)} {{}} +",
                f"chmod -R go-w {q(path)}"]
    return []
