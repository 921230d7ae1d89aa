"""The app's nginx site: sites-available/NAME.conf from the template, enabled with a link,
Debian's `default` site removed. Apps with real domains also get the catch-all
pronghorn-default.conf (unknown Host: 444), enabled like the site; an app with domains = ["_"]
is the default server itself, so the catch-all's link is removed (two default servers on one
port would fail `nginx -t`). When another app on the host already uses domains = ["_"], that
app answers unknown names, and the catch-all stays off.

The catch-all is one file for the whole host, so every app renders it alike (`host_vars`): it
listens wherever any enabled site does (443 when one serves https, IPv6 when one listens
there), whichever app deploys. It goes only when an app becomes the default server itself.
`http2 on;` replaces `listen ... http2` on nginx 1.25.1 and later (the old form warns there).

The new config is checked with `nginx -t` before nginx reloads; when the check fails the
previous files are put back, so a bad template never takes the running site down.
nginx reloads only when something changed.
"""

from __future__ import annotations

from pathlib import Path

from roles.files import basename, differing
from toolkit.errors import DeployError
from toolkit.executor import Change
from toolkit.remote import q

STEP = "nginx site"
UNIT = "nginx.service"
NGINX_DIR = "/etc/nginx/"
AVAILABLE = "/etc/nginx/sites-available/"
ENABLED = "/etc/nginx/sites-enabled/"
DEFAULT_SITE = ENABLED + "default"
CATCH_ALL = ENABLED + "pronghorn-default.conf"
SITE_SCRIPT = Path(__file__).with_name("nginx_site.sh")


HTTP2_DIRECTIVE = (1, 25, 1)  # nginx with `http2 on;` (the `listen ... http2` parameter is deprecated)


def host_vars(app: str, listeners: dict, version: tuple, placeholder: bool) -> dict:
    """What the nginx templates take from the host (the `host` of the render): `http2_on`, and
    where the other enabled sites listen (`others_tls`: one serves https and the catch-all's
    placeholder certificate is there; `others_ipv6`). `listeners`: the SiteListeners fact;
    `version`: NginxVersion; `placeholder`: roles/tls.py's placeholder certificate exists."""
    ours = {ENABLED + f"{app}.conf", CATCH_ALL, DEFAULT_SITE}
    others = [args.split() for path, found in listeners.items() if path not in ours for args in found]
    return {"http2_on": bool(version) and tuple(version) >= HTTP2_DIRECTIVE,
            "others_tls": placeholder and any("ssl" in args for args in others),
            "others_ipv6": any(args and args[0].startswith("[") for args in others)}


def nginx_files(wanted) -> list:
    return wanted.select(NGINX_DIR)


def enabled_links(files) -> list[str]:
    """sites-enabled/X for every sites-available/X we install."""
    return [ENABLED + f.path[len(AVAILABLE):] for f in files if f.path.startswith(AVAILABLE)]


def fact_paths(wanted) -> list[str]:
    files = nginx_files(wanted)
    return [f.path for f in files] + enabled_links(files) + [DEFAULT_SITE, CATCH_ALL, wanted.layout.tls_default_cert]


def other_default(files, default_servers) -> str:
    """Another app's enabled site that is the default server already ("" when none)."""
    ours = set(enabled_links(files)) | {CATCH_ALL, DEFAULT_SITE}
    return next((path for path in sorted(default_servers) if path not in ours), "")


def differences(facts, files, default_servers=()) -> tuple[list, list[str], list[str]]:
    """(files to write, links to make, enabled sites to remove)"""
    if other_default(files, default_servers):
        files = [f for f in files if f.path != AVAILABLE + basename(CATCH_ALL)]
    to_write = [f for f, _ in differing(facts, files)]
    enabled = enabled_links(files)
    links = [link for link in enabled if facts.fact(link).kind != "link"]
    # Debian's default site always goes; our catch-all goes when this app no longer renders it.
    unwanted = [DEFAULT_SITE] + ([CATCH_ALL] if CATCH_ALL not in enabled else [])
    return to_write, links, [path for path in unwanted if facts.fact(path).exists]


