"""Four sandbox hosts on one private network, for the tests of several hosts: `lb`, `app1`, `app2`
and `db`, brought up ONCE for the test module that uses the `fleet` fixture and removed at its end
(unless PRONGHORN_KEEP_SANDBOX=1).

Shared by tests/integration/test_fleet.py (load balancer, rolling deploys) and
tests/integration/test_fleet_db.py (the database host): import the fixture into the test module,

    from tests.integration.fleet import fleet  # noqa: F401  (the fixture)

and use `fleet.lb`, `fleet.app1`, `fleet.app2`, `fleet.db` (toolkit.sandbox.Sandbox: `.ssh_alias`,
`.address` this machine reaches, `.private_address` the others reach) and `fleet.net`.

Names are claimed through tests/conftest.py's claim mechanism, so two test sessions at once get
`fleet-*` and `fleet-2-*` and never share a host or a network. Each module starts from fresh
hosts (kept ones are reset), so one module's apps never meet another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import _claim, _down_unless_kept, _require_sandbox_support
from toolkit import sandbox as sandboxes

ROLES = ("lb", "app1", "app2", "db")


@dataclass
class Fleet:
    net: str
    lb: sandboxes.Sandbox
    app1: sandboxes.Sandbox
    app2: sandboxes.Sandbox
    db: sandboxes.Sandbox

    @property
    def hosts(self) -> dict:
        return {role: getattr(self, role) for role in ROLES}


def _clean_host(name: str, net: str) -> sandboxes.Sandbox:
    """A host with a fresh root filesystem: one kept from an earlier module or session
    (PRONGHORN_KEEP_SANDBOX=1) carries that module's apps (another app's default site on the
    load balancer would refuse this one's), so it is reset; its network stays."""
    def log(message):
        print(f"[sandbox] {message}")

    if sandboxes.get(name) is not None:
        return sandboxes.reset(name, log=log)
    return sandboxes.up(name, net=net, log=log)


@pytest.fixture(scope="module")
def fleet():
    _require_sandbox_support()
    net = _claim("fleet")
    names = {role: f"{net}-{role}" for role in ROLES}
    made = []
    try:
        boxes = {}
        for role, name in names.items():
            made.append(name)
            try:
                boxes[role] = _clean_host(name, net)
            except sandboxes.SandboxError as error:
                pytest.fail(f"could not start sandbox {name} on network {net}: {error}", pytrace=False)
        yield Fleet(net=net, **boxes)
    finally:
        for name in made:
            try:
                _down_unless_kept(name)
            except sandboxes.SandboxError as error:
                print(f"[sandbox] could not remove {name}: {error}")
