"""The app's directories on the host, Capistrano-style:

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

from roles import facts as facts_mod
from toolkit.remote import q, sh


def wanted_dirs(cfg) -> list[tuple[str, int, str, str]]:
    base = str(cfg.layout.base_dir)
    app = cfg.name
    return [
        (base, 0o755, "root", "root"),
        (f"{base}/releases", 0o755, app, app),
        (f"{base}/shared", 0o755, app, app),
        (f"{base}/shared/media", 0o2750, app, "www-data"),
        (f"{base}/shared/data", 0o750, app, app),
        (f"{base}/venvs", 0o755, "root", "root"),
        (f"{base}/wheels", 0o755, "root", "root"),
    ] + ([(str(cfg.layout.log_dir), 0o750, app, "adm")] if getattr(cfg, "access_log", "") == "file" else [])


def layout_script(cfg, facts) -> tuple[list[str], str]:
    """(paths to fix, the script fixing them); nothing when all are as wanted."""
    fixes, script = [], []
    for path, mode, owner, group in wanted_dirs(cfg):
        fact = facts.fact(path)
        if fact.exists and fact.kind == "dir" and fact.mode == mode and \
                (fact.owner, fact.group) == (owner, group):
            continue
        fixes.append(path)
        script.append(f"install -d -m {mode:o} -o {owner} -g {group} {q(path)}")
        if fact.exists and fact.kind == "dir" and fact.group != group and path.endswith("/media"):
            # Uploads made before: into the group nginx reads with, folders setgid like media/.
            script.append(f"chgrp -R {group} {q(path)} && find {q(path)} -type d -exec chmod g+s {{}} +")
    return fixes, " && ".join(script)


def ensure_layout(c, cfg, rep, dry=False, facts=None) -> bool:
    """Create /srv/NAME and its folders with the right owners and modes."""
    with rep.step("folders under " + str(cfg.layout.base_dir)) as st:
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=[d[0] for d in wanted_dirs(cfg)])
        fixes, script = layout_script(cfg, facts)
        if not fixes:
            return False
        st.changed(", ".join(p.rsplit("/", 1)[-1] or p for p in fixes))
        if not dry:
            sh(c, script, what="creating the app's folders")
        return True
