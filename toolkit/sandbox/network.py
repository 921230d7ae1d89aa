"""A host's network: its number N, its addresses (10.77.N.1 here, 10.77.N.2 in the container), and
the network namespace `pronghorn-NAME` joined to this machine by a veth pair.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from toolkit.sandbox.common import SandboxError, run

SUBNET_PREFIX = "10.77"  # sandbox N uses 10.77.N.0/30
MAX_SANDBOXES = 250
CONTAINER_IFACE = "host0"


def addresses(index: int) -> tuple[str, str]:
    """(host side, container side) of sandbox number `index`."""
    return f"{SUBNET_PREFIX}.{index}.1", f"{SUBNET_PREFIX}.{index}.2"


def subnet(index: int) -> str:
    return f"{SUBNET_PREFIX}.{index}.0/30"


def allocate_index(used: set[int]) -> int:
    """The lowest free sandbox number; numbers are never shared while a sandbox exists."""
    for index in range(1, MAX_SANDBOXES + 1):
        if index not in used:
            return index
    raise SandboxError(
        f"all {MAX_SANDBOXES} sandbox addresses are in use: remove some with `invoke sandbox.down --all`"
    )


def netns_name(name: str) -> str:
    return f"pronghorn-{name}"


def netns_path(name: str) -> Path:
    return Path(f"/run/netns/{netns_name(name)}")


def veth_name(index: int) -> str:
    # Interface names are limited to 15 characters, so the host side is named by number, not name.
    return f"pgh{index}"


def setup(name: str, index: int) -> None:
    """Make the namespace and the veth pair (after clearing what an earlier run left)."""
    host, container = addresses(index)
    ns, veth = netns_name(name), veth_name(index)
    teardown(name, index)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", CONTAINER_IFACE, "netns", ns])
    run(["ip", "addr", "add", f"{host}/30", "dev", veth])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "addr", "add", f"{container}/30", "dev", CONTAINER_IFACE])
    run(["ip", "-n", ns, "link", "set", CONTAINER_IFACE, "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", host])


def teardown(name: str, index: int) -> None:
    """Remove the namespace and both ends of the veth; nothing to do if they are gone."""
    # Deleting the namespace destroys the container end of the veth, and with it the host end.
    if netns_path(name).exists():
        run(["ip", "netns", "delete", netns_name(name)])
    # The kernel removes the host end asynchronously; delete it ourselves only if it lingers.
    link = Path(f"/sys/class/net/{veth_name(index)}")
    deadline = time.monotonic() + 5
    while link.exists() and time.monotonic() < deadline:
        subprocess.run(["ip", "link", "delete", veth_name(index)], capture_output=True)
        time.sleep(0.1)
    if link.exists():
        raise SandboxError(f"could not remove network interface {veth_name(index)}: try "
                           f"`ip link delete {veth_name(index)}`, then run the command again")
