"""Private networks: several hosts on one network of their own (`sandbox.up --name lb --net shop`),
so a load balancer, app hosts and a database host reach each other as on a cloud's private network.

Why a "switch" namespace: this machine's iptables may drop bridged traffic (Docker loads
br_netfilter and sets the FORWARD policy to DROP), so the bridge does not live here. Each network is
a network namespace of its own, `pronghorn-net.NAME`, holding a bridge `br0` and nothing else (its
iptables are empty). Each host joins it by a second veth pair: `priv0` in the host's namespace,
`hN` (N the host's number) on the bridge. This machine is NOT on the network; it still reaches each
host at 10.77.N.2 as before. A route `unreachable 10.78.0.0/16` here, while any network exists,
makes a connection from this machine to a private address fail at once instead of leaving by the
default route.

Addresses: network number K (1..MAX_NETWORKS, recorded in nets/NAME.json) gives the subnet
10.78.K.0/24; host number N (its sandbox index, unique on this machine) gives 10.78.K.N. A host's
private address is therefore stable across reboots and resets, and never collides on its network.

The '.' in the namespace name keeps it apart from every host's namespace (`pronghorn-HOST`: a host
name has no '.').
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from toolkit.sandbox import common
from toolkit.sandbox.common import SandboxError, run, write_atomically

PRIVATE_PREFIX = "10.78"  # network K uses 10.78.K.0/24
PRIVATE_RANGE = f"{PRIVATE_PREFIX}.0.0/16"
MAX_NETWORKS = 250
PRIVATE_IFACE = "priv0"  # the host's side of its private veth
BRIDGE = "br0"  # inside the switch namespace, so the name cannot collide with anything here


def validate_net(name: str) -> str:
    """A network name follows the sandbox name rule (it becomes a namespace and a lock name)."""
    if not isinstance(name, str) or not common.NAME_RE.match(name):
        raise SandboxError(
            f"invalid network name {name!r}: use 1-31 characters, lowercase letters, digits and '-', "
            "starting with a letter (e.g. --net shop)"
        )
    return name


def subnet(net_index: int) -> str:
    return f"{PRIVATE_PREFIX}.{net_index}.0/24"


def private_address(net_index: int, host_index: int) -> str:
    """The address of host number `host_index` on network number `net_index`."""
    return f"{PRIVATE_PREFIX}.{net_index}.{host_index}"


def private_mac(net_index: int, host_index: int) -> str:
    """A stable, locally administered MAC for the host's priv0. Stable so the other hosts' ARP
    caches stay right when a host is reset or rebooted (a new random MAC would leave them sending
    to a vanished one for seconds)."""
    return f"02:70:68:00:{net_index:02x}:{host_index:02x}"


def allocate_net_index(used: set[int]) -> int:
    """The lowest free network number."""
    for index in range(1, MAX_NETWORKS + 1):
        if index not in used:
            return index
    raise SandboxError(
        f"all {MAX_NETWORKS} private networks (10.78.1.0/24 .. 10.78.{MAX_NETWORKS}.0/24) are in use: "
        "see them with `invoke sandbox.list` and remove one with `invoke sandbox.down --net NAME`"
    )


def switch_ns(net: str) -> str:
    return f"pronghorn-net.{net}"


def switch_path(net: str) -> Path:
    return Path(f"/run/netns/{switch_ns(net)}")


def port_name(host_index: int) -> str:
    """The bridge's side of host N's private veth (inside the switch namespace)."""
    return f"h{host_index}"


def lock_name(net: str) -> str:
    return f"net.{net}"  # '.' again: never the lock of a host with the same name


# --- the network's record -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NetRecord:
    """One private network: its name and number (the subnet 10.78.K.0/24)."""

    name: str
    index: int

    @property
    def subnet(self) -> str:
        return subnet(self.index)

    @staticmethod
    def path(name: str) -> Path:
        return common.STATE_DIR / "nets" / f"{name}.json"

    @classmethod
    def load(cls, name: str) -> NetRecord | None:
        path = cls.path(name)
        try:
            data = json.loads(path.read_text())
            return cls(name=data["name"], index=int(data["index"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise SandboxError(f"{path} is not a valid network state ({error}); remove the network with "
                               f"`invoke sandbox.down --net {name}`")

    def save(self) -> NetRecord:
        write_atomically(self.path(self.name), json.dumps(dataclasses.asdict(self), sort_keys=True) + "\n")
        return self


def net_records() -> list[NetRecord]:
    directory = common.STATE_DIR / "nets"
    if not directory.is_dir():
        return []
    found = (NetRecord.load(path.stem) for path in sorted(directory.glob("*.json"))
             if common.NAME_RE.match(path.stem))
    return [record for record in found if record]


def ensure_net(name: str) -> NetRecord:
    """The network's record, made with the lowest free number if it is new.

    The caller holds the "addresses" lock, so two hosts joining a new network get one number.
    """
    record = NetRecord.load(name)
    if record is None:
        used = {other.index for other in net_records()}
        record = NetRecord(name=name, index=allocate_net_index(used)).save()
    return record


def forget_net(name: str) -> None:
    """Remove the network's switch and its record (the caller checked no host is on it)."""
    with common.locked(lock_name(name)):
        _delete_switch(name)
        NetRecord.path(name).unlink(missing_ok=True)
    if not net_records():
        _machine_route(present=False)


# --- joining a host -------------------------------------------------------------------------------


def join(net: NetRecord, host_ns: str, host_index: int) -> None:
    """Put the host (its namespace already made) on the network: the switch if missing, the veth."""
    with common.locked(lock_name(net.name)):
        _ensure_switch(net.name)
        ns, port = switch_ns(net.name), port_name(host_index)
        # A port left by a host that was killed: its namespace went, but be sure before adding.
        subprocess.run(["ip", "-n", ns, "link", "delete", port], capture_output=True)
        run(["ip", "-n", ns, "link", "add", port, "type", "veth", "peer", "name", PRIVATE_IFACE,
             "address", private_mac(net.index, host_index), "netns", host_ns])
        run(["ip", "-n", ns, "link", "set", port, "master", BRIDGE, "up"])
    run(["ip", "-n", host_ns, "addr", "add", f"{private_address(net.index, host_index)}/24",
         "dev", PRIVATE_IFACE])
    run(["ip", "-n", host_ns, "link", "set", PRIVATE_IFACE, "up"])
    _machine_route(present=True)


def _ensure_switch(net: str) -> None:
    ns = switch_ns(net)
    if switch_path(net).exists():
        return
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])


def _delete_switch(net: str) -> None:
    if switch_path(net).exists():
        run(["ip", "netns", "delete", switch_ns(net)])


def _machine_route(present: bool) -> None:
    """`unreachable 10.78.0.0/16` on this machine while a network exists (see the module docstring)."""
    if present:
        run(["ip", "route", "replace", "unreachable", PRIVATE_RANGE])
    else:
        subprocess.run(["ip", "route", "delete", "unreachable", PRIVATE_RANGE], capture_output=True)


def leftover_switches() -> list[str]:
    """Network names of switch namespaces on this machine (recorded or not)."""
    netns = Path("/run/netns")
    prefix = switch_ns("")
    if not netns.is_dir():
        return []
    return sorted(path.name[len(prefix):] for path in netns.iterdir() if path.name.startswith(prefix))
