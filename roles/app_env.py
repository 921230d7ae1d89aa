"""The app's shared files: shared/.env (0600, owned by the app user: it holds secrets),
shared/pronghorn.conf.py (the server's config), and the logrotate file where logs are written.
All three come from core's renderer; this role only writes what differs."""

from __future__ import annotations

from roles import facts as facts_mod
from roles.files import rendered_files, select, write_changed


def app_files(cfg, files) -> list:
    return select(files, str(cfg.layout.shared_dir) + "/", "/etc/logrotate.d/")


def ensure_app_env(c, cfg, rep, dry=False, facts=None, files=None) -> bool:
    """Write shared/.env, shared/pronghorn.conf.py and the logrotate file when they differ."""
    with rep.step("app env and server config") as st:
        mine = app_files(cfg, files if files is not None else rendered_files(cfg))
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=[f.path for f in mine])
        return bool(write_changed(c, mine, st, dry, facts))
