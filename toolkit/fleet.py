"""What each host of deploy.toml [hosts] must know about the others, for rendering its files.

A load balancer's upstream lists the app hosts' private addresses; an app host's nginx listens on
its own private address (and loopback, where the health check and `invoke run` ask) and trusts
X-Forwarded-For and X-Forwarded-Proto only from the load balancers' addresses, and its firewall
lets port 80 in from them only. A worker host that is not an app host listens on loopback only
(the deploy's health check) and opens no web port: no visitor reaches it. The load balancers
end TLS ([tls]: `host_config`). Those addresses are read from the hosts once per task
(`read_addresses`: the Ipv4Addresses fact, toolkit/facts/addresses.py, picked by [network]
private; without it, the address ssh connects to) and turned into the `host` variables the
templates see (`host_vars(cfg, host, addresses)`).

Taking app hosts out of rotation (a rolling deploy) changes no file nginx reads and reloads
nothing: the load balancer's site holds one upstream block per set of hosts a roll can take out
(`pools`) and picks the block per request by which out-of-rotation files exist
(layout.lb_out_dir/N for app host number N). A reload would close clients' idle keep-alive
connections, and one reused at that moment fails.
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
    """One app host in a load balancer's upstream; `flag` is its number among the app hosts
    (the name of its out-of-rotation file, see `pools`)."""
    host: str
    address: str
    flag: int


@dataclass(frozen=True)
class Pool:
    """One upstream block of the load balancer: every app host but the `out` ones. `name` is
    what nginx composes from the out-of-rotation files present (APP_pool, APP_pool_1, ...)."""
    suffix: str
    servers: tuple
    out: tuple = ()  # the app hosts left out


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


def upstreams(cfg, addresses: dict) -> tuple:
    """Every app host, in inventory order, numbered from 1."""
    return tuple(Upstream(h, addresses[h].private, i) for i, h in enumerate(cfg.inventory.hosts("app"), 1))


def pools(servers: tuple) -> tuple:
    """The upstream blocks a load balancer needs so a rolling deploy never reloads it: all the app
    hosts, and all but each batch a roll can take out (every slice of consecutive hosts of every
    batch size, the whole fleet excepted). nginx picks the block by the out-of-rotation files
    present (toolkit/rolling.py `out_of_rotation`): a stat per app host per request, no reload,
    so no client's keep-alive connection is ever closed under it."""
    found = {"": Pool("", servers)}
    for size in range(1, len(servers)):
        for start in range(0, len(servers), size):
            out = servers[start:start + size]
            suffix = "".join(f"_{s.flag}" for s in out)
            found.setdefault(suffix, Pool(suffix, tuple(s for s in servers if s not in out),
                                          tuple(s.host for s in out)))
    return tuple(found.values())


def out_suffix(cfg, out_hosts) -> str:
    """The pool suffix for these app hosts out of rotation ("" when none, or all of them: a
    batch as big as the fleet cannot leave anyone serving)."""
    apps = cfg.inventory.hosts("app")
    chosen = [i for i, h in enumerate(apps, 1) if h in out_hosts]
    return "" if len(chosen) in (0, len(apps)) else "".join(f"_{i}" for i in chosen)


def host_vars(cfg, host: str, addresses: dict) -> dict:
    """The `host` variables of the render for `host` (toolkit/render.py, the nginx templates):
    `roles`; on a load balancer `upstreams` and `pools`; on an app host behind one `listen` (its private
    address and loopback), `real_ip_from` and `web_from` (the load balancers' addresses), and
    `lb_names` (the names requests arrive with: ALLOWED_HOSTS of an app with domains = ["_"]);
    on a worker host that is not an app host, `listen` on loopback only."""
    inventory = cfg.inventory
    roles = inventory.roles_of(host)
    out: dict = {"roles": roles}
    lbs = inventory.hosts("lb")
    if "lb" in roles:
        out["upstreams"] = upstreams(cfg, addresses)
        out["pools"] = pools(out["upstreams"])
    if lbs and "app" in roles:
        lb_addresses = tuple(dict.fromkeys(addresses[h].private for h in lbs))
        out["listen"] = tuple(dict.fromkeys((addresses[host].private, LOOPBACK)))
        out["real_ip_from"] = lb_addresses
        out["web_from"] = lb_addresses
        out["lb_names"] = tuple(dict.fromkeys(a for h in lbs for a in (addresses[h].reached, addresses[h].private)))
    elif worker_only(inventory, host):
        # The release is checked here as on an app host (the deploy's health check asks this
        # host's nginx), but nothing outside the host may reach the site: loopback only, and
        # the firewall opens no web port (roles/hardening/firewall.py).
        out["listen"] = (LOOPBACK,)
    return out


def worker_only(inventory, host: str) -> bool:
    """A host of [hosts] worker that is not an app host: the app's [processes] and [schedule],
    never in a load balancer's rotation, its site on loopback only."""
    roles = inventory.roles_of(host)
    return inventory.multi and "worker" in roles and "app" not in roles


def host_config(cfg, host: str):
    """The app's config as `host` runs it. With deploy.toml [hosts], only the worker hosts run
    [processes] and [schedule] (their units, their restarts after a release, their status); an
    app host that is not a worker gets neither, and provisioning retires any it had. [tls] is
    the hosts' that visitors reach (the load balancers, else the app hosts): any other host gets
    no certificate, no https listener and no certbot (`tls.behind_lb`: its health check asks as the load balancer
    would, with X-Forwarded-Proto: https)."""
    from dataclasses import replace

    inventory = cfg.inventory
    if not inventory.multi:
        return cfg
    roles = inventory.roles_of(host)
    if "worker" not in roles and (cfg.processes or cfg.schedules):
        cfg = replace(cfg, processes={}, schedules={})
    if cfg.tls.enabled and not inventory.serves_site(host):
        # the load balancers' (or, without them, the app hosts'): a worker-only or db host that
        # asked for a certificate would fail the CA's challenge, nobody reaching it
        cfg = replace(cfg, tls=replace(cfg.tls, mode="off", behind_lb=True))
    return cfg
