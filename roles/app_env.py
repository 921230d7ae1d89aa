"""The app's shared files: shared/.env (0600, owned by the app user: it holds secrets),
shared/pronghorn.conf.py (the server's config), and the logrotate file where logs are written.
All three come from the renderer; this role only writes what differs."""

from __future__ import annotations

from roles.files import file_changes

STEP = "app env and server config"


def app_files(wanted) -> list:
    return wanted.select(wanted.layout.shared_dir + "/", "/etc/logrotate.d/")


def plan(facts, wanted) -> list:
    return file_changes(facts, app_files(wanted))


def settings_changed(facts, wanted) -> bool:
    """Whether what the app reads when it starts (shared/.env, pronghorn.conf.py) differs on the
    host: a deploy of unchanged code then restarts it, or it would keep the old values."""
    return bool(file_changes(facts, wanted.select(wanted.layout.shared_dir + "/")))
