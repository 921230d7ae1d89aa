"""Maintenance mode: nginx answers the app's visitors with a static 503 page (and Retry-After)
while the app is worked on; `invoke maintenance.on/off` (toolkit/tasks_maintenance.py).

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


def on_script(cfg) -> str:
    layout = cfg.layout
    flag = layout.maintenance_flag
    return "\n".join([
        "set -e",
        f"grep -qF {q(flag)} {q(layout.nginx_site)} 2>/dev/null || exit {NO_SITE_EXIT}",
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
