"""What nginx on the host already serves that a role must take into account."""

from __future__ import annotations

import re

from toolkit.facts import Fact


class DefaultServers(Fact[set]):
    """The enabled nginx sites that are a port's default server (`listen ... default_server`):
    only one may be, so an app with real domains leaves its catch-all off when another app
    already answers every name."""

    key = "nginx_defaults"

    def command(self) -> str:
        return "grep -lsE 'listen[^;#]*default_server' /etc/nginx/sites-enabled/*; true"

    def parse(self, lines) -> set:
        return {line.strip() for line in lines if line.strip()}


class SiteListeners(Fact[dict]):
    """{enabled site: its `listen` arguments}: which ports and addresses the other sites on the
    host serve, so the host's one catch-all server (pronghorn-default.conf) listens where they
    do, the same whichever app deploys it."""

    key = "nginx_listeners"

    def command(self) -> str:
        return "grep -HsE '^[[:space:]]*listen[[:space:]]' /etc/nginx/sites-enabled/*; true"

    def parse(self, lines) -> dict:
        found: dict[str, list[str]] = {}
        for line in lines:
            path, sep, directive = line.partition(":")
            if sep and directive.strip().startswith("listen"):
                found.setdefault(path, []).append(directive.strip()[len("listen"):].strip().rstrip(";").strip())
        return found


class NginxVersion(Fact[tuple]):
    """nginx's version as numbers: the installed one, else the one apt would install (the site is
    rendered before a first install), else () when neither is known. Picks the `http2` syntax."""

    key = "nginx_version"

    def command(self) -> str:
        return ("/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\\([0-9.]*\\).*|\\1|p'; "
                "apt-cache policy nginx 2>/dev/null | sed -n 's/^ *Candidate: *//p'; true")

    def parse(self, lines) -> tuple:
        for line in lines:
            match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)+)", line.strip())
            if match:
                return tuple(int(n) for n in match.group(1).split("."))
        return ()
