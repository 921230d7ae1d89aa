"""The app's directories on the host, Capistrano-style (every path from the host layout):

    /srv/NAME/                root:root 0755
      releases/               NAME:NAME 0755   one folder per release (releases/TIMESTAMP)
      shared/                 NAME:NAME 0755   kept across releases
        media/                NAME:www-data 2750   uploads: the app writes them with UMask=0027,
                                   so files are 0640; setgid keeps them (and new folders)
                                   in group www-data, whom nginx runs as: nginx reads them,
                                   other users cannot
        data/                 NAME:NAME 0750   the app's other state (e.g. a sqlite database)
      venvs/                  root:root 0755   one venv per requirements hash; the app cannot alter it
      wheels/                 root:root 0755   the uploaded pronghorn server wheels
    /var/log/NAME/            NAME:adm  0750   only with access_log = "file"
"""

from __future__ import annotations

from roles.files import basename
from toolkit.executor import Change
from toolkit.remote import q


def step(wanted) -> str:
    return "folders under " + wanted.layout.base_dir


def wanted_dirs(wanted) -> list[tuple[str, int, str, str]]:
    lay, app = wanted.layout, wanted.app
    dirs = [
        (lay.base_dir, 0o755, "root", "root"),
        (lay.releases_dir, 0o755, app, app),
        (lay.shared_dir, 0o755, app, app),
        (lay.media_dir, 0o2750, app, "www-data"),
        (lay.data_dir, 0o750, app, app),
        (lay.venvs_dir, 0o755, "root", "root"),
        (lay.wheels_dir, 0o755, "root", "root"),
    ]
    return dirs + ([(lay.log_dir, 0o750, app, "adm")] if wanted.access_log == "file" else [])


def plan(facts, wanted) -> list:
    """Create or fix each folder whose kind, mode or owner differs."""
    fixes, script = [], []
    for path, mode, owner, group in wanted_dirs(wanted):
        fact = facts.fact(path)
        if fact.exists and fact.kind == "dir" and fact.mode == mode and \
                (fact.owner, fact.group) == (owner, group):
            continue
        fixes.append(path)
        script.append(f"install -d -m {mode:o} -o {owner} -g {group} {q(path)}")
        if fact.exists and fact.kind == "dir" and fact.group != group and path == wanted.layout.media_dir:
            # Uploads made before: into the group nginx reads with, folders setgid like media/.
            script.append(f"chgrp -R {group} {q(path)} && find {q(path)} -type d -exec chmod g+s {{}} +")
    if not fixes:
        return []
    return [Change(", ".join(basename(p) for p in fixes), script=" && ".join(script),
                   label="creating the app's folders")]
