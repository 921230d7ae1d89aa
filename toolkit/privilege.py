"""Least privilege on the host, as the names and shell pieces that the user and layout roles and
the release commands share:

- the app never owns code it runs: releases, venvs, wheels and the server config are root's,
  in the app's group (it reads them), never world-readable (but for the static files nginx
  serves, which are public anyway);
- a venv is built by the app's build user (`build_user`), whose primary group is the app's
  group (so it reads the requirements in the release) and who owns the venv only while pip
  runs in it;
- root never follows a path the app could have planted: the app writes only shared/media,
  shared/data and its logs, so whatever root does there must not follow a symbolic link
  (`chown -h`, `find -P`, and a folder that turned out to be a link is refused, not fixed).
"""

from __future__ import annotations

import hashlib

from toolkit.errors import DeployError, next_task
from toolkit.remote import q

BUILD_SUFFIX = "-build"
LOGIN_NAME_MAX = 32  # useradd's limit


def build_user(app: str) -> str:
    """The user that builds APP's venvs: `APP-build`, or for names too long for that, a
    shortened name with a hash so two long app names never share a build user."""
    name = app + BUILD_SUFFIX
    if len(name) <= LOGIN_NAME_MAX:
        return name
    tag = hashlib.sha256(app.encode()).hexdigest()[:5]
    return f"{app[:LOGIN_NAME_MAX - len(BUILD_SUFFIX) - 6]}-{tag}{BUILD_SUFFIX}"


def seal_tree(path: str, group: str) -> str:
    """Make the tree at `path` root's and read-only for `group`, nothing for others.

    chown first, without following links (-h; -R never follows them): once it is done no folder
    in the tree is writable by anyone but root, so chmod's walk cannot be raced by its former
    owner. chmod -R ignores the links it meets; set-id bits are taken away."""
    p, g = q(path), q(group)
    return f"chown -R -h root:{g} {p} && chmod -R u-s,g-ws,o-rwx {p}"


def refuse_link_script(path: str, what: str) -> str:
    """Stop (exit 3) with a message when `path` is a symbolic link: root must not follow it."""
    p = q(path)
    return (f"if [ -L {p} ]; then echo {q(f'refused: {path} ({what}) is a symbolic link')} >&2; "
            f"exit 3; fi")


def planted_link_error(path: str, what: str, kind: str) -> DeployError:
    """The error for a path that should be a folder and is a link (or a file, ...)."""
    seen = "a symbolic link" if kind == "link" else f"a {kind}, not a folder"
    return DeployError(
        f"{path} ({what}) on the host is {seen}; the app's user could have made it there, so the "
        "toolkit refuses to touch it (as root it would follow or replace it)",
        f"look at it on the host (ls -la {path}), move it away (mv {path} {path}.suspect), "
        f"then run: {next_task('provision')}")
