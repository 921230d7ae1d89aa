"""Maintenance mode: nginx answers the app's visitors with a static 503 page (and Retry-After)
while the app is worked on; `invoke maintenance.on/off` (toolkit/tasks_maintenance.py).

With deploy.toml [hosts] the page is the load balancers' (`front_roles`: where visitors arrive;
their site tests the same flag, templates/etc/nginx/maintenance.jinja); the app hosts behind
them are left alone and keep answering the load balancers.

How it works: the app's nginx site tests on every request for a flag file
(`cfg.layout.maintenance_flag`, under /var/lib/pronghorn, root's) and answers 503 with
`cfg.layout.maintenance_page` while it exists. So turning it on or off is one file, with no
nginx reload, and a deploy meanwhile neither removes it nor needs it off: the deploy's health
check comes from the host itself, which the site lets through (as `invoke run` and the app's
[processes], which do not go through nginx at all). The flag holds when and by whom it was
turned on, for `invoke status`.

    on_script(cfg) / off_script(cfg)   the root shell that makes / removes the flag
    state_script(cfg), parse_state()   "on since WHEN by WHO" or "" (off), for status
"""

from __future__ import annotations

import posixpath

from toolkit import lock
from toolkit.remote import q

NO_SITE_EXIT = 3  # the host's nginx site does not know maintenance mode (not deployed yet, or older)
WAS_OFF_EXIT = 4  # off: there was no flag


def front_roles(cfg) -> tuple | None:
    """The roles of the hosts whose nginx answers visitors, where the page belongs: with
    deploy.toml [hosts] and a load balancer, the lb hosts (the app hosts behind them are left
    alone: a flag there would answer the load balancer 503, which takes the host out of its
    rotation); [hosts] without one, the app hosts; None: the single-host case (every host)."""
    inventory = cfg.inventory
    if not inventory.multi:
        return None
    return ("lb",) if inventory.balanced else ("app",)


def site_of(cfg, roles=()) -> str:
    """The nginx site that tests the flag on a host with `roles`: the load balancer's or the app's."""
    return cfg.layout.lb_site if "lb" in (roles or ()) else cfg.layout.nginx_site


def on_script(cfg, site: str | None = None) -> str:
    """`site`: the nginx site that must know the flag (site_of; default the app's)."""
    layout = cfg.layout
    flag = layout.maintenance_flag
    return "\n".join([
        "set -e",
        f"grep -qF {q(flag)} {q(site or layout.nginx_site)} 2>/dev/null || exit {NO_SITE_EXIT}",
        f"install -d -m 755 -o root -g root {q(posixpath.dirname(flag))}",
        # nginx (www-data) only tests that it exists; what is in it is for `status`.
        f"printf '%s %s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {q(lock.who())} > {q(flag)}.new",
        f"chmod 644 {q(flag)}.new && mv -f {q(flag)}.new {q(flag)}",
    ])


def off_script(cfg) -> str:
    flag = q(cfg.layout.maintenance_flag)
    return f"if [ -e {flag} ]; then rm -f {flag}; else exit {WAS_OFF_EXIT}; fi"


def state_script(cfg) -> str:
    return f"cat {q(cfg.layout.maintenance_flag)} 2>/dev/null || true"


def parse_state(output: str) -> str:
    """The flag's text as "on since WHEN by WHO" ("" when there is no flag: off)."""
    text = output.strip()
    if not text:
        return ""
    when, _, who = text.partition(" ")
    return f"on since {when}" + (f" by {who}" if who else "")


def show(c, cfg, rep, host: str, app: str) -> None:
    """`invoke status`'s line when maintenance is on (nothing when it is off)."""
    from toolkit.errors import fill_next, next_task
    from toolkit.remote import sh

    state = parse_state(sh(c, state_script(cfg), check=False, timeout=30,
                           what="reading the maintenance flag").stdout)
    if state:
        rep.line(f"  maintenance: {state}: visitors get 503 and the maintenance page; "
                 f"to end it: {fill_next(next_task('maintenance.off'), host, app)}")
