"""What each host of deploy.toml [hosts] must know about the others, for rendering its files.

A load balancer's upstream lists the app hosts' private addresses; an app host's nginx listens on
its own private address (and loopback, where the health check and `invoke run` ask) and trusts
X-Forwarded-For only from the load balancers' addresses, and its firewall lets port 80 in from
them only. Those addresses are read from the hosts once per task (`read_addresses`: the
Ipv4Addresses fact, toolkit/facts/addresses.py, picked by [network] private; without it, the
address ssh connects to) and turned into the `host` variables the templates see
(`host_vars(cfg, host, addresses, down=...)`).

`down`: app hosts a rolling deploy has taken out of the load balancer (toolkit/rolling.py): the
upstream keeps them, marked `down`, so nginx keeps its view of the others' failures.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import HostError

LOOPBACK = "127.0.0.1"
APP_PORT = 80  # the app hosts' nginx, where the load balancer sends requests


@dataclass(frozen=True)
class Address:
    """Where a host is: `private`, its address on [network] private (else `reached`); `reached`,
    the address ssh connects to (what people type: a load balancer's public name)."""
    private: str
    reached: str


@dataclass(frozen=True)
class Upstream:
    """One app host in a load balancer's upstream."""
    host: str
    address: str
    down: bool = False


def read_addresses(cfg, hosts, connect, parallel: int = 4) -> dict[str, Address]:
    """{host: its Address} for `hosts` (every host of the inventory a
    task's files depend on), each read over its own connection (`connect(host) -> Connection`),
    up to `parallel` at once. Raises HostError naming a host without an address there."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit import facts as facts_api
    from toolkit.facts.addresses import Ipv4Addresses
    from toolkit.hosts import display_address

    inventory = cfg.inventory

    def one(host):
        conn = connect(host)
        try:
            found = facts_api.gather(conn, [Ipv4Addresses()], what="reading the host's addresses")[Ipv4Addresses]
            fallback = display_address(conn)
        finally:
            conn.close()
        address = inventory.private_address(found, fallback)
        if not address:
            raise HostError(f"{host} has no address in [network] private = {inventory.private_network} "
                            f"(its IPv4 addresses: {', '.join(found) or 'none'})",
                            "put the host on that network, or correct [network] private in deploy.toml")
        return Address(address, fallback)

    hosts = list(dict.fromkeys(hosts))
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return dict(zip(hosts, pool.map(one, hosts)))


def upstreams(cfg, addresses: dict, down=()) -> tuple:
    """The load balancer's upstream: every app host, in inventory order."""
    return tuple(Upstream(h, addresses[h].private, h in down) for h in cfg.inventory.hosts("app"))


def host_vars(cfg, host: str, addresses: dict, down=()) -> dict:
    """The `host` variables of the render for `host` (toolkit/render.py, the nginx templates):
    `roles`; on a load balancer `upstreams`; on an app host behind one `listen` (its private
    address and loopback), `real_ip_from` and `web_from` (the load balancers' addresses), and
    `lb_names` (the names requests arrive with: ALLOWED_HOSTS of an app with domains = ["_"])."""
    inventory = cfg.inventory
    roles = inventory.roles_of(host)
    out: dict = {"roles": roles}
    lbs = inventory.hosts("lb")
    if "lb" in roles:
        out["upstreams"] = upstreams(cfg, addresses, down)
    if lbs and "app" in roles:
        lb_addresses = tuple(dict.fromkeys(addresses[h].private for h in lbs))
        out["listen"] = tuple(dict.fromkeys((addresses[host].private, LOOPBACK)))
        out["real_ip_from"] = lb_addresses
        out["web_from"] = lb_addresses
        out["lb_names"] = tuple(dict.fromkeys(a for h in lbs for a in (addresses[h].reached, addresses[h].private)))
    return out