def plan(facts, wanted, default_servers=(), listeners=None) -> list:
    """One change: write, link, unlink, `nginx -t`, reload (or start) nginx. `default_servers`:
    the DefaultServers fact (toolkit/facts/nginx.py); `listeners`: SiteListeners, to see when a
    reload cannot take the new listen addresses (`rebinds`)."""
    files = nginx_files(wanted)
    to_write, links, removals = differences(facts, files, default_servers)
    active = facts.unit(UNIT).active == "active"
    if not (to_write or links or removals or not active):
        return []
    # a site enabled again from its unchanged file listens too (the catch-all, when the app
    # gets its domains back)
    relinked = [f for f in files if f not in to_write and f.path.startswith(AVAILABLE)
                and ENABLED + f.path[len(AVAILABLE):] in links]
    restart = active and listeners is not None and rebinds(listeners, to_write + relinked, removals)
    notes = [basename(f.path) for f in to_write] + ["enabled site"] * bool(links)
    notes += [f"disabled {basename(path)} site" for path in removals] + ["started nginx"] * (not active)
    notes += ["restarted nginx (listen addresses changed)"] * restart
    return [Change(", ".join(notes), files=tuple(to_write), tar_on_stdin=True,
                   script=apply_script(to_write, links, removals, active and not restart),
                   label="installing the nginx site", explain=two_default_servers)]


def _ports(listens) -> dict:
    """{port: {address, ...}} of `listen` arguments ("*" for a wildcard; IPv6 left out)."""
    found: dict = {}
    for args in listens:
        first = (args.split() or [""])[0]
        if first.startswith("["):
            continue
        address, _, port = first.rpartition(":")
        if not port.isdigit():
            continue
        found.setdefault(port, set()).add(address or "*")
    return found


def rebinds(listeners: dict, to_write, removals) -> bool:
    """Whether a port moves between a wildcard and addresses. A reload cannot do that: from
    `listen 80` to `listen 10.0.0.5:80` (an app host put behind a load balancer) the running
    master still holds *:80, so binding 10.0.0.5:80 fails with "address in use"; the other way
    (the catch-all's `listen 80 default_server` arriving on an app host that listens on its
    addresses, when the app gets its domains) binding *:80 fails beside 10.0.0.5:80. Either
    way nginx keeps the old config while systemd reports the reload done; it restarts instead."""
    written = {ENABLED + basename(f.path): f for f in to_write if f.path.startswith(AVAILABLE)}
    old = _ports(args for path, found in listeners.items() for args in found)
    new_listens = [args for path, found in listeners.items() if path not in written and path not in removals
                   for args in found]
    for f in written.values():
        new_listens += [line.strip()[len("listen"):].strip().rstrip(";").strip()
                        for line in f.content.splitlines() if line.strip().startswith("listen ")]
    new = _ports(new_listens)
    return any(new.get(port) and ("*" in addresses) != ("*" in new[port]) for port, addresses in old.items())


def apply_script(to_write, links, removals, nginx_active: bool) -> str:
    """nginx_site.sh (next to this file) with its arguments: back up, unpack (tar on stdin), link,
    unlink, `nginx -t`, and the backup restored if the test fails; then reload or (re)start nginx."""
    args = ["reload" if nginx_active else "start"] + [f"w:{f.path}" for f in to_write]
    args += [f"l:{link}" for link in links] + [f"r:{path}" for path in removals]
    return f"sh -c {q(SITE_SCRIPT.read_text())} nginx_site.sh " + " ".join(q(a) for a in args)


def two_default_servers(output: str):
    """The error for a second app with domains = ["_"] on one host (nginx allows one default)."""
    if "duplicate default server" not in output:
        return None
    return DeployError('another nginx site on this host is already the default server: only one app '
                       'per host can use domains = ["_"] (the previous nginx config was kept)',
                       'give this app its own names in deploy.toml, e.g. [app] domains = ["www.example.com"], '
                       "then run the same command again", output.strip())
