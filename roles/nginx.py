"""The app's nginx site: sites-available/NAME.conf from core's template, enabled with a link,
Debian's `default` site removed. Apps with real domains also get the catch-all
pronghorn-default.conf (unknown Host: 444), enabled like the site; an app with domains = ["_"]
is the default server itself, so the catch-all's link is removed (two default servers on one
port would fail `nginx -t`).

The new config is checked with `nginx -t` before nginx reloads; when the check fails the
previous files are put back, so a bad template never takes the running site down.
nginx reloads only when something changed.
"""

from __future__ import annotations

from roles import facts as facts_mod
from roles.files import rendered_files, select
from toolkit.remote import RemoteError, build_tar, file_differs, q, sh

NGINX_DIR = "/etc/nginx/"
AVAILABLE = "/etc/nginx/sites-available/"
ENABLED = "/etc/nginx/sites-enabled/"
DEFAULT_SITE = ENABLED + "default"
CATCH_ALL = ENABLED + "pronghorn-default.conf"


def nginx_files(files) -> list:
    return select(files, NGINX_DIR)


def enabled_links(files) -> list[str]:
    """sites-enabled/X for every sites-available/X we install."""
    return [ENABLED + f.path[len(AVAILABLE):] for f in files if f.path.startswith(AVAILABLE)]


def fact_paths(files) -> list[str]:
    return [f.path for f in files] + enabled_links(files) + [DEFAULT_SITE, CATCH_ALL]


def plan(files, facts) -> tuple[list, list[str], list[str]]:
    """(files to write, links to make, enabled sites to remove)"""
    to_write = [f for f in files
                if file_differs(facts.files.get(f.path), f.content, f.mode, f.owner, f.group)]
    enabled = enabled_links(files)
    links = [link for link in enabled if facts.fact(link).kind != "link"]
    # Debian's default site always goes; our catch-all goes when this app no longer renders it.
    unwanted = [DEFAULT_SITE] + ([CATCH_ALL] if CATCH_ALL not in enabled else [])
    return to_write, links, [path for path in unwanted if facts.fact(path).exists]


def apply_script(to_write, links, removals, nginx_active: bool) -> str:
    """Back up, unpack (tar on stdin), link, `nginx -t`; restore the backup if the test fails."""
    lines = ["set -e"]
    for f in to_write:
        lines.append(f"if [ -f {q(f.path)} ]; then cp -p {q(f.path)} {q(f.path + '.pronghorn-prev')}; fi")
    lines.append("tar -xzf - -C / --same-owner --same-permissions --no-overwrite-dir")
    for link in links:
        target = "../sites-available/" + link[len(ENABLED):]
        lines.append(f"ln -sfn {q(target)} {q(link)}")
    for path in removals:
        lines.append(f"rm -f {q(path)}")
    restore = []
    for f in to_write:
        prev = q(f.path + ".pronghorn-prev")
        restore.append(f"if [ -f {prev} ]; then mv -f {prev} {q(f.path)}; else rm -f {q(f.path)}; fi")
    for link in links:
        restore.append(f"rm -f {q(link)}")
    lines.append("if ! out=$(nginx -t 2>&1); then echo \"$out\"; "
                 + "; ".join(restore) + "; echo 'nginx -t failed: the previous config was put back';"
                 " exit 1; fi")
    for f in to_write:
        lines.append(f"rm -f {q(f.path + '.pronghorn-prev')}")
    if nginx_active:
        lines.append("systemctl reload nginx")
    else:
        lines.append("systemctl enable --quiet nginx && systemctl restart nginx")
    return "\n".join(lines)


def ensure_site(c, cfg, rep, dry=False, facts=None, files=None) -> bool:
    """Install and enable the app's nginx site; test the config before reloading nginx."""
    with rep.step("nginx site") as st:
        mine = nginx_files(files if files is not None else rendered_files(cfg))
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=fact_paths(mine), units=("nginx.service",))
        to_write, links, removals = plan(mine, facts)
        nginx_active = facts.unit_active.get("nginx.service") == "active"
        if not (to_write or links or removals or not nginx_active):
            return False
        notes = [f.path.rsplit("/", 1)[-1] for f in to_write]
        notes += ["enabled site"] * bool(links)
        notes += [f"disabled {path.rsplit('/', 1)[-1]} site" for path in removals]
        notes += ["started nginx"] * (not nginx_active)
        st.changed(", ".join(notes))
        if dry:
            return True
        entries = [(f.path, f.content.encode(), f.mode, f.owner, f.group) for f in to_write]
        result = sh(c, apply_script(to_write, links, removals, nginx_active),
                    stdin=build_tar(entries), check=False)
        if not result.ok:
            output = result.stdout + result.stderr
            if "duplicate default server" in output:
                raise two_default_servers(output)
            raise RemoteError("installing the nginx site", result.exited, output)
        return True


def two_default_servers(output: str):
    """The error for a second app with domains = ["_"] on one host (nginx allows one default)."""
    from toolkit.errors import DeployError

    return DeployError('another nginx site on this host is already the default server: only one app '
                       'per host can use domains = ["_"] (the previous nginx config was kept)',
                       'give this app its own names in deploy.toml, e.g. [app] domains = ["www.example.com"], '
                       "then run the same command again", output.strip())
