"""The names and addresses a host answers to (its hostname, FQDN and every interface address):
Django's ALLOWED_HOSTS for an app with domains = ["_"] (toolkit/render.py base_env), so it never
has to be "*"."""

from __future__ import annotations

import ipaddress

from toolkit.facts import Fact


class HostNames(Fact[tuple]):
    """("web1", "web1.example.net", "203.0.113.10", "[2001:db8::10]"): IPv6 in brackets, as the
    Host header spells it."""

    key = "hostnames"

    def command(self):
        return "hostname; hostname -f 2>/dev/null; hostname -I 2>/dev/null"

    def parse(self, lines):
        names = []
        for word in " ".join(lines).split():
            try:
                if ipaddress.ip_address(word).version == 6:
                    word = f"[{word}]"
            except ValueError:
                word = word.lower()
            if word not in names and word not in ("localhost", "(none)"):
                names.append(word)
        return tuple(names)
