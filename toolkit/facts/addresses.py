"""A host's IPv4 addresses, each with its interface: which one is on the private network of
deploy.toml [network] (toolkit/inventory.py `private_address`) is what the load balancer's upstream,
the app hosts' nginx and the database listen on. Read from `ip -4 -o addr` (iproute2 is on every
Debian and Ubuntu host), loopback left out."""

from __future__ import annotations

import ipaddress

from toolkit.facts import Fact


class Ipv4Addresses(Fact[tuple]):
    """("10.78.0.3", "203.0.113.10"): global IPv4 addresses, in the order the host lists them."""

    key = "ipv4"

    def command(self):
        return "ip -4 -o addr show scope global 2>/dev/null"

    def parse(self, lines):
        # "3: host0    inet 10.78.0.3/16 brd 10.78.255.255 scope global host0\       valid_lft ..."
        found = []
        for line in lines:
            words = line.split()
            if "inet" not in words or words.index("inet") + 1 >= len(words):
                continue
            address = words[words.index("inet") + 1].split("/")[0]
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                continue
            if address not in found:
                found.append(address)
        return tuple(found)
