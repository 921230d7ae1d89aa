"""What nginx on the host already serves that a role must take into account."""

from __future__ import annotations

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
