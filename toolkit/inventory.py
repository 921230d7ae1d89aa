"""The app's hosts and what each one does: deploy.toml [hosts] (roles) and [network] (the private
network the hosts talk to each other on), as one frozen `Inventory`.

    [hosts]
    lb = ["sandbox-lb"]                        # nginx load balancer in front of the app hosts
    app = ["sandbox-app1", "sandbox-app2"]     # the app under pronghorn, behind their own nginx
    worker = ["sandbox-app1"]                  # [processes] and [schedule]; default: the app hosts
    db = ["sandbox-db"]                        # PostgreSQL when [database] engine = "postgresql"
    [network]
    private = "10.78.0.0/16"                   # each host's address in this subnet; default: ssh's

Without [hosts] the single-host case is unchanged: `[app] hosts` (or `--host`) are the app hosts
and each one runs everything (its own nginx, database, processes); `Inventory.multi` is False.
A host may hold several roles ("app" and "worker" on the same machine is common).

`select(names)` is what `--host` / `--limit` pick: role names and host strings, mixed; the result
keeps each chosen host's roles. `private_address(addresses)` picks a host's address on the private
network from the `Ipv4Addresses` fact (toolkit/facts/addresses.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ROLES = ("lb", "app", "worker", "db")
# The order hosts are worked on when every host is: the database before the apps that use it,
# the app hosts before the load balancer that sends them traffic.
WORK_ORDER = ("db", "app", "worker", "lb")
ROLE_HELP = {
    "lb": "nginx load balancer: the site's public address; proxies to the app hosts",
    "app": "the app under pronghorn behind its own nginx, listening on the private address",
    "worker": "the app's [processes] and [schedule] (default: the app hosts)",
    "db": 'PostgreSQL for [database] engine = "postgresql", reachable from the app hosts only',
}


class InventoryError(ValueError):
    """A --host/--limit value that names no role and no host of the inventory."""


@dataclass(frozen=True)
class Inventory:
    """Which hosts hold which role. `groups` is ((role, (host, ...)), ...) in ROLES order, every
    role present (an empty tuple when no host holds it)."""

    groups: tuple = ()
    private_network: str = ""  # "10.78.0.0/16": hosts talk on their address in it ("" = ssh's)
    multi: bool = False  # True: from [hosts] (load balancer, rolling deploys); False: [app] hosts

    # -- building --------------------------------------------------------------------------------

    @classmethod
    def single(cls, hosts=()) -> "Inventory":
        """The single-host case: every given host is an app host that runs everything."""
        hosts = tuple(dict.fromkeys(hosts))
        return cls(groups=tuple((r, hosts if r in ("app", "worker") else ()) for r in ROLES))

    @classmethod
    def of(cls, roles: dict, private_network: str = "") -> "Inventory":
        """From deploy.toml [hosts] (already checked): worker defaults to the app hosts."""
        given = {r: tuple(dict.fromkeys(roles.get(r, ()))) for r in ROLES}
        if "worker" not in roles:  # `worker = []` says: no host runs them
            given["worker"] = given["app"]
        return cls(groups=tuple((r, given[r]) for r in ROLES), private_network=private_network, multi=True)

    # -- reading ---------------------------------------------------------------------------------

    def hosts(self, role: str) -> tuple:
        if role not in ROLES:
            raise KeyError(f"no role {role!r}: the roles are {', '.join(ROLES)}")
        return dict(self.groups)[role]

    def roles_of(self, host: str) -> tuple:
        """The roles `host` holds, in ROLES order (() when it is not in the inventory)."""
        return tuple(r for r, hosts in self.groups if host in hosts)

    @property
    def all_hosts(self) -> tuple:
        """Every host once, in WORK_ORDER (database, apps, workers, load balancers)."""
        ordered = [h for role in WORK_ORDER for h in self.hosts(role)]
        return tuple(dict.fromkeys(ordered))

    @property
    def app_hosts(self) -> tuple:
        return self.hosts("app")

    @property
    def balanced(self) -> bool:
        """A load balancer is in front of the app hosts: they are taken out of it one batch at a
        time during a deploy (toolkit/rolling.py)."""
        return self.multi and bool(self.hosts("lb"))

    def serves_site(self, host: str) -> bool:
        """Whether visitors reach the site at `host`: the load balancers when there are any, else
        the app hosts (a db or worker-only host never serves it; the single-host case always)."""
        if not self.multi:
            return True
        return ("lb" if self.balanced else "app") in self.roles_of(host)

    def __bool__(self) -> bool:
        return bool(self.all_hosts)

    # -- choosing --------------------------------------------------------------------------------

    def select(self, names) -> tuple:
        """The hosts `names` (role names and hosts, as --host/--limit give them) pick, in
        all_hosts order. Raises InventoryError naming a value that is neither."""
        chosen = set()
        for name in names:
            if name in ROLES:
                chosen.update(self.hosts(name))
            elif name in self.all_hosts:
                chosen.add(name)
            else:
                known = ", ".join(self.all_hosts) or "none"
                raise InventoryError(f"{name!r} is neither a role ({', '.join(ROLES)}) nor a host of "
                                     f"deploy.toml [hosts] (hosts: {known})")
        return tuple(h for h in self.all_hosts if h in chosen)

    # -- the private network ---------------------------------------------------------------------

    def private_address(self, addresses, fallback: str = "") -> str:
        """The host's address on [network] private among `addresses` (its IPv4 addresses, the
        Ipv4Addresses fact); without [network] private, `fallback` (the address ssh connected
        to). "" when the host has no address in the private network."""
        if not self.private_network:
            return fallback
        network = ipaddress.ip_network(self.private_network)
        for address in addresses:
            try:
                if ipaddress.ip_address(address) in network:
                    return address
            except ValueError:
                continue
        return ""


def check_roles(roles: dict) -> list[str]:
    """What is wrong with a [hosts] table as a whole (each list is checked on its own by the
    schema): messages, empty when it is fine."""
    problems = []
    if not roles.get("app"):
        problems.append('[hosts] needs app = ["HOST", ...]: the hosts that run the app')
    if len(roles.get("db", ())) > 1:
        problems.append(f"[hosts] db lists {len(roles['db'])} hosts; one database host is supported "
                        f"(the app hosts share its database)")
    return problems
